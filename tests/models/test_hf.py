"""The transformers backend end to end on tiny random VLMs: real processor, generation, likelihood, batching.

LLaVA runs everywhere; Qwen2-VL needs torchvision (its processor's video half), which has no wheel
beside this project's CPU torch, so it runs where torchvision is installed (the GPU machines).
MMAD_TEST_DEVICE=cuda runs these tests on a GPU.
"""

import asyncio
import importlib.util
import json
import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the [hf] extra is installed by `make setup`")

from mmad import evaluate
from mmad.data.official import load_benchmark
from mmad.models.base import Request
from mmad.models.hf import PreparedBatch, TransformersModel, preset_for
from mmad.protocol.prompts import PromptSettings, build_prompts
from mmad.records.record import read_records
from tests.helpers.tiny_vlm import make_random_qwen2_vl, make_tiny_llava

pytestmark = pytest.mark.hf

DEVICE = os.environ.get("MMAD_TEST_DEVICE", "cpu")
NO_TORCHVISION = importlib.util.find_spec("torchvision") is None
QWEN2_VL = pytest.param(
    "qwen2-vl",
    marks=[
        pytest.mark.optional,
        pytest.mark.skipif(NO_TORCHVISION, reason="Qwen2-VL's processor needs torchvision (no wheel for torch 2.13)"),
    ],
)


@pytest.fixture(scope="module", params=["llava", QWEN2_VL])
def tiny_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    if request.param == "llava":
        return make_tiny_llava(folder)
    return make_random_qwen2_vl(folder, size="tiny")


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
    model = TransformersModel(str(tiny_model), device=DEVICE, batch_size=4)
    (completion,) = model.generate_batch(_requests(mmad_json, 1))
    assert isinstance(completion.text, str)
    assert completion.prompt_tokens and completion.prompt_tokens > 20  # the images' tokens are in the prompt
    assert set(completion.letter_logprobs) == {"A", "B", "C", "D", "E"}
    assert all(value <= 0 for value in completion.letter_logprobs.values())


def test_a_batch_gives_the_same_answers_as_one_at_a_time(tiny_model: Path, mmad_json: Path) -> None:
    model = TransformersModel(str(tiny_model), device=DEVICE, batch_size=6)
    requests = _requests(mmad_json, 6)
    batched = model.generate_batch(requests)
    single = [model.generate_batch([r])[0] for r in requests]
    assert [c.text for c in batched] == [c.text for c in single]
    for a, b in zip(batched, single, strict=True):
        assert max(abs(a.letter_logprobs[k] - b.letter_logprobs[k]) for k in "ABCDE") < 1e-3


def test_concurrent_requests_are_batched(tiny_model: Path, mmad_json: Path) -> None:
    model = TransformersModel(str(tiny_model), device=DEVICE, batch_size=4)

    async def run() -> list:
        return await asyncio.gather(*(model.generate(r) for r in _requests(mmad_json, 6)))

    results = asyncio.run(run())
    assert len(results) == 6 and all(isinstance(r.text, str) for r in results)
    assert sorted(model.batcher.batches) == [2, 4]


def test_the_next_batch_is_prepared_while_one_generates_with_the_same_answers(
    tiny_model: Path, mmad_json: Path
) -> None:
    """The real processor works on batch n+1 in its thread while the real model generates batch n.

    Each generate waits (up to 30 s) until the next batch's preparation has begun, so a batcher
    without overlap fails here; the answers must be those of the same batches generated in turn.
    """
    model = TransformersModel(str(tiny_model), device=DEVICE, batch_size=4)
    requests = _requests(mmad_json, 12)
    in_turn = [c for start in range(0, 12, 4) for c in model.generate_batch(requests[start : start + 4])]
    prepare, run = model.batcher.prepare_batch, model.batcher.run_batch
    lock, events, began = threading.Lock(), [], [threading.Event() for _ in range(3)]
    numbers: dict[int, int] = {}

    def note(*event: object) -> None:
        with lock:
            events.append(event)

    def prepare_noted(batch: list[Request]) -> PreparedBatch:
        with lock:
            number = numbers[id(batch)] = len(numbers)
        began[number].set()
        note("prepare", number, "start")
        prepared = prepare(batch)
        note("prepare", number, "end")
        return prepared

    def run_noted(prepared: PreparedBatch) -> list:
        number = numbers[id(prepared.requests)]  # the very list prepare_noted was given
        note("generate", number, "start")
        waited = number + 1 >= len(began) or began[number + 1].wait(30)
        completions = run(prepared)
        note("generate", number, "end", waited)
        return completions

    model.batcher.prepare_batch, model.batcher.run_batch = prepare_noted, run_noted

    async def ask() -> list:
        return await asyncio.gather(*(model.generate(r) for r in requests))

    overlapped = asyncio.run(ask())
    assert model.batcher.batches == [4, 4, 4]
    generates = [e for e in events if e[0] == "generate"]
    assert [e[1:3] for e in generates] == [
        (n, edge) for n in range(3) for edge in ("start", "end")
    ]  # never two at once
    assert all(e[3] for e in generates if e[2] == "end")
    for number in range(2):
        assert events.index(("prepare", number + 1, "start")) < events.index(("generate", number, "end", True))
    assert [c.text for c in overlapped] == [c.text for c in in_turn]
    for a, b in zip(overlapped, in_turn, strict=True):
        assert max(abs(a.letter_logprobs[k] - b.letter_logprobs[k]) for k in "ABCDE") < 1e-3


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
    assert preset_for("Qwen/Qwen2.5-VL-7B-Instruct")["size"]["longest_edge"] == 1280 * 28 * 28
    assert preset_for("some/other-model") == {}


