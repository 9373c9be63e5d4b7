"""The benchmark as data: schema, the official json, validation, counts and download."""

from mmad.data.formats import check_protocol, missing_inputs
from mmad.data.hub import HuggingFaceSource, LocalFolderSource, download
from mmad.data.info import BenchmarkInfo, describe
from mmad.data.official import load_benchmark, write_benchmark
from mmad.data.provenance import read_provenance
from mmad.data.schema import SUBTASKS, Benchmark, ImageItem, Question, Subtask
from mmad.data.validate import Problem, Severity, ValidationReport, validate

__all__ = [
    "SUBTASKS",
    "Benchmark",
    "BenchmarkInfo",
    "HuggingFaceSource",
    "ImageItem",
    "LocalFolderSource",
    "Problem",
    "Question",
    "Severity",
    "Subtask",
    "ValidationReport",
    "check_protocol",
    "describe",
    "download",
    "load_benchmark",
    "missing_inputs",
    "read_provenance",
    "validate",
    "write_benchmark",
]
