"""The leaderboard tells protocols and contamination apart: rows of systems trained on MMAD are never
ranked with clean ones, detection-only figures sit in a table of their own, and runs with --exclude or
--errata drop say so."""

import csv
import io
import json
from pathlib import Path

import pytest

from mmad.report.leaderboard import build_leaderboard, leaderboard_csv, leaderboard_json, leaderboard_markdown
from mmad.report.leaderboard.model import DETECTION_ONLY, NOT_RANKED, RANKED, TRAINED_ON_MMAD
from mmad.score.published import PublishedEntry

DETECTION = {"AirIAD-4B": 85.2, "Qwen3.5-Plus": 79.6, "Gemini-3.1-Pro": 75.4, "GPT-5.4": 73.1, "Qwen3-VL-8B": 69.7}


def _entry(name: str, average: float, **fields: object) -> PublishedEntry:
    base: dict[str, object] = {
        "id": f"test/{name}",
        "system": name,
        "average": average,
        "group": "same-source",
        "group_label": "one source, one protocol",
        "ranked": True,
        "coverage": "full",
        "shots": 1,
        "source": "a test",
        "citation": "a test",
        "protocol": "1-shot",
    }
    return PublishedEntry.model_validate(base | fields)


def test_a_row_trained_on_mmad_is_never_ranked_with_clean_rows() -> None:
    entries = [
        _entry("clean-a", 70.0),
        _entry("clean-b", 60.0),
        _entry("trained", 90.0, trained_on=["mmad-questions"], trained_source="its training file"),
        _entry("trained-on-sources", 80.0, trained_on=["source-datasets"]),
    ]
    board = build_leaderboard([], entries)
    rows = {r.name: r for r in board.rows}
    assert [r.name for r in board.ranked] == ["clean-a", "clean-b"]
    assert (rows["clean-a"].rank, rows["clean-b"].rank) == (1, 2)  # 90 and 80 above them do not push them down
    trained = [r.name for r in board.trained_on_mmad]
    assert trained == ["trained", "trained-on-sources"]
    assert {rows[n].group for n in trained}.isdisjoint({rows["clean-a"].group})
    assert [r.name for r in board.rows] == ["clean-a", "clean-b", "trained", "trained-on-sources"]
    assert rows["trained"].contamination == "saw MMAD"
    assert rows["trained"].marks[0] == "trained on MMAD: MMAD questions (its training file)"
    assert rows["trained-on-sources"].contamination == "saw MMAD's sources"


def test_the_shipped_rows_keep_contaminated_and_detection_only_figures_apart(random_run: Path) -> None:
    board = build_leaderboard([random_run])
    sections = [r.section for r in board.rows]
    order = [RANKED, TRAINED_ON_MMAD, NOT_RANKED, DETECTION_ONLY]
    assert sections == sorted(sections, key=order.index)  # never interleaved
    clean_groups = {r.group for r in board.rows if not r.contaminated}
    for row in board.trained_on_mmad:
        assert row.group not in clean_groups, row.name
    trained = {r.name.split(" (")[0] for r in board.trained_on_mmad}
    assert trained == {"AnomalyGPT", "Anomaly-LR", "AgentIAD"}
    assert all(not r.contaminated for r in board.ranked)
    detection = {r.name: r for r in board.detection_only}
    assert {name: row.score for name, row in detection.items()} == DETECTION
    assert [detection[n].rank for n in ("Qwen3.5-Plus", "Gemini-3.1-Pro", "GPT-5.4", "Qwen3-VL-8B")] == [1, 2, 3, 4]
    assert detection["AirIAD-4B"].rank is None  # a model trained for the task, data not checked: not ranked
    assert not set(DETECTION) & {r.name for r in [*board.ranked, *board.unranked, *board.trained_on_mmad]}
    lr = next(r for r in board.rows if r.name == "Anomaly-LR (7B)")
    assert (lr.shots, lr.question_set) == (0, "a subset: 32,059 questions")
    assert lr.trained_on.startswith("MMAD images") and lr.rank is None
    gpt4o = next(r for r in board.rows if r.name == "GPT-4o (gpt-4o)")
    assert (gpt4o.shots, gpt4o.question_set, gpt4o.contamination) == (1, "all 39,672 questions", "none known")
    assert any(note.startswith("Trained on MMAD or its sources, with no figure here: JUDO") for note in board.notes)


def test_detection_only_figures_are_left_out_of_narrowed_views(random_run: Path) -> None:
    board = build_leaderboard([random_run], subtasks=["AD"])
    assert not board.detection_only


def test_outputs_show_the_sections_and_what_each_row_saw(random_run: Path) -> None:
    board = build_leaderboard([random_run])
    text = leaderboard_markdown(board)
    ranked = text.index("#### Ranked within comparable groups")
    trained = text.index("#### Trained on MMAD or its source datasets")
    detection = text.index("#### Anomaly discrimination only")
    assert ranked < trained < detection
    assert text.index("| GPT-5.4 ") > detection and text.index("| Anomaly-LR (7B)") > trained
    assert "- Anomaly-LR (7B): 0-shot; a subset: 32,059 questions; trained on MMAD images" in text
    data = json.loads(leaderboard_json(board))
    by_name = {r["name"]: r for r in data["rows"]}
    assert by_name["GPT-5.4"]["section"] == DETECTION_ONLY and by_name["GPT-5.4"]["table"] == "detection-only"
    assert by_name["AgentIAD (3B Qwen2.5-VL agent: zoom tool, normal-sample retriever; tool-aware SFT + GRPO)"][
        "contaminated"
    ]
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv(board))))
    anomalygpt = next(r for r in rows if r["name"].startswith("AnomalyGPT (train_mvtec"))
    assert anomalygpt["section"] == TRAINED_ON_MMAD and anomalygpt["contamination"] == "saw MMAD's sources"
    assert anomalygpt["question_set"] == "all 39,672 questions" and anomalygpt["shots"] == "1"


