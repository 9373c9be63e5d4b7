"""`--dry-run`: how many requests, tokens and dollars a run would take, before anything is spent.

Text tokens are counted as characters / 4. Image tokens follow OpenAI's published rule: 85 for
``detail: low``; otherwise 85 + 170 per 512-px tile after fitting the image in 2048 px and its
short side in 768 px. Output tokens are assumed to be 8 per question asked (a letter and a few
words), capped by max_tokens; chain of thought adds its 256-token turn per image; an expert agent
adds its drawn image (85 tokens, as at low detail) to each request. The tools strategy adds the
most its conversations can send (`with_tool_turns`): the estimate is an upper bound there.

`dry_run` makes the same checks as a real run's first stage (`mmad.run.preflight`: the benchmark,
the selection, templates for the shots, the knowledge file, a price for --max-cost) and that the
model's provider exists, but builds no model, opens no connection and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from mmad.protocol.messages import Prompt
from mmad.protocol.strategies import parse_strategies
from mmad.run.caller import judge_allowance
from mmad.run.config import RunConfig
from mmad.run.plan import Planner
from mmad.run.preflight import preflight
from mmad.run.solving import check_judge_address, check_judge_price
from mmad.run.tokens import AGENT_IMAGE_TOKENS, Estimate, cost, estimate, with_tool_turns


def check_model_name(name: str) -> None:
    """The provider of ``provider:model`` exists (as `create_model` would check), without building the model."""
    from mmad.models.registry import check_model_name as check

    check(name)


def dry_run(config: RunConfig) -> Estimate:
    """What a run of this config would send and cost, after the checks a real run makes first."""
    check_model_name(config.model)
    if config.model.partition(":")[0] == "expert":  # its --model-args are refused when the real run builds it
        from mmad.models.expert_model import expert_settings

        expert_settings(dict(config.connection.model_args))
    checked = preflight(config)
    strategies = checked.strategies
    # The agent's drawings are made when its questions are asked (into the run folder): counted, not drawn.
    plain = parse_strategies([s for s in config.prompt.strategies if not s.startswith("agent")])
    planner = Planner(checked.benchmark, config.prompt_settings(), plain, checked.knowledge)
    prompts = list(planner.prompts(checked.selection.items))
    result = estimate(prompts, config.image_settings(), checked.price)
    if strategies.agent_expert:
        result.images_sent += result.requests
        result.prompt_tokens += AGENT_IMAGE_TOKENS * result.requests
        if checked.price is not None:
            result.cost_usd = cost(result, checked.price)
    if strategies.tools:
        with_tool_turns(result, config.prompt.max_turns)
        if checked.price is not None:
            result.cost_usd = cost(result, checked.price)
    if checked.selection.left_out.total_questions:
        result.left_out = checked.selection.left_out.describe()
    if config.answers.judge:
        judge_bound(config, result, prompts)
    return result


def judge_bound(config: RunConfig, result: Estimate, prompts: Iterable[Prompt]) -> None:
    """The most the judge (--judge) can be asked and cost, beside the estimate: how many replies it reads
    is known only once they are (the unparsed ones), so the bound assumes every one, as long as allowed."""
    judge = config.answers.judge
    assert judge is not None
    check_model_name(judge)
    check_judge_address(config)  # a compat: judge with no --judge-base-url fails the real run at its start
    price = check_judge_price(config)
    result.judge_requests = result.questions
    result.judge_cost_usd = judge_allowance(prompts, price)
