import json
from pathlib import Path

import pytest

from mmad.data.validate import validate


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _codes(report) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in report.problems:
        found.setdefault(p.code, []).append(p.key if p.question is None else f"{p.key}#{p.question}")
    return found


def test_clean_tree_is_valid(mmad_json: Path) -> None:
    report = validate(mmad_json)
    assert report.ok, [str(p) for p in report.problems]
    assert report.n_questions > 0 and report.sha256


BAD = "VisA/candle/test/bad/000.JPG"
GOOD = "GoodsAD/drink_can/test/good/001.jpg"


@pytest.mark.parametrize(
    ("code", "change", "where"),
    [
        ("missing-image", lambda root, d: (root / BAD).unlink(), BAD),
        ("unreadable-image", lambda root, d: (root / BAD).write_bytes(b"not an image"), BAD),
        (
            "missing-template",
            lambda root, d: d[BAD]["random_templates"].append("VisA/candle/train/good/999.JPG"),
            BAD,
        ),
        ("missing-mask", lambda root, d: d[BAD].__setitem__("mask_path", "ground_truth/bad/nope.png"), BAD),
        (
            "answer-not-an-option",
            lambda root, d: d[BAD]["conversation"][1].__setitem__("Answer", "E"),
            f"{BAD}#1",
        ),
        (
            "unknown-type",
            lambda root, d: d[GOOD]["conversation"][2].__setitem__("type", "Object Colour"),
            f"{GOOD}#2",
        ),
        ("unsafe-path", lambda root, d: d[BAD]["random_templates"].append("../../etc/passwd"), BAD),
        ("unsafe-path", lambda root, d: d[BAD]["similar_templates"].append("/etc/passwd"), BAD),
        (
            "wrong-option-count",
            lambda root, d: d[BAD]["conversation"][1].__setitem__("Options", {"A": "x"}),
            f"{BAD}#1",
        ),
        ("bad-record", lambda root, d: d[BAD].pop("conversation"), BAD),
    ],
)
def test_each_bad_input_names_its_record(fresh_mmad_json: Path, code: str, change, where: str) -> None:
    root = fresh_mmad_json.parent
    data = json.loads(fresh_mmad_json.read_text())
    change(root, data)
    fresh_mmad_json.write_text(json.dumps(data))
    before = fresh_mmad_json.read_bytes()
    report = validate(fresh_mmad_json)
    assert not report.ok
    codes = _codes(report)
    assert where in codes.get(code, []), [str(p) for p in report.problems]
    message = next(str(p) for p in report.problems if p.code == code)
    assert where.split("#")[0] in message and "." in message  # names the record and says what to do
    assert fresh_mmad_json.read_bytes() == before  # validate never writes
    assert not list(root.glob("*.tmp"))


def test_duplicate_keys_are_found(fresh_mmad_json: Path) -> None:
    text = fresh_mmad_json.read_text()
    record = json.dumps(json.loads(text)[BAD])
    fresh_mmad_json.write_text(text.rstrip()[:-1] + f', "{BAD}": {record}}}')
    report = validate(fresh_mmad_json)
    assert BAD in _codes(report)["duplicate-key"]


def test_known_errata_are_flagged_as_warnings(tmp_path: Path) -> None:
    from tests.helpers.mmad_tree import ABNORMAL_QUESTIONS, NORMAL_QUESTIONS, _qa

    data = {
        "DS-MVTec/pill/image/good/007.png": {
            "mask_path": "",
            "random_templates": [],
            "similar_templates": [],
            "conversation": [_qa(q) for q in NORMAL_QUESTIONS],
        },
        "DS-MVTec/pill/image/good/022.png": {
            "mask_path": "",
            "random_templates": [],
            "similar_templates": [],
            "conversation": [_qa(q) for q in NORMAL_QUESTIONS],
        },
        "DS-MVTec/bottle/image/broken_large/016.png": {
            "mask_path": "mask/broken_large/016_mask.png",
            "random_templates": [],
            "similar_templates": [],
            "conversation": [_qa(q) for q in ABNORMAL_QUESTIONS],
        },
        "DS-MVTec/transistor/image/misplaced/003.png": {
            "mask_path": "mask/misplaced/003_mask.png",
            "random_templates": [],
            "similar_templates": [],
            "conversation": [_qa(q) for q in ABNORMAL_QUESTIONS],
        },
    }
    path = tmp_path / "mmad.json"
    path.write_text(json.dumps(data))
    report = validate(path, check_files=False)
    assert report.ok  # errata are warnings
    codes = _codes(report)
    assert codes["erratum-wrong-image"] == ["DS-MVTec/pill/image/good/007.png"]
    assert sorted(codes["erratum-label"]) == [
        "DS-MVTec/bottle/image/broken_large/016.png#2",
        "DS-MVTec/transistor/image/misplaced/003.png#2",
    ]
    assert any("#15" in p.fix for p in report.problems if p.code == "erratum-wrong-image")


def test_mmad_loco_mask_folders_warn_and_scorer_misreads_are_flagged(fresh_mmad_json: Path) -> None:
    report = validate(fresh_mmad_json)
    loco = [p for p in report.problems if p.code == "mask-not-a-file"]
    assert loco and all(p.severity == "warning" and p.key.startswith("MVTec-LOCO/") for p in loco)
    assert report.ok  # MMAD's own LOCO records name folders; its GT agent reads them
    data = json.loads(fresh_mmad_json.read_text())
    key = BAD.replace("candle", "goodie")  # a category whose name holds 'good'
    data[key] = data.pop(BAD)
    fresh_mmad_json.write_text(json.dumps(data))
    codes = _codes(validate(fresh_mmad_json, check_files=False))
    assert codes["scorer-misreads-key"] == [key]
