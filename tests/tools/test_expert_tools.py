"""The tools that use the visual expert's backbone: the expert tool and retrieval of normal images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch", reason="the [expert] extra is installed by `make setup`")

from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark
from mmad.expert.render import render_expert
from mmad.models.expert_model import fitted_expert
from mmad.protocol.messages import ImagePart
from mmad.tools import Toolbox
from mmad.tools.expert import suggested_box
from tests.helpers.mmad_tree import make_mmad_tree

pytestmark = pytest.mark.expert
ITEM = "DS-MVTec/bottle/image/broken_large/000.png"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    bench = load_benchmark(make_mmad_tree(tmp_path_factory.mktemp("data")))
    # A bright square on the query: the expert's box must land on it.
    path = bench.resolve(ITEM)
    template = np.asarray(Image.open(bench.resolve(bench.item(ITEM).random_templates[0])).convert("RGB")).copy()
    template[20:28, 4:12] = 255
    Image.fromarray(template).save(path)
    return bench


@pytest.mark.slow
def test_the_expert_tool_draws_the_experts_map_and_reads_its_score(benchmark: Benchmark, tmp_path: Path) -> None:
    item = benchmark.item(ITEM)
    box = Toolbox(benchmark, tmp_path / "tools", notation="contour", expert=fitted_expert)
    assert "expert" in box.tools
    result = box.call(item, "expert", {})
    assert not result.error, result.text
    expert = fitted_expert(benchmark)
    query = ImagePart(path=str(benchmark.resolve(ITEM)), role="query")
    templates = [ImagePart(path=str(benchmark.resolve(t)), role="template") for t in item.templates(1)]
    expected, threshold = expert.inspect(query, templates)
    with Image.open(benchmark.resolve(ITEM)) as image:
        drawn = np.asarray(render_expert(image.convert("RGB"), expected.anomaly_map, "contour"))
    with Image.open(str(result.images[0].path)) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), drawn)
    assert result.data["score"] == pytest.approx(expected.pred_score, abs=1e-3)
    assert result.data["threshold"] == pytest.approx(threshold, abs=1e-3)
    x0, y0, x1, y1 = result.data["box"]
    assert x0 <= 8 / 32 <= x1 and y0 <= 24 / 32 <= y1  # around the square drawn at x 4-11, y 20-27
    assert '"box": [' in result.text and "threshold" in result.text
    assert box.call(item, "expert", {"where": 1}).error


def test_suggested_box_is_none_for_a_flat_map() -> None:
    assert suggested_box(np.zeros((8, 8), np.float32)) is None
    peaked = np.zeros((40, 40), np.float32)
    peaked[10:20, 30:40] = 1
    assert suggested_box(peaked) == [0.75, 0.25, 1.0, 0.5]


def test_reference_retrieves_normal_images_of_the_product_past_the_templates(
    benchmark: Benchmark, tmp_path: Path
) -> None:
    item = benchmark.item(ITEM)
    box = Toolbox(benchmark, tmp_path / "tools")
    result = box.call(item, "reference", {"k": 4})
    assert not result.error, result.text
    keys = result.data["references"]
    assert keys[:3] == item.similar_templates
    assert result.data["how"] == ["template"] * 3 + ["retrieved"]
    assert keys[3].startswith("DS-MVTec/bottle/image/good/")  # a normal query image of the same product
    assert len(result.images) == 4
