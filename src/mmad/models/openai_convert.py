"""Pure translation between mmad's requests and the OpenAI chat-completions wire format."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from mmad.errors import ModelCallError, PermanentError, RetryableError
from mmad.models.base import Completion
from mmad.protocol.images import EncodedImage
from mmad.protocol.messages import ImagePart, Message, TextPart

Encode = Callable[[ImagePart], EncodedImage]
REFUSAL_FINISH = {"content_filter"}


def to_openai_messages(
    messages: tuple[Message, ...] | list[Message],
    encode: Encode,
    *,
    detail: str | None = "low",
    text_only: bool = False,
) -> list[dict[str, Any]]:
    """mmad messages as OpenAI chat messages; images as base64 data URLs.

    ``text_only`` sends each message's text alone, for servers that reject image parts.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role != "user" or text_only:
            out.append({"role": message.role, "content": message.text})
            continue
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                if content and content[-1]["type"] == "text":
                    content[-1]["text"] += part.text
                else:
                    content.append({"type": "text", "text": part.text})
            else:
                image_url: dict[str, Any] = {"url": encode(part).data_url}
                if detail:
                    image_url["detail"] = detail
                content.append({"type": "image_url", "image_url": image_url})
        out.append({"role": "user", "content": content})
    return out


def from_openai_messages(messages: list[dict[str, Any]]) -> tuple[Message, ...]:
    """OpenAI chat messages (as received by `mmad serve`) as mmad messages."""
    result: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            msg = f"messages[{index}] is not a chat message object"
            raise PermanentError(msg, error_class="bad_request")
        role = message["role"]
        if role not in {"system", "user", "assistant"}:
            role = "user"
        content = message.get("content")
        parts: list[TextPart | ImagePart] = []
        if isinstance(content, str):
            parts.append(TextPart(text=content))
        elif isinstance(content, list):
            for item in content:
                kind = item.get("type") if isinstance(item, dict) else None
                if kind == "text":
                    parts.append(TextPart(text=str(item.get("text", ""))))
                elif kind == "image_url":
                    url = item.get("image_url", {})
                    url = url.get("url") if isinstance(url, dict) else url
                    if not isinstance(url, str) or not url.startswith("data:"):
                        msg = f"messages[{index}]: images must be base64 data URLs"
                        raise PermanentError(msg, error_class="bad_request")
                    parts.append(ImagePart(data_url=url))
        result.append(Message(role=role, parts=tuple(parts)))
    return tuple(result)


def letter_logprobs(choice: dict[str, Any]) -> dict[str, float] | None:
    """Log-probabilities of the letters A-E among the first generated token's top alternatives."""
    logprobs = choice.get("logprobs") or {}
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    first = content[0]
    alternatives = [first, *(first.get("top_logprobs") or [])]
    return letters_from_tokens((str(a.get("token", "")), float(a.get("logprob", -math.inf))) for a in alternatives)


def letters_from_tokens(tokens: Iterable[tuple[str, float]]) -> dict[str, float] | None:
    """The best log-probability of each letter A-E among (token text, log-probability) alternatives.

    " A", "(A" and "A." all count as A: tokenizers split the letter from its space or punctuation
    differently.
    """
    found: dict[str, float] = {}
    for text, value in tokens:
        token = text.strip().strip("(").strip(".").strip(")")
        if token in {"A", "B", "C", "D", "E"}:
            found[token] = max(found.get(token, -math.inf), value)
    return found or None


def from_openai_response(payload: Any) -> Completion:
    """A chat-completions response body as a Completion; malformed or empty bodies raise."""
    if not isinstance(payload, dict):
        msg = "the response is not a JSON object"
        raise RetryableError(msg, error_class="malformed")
    choices = payload.get("choices")
    if not choices:
        msg = "the response has no choices"
        raise RetryableError(msg, error_class="empty")
    choice = choices[0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    refusal_text = message.get("refusal")
    finish = choice.get("finish_reason")
    usage = payload.get("usage") or {}
    return Completion(
        text=text if not refusal_text else f"{text}{refusal_text}",
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        finish_reason=finish,
        refusal=bool(refusal_text) or finish in REFUSAL_FINISH,
        letter_logprobs=letter_logprobs(choice),
    )


def classify_status(status: int, body: str, retry_after: str | None) -> ModelCallError:
    """An HTTP error status as a retryable or permanent failure."""
    after = None
    if retry_after:
        try:
            after = max(0.0, float(retry_after))
        except ValueError:
            after = None
    snippet = body[:200]
    if status == 429:
        return RetryableError(f"rate limited (429): {snippet}", error_class="rate_limit", retry_after=after)
    if status in {408, 409} or status >= 500:
        return RetryableError(f"server error ({status}): {snippet}", error_class="server_error", retry_after=after)
    if status in {401, 403}:
        return PermanentError(f"not authorised ({status}): check the API key variable", error_class="auth")
    if status == 404:
        return PermanentError(
            f"not found (404): check the model name and --base-url: {snippet}", error_class="not_found"
        )
    if status == 400 and ("content_filter" in body or "content_policy" in body or "safety" in body.lower()):
        return PermanentError(f"refused by a content filter: {snippet}", error_class="refused")
    return PermanentError(f"request rejected ({status}): {snippet}", error_class="bad_request")
