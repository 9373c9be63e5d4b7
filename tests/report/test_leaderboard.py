"""The leaderboard: published rows and real runs in one table, ranked only among comparable rows."""

import csv
import io
import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.data.schema import Subtask
from mmad.errors import ConfigError
from mmad.records import Status
from mmad.report.leaderboard import (
    RunScores,
    build_leaderboard,
    leaderboard_csv,
    leaderboard_json,
    leaderboard_markdown,
    view_figures,
)
from mmad.run.folder import open_run
from mmad.score.published import PUBLISHED_PROTOCOL, load_published_results
from tests.helpers.runs import answer_right, copy_run, edit_meta, edit_records

CARD = {"protocol": "per-question", "shots": 1, "templates": "random", "parser": "mmad", "images": "512 jpeg"}


def _row(board, name):  # type: ignore[no-untyped-def]
    return next(r for r in board.rows if r.name == name)


@pytest.fixture
def interrupted(random_run: Path, tmp_path: Path) -> Path:
    """The same model cut short after 48 questions, every one of them right: a better average than the full run."""
    run = copy_run(random_run, tmp_path / "interrupted")
    edit_records(run, lambda i, r: answer_right(r) if i < 48 else None)
    edit_meta(run, status="interrupted")
    return run


def test_an_interrupted_run_never_ranks_above_the_full_run(random_run: Path, interrupted: Path) -> None:
    board = build_leaderboard([random_run, interrupted], published=[])
    full, cut = board.rows[0], board.rows[1]
    assert Path(full.source) == random_run and Path(cut.source) == interrupted
    assert cut.score is not None and full.score is not None and cut.score > full.score  # better, yet below
    assert full.rank == 1 and cut.rank is None and not cut.eligible
    assert cut.asked == 48 and cut.in_benchmark == 92
    assert any("incomplete (run interrupted): asked 48 of 92 selected" in m for m in cut.marks)
    assert full.name == "random (random)" and cut.name == "random (interrupted)"  # same model, told apart


def test_a_subset_run_is_marked_and_not_ranked(mmad_json: Path, tmp_path: Path) -> None:
    import mmad

    subset = mmad.evaluate("random", mmad_json, out=tmp_path / "subset", limit=20, cache=False).run_dir
    edit_records(subset, lambda i, r: answer_right(r))
    row = build_leaderboard([subset], published=[]).rows[0]
    assert row.rank is None and row.score == pytest.approx(100.0)
    assert any(m.startswith("subset") for m in row.marks)


def test_runs_with_different_cards_are_ranked_in_separate_groups(random_run: Path, tmp_path: Path) -> None:
    a = copy_run(random_run, tmp_path / "a")
    b = copy_run(random_run, tmp_path / "b")
    c = copy_run(random_run, tmp_path / "c")
    edit_meta(a, card=CARD, card_hash="a" * 64)
    edit_meta(b, card={**CARD, "shots": 0}, card_hash="b" * 64)
    edit_meta(c, card=CARD, card_hash="a" * 64)
    edit_records(c, lambda i, r: answer_right(r) if i % 2 else r)
    legacy = copy_run(random_run, tmp_path / "random")  # a run made before protocol cards existed
    meta = json.loads((legacy / "run.json").read_text())
    del meta["card"], meta["card_hash"]
    (legacy / "run.json").write_text(json.dumps(meta))
    board = build_leaderboard([a, b, c, legacy], published=[])
    rows = {Path(r.source).name: r for r in board.rows}
    assert rows["c"].group == rows["a"].group != rows["b"].group
    assert (rows["c"].rank, rows["a"].rank, rows["b"].rank) == (1, 2, 1)
    assert rows["a"].card_hash == "a" * 64 and rows["a"].protocol.startswith("card aaaaaaaaaaaa: protocol=per-question")
    assert rows["random"].card_hash is None and rows["random"].protocol.startswith("no card")
    assert rows["random"].rank == 1 and rows["random"].group not in {rows["a"].group, rows["b"].group}
    assert any("no protocol card" in m for m in rows["random"].marks)
    letters = board.group_letters()
    assert len(set(letters.values())) == 3


