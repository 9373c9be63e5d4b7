"""Bootstrap intervals over images: they match the table's cells, repeat with a seed, and cover."""

from __future__ import annotations

import random

import numpy as np

from mmad.data.schema import Subtask
from mmad.report.operating_files import intervals_to_markdown
from mmad.score.answers import GradedAnswer
from mmad.score.intervals import table_intervals
from mmad.score.table import score_answers

TYPES = ("Anomaly Detection", "Defect Classification", "Defect Description", "Object Structure")


def _run(seed: int, images: int = 120) -> list[GradedAnswer]:
    rng = random.Random(seed)
    answers = []
    for dataset in ("DS-MVTec", "VisA"):
        for i in range(images):
            image = f"{dataset}/c{i % 4}/test/{'good' if i % 3 == 0 else 'crack'}/{i}.png"
            for qtype in TYPES:
                if qtype == "Defect Description" and dataset == "VisA":
                    answers.append(GradedAnswer(image, qtype, "A", None, "abstained"))
                elif rng.random() < 0.05:
                    answers.append(GradedAnswer(image, qtype, "A", None, "unparsed"))
                else:
                    answers.append(GradedAnswer(image, qtype, "A", rng.choice("AAB"), None))
    return answers


def test_intervals_hold_the_tables_cells_and_skip_declined_ones() -> None:
    answers = _run(0)
    for policy in ("strict", "upstream"):
        table = score_answers(answers, policy)
        intervals = table_intervals(answers, policy, samples=300, seed=1)
        for row in table.rows:
            for subtask, value in row.cells.items():
                interval = intervals.cells[row.name][subtask]
                if value is None:
                    assert interval is None
                    continue
                assert interval is not None and abs(interval.point - value) < 1e-9
                assert interval.low <= value <= interval.high  # upstream counts a declined cell 0: [0, 0]
            average = intervals.row_averages[row.name]
            assert average is not None and row.average is not None and abs(average.point - row.average) < 1e-9
        assert intervals.average is not None and table.average is not None
        assert abs(intervals.average.point - table.average) < 1e-9
    # strict: VisA declined Defect Description, a missing cell, never a 0 with an interval
    strict = table_intervals(answers, samples=100)
    assert strict.cells["VisA"][Subtask.DEFECT_DESCRIPTION] is None
    assert strict.named_cells()["VisA/Defect Description"] is None
    assert strict.n_images == 240


def test_intervals_are_reproducible_with_a_seed() -> None:
    answers = _run(3)
    first = table_intervals(answers, samples=200, seed=7).named_cells()
    assert first == table_intervals(answers, samples=200, seed=7).named_cells()
    assert first != table_intervals(answers, samples=200, seed=8).named_cells()


def test_about_95_percent_of_intervals_hold_the_true_value() -> None:
    # Each image is easy (p = 0.9) or hard (p = 0.3) with equal chance, and its 4 questions share it: the
    # true accuracy is 60%. Questions of one image are correlated, so only a bootstrap over images covers.
    rng = np.random.default_rng(0)
    draws, images, held = 200, 150, 0
    for draw in range(draws):
        easy = rng.random(images) < 0.5
        right = rng.random((images, 4)) < np.where(easy, 0.9, 0.3)[:, None]
        answers = [
            GradedAnswer(f"VisA/pcb/test/crack/{i}.png", "Defect Classification", "A", "A" if r else "B", None)
            for i in range(images)
            for r in right[i]
        ]
        interval = table_intervals(answers, samples=200, seed=draw).cells["VisA"][Subtask.DEFECT_CLASSIFICATION]
        assert interval is not None
        held += interval.low <= 60.0 <= interval.high
    assert 0.90 <= held / draws <= 0.99, held


def test_intervals_keep_the_tables_rows_and_columns_when_upstream_drops_an_image() -> None:
    # The only Defect Localization question is on an image the official script dropped: the table still has the
    # column (0 under upstream), so the intervals, made from the table's own selection, must have it too.
    answers = _run(5, images=30)
    dropped = "DS-MVTec/c0/test/crack/999.png"
    answers.append(GradedAnswer(dropped, "Anomaly Detection", "B", "B", None, dropped_image=True))
    answers.append(GradedAnswer(dropped, "Defect Localization", "A", "A", None, dropped_image=True))
    table = score_answers(answers, "upstream")
    intervals = table_intervals(answers, "upstream", samples=50)
    assert intervals.columns == list(table.rows[0].cells)
    assert intervals.datasets == [row.name for row in table.rows]
    for row in table.rows:
        for subtask, value in row.cells.items():
            interval = intervals.cells[row.name][subtask]
            assert (interval is None) == (value is None)
            assert interval is None or abs(interval.point - value) < 1e-9


def test_a_dataset_of_one_image_has_no_interval() -> None:
    one = [GradedAnswer("MVTec-LOCO/juice_bottle/test/good/0.png", qtype, "A", "A") for qtype in TYPES]
    alone = table_intervals(one, samples=200)
    assert alone.single_image == ["MVTec-LOCO"] and alone.n_images == 1
    assert all(value is None for value in alone.named_cells().values())  # not [100, 100] from one image
    assert "No interval from one image: MVTec-LOCO" in intervals_to_markdown(alone)
    # beside a dataset of many images, the one-image row has none, the averages over both keep theirs
    both = table_intervals([*one, *_run(0, images=30)], samples=200)
    assert both.single_image == ["MVTec-LOCO"]
    assert both.row_averages["MVTec-LOCO"] is None and both.cells["MVTec-LOCO"][Subtask.ANOMALY_DISCRIMINATION] is None
    assert both.row_averages["DS-MVTec"] is not None and both.average is not None
