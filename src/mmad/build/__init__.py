"""Anomaly-detection datasets to MMAD-style benchmarks, and a synthetic dataset for demos and tests."""

from mmad.build.builder import BuildReport, build_benchmark
from mmad.build.readers import AdSample, read_dataset
from mmad.build.synthetic import make_synthetic_dataset

__all__ = ["AdSample", "BuildReport", "build_benchmark", "make_synthetic_dataset", "read_dataset"]
