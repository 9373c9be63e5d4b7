import json
import shutil
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


def _gaps(report) -> dict[str, str]:
    return {p.code: f"{p.message}. {p.fix}" for p in report.problems if p.code.startswith("gap-")}


def test_missing_templates_are_summed_up_as_the_known_hub_gap(fresh_mmad_json: Path) -> None:
    root = fresh_mmad_json.parent
    shutil.rmtree(root / "MVTec-AD")  # DS-MVTec's templates, a separate archive
    report = validate(fresh_mmad_json)
    assert not report.ok and "missing-template" in _codes(report)
    gap = _gaps(report)["gap-missing-templates"]
    assert "3 template image(s)" in gap and "3 under MVTec-AD/" in gap and "issue #6" in gap
    assert "recorded as failed with the missing path as the reason" in gap and "0-shot runs need no template" in gap
    assert "mmad download --datasets MVTec-AD" in gap


def test_the_misfiled_pill_images_are_summed_up(tmp_path: Path) -> None:
    from tests.helpers.mmad_tree import NORMAL_QUESTIONS, _qa

    data = {
        f"DS-MVTec/pill/image/good/{i:03d}.png": {"mask_path": "", "conversation": [_qa(q) for q in NORMAL_QUESTIONS]}
        for i in (0, 5, 30)
    }
    path = tmp_path / "mmad.json"
    path.write_text(json.dumps(data))
    gap = _gaps(validate(path, check_files=False))["gap-misfiled-pill"]
    assert (
        gap.startswith("2 of the 22 images") and "#15, #19, #21" in gap and "asks and scores them as published" in gap
    )
    assert "--errata drop leaves them out" in gap  # the way out is named where the problem is


def test_masks_under_the_other_spelling_or_as_png_are_found_and_reported(fresh_mmad_json: Path) -> None:
    root = fresh_mmad_json.parent
    data = json.loads(fresh_mmad_json.read_text())
    ds_key = "DS-MVTec/bottle/image/broken_large/000.png"
    data[ds_key]["mask_path"] = "rgb_mask/broken_large/000_rgb_mask.png"
    rbg = root / "DS-MVTec/bottle/rbg_mask/broken_large/000_rbg_mask.png"
    rbg.parent.mkdir(parents=True)
    shutil.copy(root / "DS-MVTec/bottle" / "ground_truth/broken_large/000_mask.png", rbg)
    goods_key = "GoodsAD/drink_can/test/surface_damage/001.jpg"
    data[goods_key]["mask_path"] = "ground_truth/surface_damage/001_mask.jpg"  # the file is .png
    fresh_mmad_json.write_text(json.dumps(data))
    report = validate(fresh_mmad_json)
    assert report.ok, [str(p) for p in report.problems]
    gaps = _gaps(report)
    assert gaps["gap-mask-spelling"].startswith("1 mask(s)") and "Nothing to do" in gaps["gap-mask-spelling"]
    assert gaps["gap-mask-extension"].startswith("1 mask path(s) end in .jpg")
    from mmad.data.official import load_benchmark

    bench = load_benchmark(fresh_mmad_json)
    assert bench.mask_file(bench.item(ds_key)) == rbg
    assert bench.mask_file(bench.item(goods_key)).name == "001_mask.png"


def test_missing_masks_say_what_evaluation_does(fresh_mmad_json: Path) -> None:
    root = fresh_mmad_json.parent
    (root / "VisA/candle/ground_truth/bad/000_mask.png").unlink()
    gap = _gaps(validate(fresh_mmad_json))["gap-missing-masks"]
    assert gap.startswith("1 mask(s)") and "not a model input" in gap and "recorded as failed" in gap


def test_the_cli_always_shows_the_gap_summaries(fresh_mmad_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.cli import main

    shutil.rmtree(fresh_mmad_json.parent / "MVTec-AD")
    assert main(["validate", str(fresh_mmad_json), "--show", "0"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "Known gaps of the published copies" in out and "gap-missing-templates" in out
    assert "recorded as failed" in out


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


def test_a_broken_template_is_reported_for_every_image_that_shows_it(fresh_mmad_json: Path) -> None:
    root = fresh_mmad_json.parent
    data = json.loads(fresh_mmad_json.read_text())
    users: dict[str, list[str]] = {}
    for key, record in data.items():
        for template in record.get("random_templates") or []:
            users.setdefault(template, []).append(key)
    template, keys = max(users.items(), key=lambda pair: len(pair[1]))
    assert len(keys) >= 2, "the test data shares templates between images"
    (root / template).write_bytes(b"not an image")
    report = validate(fresh_mmad_json)
    flagged = {p.key for p in report.problems if p.path == template and p.code == "unreadable-template"}
    assert flagged == set(keys)


def test_an_image_key_that_leaves_the_root_is_named_as_the_record(fresh_mmad_json: Path) -> None:
    data = json.loads(fresh_mmad_json.read_text())
    masked = [k for k, v in data.items() if v.get("mask_path")]
    escaping, absolute = f"../{masked[0]}", f"/abs/{masked[1]}"
    data[escaping], data[absolute] = data.pop(masked[0]), data.pop(masked[1])
    fresh_mmad_json.write_text(json.dumps(data))
    for check_files in (True, False):
        report = validate(fresh_mmad_json, check_files=check_files)
        unsafe = [p for p in report.problems if p.code == "unsafe-path"]
        assert sorted(p.key for p in unsafe) == sorted([escaping, absolute])
        assert all(p.message.startswith(f"image path {p.key!r}") for p in unsafe)
        assert not any("ground_truth" in p.message for p in unsafe)  # not the mask path mmad derived from it


def test_a_raw_dataset_folder_is_told_to_build_and_a_jsonl_file_what_it_is(tmp_path: Path) -> None:
    from mmad.builder import make_synthetic_dataset
    from mmad.cli import main
    from mmad.errors import BenchmarkFormatError

    source = make_synthetic_dataset(tmp_path / "raw", categories=["washer"], n_train=1, n_test_good=1, n_per_defect=1)
    for folder in (source.root, source.root / "washer"):
        with pytest.raises(BenchmarkFormatError, match=r"anomaly-detection dataset.*`mmad build ") as caught:
            validate(folder)
        assert "mmad download" not in str(caught.value)
    assert main(["eval", "-m", "random", "-d", str(source.root)]) == 2
    records = tmp_path / "records.jsonl"
    records.write_text('{"question_id": "a"}\n{"question_id": "b"}\n')
    with pytest.raises(BenchmarkFormatError, match="JSON Lines") as caught:
        validate(records)
    assert "re-download" not in str(caught.value)
    # MMAD's own data root short of its json still gets `mmad download`.
    (tmp_path / "MMAD" / "VisA" / "candle" / "test").mkdir(parents=True)
    with pytest.raises(BenchmarkFormatError, match="mmad download"):
        validate(tmp_path / "MMAD")
