"""The scorer against answers whose every number is known in advance."""

import json
from pathlib import Path

import pytest

from mmad.data.schema import SUBTASKS, Subtask
from mmad.score import (
    GradedAnswer,
    Policy,
    read_accuracy_csv,
    read_official_answers,
    score_answers,
    write_accuracy_csv,
    write_official_answers,
)
from mmad.score.table import DETECTION_COLUMNS

DATASETS = ["DS-MVTec", "MVTec-LOCO", "VisA", "GoodsAD"]
N = 10
NON_AD = [s for s in SUBTASKS if s is not Subtask.ANOMALY_DISCRIMINATION]


def plan(d: int, s: int) -> int:
    """How many of the N questions of (dataset d, subtask s) are answered correctly."""
    return 3 + (d + s) % 6


def build_answers() -> list[GradedAnswer]:
    """Per cell: [unanswered, correct, correct..., wrong...]. The unanswered one is followed by a correct one,
    which the official scorer skips together with it."""
    answers: list[GradedAnswer] = []
    for d, dataset in enumerate(DATASETS):
        for s, subtask in enumerate(SUBTASKS):
            if subtask is Subtask.ANOMALY_DISCRIMINATION:
                for side, folder, gold, wrong in (("n", "good", "B", "A"), ("a", "crack", "A", "B")):
                    k = plan(d, 0) if side == "n" else plan(d, 7)
                    answers += _cell(dataset, folder, "Anomaly Detection", k, gold, wrong, s * 100)
            elif subtask is Subtask.OBJECT_ANALYSIS:
                k = plan(d, s)
                cell = _cell(dataset, "good", "Object Structure", k, "C", "D", s * 100)
                answers += [
                    GradedAnswer(
                        a.image,
                        "Object Details" if i % 2 else "Object Structure",
                        a.correct_answer,
                        a.answer,
                        a.failure,
                        a.question_text,
                        a.official_answer,
                    )
                    for i, a in enumerate(cell)
                ]
            else:
                answers += _cell(dataset, "crack", subtask.official_column, plan(d, s), "C", "D", s * 100)
    return answers


def _cell(dataset: str, folder: str, qtype: str, k: int, gold: str, wrong: str, offset: int) -> list[GradedAnswer]:
    rows = []
    for i in range(N):
        image = f"{dataset}/widget/test/{folder}/{offset + i:03d}.png"
        if i == 0:
            rows.append(GradedAnswer(image, qtype, gold, None, "unparsed", f"q{i}", "I cannot tell."))
        else:
            letter = gold if i <= k else wrong
            rows.append(GradedAnswer(image, qtype, gold, letter, None, f"q{i}"))
    return rows


def expected_cells(policy: Policy) -> dict[str, dict[Subtask, float]]:
    table = {}
    for d, dataset in enumerate(DATASETS):
        row = {}
        for s, subtask in enumerate(SUBTASKS):
            if subtask is Subtask.ANOMALY_DISCRIMINATION:
                kn, ka = plan(d, 0), plan(d, 7)
                if policy is Policy.STRICT:
                    row[subtask] = 100 * (kn / N + ka / N) / 2
                else:  # one unanswered + one skipped correct answer leave each side
                    row[subtask] = 100 * ((kn - 1) / (N - 2) + (ka - 1) / (N - 2)) / 2
            else:
                k = plan(d, s)
                row[subtask] = 100 * k / N if policy is Policy.STRICT else 100 * (k - 1) / (N - 2)
        table[dataset] = row
    return table


@pytest.mark.parametrize("policy", [Policy.STRICT, Policy.UPSTREAM])
def test_every_number_under_both_policies(tmp_path: Path, policy: Policy) -> None:
    path = tmp_path / "answers_1_shot_test.json"
    write_official_answers(build_answers(), path)
    answers = read_official_answers(path)
    table = score_answers(answers, policy)
    expected = expected_cells(policy)
    assert [r.name for r in table.rows] == DATASETS
    for row in table.rows:
        for subtask in SUBTASKS:
            assert row.cells[subtask] == pytest.approx(expected[row.name][subtask]), (row.name, subtask)
        assert row.average == pytest.approx(sum(expected[row.name].values()) / 7)
    for subtask in SUBTASKS:
        assert table.average_cells[subtask] == pytest.approx(sum(expected[d][subtask] for d in DATASETS) / 4)
    assert table.average == pytest.approx(sum(sum(r.values()) / 7 for r in expected.values()) / 4)
    n_cells = 4 * (len(NON_AD) + 2)  # AD has two sides
    assert table.n_answers == n_cells * N
    if policy is Policy.STRICT:
        assert table.n_counted == n_cells * N
        assert table.n_unanswered == n_cells
        assert table.failures == {"unparsed": n_cells}
        assert table.n_skipped == 0
    else:
        assert table.n_counted == n_cells * (N - 2)
        assert table.n_skipped == n_cells
        assert "remove-while-iterating" in table.notes[0]


