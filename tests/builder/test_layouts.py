"""Source layouts as they are shipped: raw VisA, MVTec LOCO, a folder named goodsad, and messy trees."""

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmad.builder import build_benchmark, read_dataset
from mmad.builder.geometry import read_mask
from mmad.data.schema import Benchmark, is_normal_key
from mmad.data.validate import validate
from mmad.errors import DatasetLayoutError
from tests.helpers.ad_trees import SIZE, make_loco, make_raw_visa, make_tree


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source_of(bench: Benchmark, key: str) -> Path:
    return bench.resolve(key).resolve()


def test_raw_visa_reads_its_split_csv_and_label_masks(tmp_path: Path) -> None:
    source = make_raw_visa(tmp_path / "VisA_20220922")
    dataset = read_dataset(source)
    assert dataset.layout == "visa"
    assert Counter((s.category, s.split, s.defect_type) for s in dataset.samples) == {
        ("candle", "train", "good"): 4,
        ("candle", "test", "good"): 2,
        ("candle", "test", "bad"): 3,
        ("pcb1", "train", "good"): 4,
        ("pcb1", "test", "good"): 2,
        ("pcb1", "test", "bad"): 3,
    }
    bench, report = build_benchmark(source, tmp_path / "out")
    assert validate(tmp_path / "out").ok, [str(p) for p in validate(tmp_path / "out").problems]
    assert report.name == "VisA_20220922" and report.layout == "visa"
    assert {i.key.split("/")[2:4] == ["test", "bad"] for i in bench.items if not i.is_normal} == {True}
    for item in bench.items:
        if item.is_normal:
            continue
        built = read_mask(bench.mask_file(item))
        original = np.asarray(Image.open(source / item.category / "Data/Masks/Anomaly" / f"{Path(item.key).stem}.png"))
        assert set(np.unique(original)) == {0, 1, 2}
        assert np.array_equal(built, original > 0)  # both regions, values 1 and 2, are defect
        assert np.asarray(Image.open(bench.mask_file(item))).max() == 255  # written as a 0/255 mask
        assert "Defect Localization" in {q.type for q in item.questions} or "Defect Localization" in str(report.skipped)


@pytest.mark.parametrize(("scheme", "train_anomalies"), [("2cls_fewshot", 1), ("2cls_highshot", 2)])
def test_raw_visa_other_split_schemes(tmp_path: Path, scheme: str, train_anomalies: int) -> None:
    source = make_raw_visa(tmp_path / "visa")
    dataset = read_dataset(source, "VisA", visa_split=scheme)
    assert sum(s.defect_type == "bad" for s in dataset.samples) == 2 * (3 - train_anomalies)
    reason = f"anomalous image in the train split of VisA {scheme} (templates must be normal)"
    assert dataset.skipped[reason] == 2 * train_anomalies
    _, report = build_benchmark(source, tmp_path / "out", visa_split=scheme)
    assert report.skipped[reason] == 2 * train_anomalies
    assert json.loads((tmp_path / "out" / "build_report.json").read_text())["visa_split"] == scheme
    with pytest.raises(DatasetLayoutError, match=r"no 3cls\.csv.*1cls"):
        read_dataset(source, visa_split="3cls")


