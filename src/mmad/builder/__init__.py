"""Anomaly-detection datasets to MMAD-style benchmarks, and a synthetic dataset for demos and tests."""

from mmad.builder.build import BuildReport, build_benchmark
from mmad.builder.readers import AdSample, SourceDataset, read_dataset
from mmad.builder.synthetic import make_synthetic_dataset

__all__ = ["AdSample", "BuildReport", "SourceDataset", "build_benchmark", "make_synthetic_dataset", "read_dataset"]
