"""Run records and run folders: the bottom of mmad, written by `run/`, read by `score/` and `report/`."""

from mmad.records.folder import (
    CONFIG_FILE,
    LOCK_FILE,
    RECORDS_FILE,
    RUN_FILE,
    Completeness,
    RunFolder,
    is_run_folder,
    open_run,
)
from mmad.records.record import PLAIN_VARIANTS, Record, Status, latest_records, read_records

__all__ = [
    "CONFIG_FILE",
    "LOCK_FILE",
    "PLAIN_VARIANTS",
    "RECORDS_FILE",
    "RUN_FILE",
    "Completeness",
    "Record",
    "RunFolder",
    "Status",
    "is_run_folder",
    "latest_records",
    "open_run",
    "read_records",
]
