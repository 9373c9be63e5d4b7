"""The agent's extra image against SoftPatch/call.py: sizes, thresholds, every contour, the mask
fallback, the official blends, the templates the expert is fitted on, and errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark
from mmad.errors import ConfigError, DataError
from mmad.expert.render import (
    EXPERT_BOXES,
    ORACLE_BOXES,
    binarize,
    merge_boxes,
    oracle_mask,
    regions,
    render_expert,
    render_oracle,
    shrunk_size,
)
from mmad.protocol.agent import AgentRenderer, mask_files
from mmad.protocol.official_text import AGENT_TEXTS
from mmad.protocol.strategies import parse_strategies

GREY = (100, 100, 100)
VIRIDIS_0, VIRIDIS_1 = (68, 1, 84), (253, 231, 36)  # matplotlib's viridis at 0 and 1, * 255, truncated


def _red(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB"))
    return (pixels[..., 0] == 255) & (pixels[..., 1] == 0) & (pixels[..., 2] == 0)


def _tree(root: Path) -> Benchmark:
    """Three abnormal images (.jpg mask name with a .png file, a LOCO mask folder, a missing mask) and a normal one."""
    grey = Image.new("RGB", (1700, 1000), GREY)
    for key in (
        "VisA/candle/test/bad/000.JPG",
        "VisA/candle/test/bad/001.JPG",
        "MVTec-LOCO/box/test/logical_anomalies/000.png",
        "VisA/candle/test/good/000.JPG",
        "VisA/candle/train/good/000.JPG",
        "VisA/candle/train/good/001.JPG",
    ):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        grey.save(root / key)
    mask = np.zeros((1000, 1700), np.uint8)
    mask[100:300, 200:600] = 255
    mask[900:908, 1600:1608] = 255  # 64 px: far under 0.1% of the image
    (root / "VisA/candle/ground_truth/bad").mkdir(parents=True)
    Image.fromarray(mask).save(root / "VisA/candle/ground_truth/bad/000.png")
    folder = root / "MVTec-LOCO/box/ground_truth/logical_anomalies/000"
    folder.mkdir(parents=True)
    left, right = np.zeros((1000, 1700), np.uint8), np.zeros((1000, 1700), np.uint8)
    left[100:200, 100:200] = 255
    right[500:600, 1200:1300] = 255
    Image.fromarray(left).save(folder / "000.png")
    Image.fromarray(right).save(folder / "001.png")
    (folder / "notes.txt").write_text("not a mask")
    conversation = [{"Question": "Is there any defect?", "Options": {"A": "Yes.", "B": "No."}, "Answer": "A"}]
    data = {
        "VisA/candle/test/bad/000.JPG": {"mask_path": "ground_truth/bad/000.jpg"},
        "VisA/candle/test/bad/001.JPG": {"mask_path": "ground_truth/bad/001.png"},
        "MVTec-LOCO/box/test/logical_anomalies/000.png": {"mask_path": "ground_truth/logical_anomalies/000.png"},
        "VisA/candle/test/good/000.JPG": {"mask_path": ""},
    }
    for record in data.values():
        record.update(
            random_templates=["VisA/candle/train/good/000.JPG", "VisA/candle/train/good/missing.JPG"],
            similar_templates=["VisA/candle/train/good/001.JPG"],
            conversation=[{**q, "type": "Anomaly Detection"} for q in conversation],
        )
    (root / "mmad.json").write_text(json.dumps(data))
    return load_benchmark(root / "mmad.json")


@pytest.fixture
def bench(tmp_path: Path) -> Benchmark:
    return _tree(tmp_path / "data")


def test_sizes_truncate_and_small_images_keep_theirs() -> None:
    assert shrunk_size((1700, 1000)) == (511, 301)  # int(1700 * 512 / 1700) == 511
    assert shrunk_size((1024, 512)) == (512, 256)
    assert shrunk_size((300, 200)) == (300, 200)  # call_ground_truth/call_patchcore never enlarge


def test_oracle_draws_every_contour_and_the_jpg_name_falls_back_to_png(bench: Benchmark, tmp_path: Path) -> None:
    item = bench.item("VisA/candle/test/bad/000.JPG")
    assert mask_files(bench, item) == [bench.resolve("VisA/candle/ground_truth/bad/000.png")]
    drawn = AgentRenderer("gt", "contour", tmp_path).draw(bench, item)
    assert drawn.size == (511, 301)
    red = _red(drawn)
    # the large region (x 200-600, y 100-300 at full size) and the 64-pixel one (x 1600, y 900) both get a contour
    assert red[29:31, 58:180].any()
    assert red[266:278, 476:488].any()
    tiny = np.zeros((100, 100), bool)
    tiny[50:52, 50:52] = True  # 0.04% of the image
    assert len(regions(tiny, 0.0)) == 1 and regions(tiny) == []  # the expert's 0.1% filter drops it


def test_a_missing_mask_is_a_data_error_naming_the_file(bench: Benchmark, tmp_path: Path) -> None:
    item = bench.item("VisA/candle/test/bad/001.JPG")
    with pytest.raises(DataError, match=r"ground_truth/bad/001\.png"):
        AgentRenderer("gt", "bbox", tmp_path).render(bench, item)


def test_a_loco_mask_folder_is_the_union_of_its_files(bench: Benchmark, tmp_path: Path) -> None:
    item = bench.item("MVTec-LOCO/box/test/logical_anomalies/000.png")
    files = mask_files(bench, item)
    assert files is not None and [f.name for f in files] == ["000.png", "001.png"]
    red = _red(AgentRenderer("gt", "bbox", tmp_path).draw(bench, item))
    assert red[29:31, 29:60].any() and red[150:152, 361:391].any()  # one box per mask file


def test_a_normal_image_is_sent_plain_at_its_own_size(bench: Benchmark, tmp_path: Path) -> None:
    part, text = AgentRenderer("gt", "contour", tmp_path).render(bench, bench.item("VisA/candle/test/good/000.JPG"))
    with Image.open(part.path or "") as image:
        assert image.size == (1700, 1000) and not _red(image).any()
    assert text == AGENT_TEXTS["contour"] and part.role == "expert"


def test_mask_values_follow_call_ground_truth() -> None:
    assert oracle_mask(np.array([[0, 1]], np.uint8)).tolist() == [[False, True]]
    assert oracle_mask(np.array([[0, 128, 255]], np.uint8)).tolist() == [[False, False, True]]  # gt // 255
    assert oracle_mask(np.array([[0, 2, 128]], np.uint8)).tolist() == [[False, True, True]]  # several colours


def test_the_expert_highlight_is_the_official_blend_over_transparent_black() -> None:
    image = Image.new("RGB", (40, 30), GREY)
    drawn = np.asarray(render_expert(image, np.ones((30, 40), np.float32), "highlight"))
    # Image.blend((0,0,0,0), map, 0.7) -> (trunc(0.7*map), alpha 178); alpha_composite over the image
    assert tuple(drawn[5, 5]) == (154, 143, 48)
    effective = 0.489 * np.array(VIRIDIS_1) + 0.302 * 100
    assert np.abs(drawn[5, 5] - effective).max() <= 1.0


def test_the_oracle_highlight_is_add_weighted_06_04() -> None:
    image = Image.new("RGB", (40, 30), GREY)
    gt = np.zeros((30, 40), np.uint8)
    gt[:, :20] = 255
    drawn = np.asarray(render_oracle(image, gt, "highlight"))
    assert tuple(drawn[5, 5]) == (161, 152, 74)  # 0.6 * 100 + 0.4 * viridis(1)
    assert tuple(drawn[5, 30]) == (87, 60, 94)  # 0.6 * 100 + 0.4 * viridis(0)
    assert tuple(np.asarray(render_oracle(image, gt, "mask"))[5, 30]) == VIRIDIS_0


def test_thresholds_are_strict_and_the_median_is_the_sorted_middle() -> None:
    heat = np.zeros((10, 10), np.float64)
    heat[0, 0] = 1.0
    heat[1, 1] = 1 - 1 / 3  # exactly the threshold: cv2 THRESH_BINARY keeps only values above it
    assert binarize(heat)[0, 0] and not binarize(heat)[1, 1]
    ramp = np.linspace(0.5, 1.0, 100).reshape(10, 10)  # two thirds of it is above 2/3 of the maximum
    assert (ramp > 2 / 3).mean() > 0.5
    passing = binarize(ramp)
    # above sorted[int(0.5 * 100)] = sorted[50]: 49 pixels (np.median would let 50 pass)
    assert passing.sum() == 49 and passing.flat[51] and not passing.flat[50]


def test_box_limits_and_the_cv2_rectangle_corner() -> None:
    boxes = [(0, 0, 1, 1), (10, 0, 11, 1), (50, 50, 51, 51), (90, 90, 91, 91), (0, 90, 1, 91)]
    assert (EXPERT_BOXES, ORACLE_BOXES) == (2, 3)
    assert len(merge_boxes(boxes, ORACLE_BOXES)) == 3 and len(merge_boxes(boxes, EXPERT_BOXES)) == 2
    gt = np.zeros((60, 60), np.uint8)
    gt[10:20, 10:20] = 255  # cv2.boundingRect: x=10, w=10; cv2.rectangle goes to x + w = 20
    red = _red(render_oracle(Image.new("RGB", (60, 60), GREY), gt, "bbox"))
    assert red[10, 10] and red[15, 20] and red[20, 15] and not red[15, 15]


def test_the_expert_is_fitted_on_the_runs_template_kind(bench: Benchmark, tmp_path: Path) -> None:
    item = bench.item("VisA/candle/test/bad/000.JPG")
    assert AgentRenderer("expert", "bbox", tmp_path, shots=1).templates_for(item) == ["VisA/candle/train/good/000.JPG"]
    similar = AgentRenderer("expert", "bbox", tmp_path, shots=1, similar=True)
    assert similar.templates_for(item) == ["VisA/candle/train/good/001.JPG"]
    with pytest.raises(DataError, match=r"missing\.JPG"):  # a missing template is named
        AgentRenderer("expert", "bbox", tmp_path, shots=2).draw(bench, item)


def test_a_missing_query_image_is_a_data_error(bench: Benchmark, tmp_path: Path) -> None:
    bench.resolve("VisA/candle/test/bad/000.JPG").unlink()
    with pytest.raises(DataError, match=r"bad/000\.JPG"):
        AgentRenderer("gt", "bbox", tmp_path).render(bench, bench.item("VisA/candle/test/bad/000.JPG"))


def test_combinations_the_official_code_never_made_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="call_ground_truth"):
        parse_strategies(["agent:gt:heatmap"])
    with pytest.raises(ConfigError, match="call_ground_truth"):
        AgentRenderer("gt", "heatmap", tmp_path)
    with pytest.raises(ConfigError, match="--shots 1"):
        AgentRenderer("expert", "bbox", tmp_path, shots=0)


def test_the_official_agent_texts() -> None:
    # Transformers/internvl_query.py, without the trailing "<image>" (the image part follows)
    assert AGENT_TEXTS["contour"] == (
        "Following is the reference image where some suspicious areas are marked by red contour. Please note that "
        "even if the query image does not have any defects, the image still highlight some areas. Therefore, you "
        "still need to make a judgement by yourself. "
    )
    assert AGENT_TEXTS["highlight"] == (
        "Following is the reference image where some suspicious areas are highlight. Please note that even if the "
        "query image does not have any defects, the image still highlight some areas. Therefore, you still need to "
        "make a judgement by yourself. "
    )
