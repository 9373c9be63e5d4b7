"""Each tool on real generated images: what it returns, and bad arguments as messages, never crashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark
from mmad.errors import ConfigError
from mmad.tools import TOOL_NAMES, Toolbox, parse_tool_names
from mmad.tools.crops import GAP
from mmad.tools.reference import NO_BACKBONE, category_normals
from tests.helpers.mmad_tree import make_mmad_tree

ITEM = "DS-MVTec/bottle/image/broken_large/000.png"


def _pattern(path: Path, width: int = 80, height: int = 60, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def benchmark(tmp_path: Path) -> Benchmark:
    path = make_mmad_tree(tmp_path / "data")
    bench = load_benchmark(path)
    _pattern(bench.resolve(ITEM))  # a non-square query, so x and y cannot be swapped unnoticed
    return bench


def _toolbox(benchmark: Benchmark, tmp_path: Path, **options: object) -> Toolbox:
    return Toolbox(benchmark, tmp_path / "tools", **options)  # type: ignore[arg-type]


def _open(path: str | None) -> np.ndarray:
    assert path is not None
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_zoom_holds_the_box_pixels_at_their_own_size(benchmark: Benchmark, tmp_path: Path) -> None:
    box = _toolbox(benchmark, tmp_path, max_side=None)
    result = box.call(benchmark.item(ITEM), "zoom", json.dumps({"x0": 0.25, "y0": 0.5, "x1": 0.75, "y1": 1.0}))
    assert not result.error
    expected = np.asarray(Image.open(benchmark.resolve(ITEM)).convert("RGB"))[30:60, 20:60]
    assert np.array_equal(_open(result.images[0].path), expected)
    assert result.images[0].role == "tool"
    assert result.summary.startswith("zoom [0.250, 0.500, 0.750, 1.000]")


def test_zoom_is_enlarged_to_the_runs_image_size_and_clamped(benchmark: Benchmark, tmp_path: Path) -> None:
    box = _toolbox(benchmark, tmp_path, max_side=128)
    result = box.call(benchmark.item(ITEM), "zoom", {"x0": -0.5, "y0": 0, "x1": 0.5, "y1": 1.5})
    crop = _open(result.images[0].path)
    assert crop.shape[:2] == (128, 85)  # the left half, 40x60 px, scaled so its longer side is 128
    source = Image.open(benchmark.resolve(ITEM)).convert("RGB").crop((0, 0, 40, 60))
    back = np.asarray(Image.fromarray(crop).resize(source.size, Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(back - np.asarray(source, dtype=np.float64)).mean() < 25  # the same pixels, enlarged
    assert result.data["box"] == [0.0, 0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"x0": 0.1, "y0": 0.1, "x1": 0.5}, "missing y1"),
        ({"x0": 0.5, "y0": 0.1, "x1": 0.2, "y1": 0.9}, "x1 must exceed x0"),
        ({"x0": "left", "y0": 0.1, "x1": 0.5, "y1": 0.9}, 'x0 must be a number from 0 to 1, not "left"'),
        ({"x0": True, "y0": 0.1, "x1": 0.5, "y1": 0.9}, "x0 must be a number"),
        ({"x0": 0.1, "y0": 0.1, "x1": 0.5, "y1": 0.9, "zoom": 2}, "unknown argument(s) zoom"),
        ('{"x0": 0.1,', "not valid JSON"),
        ("[0.1, 0.1, 0.5, 0.5]", "must be a JSON object, not list"),
        ({"x0": 2, "y0": 0.1, "x1": 3, "y1": 0.9}, "is empty or thinner"),
    ],
)
def test_bad_box_arguments_are_a_message_for_the_model(
    benchmark: Benchmark, tmp_path: Path, arguments: object, says: str
) -> None:
    box = _toolbox(benchmark, tmp_path)
    for name in ("zoom", "compare"):
        result = box.call(benchmark.item(ITEM), name, arguments)
        assert result.error and not result.images
        assert says in result.text
        assert result.text.startswith("error: ") and '"x0"' in result.text  # the schema, to try again with
        assert result.summary.startswith(f"{name}: error:")


def test_an_unknown_tool_is_a_message_naming_the_tools(benchmark: Benchmark, tmp_path: Path) -> None:
    box = _toolbox(benchmark, tmp_path, names=("zoom", "reference"))
    result = box.call(benchmark.item(ITEM), "magnify", {})
    assert result.error
    assert "there is no tool 'magnify'; the tools are zoom, reference" in result.text


def test_reference_gives_the_questions_similar_templates_first(benchmark: Benchmark, tmp_path: Path) -> None:
    item = benchmark.item(ITEM)
    box = _toolbox(benchmark, tmp_path, max_side=None)
    result = box.call(item, "reference", {"k": 2})
    assert result.data["references"] == item.similar_templates[:2]
    assert result.data["how"] == ["template", "template"]
    for key, part in zip(item.similar_templates, result.images, strict=False):
        assert np.array_equal(_open(part.path), np.asarray(Image.open(benchmark.resolve(key)).convert("RGB")))
    assert box.call(item, "reference", {}).data["references"] == item.similar_templates[:1]


def test_reference_without_a_backbone_gives_the_templates_and_says_so(
    benchmark: Benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = benchmark.item(ITEM)
    box = _toolbox(benchmark, tmp_path)
    monkeypatch.setattr(box, "detector", lambda: None)  # as without the [expert] extra
    result = box.call(item, "reference", {"k": 4})
    assert not result.error
    assert result.data["references"] == item.similar_templates  # the three templates there are
    assert f"Only 3 of the 4 asked for: {NO_BACKBONE}" in result.text


@pytest.mark.parametrize("k", [0, 5, 1.5, "2", None])
def test_reference_refuses_a_bad_k(benchmark: Benchmark, tmp_path: Path, k: object) -> None:
    result = _toolbox(benchmark, tmp_path).call(benchmark.item(ITEM), "reference", {"k": k})
    assert result.error
    assert "k must be a whole number from 1 to 4" in result.text


def test_the_category_pool_holds_normal_images_of_the_product_only(benchmark: Benchmark) -> None:
    item = benchmark.item(ITEM)
    pool = category_normals(benchmark, item)
    assert item.key not in pool
    assert all("/bottle/" in key and ("/good/" in key) for key in pool)
    assert "DS-MVTec/bottle/image/good/000.png" in pool


def test_compare_puts_the_same_box_of_query_and_reference_side_by_side(benchmark: Benchmark, tmp_path: Path) -> None:
    item = benchmark.item(ITEM)
    box = _toolbox(benchmark, tmp_path, max_side=None)
    result = box.call(item, "compare", {"x0": 0.5, "y0": 0.0, "x1": 1.0, "y1": 0.5})
    assert not result.error
    pair = _open(result.images[0].path)
    query = np.asarray(Image.open(benchmark.resolve(ITEM)).convert("RGB"))[0:30, 40:80]
    assert pair.shape[0] == 30
    assert np.array_equal(pair[:, :40], query)
    assert (pair[:, 40 : 40 + GAP] == 255).all()
    reference = result.data["reference"]
    assert reference == item.similar_templates[0]
    assert reference in result.text


def test_knowledge_reads_the_categorys_text(benchmark: Benchmark, tmp_path: Path) -> None:
    knowledge = {"MVTec": {"bottle": {"good": "A round glass bottle.", "broken_large": "A piece is missing."}}}
    (benchmark.root / "domain_knowledge.json").write_text(json.dumps(knowledge))
    box = _toolbox(benchmark, tmp_path)
    result = box.call(benchmark.item(ITEM), "knowledge", {})
    assert result.text == "A round glass bottle.\nA piece is missing."
    other = box.call(benchmark.item("VisA/candle/test/bad/000.JPG"), "knowledge", {})
    assert not other.error and other.text == "No domain knowledge is recorded for VisA/candle."
    assert box.call(benchmark.item(ITEM), "knowledge", {"category": "x"}).error


def test_tools_that_cannot_work_are_left_out_by_default_and_refused_by_name(
    benchmark: Benchmark, tmp_path: Path
) -> None:
    box = _toolbox(benchmark, tmp_path)  # no knowledge file, no expert
    assert list(box.tools) == ["zoom", "reference", "compare"]
    assert set(box.describe()["left_out"]) == {"expert", "knowledge"}
    with pytest.raises(ConfigError, match=r"--tools knowledge: .*domain_knowledge.json.*leave knowledge out"):
        _toolbox(benchmark, tmp_path, names=("zoom", "knowledge"))


def test_tool_names_and_specs() -> None:
    assert parse_tool_names("zoom, expert,zoom") == ("zoom", "expert")
    assert parse_tool_names("all") is None
    assert parse_tool_names(None) is None
    with pytest.raises(ConfigError, match=r"unknown tool.*magnify.*choose from zoom, reference, compare"):
        parse_tool_names("zoom,magnify")
    assert TOOL_NAMES == ("zoom", "reference", "compare", "expert", "knowledge")


def test_every_spec_is_an_openai_function(benchmark: Benchmark, tmp_path: Path) -> None:
    for spec in _toolbox(benchmark, tmp_path).specs():
        assert spec["type"] == "function"
        function = spec["function"]
        assert set(function) == {"name", "description", "parameters"}
        assert function["parameters"]["type"] == "object"
        json.dumps(spec)
