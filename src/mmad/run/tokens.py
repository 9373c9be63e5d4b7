"""What prompts would send, counted before they are sent: requests, image and text tokens, dollars.

Text tokens are counted as characters / 4. Image tokens follow OpenAI's published rule: 85 for
``detail: low``; otherwise 85 + 170 per 512-px tile after fitting the image in 2048 px and its
short side in 768 px. Output tokens are assumed to be 8 per question asked (a letter and a few
words), capped by max_tokens; chain of thought adds its 256-token turn per image. `--dry-run`
(mmad.run.estimate) counts a whole run this way; the engine counts each request before sending it
to keep --max-cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from mmad.protocol.encoding import ImageSettings
from mmad.protocol.messages import Prompt, TextPart

AGENT_IMAGE_TOKENS = 85


@dataclass
class Estimate:
    """The expected size of a run."""

    requests: int = 0
    questions: int = 0
    images_sent: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    price: tuple[float, float] | None = None
    left_out: str = ""
    """What --errata drop and --exclude left out of the selection, per reason, in words ('' when nothing)."""
    judge_requests: int = 0
    """With --judge: the most requests the judge can be sent (one per question; only unparsed replies are)."""
    judge_cost_usd: float | None = None
    """With --judge: the most those can cost (every reply unparsed and as long as allowed); None without a
    price. Not in `cost_usd`."""


def image_tokens(width: int, height: int, detail: str | None) -> int:
    """OpenAI's token count for one image."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    fitted_w, fitted_h = width * scale, height * scale
    scale = min(1.0, 768 / min(fitted_w, fitted_h))
    fitted_w, fitted_h = fitted_w * scale, fitted_h * scale
    return 85 + 170 * math.ceil(fitted_w / 512) * math.ceil(fitted_h / 512)


def estimate(
    prompts: list[Prompt],
    settings: ImageSettings,
    price: tuple[float, float] | None,
    sizes: dict[str, tuple[int, int]] | None = None,
) -> Estimate:
    """Count what the prompts would send."""
    sizes = sizes if sizes is not None else {}
    result = Estimate(price=price)
    preambles: set[str] = set()
    history: dict[tuple[str, str], int] = {}  # per posing: the turns its successor in the chain re-sends
    for prompt in prompts:
        result.requests += 1
        result.questions += len(prompt.questions)
        for message in prompt.messages:
            for part in message.parts:
                if isinstance(part, TextPart):
                    result.prompt_tokens += len(part.text) // 4 + 1
                elif part.path is not None:
                    if part.path not in sizes:
                        with Image.open(part.path) as image:
                            sizes[part.path] = image.size
                    width, height = sizes[part.path]
                    if settings.max_side and not settings.original:
                        scale = settings.max_side / max(width, height)
                        width, height = round(width * scale), round(height * scale)
                    result.images_sent += 1
                    result.prompt_tokens += image_tokens(width, height, settings.detail)
        guess = 8 * max(1, len(prompt.questions))
        reply = guess if prompt.max_tokens is None else min(prompt.max_tokens, guess)
        result.completion_tokens += reply
        if prompt.carries_history:
            # Along the prompt's own chain (`after`): under --circular each rotation has one.
            earlier = history.get(prompt.after, 0) if prompt.after is not None else 0
            result.prompt_tokens += earlier
            turn = sum(len(p.text) // 4 + 1 for p in prompt.messages[-1].parts if isinstance(p, TextPart))
            history[prompt.questions[0].key] = earlier + turn + reply
        if prompt.needs_preamble and prompt.image not in preambles:
            preambles.add(prompt.image)
            result.requests += 1
            result.completion_tokens += 256
    if price is not None:
        result.cost_usd = cost(result, price)
    return result


def cost(result: Estimate, price: tuple[float, float]) -> float:
    """Dollars for an estimate's tokens at (input, output) dollars per million."""
    return (result.prompt_tokens * price[0] + result.completion_tokens * price[1]) / 1e6


TOOL_INTRO_TOKENS = 120
"""The tools' instructions and schemas a tools turn adds (native: the ``tools`` field; text: the system message)."""
TOOL_RESULT_TOKENS = AGENT_IMAGE_TOKENS + 60
"""One tool call and its result coming back: its image (as at low detail) and a line of text."""
TOOL_TURN_REPLY_TOKENS = 30
"""A tool call's JSON, or the answer."""


def with_tool_turns(result: Estimate, max_turns: int) -> None:
    """Add the tools strategy's conversations to an estimate of its direct branch: the most they can
    send, every question using every turn, each turn resending the conversation so far with one more
    tool result (one image) than the turn before."""
    questions = result.requests
    per_request = result.prompt_tokens / questions if questions else 0
    images = result.images_sent / questions if questions else 0
    earlier = max_turns * (max_turns - 1) // 2  # tool results resent over the turns: 0 + 1 + ... + (T - 1)
    result.requests += questions * max_turns
    result.images_sent += round(questions * (images * max_turns + earlier))
    result.prompt_tokens += round(
        questions * ((per_request + TOOL_INTRO_TOKENS) * max_turns + TOOL_RESULT_TOKENS * earlier)
    )
    result.completion_tokens += questions * TOOL_TURN_REPLY_TOKENS * max_turns