def test_runs_with_exclude_or_errata_drop_are_marked_and_ranked_apart(
    mmad_json: Path, random_run: Path, tmp_path: Path
) -> None:
    import mmad

    excluded = mmad.evaluate("random", mmad_json, out=tmp_path / "no-visa", exclude="VisA", cache=False).run_dir
    board = build_leaderboard([random_run, excluded], published=[])
    rows = {Path(r.source).name: r for r in board.rows}
    row = rows["no-visa"]
    assert row.clean_split == ["--exclude dataset:VisA: left out of what is asked and scored"]
    assert row.clean_split[0] in row.marks
    assert row.group != rows["random"].group  # another card: another group
    assert row.rank == 1 and not any(m.startswith("subset") for m in row.marks)  # its split, whole: ranked
    assert "after --errata drop/--exclude left out 18" in row.question_set
    assert "--exclude dataset:VisA" in leaderboard_markdown(board)


@pytest.mark.slow
def test_the_html_leaderboard_has_the_sections(random_run: Path, tmp_path: Path) -> None:
    from mmad.report.html import write_html_report

    page = write_html_report([random_run], tmp_path / "report.html").read_text(encoding="utf-8")
    ranked, trained = page.index('<tbody class="ranked">'), page.index('<tbody class="trained">')
    unranked, detection = page.index('<tbody class="unranked">'), page.index('id="detection-table"')
    assert ranked < trained < unranked < detection
    assert page.index(">GPT-5.4<") > detection
    assert "trained on MMAD images (the Anomaly-LR README" in page


def test_the_cli_names_systems_trained_on_mmad_that_have_no_figure(capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.cli import main

    assert main(["leaderboard", "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "Trained on MMAD or its sources, with no figure here: JUDO (ICLR 2026)" in text
    assert text.index("#### Anomaly discrimination only") > text.index("#### Trained on MMAD")


@pytest.mark.slow
def test_the_html_sources_table_says_shots_questions_and_training(random_run: Path, tmp_path: Path) -> None:
    from mmad.report.html import write_html_report

    page = write_html_report([random_run], tmp_path / "report.html").read_text(encoding="utf-8")
    sources = page[page.index('id="sources-table"') :]
    assert "0 · a subset: 32,059 questions" in sources and "1 · all 39,672 questions" in sources
    assert "not stated · not stated by the source · detection only" in sources


def test_a_row_on_the_official_debug_sample_is_listed_and_its_training_said_once() -> None:
    # coverage 'debug-sample' is a catalog value (PublishedEntry.Coverage): the row builder had no text for it
    # and failed with a KeyError; it is a subset, never ranked beside full rows of its source; and a row trained on
    # MMAD's sources said "MMAD's source datasets" twice
    entries = [
        _entry("full", 60.0),
        _entry("debug", 70.0, coverage="debug-sample"),
        _entry("sources", 60.0, trained_on=["source-datasets"], trained_source="its README"),
    ]
    rows = {r.name: r for r in build_leaderboard([], entries).rows}
    assert "debug sample" in rows["debug"].completeness and rows["debug"].rank is None
    assert any(m.startswith("subset: the official debug sample") for m in rows["debug"].marks)
    assert rows["full"].rank == 1
    assert rows["sources"].marks[0] == "trained on MMAD's source datasets (its README)"


def test_the_terminal_shows_a_whole_clean_split_run_as_whole(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "N/M asked" with M the whole benchmark read as an interrupted run for a run that asked all its split kept
    import mmad
    from mmad.cli import main

    excluded = mmad.evaluate("random", mmad_json, out=tmp_path / "no-visa", exclude="VisA", cache=False)
    asked = excluded.completeness.asked
    capsys.readouterr()
    assert main(["leaderboard", str(excluded.run_dir), "--no-published"]) == 0
    assert f"{asked}/{asked} asked (18 left out), {asked} answered" in capsys.readouterr().out


def test_the_cli_says_why_nothing_is_left_and_refuses_an_out_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    # a --protocol that matches no row was answered with the note on JUDO and the other leakage systems
    assert main(["leaderboard", "--protocol", "nosuch"]) != 0
    err = capsys.readouterr().err
    assert "--protocol 'nosuch' matches no row" in err and "JUDO" not in err
    # an --out whose suffix names no format got the terminal table, whatever the name said (.html, .xlsx)
    for name in ("board.html", "board.xlsx"):
        assert main(["leaderboard", "--out", str(tmp_path / name)]) == 2
        assert "--format" in capsys.readouterr().err and not (tmp_path / name).exists()
    assert main(["leaderboard", "--out", str(tmp_path / "board.html")]) == 2
    assert "mmad report" in capsys.readouterr().err
    assert main(["leaderboard", "--out", str(tmp_path / "board.xlsx"), "--format", "csv"]) == 0  # said: written
