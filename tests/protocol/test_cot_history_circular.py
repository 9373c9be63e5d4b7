"""--recipe internvl with cot and --circular: each rotation is its own pass over the image, so a
question never carries the model's reply to another rotation of itself (which would hand it its
own earlier answer under other letters and void the consistency check)."""

from __future__ import annotations

from pathlib import Path

from mmad.models.base import Request
from tests.protocol.test_recipe_runs import BASE_URL, _run, cot_model


def test_a_rotation_carries_the_same_rotation_of_the_earlier_questions_only(mmad_json: Path, tmp_path: Path) -> None:
    seen: list[Request] = []
    _run(
        mmad_json,
        tmp_path / "r",
        cot_model(seen, quote_prompt=True),
        recipe="internvl",
        base_url=BASE_URL,
        strategies=["cot"],
        circular=True,
    )
    asked = [r for r in seen if r.question_ids]
    assert asked
    chains = 0
    for request in asked:
        own = request.question_ids[0]
        earlier = [m.text for m in request.messages[3::2]]  # the replies after the CoT turn's
        assert not any(text.startswith(f"reply to {own} ") for text in earlier), (own, earlier)
        chains += bool(earlier)
    assert chains  # some question did carry earlier ones


def test_the_estimate_counts_each_rotations_own_history(mmad_json: Path) -> None:
    """The dry run's tokens for the re-sent turns follow each prompt's chain: the prompts of all
    rotations together cost what each rotation's chain costs alone, summed."""
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import parse_strategies
    from mmad.run.config import RunConfig
    from mmad.run.plan import Planner, select_questions
    from mmad.run.tokens import estimate

    config = RunConfig.from_flat(
        "vllm:OpenGVLab/InternVL2-8B", str(mmad_json), recipe="internvl", strategies=["cot"], circular=True
    )
    benchmark = load_benchmark(config.data)
    settings = config.prompt_settings()
    selection = select_questions(benchmark, config.selection, settings)
    prompts = list(Planner(benchmark, settings, parse_strategies(["cot"])).prompts(selection.items))
    assert any(p.after is not None for p in prompts)
    chains: dict[tuple[str, str], list[object]] = {}
    head: dict[tuple[str, str], tuple[str, str]] = {}
    for prompt in prompts:
        key = prompt.questions[0].key
        head[key] = head[prompt.after] if prompt.after is not None else key
        chains.setdefault(head[key], []).append(prompt)
    images = config.image_settings()
    alone = sum(estimate(chain, images, None).prompt_tokens for chain in chains.values())  # type: ignore[arg-type]
    assert estimate(prompts, images, None).prompt_tokens == alone
