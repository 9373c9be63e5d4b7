"""One run, the same numbers from every command: `mmad score`, `mmad leaderboard`, `mmad sweep` and
`mmad report` open and score it through one function, show the same metrics, and with `--ci --seed` the
same intervals; cost beside quality with the Pareto front; a perturbed run against its clean twin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.report.charts import CostPoint, pareto_front
from mmad.score.robustness import is_clean_counterpart, perturbation_of
from tests.helpers.runs import copy_run, edit_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, mmad_json: Path) -> Path:
    folder = tmp_path_factory.mktemp("same") / "sweep"
    args = ["sweep", "-m", "random:3", "-d", str(mmad_json), "--shots", "1", "--out", str(folder), "--no-html"]
    assert main([*args, "--ci", "--samples", "200", "--seed", "5"]) == 0
    return folder


def _run_of(sweep: Path) -> Path:
    (cell,) = json.loads((sweep / "sweep.json").read_text())["cells"].values()
    return sweep / cell["folder"]


def test_score_leaderboard_sweep_and_report_show_the_same_figures(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_of(sweep)
    ci = ["--ci", "--samples", "200", "--seed", "5"]
    capsys.readouterr()
    assert main(["score", str(run), "--json", "-o", str(tmp_path / "scored"), "--no-plot", *ci]) == 0
    scored = json.loads(capsys.readouterr().out)
    summary = {
        f"{name}:{cell['name']}": cell["value"]
        for name, metric in scored["metrics"].items()
        for cell in metric["cells"]
        if cell["name"] in metric["headline"]
    }
    assert {"mmad:Average", "detection:Overkill", "cost:tokens/correct"} <= set(summary)
    average = scored["intervals"]["average"]

    assert main(["leaderboard", str(run), "--no-published", "--format", "json", *ci]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["score"] == pytest.approx(scored["average"]) and row["metrics"] == pytest.approx(summary)
    assert row["intervals"]["Average"] == pytest.approx([average["low"], average["high"]])

    (cell,) = json.loads((sweep / "sweep_table.json").read_text())
    assert cell["average"] == pytest.approx(scored["average"]) and cell["metrics"] == pytest.approx(summary)
    assert cell["intervals"]["Average"] == pytest.approx([average["low"], average["high"]])
    assert "95% interval" in (sweep / "sweep_table.md").read_text()

    page = tmp_path / "report.html"
    assert main(["report", str(run), "--no-published", "--out", str(page), *ci]) == 0
    html = page.read_text()
    assert f"{average['low']:.1f}–{average['high']:.1f}" in html  # the Average cell's interval
    assert f"<b>{scored['average']:.2f}</b>" in html
    assert "Cost and quality" in html and 'class="metrics"' in html


def test_the_intervals_are_deterministic_with_a_seed_and_refused_without_ci(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_of(sweep)
    outputs = []
    for seed in ("5", "5", "6"):
        assert (
            main(["leaderboard", str(run), "--no-published", "-f", "json", "--ci", "--samples", "200", "--seed", seed])
            == 0
        )
        outputs.append(json.loads(capsys.readouterr().out)["rows"][0]["intervals"])
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]
    assert main(["leaderboard", str(run), "--no-published", "--seed", "5"]) == 2
    assert "--ci" in capsys.readouterr().err
    assert main(["leaderboard", str(run), "--no-published", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["intervals"] == {}


def test_the_pareto_front_of_a_constructed_set() -> None:
    points = [
        CostPoint("cheap", 40.0, 1.0),
        CostPoint("dominated", 39.0, 2.0),  # dearer and worse than cheap
        CostPoint("middle", 60.0, 3.0),
        CostPoint("tie", 60.0, 3.0),  # equal to middle: neither beats the other
        CostPoint("pricey-worse", 55.0, 5.0),
        CostPoint("best", 80.0, 10.0),
    ]
    assert [p.name for p in pareto_front(points)] == ["cheap", "middle", "tie", "best"]
    assert pareto_front([]) == []


def test_a_perturbed_run_is_shown_against_its_clean_twin(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = _run_of(sweep)
    perturbed = copy_run(clean, tmp_path / "perturbed")
    meta = json.loads((perturbed / "run.json").read_text())
    meta["card"]["perturb"] = "dark=0.5"
    (perturbed / "run.json").write_text(json.dumps(meta, indent=2))
    # the dark run misses every Anomaly Discrimination question it had right
    wrong = {"A": "B", "B": "A"}
    edit_records(
        perturbed,
        lambda _, r: (
            r.model_copy(update={"answer": wrong.get(r.correct_answer, "A")})
            if r.question_type == "Anomaly Detection"
            else r
        ),
    )
    assert perturbation_of(meta["card"]) == "dark=0.5"
    assert is_clean_counterpart(json.loads((clean / "run.json").read_text())["card"], meta["card"])
    capsys.readouterr()
    assert main(["compare", str(clean), str(perturbed), "--json", "--samples", "200"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["robustness"] == {"perturbed": "b", "perturb": "dark=0.5"}
    assert not any("perturb" in note for note in data["notes"])
    ad = next(d for d in data["differences"] if d["group"] == "Anomaly Discrimination")
    assert ad["b"] == 0.0 and ad["high"] < 0
    # compare shows the metrics every command shows, of each whole run
    assert set(data["metrics"]["a"]) == set(data["metrics"]["b"]) and "detection:Miss" in data["metrics"]["a"]
    assert data["metrics"]["b"]["detection:Miss"] == 100.0  # every defective image called good
    assert main(["compare", str(clean), str(perturbed), "--samples", "200"]) == 0
    text = capsys.readouterr().out
    assert "robustness: B is A's protocol with --perturb dark=0.5" in text and "Metrics of each run" in text
    page = tmp_path / "report.html"
    assert main(["report", str(clean), str(perturbed), "--no-published", "--out", str(page)]) == 0
    html = page.read_text()
    assert 'id="robustness"' in html and "(perturb dark=0.5) against" in html
    # two runs with a cost per question (seconds, for a free in-process model): the chart and its front
    assert 'class="costchart"' in html and "Pareto front" in html


def test_a_finished_sweep_shows_its_intervals_on_resume(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(sweep, folder)
    (folder / "sweep_table.json").unlink()
    capsys.readouterr()
    assert main(["sweep", "--resume", str(folder), "--no-html"]) == 0
    assert "95% CI" not in capsys.readouterr().out
    (cell,) = json.loads((folder / "sweep_table.json").read_text())
    assert cell["intervals"] == {}
    assert main(["sweep", "--resume", str(folder), "--no-html", "--ci", "--samples", "200", "--seed", "5"]) == 0
    assert "95% CI" in capsys.readouterr().out
    (again,) = json.loads((sweep / "sweep_table.json").read_text())
    (cell,) = json.loads((folder / "sweep_table.json").read_text())
    assert cell["intervals"] == again["intervals"] and cell["intervals"]["Average"]


def test_a_run_made_with_perturb_pairs_with_the_same_run_made_without(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "-m", "random:3", "-d", str(mmad_json), "--no-cache", "--subtask", "Anomaly Detection"]
    assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    assert main([*args, "--out", str(tmp_path / "dark"), "--perturb", "dark=0.5,blur=2"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "clean"), str(tmp_path / "dark"), "--json", "--samples", "200"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["robustness"] == {"perturbed": "b", "perturb": "blur=2,dark=0.5"}  # in the order they apply
    assert not [note for note in data["notes"] if note.startswith("protocol differs")]
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "clean"), str(tmp_path / "dark"), "--no-published", "--out", str(page)]) == 0
    assert "(perturb blur=2,dark=0.5) against" in page.read_text()