def test_strict_and_upstream_averages_differ_when_answers_lack_a_letter(random_run: Path, tmp_path: Path) -> None:
    run = copy_run(random_run, tmp_path / "unparsed")

    def plant(index: int, record):  # type: ignore[no-untyped-def]
        if index % 5 == 0:
            return record.model_copy(update={"status": Status.UNPARSED, "answer": None, "raw_reply": "I think so"})
        return answer_right(record)

    edit_records(run, plant)
    scores = RunScores.of(run)
    row = build_leaderboard([scores], published=[]).rows[0]
    assert row.strict == pytest.approx(scores.strict.average) and row.upstream == pytest.approx(scores.upstream.average)
    assert row.strict is not None and row.upstream is not None and row.strict != pytest.approx(row.upstream)
    assert row.strict < 100.0  # strict counts the unparsed answers as wrong; everything else is right
    assert row.rank == 1  # unparsed answers are answers: the run is complete
    upstream_board = build_leaderboard([scores], published=[], policy="upstream")
    assert upstream_board.rows[0].score == pytest.approx(row.upstream)


def test_published_rows_come_by_default_with_their_protocol(random_run: Path) -> None:
    board = build_leaderboard([random_run])
    names = [r.name for r in board.rows]
    assert "GPT-4o (gpt-4o)" in names and "Human expert" in names and "EMIT" in names
    gpt4o = _row(board, "GPT-4o (gpt-4o)")
    assert gpt4o.protocol.startswith(PUBLISHED_PROTOCOL) and gpt4o.upstream == pytest.approx(74.31, abs=0.01)
    assert gpt4o.strict is None and gpt4o.rank is not None and gpt4o.overkill == pytest.approx(32.44, abs=0.01)
    assert _row(board, "Qwen2-VL-72B-Instruct (_test1)").rank == 1
    claude = next(r for r in board.rows if r.name.startswith("Claude"))
    assert claude.rank is None and claude.marks[0].startswith("subset")
    for name in ("Human expert", "EMIT", "AgentIAD"):
        row = next(r for r in board.rows if r.name.startswith(name))
        assert row.rank is None
    assert "may have seen MMAD's test products" in _row(board, "EMIT").marks
    run = next(r for r in board.rows if r.kind == "run")
    assert run.rank == 1 and run.group.startswith("runs:")  # its own group: never ranked among published rows
    ranked = board.ranked
    assert ranked and board.rows[: len(ranked)] == ranked  # clean ranked rows come first


def test_filters_by_dataset_subtask_and_protocol(random_run: Path) -> None:
    scores = RunScores.of(random_run)
    visa = build_leaderboard([scores], datasets=["VisA"])
    run = next(r for r in visa.rows if r.kind == "run")
    assert run.strict == pytest.approx(scores.strict.row("VisA").average)
    gpt4o = _row(visa, "GPT-4o (gpt-4o)")
    entry = next(e for e in load_published_results() if e.id == "official/gpt-4o")
    assert gpt4o.score == pytest.approx(entry.datasets["VisA"]["Average"])
    assert all(not r.name.startswith("Human") for r in visa.rows)
    assert "have no figure for this view" in visa.notes[0]

    ad = build_leaderboard([scores], subtasks=[Subtask.ANOMALY_DISCRIMINATION])
    run = next(r for r in ad.rows if r.kind == "run")
    assert run.strict == pytest.approx(scores.strict.average_cells[Subtask.ANOMALY_DISCRIMINATION])
    assert _row(ad, "Human expert").score == pytest.approx(95.24)
    assert all(not r.name.startswith("EMIT") for r in ad.rows)  # only an average was published
    assert ad.subtasks == ["Anomaly Discrimination"]

    assert {r.kind for r in build_leaderboard([scores], protocol="published").rows} == {"published"}
    assert [r.kind for r in build_leaderboard([scores], protocol="runs").rows] == ["run"]
    zero_shot = build_leaderboard([scores], protocol="0-shot").rows
    assert {r.name for r in zero_shot} == {"SPHINX-v2-1k", "Cambrian-8B", "Anomaly-LR (3B)", "Anomaly-LR (7B)"}


