"""Agent rendering rules, the RAG text, chain of thought and the --strategy path end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmad.data.official import load_benchmark
from mmad.errors import ConfigError
from mmad.expert.render import binarize, boxes_of, merge_boxes, regions, render
from mmad.protocol import official_text as T
from mmad.protocol.strategies import DomainKnowledge, parse_strategies
from mmad.records.record import read_records
from tests.helpers.recording import RecordingModel


def test_threshold_is_two_thirds_of_the_peak() -> None:
    heat = np.zeros((100, 100), np.float32)
    heat[10:20, 10:20] = 1.0
    heat[50:60, 50:60] = 0.7  # above 2/3
    heat[80:90, 80:90] = 0.6  # below 2/3
    binary = binarize(heat)
    assert binary[15, 15] and binary[55, 55] and not binary[85, 85]


def test_median_when_more_than_half_passes() -> None:
    heat = np.linspace(0.5, 1.0, 100 * 100, dtype=np.float32).reshape(100, 100)  # everything >= 2/3 on 2/3 of it
    binary = binarize(heat)
    assert abs(binary.mean() - 0.5) < 0.01


def test_area_filter_and_box_merging() -> None:
    binary = np.zeros((100, 100), bool)
    binary[5:6, 5:8] = True  # 3 px = 0.03% of the image: dropped
    for y, x in [(10, 10), (12, 40), (70, 70), (75, 90)]:
        binary[y : y + 6, x : x + 6] = True
    parts = regions(binary)
    assert len(parts) == 4
    boxes = boxes_of(parts)
    assert len(merge_boxes(boxes, 2)) == 2
    merged = sorted(merge_boxes(boxes, 2))
    assert merged[0] == (10, 10, 45, 17) and merged[1] == (70, 70, 95, 80)
    assert len(merge_boxes(boxes, 3)) == 3


def test_rendering_draws_red_boxes_and_contours() -> None:
    image = Image.new("RGB", (1024, 512), (128, 128, 128))
    heat = np.zeros((512, 1024), np.float32)
    heat[100:200, 100:300] = 1.0
    boxed = np.asarray(render(image, heat, "bbox"))
    assert boxed.shape == (256, 512, 3)  # longer side at most 512
    red = (boxed[..., 0] == 255) & (boxed[..., 1] == 0) & (boxed[..., 2] == 0)
    ys, xs = np.nonzero(red)
    assert (ys.min(), xs.min()) == (50, 50) and abs(ys.max() - 99) <= 1 and abs(xs.max() - 149) <= 1
    assert not red[75, 100]  # a box is an outline, not a fill
    contour = np.asarray(render(image, heat, "contour"))
    assert ((contour[..., 0] == 255) & (contour[..., 1] == 0)).sum() > 0
    for notation in ("highlight", "heatmap"):
        assert render(image, heat, notation).size == (512, 256)
    assert render(image, heat, "mask", oracle=True).size == (512, 256)


def test_rag_text_equals_the_official_concatenation(reference_dir: Path) -> None:
    path = reference_dir / "official" / "domain_knowledge.json"
    knowledge = DomainKnowledge.load(path)
    raw = json.loads(path.read_text())
    for dataset, category in [
        ("DS-MVTec", "bottle"),
        ("MVTec-LOCO", "breakfast_box"),
        ("VisA", "candle"),
        ("GoodsAD", "drink_can"),
    ]:
        key = "MVTec" if dataset == "DS-MVTec" else dataset
        assert knowledge.text_for(dataset, category) == "\n".join(raw[key][category].values())
    assert knowledge.text_for("VisA", "no-such-category") is None


def test_strategy_strings() -> None:
    s = parse_strategies(["rag+cot", "agent:expert:contour"])
    assert (s.rag, s.cot, s.agent_expert, s.agent_notation) == (True, True, "expert", "contour")
    assert s.names == ["rag", "agent:expert:contour", "cot"]
    with pytest.raises(ConfigError, match="unknown strategy"):
        parse_strategies(["magic"])
    with pytest.raises(ConfigError, match="agent:gt:mask"):
        parse_strategies(["agent:expert:mask"])


def test_rag_cot_and_oracle_agent_end_to_end(fresh_mmad_json: Path, tmp_path: Path) -> None:
    knowledge = {"MVTec": {"bottle": {"good": " <Normal>\n Description: round.", "broken_large": " <Break>"}}}
    (fresh_mmad_json.parent / "domain_knowledge.json").write_text(json.dumps(knowledge))
    model = RecordingModel()
    import asyncio

    from mmad import RunConfig
    from mmad.api import evaluate_async

    config = RunConfig.from_flat(
        "recording",
        str(fresh_mmad_json),
        strategies=["rag", "cot", "agent:gt:bbox"],
        cache=False,
        datasets=["DS-MVTec"],
        concurrency=4,
    )
    result = asyncio.run(evaluate_async(config, out=tmp_path / "run", model=model))
    assert result.complete
    bench = load_benchmark(fresh_mmad_json)
    n_images = sum(1 for i in bench.items if i.dataset == "DS-MVTec")
    n_questions = sum(len(i.questions) for i in bench.items if i.dataset == "DS-MVTec")
    preambles = [r for r in model.requests if len(r.messages) == 1]
    answers = [r for r in model.requests if len(r.messages) == 3]
    assert len(preambles) == n_images and len(answers) == n_questions  # one CoT turn per image, kept in history
    request = next(r for r in answers if "bottle/image/broken_large" in (r.messages[0].images[-2].path or ""))
    first, thoughts, question = request.messages
    assert first.parts[0].text.startswith(
        T.INSTRUCTION + T.DOMAIN_KNOWLEDGE_PREFIX + " <Normal>\n Description: round.\n <Break>"
    )
    assert [p.role for p in first.images] == ["template", "query", "expert"]  # the agent image follows the query
    assert T.AGENT_TEXTS["bbox"] in first.text and first.text.endswith(T.COT_PROMPT + "\n")
    assert thoughts.role == "assistant" and thoughts.text.startswith("The query shows")
    assert "Question" in question.text and not question.images
    drawn = np.asarray(Image.open(first.images[-1].path))
    assert ((drawn[..., 0] == 255) & (drawn[..., 1] == 0) & (drawn[..., 2] == 0)).any()  # the oracle's red box
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["card"]["strategies"] == ["rag", "agent:gt:bbox", "cot"]
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert all(r.extra.get("preamble", "").startswith("The query shows") for r in records)


def test_compare_finds_a_real_difference() -> None:
    from mmad.score.answers import GradedAnswer
    from mmad.score.compare import compare_runs

    rng = np.random.default_rng(0)
    a, b = [], []
    for i in range(400):
        image = f"VisA/candle/test/{'good' if i % 2 else 'bad'}/{i:04d}.JPG"
        for qtype in ("Anomaly Detection", "Defect Analysis"):
            a.append(GradedAnswer(image, qtype, "A", "A" if rng.random() < 0.5 else "B", question_text=qtype))
            b.append(GradedAnswer(image, qtype, "A", "A" if rng.random() < 0.8 else "B", question_text=qtype))
    result = {d.group: d for d in compare_runs(a, b, samples=400)}
    analysis = result["Defect Analysis"]
    assert 20 < analysis.delta < 40 and analysis.low > 0
    same = {d.group: d for d in compare_runs(a, a, samples=200)}["Defect Analysis"]
    assert same.delta == 0 and same.low == 0 == same.high
