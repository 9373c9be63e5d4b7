"""The benchmark as data: schema, the official json, validation, counts and download."""

from mmad.data.hub import HuggingFaceSource, LocalFolderSource, download
from mmad.data.info import BenchmarkInfo, describe
from mmad.data.official import load_benchmark, write_benchmark
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
    "describe",
    "download",
    "load_benchmark",
    "validate",
    "write_benchmark",
]