def test_unfiltered_view_is_the_score_table(random_run: Path) -> None:
    scores = RunScores.of(random_run)
    for table, zero in ((scores.strict, False), (scores.upstream, True)):
        cells = {row.name: dict(row.cells) for row in table.rows}
        average, per_subtask = view_figures(cells, [], [], zero_for_missing=zero)
        assert average == pytest.approx(table.average)
        assert per_subtask == pytest.approx({s.value: v for s, v in table.average_cells.items()})


def test_the_four_formats(random_run: Path, interrupted: Path) -> None:
    board = build_leaderboard([random_run, interrupted])
    data = json.loads(leaderboard_json(board))
    assert len(data["rows"]) == len(board.rows) and data["policy"] == "strict"
    sections = [r["section"] for r in data["rows"]]
    assert sections == sorted(sections, key=lambda s: s != "ranked")
    assert {g["label"] for g in data["groups"].values()} == set(board.groups.values())
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv(board))))
    assert len(rows) == len(board.rows)
    cut = next(r for r in rows if r["source"] == str(interrupted))
    assert (
        cut["section"] == "not ranked" and cut["rank"] == "" and cut["asked"] == "48" and "incomplete" in cut["marks"]
    )
    markdown = leaderboard_markdown(board)
    assert markdown.index("#### Ranked") < markdown.index("random (random)") < markdown.index("#### Not ranked")
    assert markdown.index("#### Not ranked") < markdown.index("random (interrupted)")


