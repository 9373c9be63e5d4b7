"""The run record at the bottom of mmad: records.jsonl lines, the latest record per posing, run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.errors import AnswersFormatError, RunError
from mmad.records.folder import RECORDS_FILE, RUN_FILE, is_run_folder, run_records
from mmad.records.record import Record, Status, latest_records, read_records
from mmad.run.folder import open_run
from tests.helpers.manifests import v1_config, v1_run_json


def _record(question_id: str, status: Status = Status.ANSWERED, answer: str | None = "A", variant: str = "") -> Record:
    return Record(
        question_id=question_id,
        image="MVTec-AD/bottle/test/good/000.png",
        question_type="Anomaly Detection",
        correct_answer="A",
        status=status,
        answer=answer,
        variant=variant,
    )


def _write(path: Path, records: list[Record], tail: str = "") -> None:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records) + tail, encoding="utf-8")


def test_a_record_survives_its_line_and_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    records = [_record("q#0"), _record("q#1", Status.ERROR, None), _record("q#0", variant="rot1")]
    path = tmp_path / RECORDS_FILE
    _write(path, records, tail='{"question_id": "q#2", "ima')
    assert read_records(path) == records


def test_a_bad_line_in_the_middle_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILE
    path.write_text(_record("q#0").model_dump_json() + "\nnot json\n" + _record("q#1").model_dump_json() + "\n")
    with pytest.raises(AnswersFormatError, match=rf"{RECORDS_FILE}, line 2: not a valid record.*remove or fix"):
        read_records(path)


def test_the_latest_record_of_a_posing_wins_and_variants_stay_apart() -> None:
    failed, retried, rotated = (
        _record("q#0", Status.ERROR, None),
        _record("q#0", answer="B"),
        _record("q#0", variant="r1"),
    )
    latest = latest_records([failed, rotated, retried])
    assert latest == {("q#0", ""): retried, ("q#0", "r1"): rotated}
    assert retried.plain and not rotated.plain and failed.failed and not retried.failed


def test_a_run_folder_counts_what_was_asked_of_what_was_selected(tmp_path: Path) -> None:
    config = v1_config("random", "data", shots=0)
    (tmp_path / RUN_FILE).write_text(json.dumps(v1_run_json(config, selected=4, in_benchmark=10, status="partial")))
    _write(
        tmp_path / RECORDS_FILE,
        [_record("q#0", Status.ERROR, None), _record("q#0"), _record("q#1", Status.ERROR, None)],
    )
    run = open_run(tmp_path)
    assert is_run_folder(tmp_path) and run.model == "random" and run.status == "partial"
    assert run.config.prompt.shots == 0 and run.config.selection.limit is None
    assert [r.question_id for r in run.plain] == ["q#0", "q#1"]
    completeness = run.completeness
    assert (completeness.asked, completeness.answered, completeness.failed) == (2, 1, 1)
    assert (completeness.selected, completeness.in_benchmark, completeness.missing) == (4, 10, 2)
    assert not completeness.complete and completeness.subset


def test_opening_what_is_not_a_run_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="does not exist"):
        open_run(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file, not a run directory"):
        open_run(tmp_path / "file")
    with pytest.raises(RunError, match=f"no {RUN_FILE}"):
        open_run(tmp_path)
    with pytest.raises(RunError, match=f"no {RUN_FILE}"):  # the layers below run/ check the folder the same way
        run_records(tmp_path)
    (tmp_path / RUN_FILE).write_text("[1, 2]")
    with pytest.raises(RunError, match="not a json object; the run folder is damaged"):
        open_run(tmp_path)