def test_detection_metrics_match_their_definitions() -> None:
    table = score_answers(build_answers(), Policy.STRICT)
    for d, row in enumerate(table.rows):
        kn, ka = plan(d, 0), plan(d, 7)
        metrics = row.detection_metrics()
        assert metrics["Overkill"] == pytest.approx(100 - 100 * kn / N)
        assert metrics["Miss"] == pytest.approx(100 - 100 * ka / N)
        assert metrics["Recall"] == pytest.approx(100 * ka / N)
        precision = ka / (ka + (N - kn))
        assert metrics["Precision"] == pytest.approx(100 * precision)
        recall = ka / N
        assert metrics["F1"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))
    assert table.average_detection["Miss"] == pytest.approx(sum(r.detection_metrics()["Miss"] for r in table.rows) / 4)


def test_upstream_remove_deletes_the_first_equal_record() -> None:
    """With repeated records (a re-run appended to the file), list.remove hits the earlier copy."""
    bad = GradedAnswer("VisA/x/test/bad/1.png", "Defect Analysis", "A", None, "unparsed", "q", "??")
    ok = GradedAnswer("VisA/x/test/bad/2.png", "Defect Analysis", "A", "A", None, "q2")
    wrong = GradedAnswer("VisA/x/test/bad/3.png", "Defect Analysis", "A", "B", None, "q3")
    # bad: removed, and the ok after it is never visited; wrong: counted; the second bad: removed,
    # and the ok after it is never visited either.
    table = score_answers([bad, ok, wrong, bad, ok], Policy.UPSTREAM)
    assert table.n_counted == 1 and table.row("VisA").cells[Subtask.DEFECT_ANALYSIS] == 0.0
    assert table.n_skipped == 2


def test_missing_cells_are_missing_not_zero() -> None:
    answers = [
        GradedAnswer("VisA/x/test/bad/1.png", "Anomaly Detection", "A", "A"),
        GradedAnswer("VisA/x/test/bad/1.png", "Defect Analysis", "A", "A"),
        GradedAnswer("VisA/x/test/good/2.png", "Object Classification", "A", "B"),
    ]
    strict = score_answers(answers)
    row = strict.row("VisA")
    assert row.cells[Subtask.ANOMALY_DISCRIMINATION] is None  # no normal image: balanced accuracy undefined
    assert row.cells[Subtask.DEFECT_ANALYSIS] == 100.0
    assert row.average == pytest.approx(50.0)  # mean of the two cells that exist
    assert not row.complete
    upstream = score_answers(answers, "upstream")
    assert upstream.row("VisA").cells[Subtask.ANOMALY_DISCRIMINATION] == 50.0  # (0 + 100) / 2
    assert upstream.row("VisA").average == pytest.approx((50 + 100 + 0) / 3)


def test_upstream_overkill_is_100_without_normal_answers() -> None:
    """summary.py: normal_acc = correct/total if total != 0 else 0, Overkill = (1 - normal_acc) * 100."""
    answers = [
        GradedAnswer("VisA/x/test/bad/1.png", "Anomaly Detection", "A", "A"),
        GradedAnswer("VisA/x/test/bad/2.png", "Anomaly Detection", "A", "B"),
        GradedAnswer("GoodsAD/y/test/good/3.png", "Anomaly Detection", "B", "B"),
    ]
    upstream = score_answers(answers, "upstream")
    visa = upstream.row("VisA").detection_metrics()
    assert visa["Overkill"] == 100.0 and visa["Miss"] == pytest.approx(50.0)
    goods = upstream.row("GoodsAD").detection_metrics()
    assert goods["Overkill"] == 0.0 and goods["Miss"] == 100.0  # no abnormal answer: Miss 100 likewise
    assert upstream.average_detection["Overkill"] == pytest.approx(50.0)  # (100 + 0) / 2
    strict = score_answers(answers).row("VisA").detection_metrics()
    assert strict["Overkill"] is None  # strict: undefined, not 100


