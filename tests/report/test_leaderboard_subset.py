"""A selection that holds every question is the whole set: `--limit 1000` on a smaller benchmark, or a
--dataset naming every dataset, was marked a subset and never ranked."""

import json
from pathlib import Path

import mmad
from mmad.report.leaderboard import build_leaderboard


def test_a_limit_that_selects_every_question_is_not_a_subset(mmad_json: Path, random_run: Path, tmp_path: Path) -> None:
    whole = mmad.evaluate("random", mmad_json, out=tmp_path / "limit-1000", limit=1000, cache=False)
    assert whole.completeness.selected == whole.completeness.in_benchmark < 1000
    board = build_leaderboard([random_run, whole.run_dir], published=[])
    rows = {Path(r.source).name: r for r in board.rows}
    row = rows["limit-1000"]
    assert not any(m.startswith("subset") for m in row.marks), row.marks
    assert row.eligible and row.rank is not None
    assert row.question_set == f"all {whole.completeness.in_benchmark:,} questions of its benchmark"
    # the limit is not on the protocol card: the same card, the same group as the run without one
    assert row.card_hash == rows["random"].card_hash and row.group == rows["random"].group


def test_a_limit_below_the_benchmark_is_still_a_subset(mmad_json: Path, tmp_path: Path) -> None:
    cut = mmad.evaluate("random", mmad_json, out=tmp_path / "limit-20", limit=20, cache=False).run_dir
    row = build_leaderboard([cut], published=[]).rows[0]
    assert row.rank is None and any(m.startswith("subset: 20 of") for m in row.marks)


def test_an_old_run_without_the_benchmark_size_is_judged_by_its_settings(mmad_json: Path, tmp_path: Path) -> None:
    run = mmad.evaluate("random", mmad_json, out=tmp_path / "old", limit=1000, cache=False).run_dir
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    meta["dataset"]["questions_in_benchmark"] = None  # run.json files before the benchmark's size was kept
    (run / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    row = build_leaderboard([run], published=[]).rows[0]
    assert row.rank is None and "subset: run with --limit/--datasets/--categories/--subtasks" in row.marks
