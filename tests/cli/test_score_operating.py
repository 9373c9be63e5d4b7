"""`mmad score` end to end on a run whose letter log-probabilities came over HTTP: operating points,
the reliability diagram and `--ci` intervals, in the terminal, the files and `--json`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.data.schema import Subtask
from mmad.models.base import Completion, Model, Request
from mmad.protocol.messages import ImagePart
from mmad.records.record import Record, Status, read_records
from mmad.score.auroc import detection_auroc
from mmad.score.load import load_answers
from mmad.score.table import score_answers
from tests.helpers.runs import copy_run, edit_records
from tests.helpers.serving import running_server


class NoisyDetector(Model):
    """Answers in words no parser reads, with letter log-probabilities: for a Yes/No question a log-odds of
    "defective" fixed by the query image's bytes (over HTTP the model sees the image, not its path);
    elsewhere "B" is favoured."""

    async def generate(self, request: Request) -> Completion:
        letters = request.choices[0]
        images = [p for m in request.messages for p in m.parts if isinstance(p, ImagePart)]
        query = images[-1].data_url or images[-1].path or ""
        noise = int(hashlib.sha256(query.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF * 6 - 3  # in [-3, 3]
        lines = {line[0]: line[3:] for line in request.messages[-1].text.splitlines() if line[1:3] == ". "}
        logprobs = dict.fromkeys(letters, -3.0)
        if set(lines.values()) == {"Yes.", "No."}:
            yes = next(k for k, v in lines.items() if v == "Yes.")
            no = next(k for k, v in lines.items() if v == "No.")
            logprobs[yes], logprobs[no] = -1.0 + noise / 2, -1.0 - noise / 2
        else:
            logprobs["B"] = -0.1
        return Completion(text="Hard to say.", letter_logprobs=logprobs)


@pytest.fixture(scope="module")
def likelihood_run(tmp_path_factory: pytest.TempPathFactory, mmad_json: Path) -> Path:
    out = tmp_path_factory.mktemp("operating") / "run"
    with running_server(NoisyDetector()) as server:
        args = ["eval", "-m", "mmad:noisy", "--base-url", server.base_url, "-d", str(mmad_json), "--out", str(out)]
        assert main([*args, "--no-cache", "--likelihood", "--answer-from", "likelihood"]) == 0
    return out


def test_score_ci_json_carries_intervals_and_operating_points(
    likelihood_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    out = tmp_path / "scored"
    assert (
        main(["score", str(likelihood_run), "--ci", "--samples", "200", "--seed", "3", "--json", "-o", str(out)]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    table = score_answers(load_answers(likelihood_run))
    intervals = data["intervals"]
    assert intervals["samples"] == 200 and intervals["seed"] == 3
    assert intervals["average"]["value"] == pytest.approx(table.average)
    assert intervals["average"]["low"] <= table.average <= intervals["average"]["high"]
    for row in table.rows:
        for subtask, value in row.cells.items():
            cell = intervals["rows"][row.name]["cells"][subtask.value]
            assert (cell is None) == (value is None)
            if cell is not None:
                assert cell["low"] <= value <= cell["high"]
    # the same seed, the same intervals
    assert (
        main(["score", str(likelihood_run), "--ci", "--samples", "200", "--seed", "3", "--json", "-o", str(out)]) == 0
    )
    assert json.loads(capsys.readouterr().out)["intervals"] == intervals
    overall = data["operating_points"]["by_score"]["overall"][0]
    assert overall["source"] == "likelihood" and data["operating_points"]["n_scored"] > 0
    records = read_records(likelihood_run / "records.jsonl")
    assert overall["AUROC"] == pytest.approx(100 * detection_auroc(records)["all"])
    assert overall["n_normal"] + overall["n_defect"] == data["operating_points"]["n_questions"]
    assert not overall["coarse"] and overall["distinct_scores"] >= 10
    assert overall["ECE"] is not None and overall["reliability"]
    assert data["operating_points"]["by_score"]["category"]
    # the Markdown table shows the intervals; the operating points and the diagram are files
    markdown = (out / "scores.md").read_text()
    assert "95% intervals" in markdown and f"[{intervals['average']['low']:.1f}, " in markdown
    assert "AUROC" in (out / "operating_points.md").read_text()
    assert json.loads((out / "operating_points.json").read_text())["n_scored"] == data["operating_points"]["n_scored"]
    assert (out / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table.average_cells[Subtask.ANOMALY_DISCRIMINATION] is not None


def test_score_terminal_shows_intervals_and_operating_points(
    likelihood_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["score", str(likelihood_run), "--ci", "--samples", "100", "-o", str(tmp_path), "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "95% intervals" in text and "operating points" in text and "AUROC" in text
    assert not (tmp_path / "reliability.png").exists()


def test_a_letters_only_run_gets_overkill_and_miss_per_category(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    with running_server() as server:
        args = ["eval", "-m", "mmad:random", "--base-url", server.base_url, "-d", str(mmad_json), "--out", str(out)]
        assert main([*args, "--no-cache", "--subtask", "Anomaly Detection"]) == 0
    capsys.readouterr()
    assert main(["score", str(out), "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["operating_points"]
    assert points["n_scored"] == 0 and points["by_score"]["overall"] == []
    assert points["by_letter"]["category"] and points["by_letter"]["defect_type"]
    assert any("letters only" in note for note in points["notes"])
    assert main(["score", str(out)]) == 0
    assert "operating_points.md" in capsys.readouterr().out
    assert not (out / "reliability.png").exists()


def test_a_model_score_such_as_the_experts_gives_operating_points_without_calibration(
    likelihood_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the expert records pred_score (and its threshold) per image: a score, not a probability
    run = copy_run(likelihood_run, tmp_path / "expert")

    def as_expert(index: int, record: Record) -> Record:
        if record.question_type != "Anomaly Detection":
            return record.model_copy(update={"status": Status.ABSTAINED, "answer": None, "scores": {}})
        score = 2.0 * int("good" not in record.image) + index / 100  # ranks every defect above every normal
        return record.model_copy(update={"scores": {"pred_score": score, "threshold": 1.0}})

    edit_records(run, as_expert)
    capsys.readouterr()
    assert main(["score", str(run), "--json", "--ci", "--samples", "100"]) == 0
    data = json.loads(capsys.readouterr().out)
    overall = data["operating_points"]["by_score"]["overall"][0]
    assert overall["source"] == "model" and overall["AUROC"] == 100.0 and overall["Miss@1%Overkill"] == 0.0
    assert overall["ECE"] is None and not (run / "reliability.png").exists()
    # the subtasks it declined are missing cells, without an interval, never a 0
    cells = data["intervals"]["rows"]["VisA"]["cells"]
    assert cells["Defect Classification"] is None and cells["Anomaly Discrimination"] is not None


def test_samples_or_seed_without_ci_is_a_usage_error(likelihood_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["score", str(likelihood_run), "--seed", "3"]) == 2
    assert "add --ci" in capsys.readouterr().err


def test_mmad_eval_writes_the_operating_point_files_mmad_score_writes(
    likelihood_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = json.loads((likelihood_run / "operating_points.json").read_text())
    assert written["n_scored"] > 0 and written["by_score"]["overall"][0]["AUROC"] is not None
    assert "AUROC" in (likelihood_run / "operating_points.md").read_text()
    assert (likelihood_run / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["score", str(likelihood_run), "-o", str(tmp_path), "--no-plot"]) == 0
    assert json.loads((tmp_path / "operating_points.json").read_text()) == written