def test_accuracy_csv_round_trip(tmp_path: Path) -> None:
    table = score_answers(build_answers())
    path = tmp_path / "x_accuracy.csv"
    write_accuracy_csv(table, path)
    result = read_accuracy_csv(path)
    for row in table.rows:
        for subtask in SUBTASKS:
            assert result.rows[row.name][subtask.official_column] == pytest.approx(row.cells[subtask])
        assert result.rows[row.name]["Miss"] == pytest.approx(row.detection_metrics()["Miss"])
    assert result.average == pytest.approx(table.average)


def _literal_official_loop(answers: list[GradedAnswer]) -> list[GradedAnswer]:
    """summary.py's loop, transcribed: iterate a list while removing invalid records from it."""
    records = [
        {
            "image": a.image,
            "q": a.question_text,
            "t": a.question_type,
            "c": a.correct_answer,
            "g": a.gpt_answer,
        }
        for a in answers
    ]
    by_id = {id(r): a for r, a in zip(records, answers, strict=True)}
    counted = []
    for record in records:
        if record["c"] not in "ABCDE" or record["g"] not in "ABCDE" or not record["g"]:
            records.remove(record)
            continue
        counted.append(by_id[id(record)])
    return counted


def test_upstream_selection_equals_the_literal_loop() -> None:
    import random

    from mmad.score.table import upstream_selection

    rng = random.Random(7)
    for _ in range(300):
        pool = [
            GradedAnswer(
                f"VisA/x/test/bad/{rng.randint(0, 3)}.png",
                "Defect Analysis",
                "A",
                letter,
                None if letter else "unparsed",
                "q",
                None if letter else rng.choice(["", "?"]),
            )
            for letter in (rng.choice(["A", "B", None]) for _ in range(rng.randint(0, 12)))
        ]
        kept, removed, skipped = upstream_selection(pool)
        literal = _literal_official_loop(pool)
        assert [a.image + str(a.answer) for a in kept] == [a.image + str(a.answer) for a in literal]
        assert removed + skipped + len(kept) == len(pool)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_official_answers_file_is_what_json_dumps_writes(tmp_path: Path, count: int) -> None:
    """Written record by record, the file is byte for byte the official scripts' json.dump(indent=4)."""
    answers = [
        GradedAnswer("MVTec-AD/bottle/test/broken_large/000.png", "Anomaly Detection", "A", "A", None, "Is it ok?\nA."),
        GradedAnswer("VisA/pcb1/test/bad/001.JPG", "Defect Type", "B", None, "unparsed", 'Käse "q" \\ 缺陷', "ok?"),
        GradedAnswer("GoodsAD/cigarette_box/test/good/002.jpg", "Object Analysis", "C", "D", None, ""),
    ][:count]
    path = tmp_path / "answers.json"
    write_official_answers(answers, path)
    expected = json.dumps(
        [
            {
                "image": a.image,
                "question": {"type": "text", "text": a.question_text},
                "question_type": a.question_type,
                "correct_answer": a.correct_answer,
                "gpt_answer": a.gpt_answer,
            }
            for a in answers
        ],
        indent=4,
        ensure_ascii=False,
    )
    assert path.read_text(encoding="utf-8") == expected
    assert [a.gpt_answer for a in read_official_answers(path)] == [a.gpt_answer for a in answers]


