"""Run records and run folders: the bottom of mmad, written by `run/`, read by `score/` and `report/`."""

from mmad.records.folder import (
    CONFIG_FILE,
    LOCK_FILE,
    RECORDS_FILE,
    RUN_FILE,
    Completeness,
    RunRecords,
    check_run_folder,
    is_run_folder,
    open_records,
    run_records,
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
    "RunRecords",
    "Status",
    "check_run_folder",
    "is_run_folder",
    "latest_records",
    "open_records",
    "read_records",
    "run_records",
]
