"""The benchmark as data: schema, the official json, validation, counts and download.

Names load on first use: importing `mmad.data.schema` (which every layer above does) must not
pull in the download machinery and the Hugging Face client.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SUBTASKS": "mmad.data.schema",
    "Benchmark": "mmad.data.schema",
    "ImageItem": "mmad.data.schema",
    "Question": "mmad.data.schema",
    "Subtask": "mmad.data.schema",
    "BenchmarkInfo": "mmad.data.info",
    "describe": "mmad.data.info",
    "HuggingFaceSource": "mmad.data.hub",
    "LocalFolderSource": "mmad.data.hub",
    "download": "mmad.data.hub",
    "load_benchmark": "mmad.data.official",
    "write_benchmark": "mmad.data.official",
    "read_provenance": "mmad.data.provenance",
    "check_protocol": "mmad.data.formats",
    "missing_inputs": "mmad.data.formats",
    "Problem": "mmad.data.validate",
    "Severity": "mmad.data.validate",
    "ValidationReport": "mmad.data.validate",
    "validate": "mmad.data.validate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'mmad.data' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
