"""The transformers backend end to end on a tiny random LLaVA: real processor, generation, likelihood, batching."""

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the [hf] extra is installed by `make setup`")

from mmad.data.official import load_benchmark
from mmad.models.base import Request
from mmad.models.hf import TransformersModel, preset_for
from mmad.protocol.prompts import PromptSettings, build_prompts
from mmad.run import evaluate
from mmad.run.records import read_records
from tests.helpers.tiny_vlm import make_tiny_llava


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


def _requests(mmad_json: Path, n: int) -> list[Request]:
    bench = load_benchmark(mmad_json)
    prompts = [p for item in bench.items[:4] for p in build_prompts(bench, item, PromptSettings(max_tokens=6))][:n]
    return [
        Request(
            messages=p.messages, max_tokens=6, want_logprobs=True, choices=tuple(tuple(q.options) for q in p.questions)
        )
        for p in prompts
    ]


def test_generation_and_likelihood_are_well_formed(tiny_model: Path, mmad_json: Path) -> None:
    model = TransformersModel(str(tiny_model), device="cpu", batch_size=4)
    (completion,) = model.generate_batch(_requests(mmad_json, 1))
    assert isinstance(completion.text, str)
    assert completion.prompt_tokens and completion.prompt_tokens > 20  # the images' tokens are in the prompt
    assert set(completion.letter_logprobs) == {"A", "B", "C", "D", "E"}
    assert all(value <= 0 for value in completion.letter_logprobs.values())


def test_a_batch_gives_the_same_answers_as_one_at_a_time(tiny_model: Path, mmad_json: Path) -> None:
    model = TransformersModel(str(tiny_model), device="cpu", batch_size=6)
    requests = _requests(mmad_json, 6)
    batched = model.generate_batch(requests)
    single = [model.generate_batch([r])[0] for r in requests]
    assert [c.text for c in batched] == [c.text for c in single]
    for a, b in zip(batched, single, strict=True):
        assert max(abs(a.letter_logprobs[k] - b.letter_logprobs[k]) for k in "ABCDE") < 1e-3


def test_concurrent_requests_are_batched(tiny_model: Path, mmad_json: Path) -> None:
    model = TransformersModel(str(tiny_model), device="cpu", batch_size=4)
    calls: list[int] = []
    original = model.generate_batch
    model.generate_batch = lambda requests: calls.append(len(requests)) or original(requests)  # type: ignore[method-assign]

    async def run() -> list:
        return await asyncio.gather(*(model.generate(r) for r in _requests(mmad_json, 6)))

    results = asyncio.run(run())
    assert len(results) == 6 and sum(calls) == 6 and max(calls) == 4


def test_the_backend_through_mmad_eval(tiny_model: Path, mmad_json: Path, tmp_path: Path) -> None:
    result = evaluate(
        f"hf:{tiny_model}",
        mmad_json,
        out=tmp_path / "run",
        cache=False,
        concurrency=4,
        max_tokens=4,
        answer_from="likelihood",
        datasets=["VisA"],
    )
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert result.complete and records
    assert all(r.parse_method == "likelihood" and r.answer in r.options for r in records)


def test_presets() -> None:
    assert preset_for("Qwen/Qwen2.5-VL-7B-Instruct")["max_pixels"] == 1280 * 28 * 28
    assert preset_for("some/other-model") == {}
