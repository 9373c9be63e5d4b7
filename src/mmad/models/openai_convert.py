"""Pure translation between mmad's requests and the OpenAI chat-completions wire format."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from mmad.errors import ModelCallError, PermanentError, RetryableError
from mmad.models.base import Completion, Request
from mmad.protocol.encoding import EncodedImage
from mmad.protocol.messages import ImagePart, Message, TextPart, ToolCall

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

    Parts are sent as the prompt holds them (the official GPT-4V request has one text part per
    question). A request without any image sends every message's ``content`` as a plain string:
    some servers (llama.cpp's) reject a list of parts for text-only chats. In a request with images
    user and system messages are lists of parts (as GPT4/gpt4v.py sends its system message);
    assistant turns are strings. ``text_only`` sends each message's text alone, for servers that
    reject image parts.
    """
    plain = text_only or not any(message.images for message in messages)
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            out.append({"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.text})
            continue
        if message.role == "assistant" and message.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": message.text or None,
                    "tool_calls": tool_calls_to_openai(message.tool_calls),
                }
            )
            continue
        if plain or message.role == "assistant":
            out.append({"role": message.role, "content": message.text})
            continue
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            else:
                image_url: dict[str, Any] = {"url": encode(part).data_url}
                if detail:
                    image_url["detail"] = detail
                content.append({"type": "image_url", "image_url": image_url})
        out.append({"role": message.role, "content": content})
    return out


def to_openai_payload(
    model: str,
    request: Request,
    encode: Encode,
    *,
    detail: str | None = "low",
    text_only: bool = False,
    top_logprobs: int = 20,
) -> dict[str, Any]:
    """The chat-completions body of a request. ``max_tokens``/``temperature`` of None are left out."""
    body: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(request.messages, encode, detail=detail, text_only=text_only),
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "mmad_output", "schema": request.response_schema, "strict": True},
        }
    if request.want_logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = top_logprobs
    if request.tools:
        body["tools"] = list(request.tools)
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    return body


