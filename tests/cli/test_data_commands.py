"""The data and scoring commands, run through the real CLI entry point."""

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.score import write_official_answers
from tests.score.test_table import build_answers


def test_info_counts(mmad_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(mmad_json.parent), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["questions"]["DS-MVTec"]["Anomaly Discrimination"] == 6
    assert info["questions"]["DS-MVTec"]["Object Analysis"] == 4
    assert info["images"]["VisA"] == {"normal": 2, "abnormal": 2}
    assert info["defect_types"]["MVTec-LOCO/juice_bottle"] == ["logical_anomalies", "structural_anomalies"]
    assert info["answer_letters"]["Anomaly Discrimination"] == {"A": 12, "B": 8}
    assert main(["info", str(mmad_json.parent)]) == 0
    assert "Questions per source dataset" in capsys.readouterr().out


def test_validate_exit_codes(fresh_mmad_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(fresh_mmad_json)]) == 0
    assert "valid" in capsys.readouterr().out
    (fresh_mmad_json.parent / "VisA/candle/test/bad/001.JPG").unlink()
    assert main(["validate", str(fresh_mmad_json), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["problems"][0]["code"] == "missing-image"
    assert report["problems"][0]["key"] == "VisA/candle/test/bad/001.JPG"


def test_score_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "answers_1_shot_model.json"
    write_official_answers(build_answers(), path)
    assert main(["score", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Average" in out and "policy strict" in out
    for name in (
        "answers_1_shot_model_accuracy.csv",
        "answers_1_shot_model_scores.md",
        "answers_1_shot_model_scores.json",
        "answers_1_shot_model_heatmap.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    before = path.read_bytes()
    assert main(["score", str(path), "--policy", "upstream", "--no-plot"]) == 0
    assert path.read_bytes() == before  # the answers file is never overwritten
    assert (tmp_path / "answers_1_shot_model_upstream_accuracy.csv").exists()
    assert "remove-while-iterating" in (tmp_path / "answers_1_shot_model_upstream_scores.md").read_text()


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "answers.json"
    bad.write_text('{"not": "a list"}')
    assert main(["score", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "json list of records" in err and "Traceback" not in err


@pytest.mark.subprocess
def test_a_piped_score_table_keeps_its_numbers(tmp_path: Path) -> None:
    """Piped into a log, rich would assume 80 columns and cut the numbers to '88.…'."""
    import os
    import subprocess
    import sys

    path = tmp_path / "answers_1_shot_model.json"
    write_official_answers(build_answers(), path)
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    shown = subprocess.run(
        [sys.executable, "-m", "mmad", "score", str(path)], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "Average" in shown and "…" not in shown


def test_validate_show_takes_zero_or_more(fresh_mmad_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(fresh_mmad_json), "--show", "-1"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--show'" in err and "greater than or equal to 0" in err
    assert main(["validate", str(fresh_mmad_json), "--show", "0"]) == 0
    out = capsys.readouterr().out
    assert "… and" in out and " more (--show N, or --json)" in out and "valid" in out


def test_download_progress_never_reaches_stdout_or_a_pipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.data.test_download import _folder

    hub = _folder(tmp_path)
    assert main(["download", "--source", str(hub), "--out", str(tmp_path / "data")]) == 0
    captured = capsys.readouterr()
    assert "next: mmad validate" in captured.out
    # Not a terminal here: no bar frames (one was drawn on stdout: "unpacking ALL_DATA.zip ━━━ 6/6"), only
    # plain progress lines on stderr.
    assert "━" not in captured.out + captured.err and "unpacking" not in captured.out
    assert "unpacking ALL_DATA.zip: 6/6 (100%)" in captured.err


def test_info_at_80_columns_prints_mmads_datasets_and_counts_whole(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(mmad_json.read_text(encoding="utf-8"))
    # MMAD's size: four- and five-digit counts (each image recorded 800 times under new names)
    big = {key.replace(".", f"_{i}.", 1): record for key, record in raw.items() for i in range(800)}
    (tmp_path / "mmad.json").write_text(json.dumps(big), encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["info", str(tmp_path / "mmad.json")]) == 0
    out = capsys.readouterr().out
    table = out.split("Answer letters")[0].split("\n", 1)[1]  # after the "sha256 8b50…" line
    assert "…" not in table and all(len(line) <= 80 for line in table.splitlines())
    assert {"DS-MVTec", "MVTec-LOCO", "VisA", "GoodsAD", "Categories"} <= set(table.split())
    assert main(["info", str(tmp_path / "mmad.json"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    counts = {str(n) for per in info["questions"].values() for n in per.values()}
    assert max(map(int, counts)) >= 1000 and counts <= set(table.split())