def test_cli_leaderboard_formats_and_files(random_run: Path, interrupted: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["leaderboard", str(random_run), str(interrupted)]) == 0
    text = capsys.readouterr().out
    assert "Ranked within comparable groups" in text and "Not ranked" in text and "GPT-4o (gpt-4o)" in text
    assert text.index("Not ranked") < text.index("random (interrupted)")
    assert main(["leaderboard", str(random_run), "--format", "json", "--no-published"]) == 0
    assert [r["kind"] for r in json.loads(capsys.readouterr().out)["rows"]] == ["run"]
    for suffix, check in ((".md", "#### Ranked"), (".csv", "section,rank,group"), (".json", '"rows"')):
        out = tmp_path / f"board{suffix}"
        assert main(["leaderboard", str(random_run), "--out", str(out), "--subtask", "AD"]) == 0
        assert check in out.read_text()
    capsys.readouterr()
    assert main(["leaderboard", "--dataset", "GoodsAD", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and all(r["kind"] == "published" for r in rows)


def test_cli_leaderboard_errors(random_run: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["leaderboard", "--format", "xml"]) == 2
    assert "--format 'xml'" in capsys.readouterr().err
    assert main(["leaderboard", "--subtask", "Colour"]) == 2
    assert "unknown subtask 'Colour'" in capsys.readouterr().err
    assert main(["leaderboard", "--published", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path / "not-a-run")]) == 2
    assert "does not exist" in capsys.readouterr().err
    for args, bad in (
        (["--dataset", "Nowhere"], "Nowhere"),
        ([str(random_run), "--dataset", "VisA", "--dataset", "visa"], "visa"),
    ):
        assert main(["leaderboard", *args]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"--dataset {bad}: no such dataset; choose from DS-MVTec, MVTec-LOCO, VisA, GoodsAD" in err, err


def test_a_run_of_its_own_dataset_can_be_chosen(random_run: Path, tmp_path: Path) -> None:
    renamed = copy_run(random_run, tmp_path / "renamed")
    edit_records(renamed, lambda i, r: r.model_copy(update={"image": r.image.replace("VisA/", "Cans/", 1)}))
    board = build_leaderboard([renamed], published=[], datasets=["Cans"])
    assert [r.kind for r in board.rows] == ["run"] and board.rows[0].strict is not None
    with pytest.raises(ConfigError, match=r"--dataset Tins: no such dataset; choose from .*GoodsAD, Cans "):
        build_leaderboard([renamed], published=[], datasets=["Tins"])


def test_completeness_comes_from_the_run_folder(random_run: Path, interrupted: Path) -> None:
    row = build_leaderboard([interrupted], published=[]).rows[0]
    assert row.completeness == open_run(interrupted).completeness.describe()


def test_equal_figures_share_a_rank(random_run: Path, tmp_path: Path) -> None:
    twin = copy_run(random_run, tmp_path / "twin")
    better = copy_run(random_run, tmp_path / "better")
    edit_records(better, lambda i, r: answer_right(r))
    ranks = {Path(r.source).name: r.rank for r in build_leaderboard([random_run, twin, better], published=[]).rows}
    assert ranks == {"better": 1, "random": 2, "twin": 2}


def test_markdown_cells_carry_no_html_from_a_model_name(random_run: Path, tmp_path: Path) -> None:
    named = copy_run(random_run, tmp_path / "named")
    meta = json.loads((named / "run.json").read_text())
    meta["config"]["model"] = "compat:<img src=x onerror=alert(1)>|x"
    (named / "run.json").write_text(json.dumps(meta))
    markdown = leaderboard_markdown(build_leaderboard([named], []))
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt;\\|x" in markdown


def test_a_run_declining_subtasks_outside_the_view_is_ranked(random_run: Path, tmp_path: Path) -> None:
    """Declining DC..OA (as the visual expert does) keeps a run off the full board, not off an AD+DL view,
    where its average covers what every other row's does."""
    kept = {"Anomaly Detection", "Defect Localization"}

    def decline(_: int, record):  # type: ignore[no-untyped-def]
        if record.question_type in kept:
            return record
        return record.model_copy(update={"status": Status.ABSTAINED, "answer": None, "raw_reply": None})

    expert_like = copy_run(random_run, tmp_path / "declines")
    edit_records(expert_like, decline)
    full = _row(build_leaderboard([expert_like], published=[]), "random")
    assert full.rank is None and any("does not answer DC, DD, DA, OC, OA" in m for m in full.marks)
    view = [Subtask.ANOMALY_DISCRIMINATION, Subtask.DEFECT_LOCALIZATION]
    narrowed = _row(build_leaderboard([expert_like], published=[], subtasks=view), "random")
    assert narrowed.rank == 1 and narrowed.eligible, narrowed.marks
    assert not any("does not answer" in m for m in narrowed.marks)
    with_dc = _row(
        build_leaderboard([expert_like], published=[], subtasks=[*view, Subtask.DEFECT_CLASSIFICATION]), "random"
    )
    assert with_dc.rank is None and any("does not answer DC (declined" in m for m in with_dc.marks)


def test_at_80_columns_no_name_or_figure_is_cut(random_run: Path, interrupted: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["leaderboard", str(random_run), str(interrupted)]) == 0
    text = capsys.readouterr().out
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    assert {"Average", "Strict", "Upstream", "Overkill", "Miss", "74.31", "32.44", "32.63"} <= set(text.split())
    # the protocol and marks of a row are one line under its table, not a word per line beside it
    assert "GPT-4o (gpt-4o): published; the paper reports 74.92" in text.replace("\n", " ")
    assert "random (interrupted): card" in text


def test_a_sweep_folder_or_its_files_point_to_its_cells(random_run: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    sweep = tmp_path / "sweep"
    copy_run(random_run, sweep / "random_per-question_1shot_random_plain")
    (sweep / "sweep.json").write_text("{}")
    (sweep / "sweep_table.md").write_text("")
    assert main(["leaderboard", str(sweep)]) == 2
    assert f"{sweep} is a sweep's folder, not a run" in capsys.readouterr().err
    # `mmad leaderboard sweep/*`, as one writes `runs/*`, reaches its files too
    assert main(["leaderboard", *map(str, sorted(sweep.iterdir()))]) == 2
    assert f"give them as {sweep}/*/" in " ".join(capsys.readouterr().err.split())


def test_cli_leaderboard_json_flag_as_the_other_commands(random_run: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # score, runs and compare take --json; the leaderboard answered it with "No such option"
    assert main(["leaderboard", str(random_run), "--json", "--no-published"]) == 0
    assert [r["kind"] for r in json.loads(capsys.readouterr().out)["rows"]] == ["run"]
    assert main(["leaderboard", str(random_run), "--json", "--format", "json", "--no-published"]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(random_run), "--json", "--format", "csv"]) == 2
    assert "--json with --format csv: give one of them" in capsys.readouterr().err