def tool_calls_to_openai(calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
    """An assistant turn's tool calls in the chat-completions shape."""
    return [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in calls
    ]


def tool_calls_from_openai(raw: Any) -> list[ToolCall]:
    """The tool calls of a chat-completions message; arguments kept as the JSON text they came as.

    Some servers send the arguments as an object rather than a JSON string (it is re-encoded), or
    leave out the id (one is made from the call's position, so a reply can still answer it).
    Entries that are not function calls are skipped: a tool the caller never offered is answered
    as an error by the caller, not dropped here.
    """
    calls: list[ToolCall] = []
    for index, entry in enumerate(raw if isinstance(raw, list) else []):
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        call_id = entry.get("id")
        calls.append(
            ToolCall(
                id=valid_text(call_id) if isinstance(call_id, str) and call_id else f"call_{index}",
                name=valid_text(str(function.get("name") or "")),
                arguments=valid_text(arguments),
            )
        )
    return calls


_SLOT = f"mmad-image-{os.urandom(8).hex()}"
"""Stands in for each image's data URL while the rest of a body is encoded (random per process, so
no text a prompt could hold matches it)."""
_PLAIN = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")
"""Characters JSON keeps as they are (everything else in a string is escaped)."""


def _plain(text: str) -> bool:
    # Deleting the plain characters leaves nothing exactly when no character needs escaping; a C
    # loop over bytes, several times faster than JSON's own escaping or str.isprintable.
    return text.isascii() and not text.encode("ascii").translate(None, _PLAIN)


def json_body(body: dict[str, Any]) -> bytes:
    """A chat-completions body as the JSON bytes the SDK would send (compact, UTF-8), made cheaply.

    The images' data URLs are nearly all of a body, and JSON-encoding them scans every character
    for escapes that base64 never holds. So the body is encoded with a short stand-in for each URL
    and the URLs are spliced in as they are: a copy, not an encode. A URL that would need escaping
    (a hand-made one) is encoded as usual.
    """
    urls: list[str] = []
    messages: list[Any] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            messages.append(message)
            continue
        parts = []
        for part in content:
            image_url = part.get("image_url") if isinstance(part, dict) else None
            if isinstance(image_url, dict) and isinstance(image_url.get("url"), str) and _plain(image_url["url"]):
                urls.append(image_url["url"])
                part = {**part, "image_url": {**image_url, "url": _SLOT}}
            parts.append(part)
        messages.append({**message, "content": parts})
    short = {**body, "messages": messages} if urls else body
    text = json.dumps(short, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if urls:
        pieces = text.split(_SLOT)
        spliced = [pieces[0]]
        for url, piece in zip(urls, pieces[1:], strict=True):
            spliced += (url, piece)
        text = "".join(spliced)
    return text.encode()


def from_openai_messages(messages: list[dict[str, Any]]) -> tuple[Message, ...]:
    """OpenAI chat messages (as received by `mmad serve`) as mmad messages."""
    result: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            msg = f"messages[{index}] is not a chat message object"
            raise PermanentError(msg, error_class="bad_request")
        role = message["role"]
        if role not in {"system", "user", "assistant", "tool"}:
            role = "user"
        content = message.get("content")
        tool_call_id = message.get("tool_call_id") if role == "tool" else None
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
        result.append(
            Message(
                role=role,
                parts=tuple(parts),
                tool_calls=tuple(tool_calls_from_openai(message.get("tool_calls"))) if role == "assistant" else (),
                tool_call_id=str(tool_call_id) if tool_call_id is not None else None,
            )
        )
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


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD.

    JSON may escape half of a character (``"\\ud800"``), and Python reads it as a str that no UTF-8
    file can hold: one such reply stopped the whole run, with a traceback, when its record was written.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


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
    if isinstance(text, str):
        text = valid_text(text)
    if isinstance(refusal_text, str):
        refusal_text = valid_text(refusal_text)
    finish = choice.get("finish_reason")
    usage = payload.get("usage") or {}
    # The snapshot the provider answered with ("gpt-4o-2024-08-06" for the alias "gpt-4o").
    snapshot = payload.get("model")
    items = choice.get("mmad_abstained_items")  # set by mmad serve only (the expert's declined questions)
    return Completion(
        text=text if not refusal_text else f"{text}{refusal_text}",
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        finish_reason=finish,
        refusal=bool(refusal_text) or finish in REFUSAL_FINISH,
        letter_logprobs=letter_logprobs(choice),
        abstained=choice.get("mmad_abstained") is True,
        abstained_items=[i for i in items if isinstance(i, int)] if isinstance(items, list) else [],
        extra={"model_snapshot": valid_text(snapshot)} if isinstance(snapshot, str) and snapshot else {},
        tool_calls=tool_calls_from_openai(message.get("tool_calls")),
    )


IMAGES_REFUSED = (
    "image input is not supported",  # llama.cpp's server without --mmproj (HTTP 500)
    "can only concatenate str (not",  # llama-cpp-python's server, given a list of content parts (HTTP 500)
    "missing data required for image input",  # Ollama, a model without a vision projector
    "is not a multimodal model",  # vLLM, a text-only model
)
"""What servers of text-only models answer to a request with images: every request would fail the same way."""


TOOLS_REFUSED = (
    "tools param requires --jinja",  # llama.cpp's server without a chat template that takes tools
    "does not support tools",  # Ollama, a model without a tool template
    "tool choice requires --enable-auto-tool-choice",  # vLLM without a tool-call parser
    "tools are not supported",  # mmad serve --refuse-tools, and others in those words
)
"""What servers without tool calling answer to a request with ``tools``: the text protocol is used instead."""


def classify_status(status: int, body: str, retry_after: str | None) -> ModelCallError:
    """An HTTP error status as a retryable or permanent failure."""
    after = None
    if retry_after:
        try:
            after = max(0.0, float(retry_after))
        except ValueError:
            after = None
    snippet = body[:200]
    if status in {400, 500} and any(sign in body.lower() for sign in IMAGES_REFUSED):
        msg = (
            f"the server takes no images ({status}: {snippet}); it serves a text-only model. For the text-only "
            "baseline add --blind (and --text-only where the server takes no list of content parts); "
            "otherwise serve a vision model (llama.cpp: --mmproj)"
        )
        return PermanentError(msg, error_class="images_refused")
    lowered = body.lower()
    # A 400 that names tools: a server that takes none (its wording varies more than the ones listed).
    if (status in {400, 500} and any(sign in lowered for sign in TOOLS_REFUSED)) or (
        status == 400 and "tool" in lowered
    ):
        msg = (
            f"the server takes no tools ({status}: {snippet}); ask for the tools strategy's text protocol "
            "with --tool-protocol text (auto switches to it by itself)"
        )
        return PermanentError(msg, error_class="tools_refused")
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