def test_a_subtask_the_model_declines_is_missing_not_zero() -> None:
    """The visual expert declines everything but AD and DL: those cells are not results of 0."""
    normal, defect = "MVTec-AD/bottle/test/good/000.png", "MVTec-AD/bottle/test/broken/000.png"
    answers = [
        GradedAnswer(normal, "Anomaly Detection", "B", "B"),
        GradedAnswer(defect, "Anomaly Detection", "A", "A"),
        GradedAnswer(defect, "Defect Localization", "C", "D"),
        GradedAnswer(defect, "Defect Classification", "A", None, "abstained"),
        GradedAnswer(defect, "Defect Classification", "B", None, "abstained"),
        GradedAnswer(defect, "Defect Description", "A", None, "unparsed"),
    ]
    strict = score_answers(answers, Policy.STRICT)
    row = strict.row("MVTec-AD")
    assert row.cells[Subtask.DEFECT_CLASSIFICATION] is None
    assert row.cells[Subtask.DEFECT_DESCRIPTION] == 0.0, "an unreadable reply is still a wrong answer"
    assert row.average == pytest.approx((100.0 + 0.0 + 0.0) / 3)
    assert strict.declined == ["Defect Classification"]
    assert any("declined every question of DC" in note for note in strict.notes)
    upstream = score_answers(answers, Policy.UPSTREAM)
    assert upstream.declined == ["Defect Classification"]  # one rule under both policies
    assert upstream.row("MVTec-AD").cells[Subtask.DEFECT_CLASSIFICATION] is None


def test_a_declined_anomaly_discrimination_has_no_detection_figures() -> None:
    """A model that declines every AD question (the visual expert without templates) made no normal or
    defective call: its Overkill and Miss are missing, not 100."""
    normal, defect = "MVTec-AD/bottle/test/good/000.png", "MVTec-AD/bottle/test/broken/000.png"
    answers = [
        GradedAnswer(normal, "Anomaly Detection", "B", None, "abstained"),
        GradedAnswer(defect, "Anomaly Detection", "A", None, "abstained"),
        GradedAnswer(defect, "Defect Localization", "C", "C"),
        GradedAnswer("VisA/pcb1/test/good/000.JPG", "Anomaly Detection", "B", "B"),
        GradedAnswer("VisA/pcb1/test/bad/001.JPG", "Anomaly Detection", "A", "B"),
    ]
    strict = score_answers(answers, Policy.STRICT)
    assert strict.row("MVTec-AD").detection_metrics() == dict.fromkeys(DETECTION_COLUMNS, None)
    assert strict.row("VisA").detection_metrics()["Overkill"] == 0.0
    assert strict.average_detection["Overkill"] == 0.0 and strict.average_detection["Miss"] == 100.0
    upstream = score_answers(answers, Policy.UPSTREAM)  # declined is not a result under either policy
    assert upstream.row("MVTec-AD").detection_metrics() == dict.fromkeys(DETECTION_COLUMNS, None)


def test_declined_subtasks_are_missing_under_the_upstream_policy_too(tmp_path: Path) -> None:
    """summary.py's policy must not turn a subtask the model never tries into 0, nor let each abstention skip
    the next answer; the official answers json leaves declined questions out, so summary.py on it agrees."""
    from mmad.score.answers import read_official_answers, write_official_answers

    answers = []
    for i in range(6):
        image = f"MVTec-AD/bottle/test/{'good' if i % 2 else 'broken'}/{i:03d}.png"
        answers.append(GradedAnswer(image, "Anomaly Detection", "B" if i % 2 else "A", "B" if i % 2 else "A"))
        answers.append(GradedAnswer(image, "Defect Classification", "C", None, "abstained"))
        answers.append(GradedAnswer(image, "Object Structure", "D", "D"))
    upstream = score_answers(answers, Policy.UPSTREAM)
    row = upstream.row("MVTec-AD")
    assert row.cells[Subtask.DEFECT_CLASSIFICATION] is None
    assert upstream.average_cells[Subtask.DEFECT_CLASSIFICATION] is None
    assert row.cells[Subtask.OBJECT_ANALYSIS] == 100.0, "an abstention must not skip the next answer"
    assert upstream.average == 100.0 and upstream.n_skipped == 0
    assert Subtask.DEFECT_CLASSIFICATION not in upstream.average_covers
    path = tmp_path / "answers.json"
    write_official_answers(answers, path)
    assert score_answers(read_official_answers(path), Policy.UPSTREAM).average == upstream.average


def test_a_one_class_anomaly_cell_says_why_it_is_missing() -> None:
    answers = [GradedAnswer("VisA/pcb1/test/bad/001.JPG", "Anomaly Detection", "A", "A")]
    table = score_answers(answers, Policy.STRICT)
    assert table.row("VisA").cells[Subtask.ANOMALY_DISCRIMINATION] is None
    assert any("needs normal and defective images; VisA had only one" in note for note in table.notes)
