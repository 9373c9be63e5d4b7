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
from mmad.models.base import Request
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


@pytest.mark.slow
def test_the_scripted_user_zooms_into_the_experts_box_and_answers_from_its_score(
    benchmark: Benchmark, tmp_path: Path
) -> None:
    """Over HTTP: the expert's picture reaches the model as the expert drew it, the zoom goes to its box,
    and the answer follows its score against the threshold."""
    from mmad import evaluate
    from mmad.protocol.images import load_image
    from mmad.records.record import read_records
    from mmad.serve.scripted_tools import ScriptedToolUser
    from mmad.serve.server import ChatServer, serve_in_thread

    user = ScriptedToolUser()  # the default plan: expert, then zoom into its box
    assert benchmark.source is not None
    with serve_in_thread(ChatServer(user, any_model=True)) as server:
        evaluate(
            "compat:scripted",
            benchmark.source,
            out=tmp_path / "run",
            strategies="tools",
            base_url=server.base_url,
            cache=False,
            datasets=["DS-MVTec"],
            categories=["bottle"],
            subtasks=["Anomaly Detection"],
        )
    records = {r.image: r for r in read_records(tmp_path / "run" / "records.jsonl")}
    record = records[ITEM]
    expert_call, zoom_call = record.extra["tools"]["calls"]
    assert expert_call["name"] == "expert" and zoom_call["name"] == "zoom"
    facts = expert_call["data"]
    assert zoom_call["arguments"] == dict(zip(("x0", "y0", "x1", "y1"), facts["box"], strict=True))
    expected = "A" if facts["score"] > facts["threshold"] else "B"  # A. Yes. / B. No.
    assert record.extra["tools"]["answer"] == expected == record.answer
    # The expert's picture as the next request carried it: the expert's map drawn in the run's notation.
    with Image.open(benchmark.resolve(ITEM)) as image:
        shown = np.asarray(image.convert("RGB").resize((512, 512), Image.Resampling.BILINEAR), dtype=np.float64)

    def about_item(request: Request) -> bool:  # the run asks about several images at once
        query = next(m for m in request.messages if m.role == "user" and m.images).images[-1]
        return bool(np.abs(np.asarray(load_image(query), dtype=np.float64) - shown).mean() < 8)

    turns = [r for r in user.requests if r.tools and about_item(r)]
    assert len(turns) == 3  # expert, zoom, the answer
    sent = np.asarray(load_image(turns[1].messages[-1].images[0]), dtype=np.float64)
    expert = fitted_expert(benchmark)
    item = benchmark.item(ITEM)
    query = ImagePart(path=str(benchmark.resolve(ITEM)), role="query")
    templates = [ImagePart(path=str(benchmark.resolve(t)), role="template") for t in item.templates(1)]
    result, _threshold = expert.inspect(query, templates)
    with Image.open(benchmark.resolve(ITEM)) as image:
        drawn = render_expert(image.convert("RGB"), result.anomaly_map, "bbox").resize(
            (512, 512), Image.Resampling.BILINEAR
        )
    assert np.abs(sent - np.asarray(drawn, dtype=np.float64)).mean() < 8


def test_the_expert_is_calibrated_per_category_on_first_use(benchmark: Benchmark, tmp_path: Path) -> None:
    """A run of a few questions calibrates the categories it asks about, not every category of the benchmark."""
    from mmad.expert.patchcore import ExpertResult

    made: list[set[str]] = []

    class Fake:
        expert = None

        def inspect_shared(self, query: ImagePart, templates: list[ImagePart]) -> tuple[ExpertResult, float]:
            anomaly_map = np.zeros((32, 32), np.float32)
            anomaly_map[0:8, 24:32] = 1
            return ExpertResult(pred_score=3.0, anomaly_map=anomaly_map), 2.0

    def make(part: Benchmark) -> Fake:
        made.append({"/".join(i.key.split("/")[:2]) for i in part.items})
        return Fake()

    box = Toolbox(benchmark, tmp_path / "tools", expert=make)  # type: ignore[arg-type]
    for key in (ITEM, "DS-MVTec/bottle/image/good/000.png", "VisA/candle/test/bad/000.JPG"):
        result = box.call(benchmark.item(key), "expert", {})
        assert not result.error, result.text
        assert result.data == {"score": 3.0, "threshold": 2.0, "box": [0.75, 0.0, 1.0, 0.25]}
    assert made == [{"DS-MVTec/bottle"}, {"VisA/candle"}]
