"""The pure translation functions of the OpenAI-compatible backend."""

import json
from pathlib import Path

import numpy as np
import pytest
from openai._utils._json import openapi_dumps
from PIL import Image

from mmad.errors import PermanentError, RetryableError
from mmad.models.base import Request
from mmad.models.openai_convert import (
    classify_status,
    from_openai_messages,
    from_openai_response,
    json_body,
    letter_logprobs,
    to_openai_messages,
    to_openai_payload,
)
from mmad.protocol.encoding import EncodedImage, ImageSettings
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart, Message, TextPart


def _encode(part: ImagePart) -> EncodedImage:
    return EncodedImage(part.path.encode(), "image/jpeg", 1, 1, "d")


MESSAGES = (
    Message(
        role="user",
        parts=(
            TextPart(text="a"),
            TextPart(text="b"),
            ImagePart(path="t.png", role="template"),
            TextPart(text="c"),
            ImagePart(path="q.png"),
        ),
    ),
    Message(role="assistant", parts=(TextPart(text="thoughts"),)),
)


def test_messages_to_openai() -> None:
    out = to_openai_messages(MESSAGES, _encode, detail="low")
    content = out[0]["content"]
    # parts go out as the prompt holds them (gpt4v.py sends one text part per question)
    assert [c["type"] for c in content] == ["text", "text", "image_url", "text", "image_url"]
    assert [content[0]["text"], content[1]["text"]] == ["a", "b"]
    assert content[2]["image_url"] == {"url": "data:image/jpeg;base64,dC5wbmc=", "detail": "low"}
    assert out[1] == {"role": "assistant", "content": "thoughts"}
    flat = to_openai_messages(MESSAGES, _encode, text_only=True)
    assert flat[0] == {"role": "user", "content": "abc"}
    assert "detail" not in to_openai_messages(MESSAGES, _encode, detail=None)[0]["content"][2]["image_url"]


def test_requests_without_images_send_plain_strings() -> None:
    """llama.cpp's server answers 500 to a list of parts in a text-only chat (issue #16)."""
    text_only = (
        Message(role="system", parts=(TextPart(text="sys"),)),
        Message(role="user", parts=(TextPart(text="Question 1: "), TextPart(text="x?"))),
    )
    assert to_openai_messages(text_only, _encode) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Question 1: x?"},
    ]
    with_image = (Message(role="system", parts=(TextPart(text="sys"),)), MESSAGES[0])
    system, user = to_openai_messages(with_image, _encode)
    # GPT4/gpt4v.py sends its system message as a list with one text part
    assert system == {"role": "system", "content": [{"type": "text", "text": "sys"}]}
    assert isinstance(user["content"], list)


def test_decoding_fields_left_out_are_absent_from_the_payload() -> None:
    from mmad.models.base import Request
    from mmad.models.openai_convert import to_openai_payload

    messages = (MESSAGES[0],)
    both = to_openai_payload("m", Request(messages=messages, max_tokens=200, temperature=0.0), _encode)
    assert both["max_tokens"] == 200 and both["temperature"] == 0.0 and both["model"] == "m"
    neither = to_openai_payload("m", Request(messages=messages, max_tokens=None, temperature=None), _encode)
    assert "max_tokens" not in neither and "temperature" not in neither
    assert set(neither) == {"model", "messages"}
    logprobs = to_openai_payload("m", Request(messages=messages, want_logprobs=True), _encode, top_logprobs=5)
    assert logprobs["logprobs"] is True and logprobs["top_logprobs"] == 5


def test_round_trip_through_the_server_side() -> None:
    back = from_openai_messages(to_openai_messages(MESSAGES, _encode))
    assert back[0].text == "abc" and len(back[0].images) == 2
    assert back[0].images[0].data_url.startswith("data:image/jpeg;base64,")
    with pytest.raises(PermanentError, match="data URLs"):
        from_openai_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}])


def test_responses() -> None:
    ok = from_openai_response(
        {
            "choices": [{"message": {"content": "B"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1},
        }
    )
    assert (ok.text, ok.prompt_tokens, ok.completion_tokens, ok.refusal) == ("B", 10, 1, False)
    filtered = from_openai_response({"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]})
    assert filtered.refusal and filtered.text == ""
    refused = from_openai_response({"choices": [{"message": {"content": None, "refusal": "I can't help."}}]})
    assert refused.refusal
    with pytest.raises(RetryableError) as empty:
        from_openai_response({"choices": []})
    assert empty.value.error_class == "empty"
    with pytest.raises(RetryableError):
        from_openai_response("{not json")


def test_letter_logprobs() -> None:
    choice = {
        "logprobs": {
            "content": [
                {
                    "token": "B",
                    "logprob": -0.1,
                    "top_logprobs": [
                        {"token": "B", "logprob": -0.1},
                        {"token": " A", "logprob": -2.5},
                        {"token": "The", "logprob": -3.0},
                    ],
                }
            ]
        }
    }
    assert letter_logprobs(choice) == {"B": -0.1, "A": -2.5}
    assert letter_logprobs({}) is None


@pytest.mark.parametrize(
    ("status", "body", "after", "kind", "cls"),
    [
        (429, "slow down", "2", RetryableError, "rate_limit"),
        (503, "busy", None, RetryableError, "server_error"),
        (500, "oops", None, RetryableError, "server_error"),
        (401, "bad key", None, PermanentError, "auth"),
        (400, '{"code": "content_filter"}', None, PermanentError, "refused"),
        (400, "bad image", None, PermanentError, "bad_request"),
        # Text-only models' servers sent images: every request would fail alike, so none is retried.
        (500, '{"message": "image input is not supported - hint: ... mmproj"}', None, PermanentError, "images_refused"),
        (500, '{"detail": "can only concatenate str (not \\"list\\") to str"}', None, PermanentError, "images_refused"),
        (400, "Qwen/Qwen2.5-7B is not a multimodal model", None, PermanentError, "images_refused"),
    ],
)
def test_status_classes(status, body, after, kind, cls) -> None:
    error = classify_status(status, body, after)
    assert isinstance(error, kind) and error.error_class == cls
    if after:
        assert error.retry_after == 2.0


def test_json_body_is_the_sdks_bytes_without_escaping_the_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for name in ("t.png", "q.png"):
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(tmp_path / name)
    messages = (
        Message(role="system", parts=(TextPart(text='You are an "inspector".\n'),)),
        Message(
            role="user",
            parts=(
                TextPart(text="Template: ünïcode, a tab\t and a \\ backslash"),
                ImagePart(path=str(tmp_path / "t.png"), role="template"),
                ImagePart(path=str(tmp_path / "q.png")),
            ),
        ),
    )
    encoder = ImageEncoder(ImageSettings())
    body = to_openai_payload("m", Request(messages=messages, max_tokens=64, want_logprobs=True), encoder.encode)
    body["extra"] = {"top_k": 1}
    sent = json_body(body)
    assert sent == openapi_dumps(body)  # the bytes the SDK would have sent
    assert json.loads(sent) == body
    # a URL JSON must escape (made by hand, not by the encoder) is escaped as usual
    odd = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 'x"\n\\é'}}]}]}
    assert json_body(odd) == openapi_dumps(odd) and json.loads(json_body(odd)) == odd
    assert json_body({"model": "m", "messages": "text"}) == openapi_dumps({"model": "m", "messages": "text"})