def test_raw_visa_without_split_csv_and_with_a_missing_mask(tmp_path: Path) -> None:
    source = make_raw_visa(tmp_path / "visa", categories=("candle",))
    shutil.rmtree(source / "split_csv")
    dataset = read_dataset(source)
    assert dataset.layout == "visa" and "split by the builder" in dataset.notes[0]
    bench, _ = build_benchmark(source, tmp_path / "out")
    assert sum(i.is_normal for i in bench.items) == 3 and sum(not i.is_normal for i in bench.items) == 3
    (source / "candle/Data/Masks/Anomaly/001.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"Anomaly/001\.JPG.*001\.png"):
        read_dataset(source)


def test_loco_validation_images_and_instance_masks(tmp_path: Path) -> None:
    source = make_loco(tmp_path / "mvtec_loco_anomaly_detection")
    bench, report = build_benchmark(source, tmp_path / "out", seed=3)
    assert validate(tmp_path / "out").ok, [str(p) for p in validate(tmp_path / "out").problems]
    assert report.name == "MVTec-LOCO" and report.layout == "loco"
    for category in ("breakfast_box", "pushpins"):
        items = [i for i in bench.items if i.category == category]
        pool = {t for i in items for t in i.random_templates + i.similar_templates}
        built = sorted((tmp_path / "out" / "MVTec-LOCO" / category / "train" / "good").iterdir())
        assert len(built) == 15  # 10 train + 5 validation images, none overwritten
        assert len({_digest(p) for p in built}) == 15
        sources = {p.resolve() for p in (source / category).glob("*/good/*.png") if p.parent.parent.name != "test"}
        assert {p.resolve() for p in built} == sources
        assert pool <= {f"MVTec-LOCO/{category}/train/good/{p.name}" for p in built}
        for item in items:
            for templates in (item.random_templates, item.similar_templates):
                assert len(set(templates)) == len(templates) == 3
        for item in (i for i in items if not i.is_normal):
            assert item.defect_type in {"logical_anomalies", "structural_anomalies"}
            mask_file = bench.mask_file(item)
            assert mask_file.is_file() and mask_file == bench.resolve(f"MVTec-LOCO/{category}/{item.mask_path}")
            union = read_mask(mask_file)
            instances = sorted((source / category / "ground_truth" / item.defect_type / Path(item.key).stem).iterdir())
            assert len(instances) == 2
            for instance in instances:
                part = read_mask(instance)
                assert part.any() and union[part].all()  # every instance is inside the built mask
            assert union.sum() == sum(read_mask(p).sum() for p in instances)
    # logical and structural anomalies stay apart, each with its own Defect Analysis family
    analysis = {
        i.defect_type: q.extra["mmad_source"]["family"]
        for i in bench.items
        for q in i.questions
        if q.type == "Defect Analysis"
    }
    assert analysis == {"logical_anomalies": "assembly", "structural_anomalies": "structural"}


def test_validate_reports_a_loco_mask_path_that_is_no_file(tmp_path: Path) -> None:
    source = make_loco(tmp_path / "loco", categories=("pushpins",), n_train=3, n_validation=1)
    bench, _ = build_benchmark(source, tmp_path / "out")
    item = next(i for i in bench.items if not i.is_normal)
    union = bench.mask_file(item)
    # what builds before 0.2 left: mask_path names a file that does not exist, beside a folder of instances
    folder = union.with_suffix("")
    folder.mkdir()
    shutil.move(union, folder / "000.png")
    problems = [p for p in validate(tmp_path / "out").problems if p.key == item.key]
    assert [p.code for p in problems] == ["mask-not-a-file"] and problems[0].severity == "error"
    assert item.mask_path in problems[0].message
    shutil.rmtree(folder)
    problems = [p for p in validate(tmp_path / "out").problems if p.key == item.key]
    assert [p.code for p in problems] == ["missing-mask"]


def test_a_source_folder_named_goodsad(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "goodsad", "goodsad")
    bench, report = build_benchmark(source, tmp_path / "out")
    assert report.name == "GoodsAD"
    assert validate(tmp_path / "out").ok
    for item in bench.items:
        assert is_normal_key(item.key) == (item.defect_type == "good")  # the scorer's rule reads every key right
    lower = make_tree(tmp_path / "lower" / "my_goods", "mvtec", categories=("goodie",))
    bench, report = build_benchmark(lower, tmp_path / "out2")
    assert report.name == "my_Goods"
    assert {i.category for i in bench.items} == {"Goodie"}
    assert all(is_normal_key(i.key) == (i.defect_type == "good") for i in bench.items)
    assert report.renamed
    plain = make_tree(tmp_path / "plain" / "widgets", "mvtec", categories=("widget",))
    _, plain_report = build_benchmark(plain, tmp_path / "out4")
    assert not plain_report.renamed, "nothing needed renaming: a normal image's 'good' folder is no rename"
    _, named = build_benchmark(lower, tmp_path / "out3", name="goodsad")
    assert named.name == "Goodsad" and "'good'" in named.notes[-1]


def test_ids_are_unique_across_splits_and_point_at_their_own_files(tmp_path: Path) -> None:
    root = tmp_path / "src" / "cap"
    rng = np.random.default_rng(5)
    from mmad.builder.synthetic import draw_defect, normal_image

    for split in ("train/good", "validation/good", "val/good", "test/good", "test/crack"):
        (root / split).mkdir(parents=True)
        for i in range(3):
            image = normal_image("tablet", SIZE, rng)
            if split.endswith("crack"):
                mask = draw_defect(image, "crack", (48.0, 48.0), 0.1, rng, "tablet")
                (root / "ground_truth" / "crack").mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(root / "ground_truth" / "crack" / f"{i:03d}.png")
            image.save(root / split / f"{i:03d}.png")
    # a second image with the same stem and another suffix in the same folder
    normal_image("tablet", SIZE, rng).save(root / "test" / "good" / "000.PNG")
    bench, _ = build_benchmark(tmp_path / "src", tmp_path / "out", name="Caps")
    keys = [i.key for i in bench.items]
    assert len(keys) == len(set(keys)) == 3 + 1 + 3
    assert len({_source_of(bench, k) for k in keys}) == 7  # each key is its own source image
    good = sorted(k.rsplit("/", 1)[1] for k in keys if "/good/" in k)
    assert good == ["000.PNG", "000_2.png", "001.png", "002.png"]  # 000.png and 000.PNG differ only in case
    built = sorted((tmp_path / "out" / "Caps" / "cap" / "train" / "good").iterdir())
    assert [p.name for p in built] == [f"{s}{i:03d}.png" for s in ("", "val_", "validation_") for i in range(3)]
    assert {p.resolve() for p in built} == {p.resolve() for p in root.glob("*/good/*.png") if "test" not in p.parts}


def _messy_tree(root: Path) -> Path:
    """An MVTec-like tree as a person might keep it: folder names in any case, hidden files and archive
    debris, suffixes in any case, masks with another suffix and a '_mask' or no suffix."""
    rng = np.random.default_rng(7)
    from mmad.builder.synthetic import draw_defect, normal_image

    base = root / "Widget"
    (root / "__MACOSX" / "Widget").mkdir(parents=True)
    (root / "__MACOSX" / "Widget" / "._000.png").write_bytes(b"\x00\x05\x16\x07junk")
    (root / ".hidden_category").mkdir()
    for split, names in (("Train/GOOD", ["000.jpg", "001.JPG", "002.png", "003.bmp"]), ("Test/Good", ["a.JPEG"])):
        (base / split).mkdir(parents=True)
        for name in names:
            normal_image("tablet", SIZE, rng).save(base / split / name)
        (base / split / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (base / split / "._000.jpg").write_bytes(b"\x00\x05\x16\x07junk")
    masks = {"Scratch": ["s1.JPG", "s2.png", "s3.bmp"], "dent-mark": ["d1.jpg", "d2.tif"]}
    mask_names = {"s1.JPG": "s1_mask.png", "s2.png": "s2.bmp", "s3.bmp": "S3_MASK.PNG", "d1.jpg": "d1_mask.jpg"}
    for defect, names in masks.items():
        (base / "Test" / defect).mkdir(parents=True)
        for name in names:
            image = normal_image("tablet", SIZE, rng)
            mask = draw_defect(image, "hole", (30.0, 30.0), 0.08, rng, "tablet")
            image.save(base / "Test" / defect / name)
            written = Image.fromarray(mask.astype(np.uint8) * 255)
            if name in mask_names:
                (base / "Ground_Truth" / defect.upper()).mkdir(parents=True, exist_ok=True)
                written.save(base / "Ground_Truth" / defect.upper() / mask_names[name])
            else:  # beside its image
                written.save(base / "Test" / defect / f"{Path(name).stem}_mask.png")
        (base / "Test" / defect / "Thumbs.db").write_bytes(b"junk")
    (base / "Train" / "GOOD" / "004.png").write_bytes(b"not an image at all")
    normal_image("tablet", SIZE, rng).save(base / "Test" / "unlabelled.png")
    return root


def test_messy_trees_build(tmp_path: Path) -> None:
    source = _messy_tree(tmp_path / "Shop")
    dataset = read_dataset(source, "MVTEC")
    assert Counter((s.split, s.defect_type) for s in dataset.samples) == {
        ("train", "good"): 5,
        ("test", "good"): 1,
        ("test", "Scratch"): 3,
        ("test", "dent-mark"): 2,
    }
    assert all(s.masks for s in dataset.samples if not s.is_normal)
    assert dataset.skipped == {"image lying in test/ itself (no type folder labels it)": 1}
    assert read_dataset(source).layout in {"mvtec", "goodsad"}
    bench, report = build_benchmark(source, tmp_path / "out")
    assert validate(tmp_path / "out").ok, [str(p) for p in validate(tmp_path / "out").problems]
    assert report.images == 6 and report.templates == 4
    assert report.skipped["unreadable image file (not an image, or truncated)"] == 1
    for item in bench.items:
        if not item.is_normal:
            assert read_mask(bench.mask_file(item))[20:40, 20:40].any()


def test_folder_layout_with_masks_beside_images_and_case(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    from mmad.builder.synthetic import draw_defect, normal_image

    base = tmp_path / "src" / "bolt"
    (base / "Normal").mkdir(parents=True)
    (base / "Bent").mkdir()
    for i in range(4):
        normal_image("tablet", SIZE, rng).save(base / "Normal" / f"n{i}.png")
    for i in range(2):
        image = normal_image("tablet", SIZE, rng)
        mask = draw_defect(image, "crack", (48.0, 20.0), 0.1, rng, "tablet")
        image.save(base / "Bent" / f"b{i}.JPG")
        Image.fromarray(mask.astype(np.uint8) * 255).save(base / "Bent" / f"b{i}_mask.png")
    dataset = read_dataset(tmp_path / "src")
    assert dataset.layout == "folder"
    defects = [s for s in dataset.samples if not s.is_normal]
    assert len(defects) == 2 and all(len(s.masks) == 1 and s.masks[0].stem.endswith("_mask") for s in defects)
    build_benchmark(tmp_path / "src", tmp_path / "out")
    assert validate(tmp_path / "out").ok


def test_unknown_layout_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"unknown layout 'coco'.*mvtec"):
        read_dataset(make_tree(tmp_path / "src", "mvtec"), "coco")
    assert read_dataset(tmp_path / "src", "MVTec-LOCO").layout == "loco"  # aliases and case are accepted


def test_prepared_two_class_visa_and_a_category_without_normal_test_images(tmp_path: Path) -> None:
    from mmad.builder.synthetic import draw_defect, normal_image

    rng = np.random.default_rng(11)
    base = tmp_path / "visa_2cls" / "capsules"
    for split in ("train", "test"):
        for label in ("good", "bad"):
            (base / split / label).mkdir(parents=True)
            for i in range(3):
                image = normal_image("tablet", SIZE, rng)
                if label == "bad":
                    mask = draw_defect(image, "stain", (40.0, 40.0), 0.08, rng, "tablet")
                    (base / "ground_truth" / split / "bad").mkdir(parents=True, exist_ok=True)
                    labels = Image.fromarray(mask.astype(np.uint8) * 255)
                    labels.save(base / "ground_truth" / split / "bad" / f"{split}{i}.png")
                image.save(base / split / label / f"{split}{i}.JPG")
    dataset = read_dataset(tmp_path / "visa_2cls", "visa")
    assert dataset.skipped == {"defective image in the train split (templates must be normal)": 3}
    assert sum(not s.is_normal for s in dataset.samples) == 3
    shutil.rmtree(base / "test" / "good")
    bench, report = build_benchmark(tmp_path / "visa_2cls", tmp_path / "out")
    assert sum(i.is_normal for i in bench.items) == 2 and report.templates == 1  # 2 of 3 held out (rounded)
    assert any("held out" in n for n in report.notes)