def test_the_qwen_preset_caps_images_through_the_real_image_processor(tmp_path: Path) -> None:
    """Qwen2-VL's pure-PIL image processor runs without torchvision: the preset must bound its tokens."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    Qwen2VLImageProcessorPil().save_pretrained(tmp_path)
    preset = preset_for("Qwen/Qwen2-VL-2B-Instruct")
    processor = Qwen2VLImageProcessorPil.from_pretrained(tmp_path, **preset)
    for size in [(3000, 2000), (1000, 800), (64, 64)]:
        (grid,) = processor(images=[Image.new("RGB", size)], return_tensors="pt")["image_grid_thw"].tolist()
        pixels = grid[1] * grid[2] * 14 * 14
        assert 64 * 28 * 28 <= pixels <= 1280 * 28 * 28, (size, grid)


def test_cli_device_dtype_and_batch_size_reach_the_backend(mmad_json: Path, tmp_path: Path) -> None:
    from mmad.cli import main

    model = make_tiny_llava(tmp_path / "tiny")
    args = ["eval", "-m", f"hf:{model}", "-d", str(mmad_json), "--out", str(tmp_path / "run"), "--no-cache"]
    args += ["--device", DEVICE, "--dtype", "fp32", "--batch-size", "3", "-c", "6", "--limit", "6"]
    assert main([*args, "--max-tokens", "2", "--model-args", '{"attn_implementation": "eager"}']) == 0
    described = json.loads((tmp_path / "run" / "run.json").read_text())["model"]
    assert (described["device"], described["dtype"], described["batch_size"]) == (DEVICE, "torch.float32", 3)
    assert described["model_kwargs"] == {"attn_implementation": "eager"}


def test_model_kwargs_reach_from_pretrained_and_bad_dtypes_are_named(tiny_model: Path, mmad_json: Path) -> None:
    from mmad.errors import ConfigError

    model = TransformersModel(str(tiny_model), device=DEVICE, model_kwargs={"attn_implementation": "eager"})
    assert model.model.config._attn_implementation == "eager"
    placed = TransformersModel(str(tiny_model), model_kwargs={"device_map": DEVICE})  # accelerate places it
    assert placed.device.startswith(DEVICE)
    (completion,) = placed.generate_batch(_requests(mmad_json, 1))
    assert completion.letter_logprobs is not None
    with pytest.raises(ConfigError, match="unknown dtype 'bf17'; use bfloat16"):
        TransformersModel(str(tiny_model), device=DEVICE, dtype="bf17")


def test_cli_rejects_model_args_that_are_not_a_json_object(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    for bad in ["{tensor_parallel_size: 2}", "[1, 2]"]:
        args = ["eval", "-m", "hf:unused", "-d", str(mmad_json), "--out", str(tmp_path / "run"), "--model-args", bad]
        assert main(args) == 2
        assert "--model-args" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_model_that_cannot_be_loaded_is_one_clear_error(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    missing = tmp_path / "no-such-model"
    code = main(["eval", "-m", f"hf:{missing}", "-d", str(mmad_json), "--limit", "2", "--out", str(tmp_path / "run")])
    text = capsys.readouterr().err
    assert code == 2 and f"hf:{missing} cannot be loaded" in text and "Traceback" not in text
    assert not (tmp_path / "run").exists()
