"""The official scripts' requests, rebuilt in the tests from their texts (jam-cc/MMAD bad03b4).

Everything here is written from the scripts' source, as literals, and never uses mmad's constants:
the tests compare mmad's requests with these field by field.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

# GPT4/gpt4v.py `instruction` (imported by Transformers/internvl_query.py)
GPT4V_INSTRUCTION = """
You are an industrial inspector who checks products by images. You should judge whether there is a defect in the query image and answer the questions about it.
Answer with the option's letter from the given choices directly.
"""  # noqa: E501

# GPT4/gpt4o.py `instruction`
GPT4O_INSTRUCTION = """
You are an industrial inspector who checks products by images. You should judge whether there is a defect in the query image and answer the questions about it.
Answer with the option's letter from the given choices directly!

Finally, you should output a list of answer, such as:
1. Answer: B.
2. Answer: B.
3. Answer: A.
...
"""  # noqa: E501

# GPT4/gpt4o-mini.py `instruction`
GPT4O_MINI_INSTRUCTION = """
You are an industrial inspector who checks products by images. You should judge whether there is a defect in the query image and answer the questions about it.
Answer with the option's letter from the given choices directly.

Finally, you should output a list of answer, such as:
1. Answer: B.
2. Answer: B.
3. Answer: A.
...
"""  # noqa: E501

# Gemini/gemini_query.py `instruction`
GEMINI_INSTRUCTION = """
You are an industrial inspector who checks products by images. You should judge whether there is a defect in the query image and answer the questions about it.
Answer with the option's letter from the given choices directly.

Finally, you should output a answer list of every question, such as:
1. Answer: B.
2. Answer: B.
3. Answer: A.
...

"""  # noqa: E501

# Transformers/internvl_query.py `--CoT`
INTERNVL_COT = (
    "Before answering the following questions, we need to understand the query image. \n"
    "First, identify the objects in the template image and imagine the possible types of defects. \n"
    "Second, simply describe the differences between the query image with the template sample. \n"
    "Third, if exist, judge whether those differences are defect or normal. \n"
    "Output a simple thoughts in 100 words. Notice that slight movement of objects or changes in image quality fall within the normal range.\n"  # noqa: E501
)

# Transformers/internvl_query.py `get_query`, agent branches
INTERNVL_AGENT = {
    "bbox": "Following is the reference image where some suspicious areas are marked by red bounding boxes. Please note that even if the query image does not have any defects, the red boxes still highlight some areas. Therefore, you still need to make a judgement by yourself. <image>",  # noqa: E501
    "contour": "Following is the reference image where some suspicious areas are marked by red contour. Please note that even if the query image does not have any defects, the image still highlight some areas. Therefore, you still need to make a judgement by yourself. <image>",  # noqa: E501
    "highlight": "Following is the reference image where some suspicious areas are highlight. Please note that even if the query image does not have any defects, the image still highlight some areas. Therefore, you still need to make a judgement by yourself. <image>",  # noqa: E501
    "mask": "Following is the mask of some suspicious areas. But you still need to make a judgement by yourself. <image>",  # noqa: E501
}

KNOWLEDGE_PREFIX = (
    "Following is the domain knowledge which contains some type of defect and the normal object characteristics: \n "
)


def gpt4v_question(i: int, qa: dict[str, Any]) -> str:
    """GPT4/gpt4v.py parse_conversation: options re-lettered by position."""
    options = "".join(f"{chr(65 + j)}. {value}\n" for j, value in enumerate(qa["Options"].values()))
    return f"Question {i + 1}: {qa['Question']} \n{options}"


def gpt4o_question(qa: dict[str, Any]) -> str:
    """GPT4/gpt4o.py and Gemini/gemini_query.py parse_conversation: the json keys, no number."""
    options = "".join(f"{key}. {value}\n" for key, value in qa["Options"].items())
    return f"Question: {qa['Question']} \n{options}"


def gpt4o_mini_question(i: int, qa: dict[str, Any]) -> str:
    """GPT4/gpt4o-mini.py parse_conversation."""
    options = "".join(f"{key}. {value}\n" for key, value in qa["Options"].items())
    return f"Question {i + 1}: {qa['Question']} \n{options}"


def official_size(width: int, height: int) -> tuple[int, int]:
    """encode_image_to_base64 of the API scripts: scale = min(512/w, 512/h), int() of both sides."""
    scale = min(512 / width, 512 / height)
    return int(width * scale), int(height * scale)


def gpt4o_mime(path: str) -> str:
    """GPT4/gpt4o.py get_mime_type."""
    if path.lower().endswith(".png"):
        return "image/png"
    return "image/jpeg"


def gemini_mime(path: str) -> str:
    """Gemini/gemini_query.py get_mime_type."""
    if path.lower().endswith(".jpeg") or path.lower().endswith(".jpg"):
        return "image/jpeg"
    return "image/png"


def api_image(mime: str, size: tuple[int, int], detail: str | None = "low") -> dict[str, Any]:
    """An image_url part as the comparison sees it: the data URL's MIME type and the decoded size."""
    url: dict[str, Any] = {"url": (mime, size)}
    if detail:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


def gpt4o_payload(
    model: str, templates: list[tuple[str, tuple[int, int]]], query: tuple[str, tuple[int, int]], qas: list[dict]
) -> dict[str, Any]:
    """GPT4/gpt4o.py get_query(questions[:i + 1]): images, then one text."""
    incontext = (
        f"The first {len(templates)} image is the normal sample, which can be used as a template to compare."
        if templates
        else ""
    )
    conversation_text = "".join(gpt4o_question(qa) + "\n" for qa in qas)
    content = [api_image(gpt4o_mime(p), official_size(*s)) for p, s in templates]
    content.append(api_image(gpt4o_mime(query[0]), official_size(*query[1])))
    content.append(
        {
            "type": "text",
            "text": GPT4O_INSTRUCTION
            + incontext
            + "The last image is the query image"
            + "Following is the question list: "
            + "\n"
            + conversation_text,
        }
    )
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 200}


def gpt4o_mini_payload(
    model: str, templates: list[tuple[str, tuple[int, int]]], query: tuple[str, tuple[int, int]], i: int, qa: dict
) -> dict[str, Any]:
    """GPT4/gpt4o-mini.py get_query(questions[i:i + 1])."""
    incontext = (
        f"The first {len(templates)} image is the normal sample, which can be used as a template to compare."
        if templates
        else ""
    )
    content = [api_image("image/jpeg", official_size(*s)) for _, s in templates]
    content.append(api_image("image/jpeg", official_size(*query[1])))
    content.append(
        {
            "type": "text",
            "text": GPT4O_MINI_INSTRUCTION
            + incontext
            + "The last image is the query image"
            + "Following is the question list: "
            + "\n"
            + gpt4o_mini_question(i, qa)
            + "\n",
        }
    )
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 600}


def gpt4v_payload(
    model: str, templates: list[tuple[str, tuple[int, int]]], query: tuple[str, tuple[int, int]], qas: list[dict]
) -> dict[str, Any]:
    """GPT4/gpt4v.py get_query(questions[:i + 1]), without the 'options' key of each question part."""
    incontext: list[dict[str, Any]] = []
    if templates:
        incontext.append(
            {
                "type": "text",
                "text": f"Following is {len(templates)} image of normal sample, which can be used as a template to compare.",  # noqa: E501
            }
        )
    for _, size in templates:
        incontext.append(api_image("image/jpeg", official_size(*size)))
    content = [
        *incontext,
        {"type": "text", "text": "Following is the query image: "},
        api_image("image/jpeg", official_size(*query[1])),
        {"type": "text", "text": "Following is the question list: "},
        *({"type": "text", "text": gpt4v_question(i, qa)} for i, qa in enumerate(qas)),
    ]
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": GPT4V_INSTRUCTION}]},
            {"role": "user", "content": content},
        ],
        "max_tokens": 600,
    }


def gemini_parts(
    templates: list[tuple[str, tuple[int, int]]], query: tuple[str, tuple[int, int]], qas: list[dict]
) -> list[dict[str, Any]]:
    """Gemini/gemini_query.py get_query: inline_data parts, then one text (as (mime, size) for the images)."""
    incontext = (
        f"The first {len(templates)} image is the normal sample, which can be used as a template to compare."
        if templates
        else ""
    )
    conversation_text = "".join(gpt4o_question(qa) + "\n" for qa in qas)
    parts: list[dict[str, Any]] = [
        {"inline_data": {"mime_type": gemini_mime(p), "data": official_size(*s)}} for p, s in templates
    ]
    parts.append({"inline_data": {"mime_type": gemini_mime(query[0]), "data": official_size(*query[1])}})
    parts.append(
        {
            "text": GEMINI_INSTRUCTION
            + incontext
            + "The last image is the query image"
            + "Following is the question list: "
            + "\n"
            + conversation_text
        }
    )
    return parts


def internvl_payload(k: int, knowledge: str | None = None, agent: str | None = None) -> str:
    """Transformers/internvl_query.py get_query's payload (the text before the question)."""
    incontext = ""
    if knowledge:
        incontext = incontext + KNOWLEDGE_PREFIX + knowledge
    if k:
        incontext = (
            incontext
            + f"Following is/are {k} image of normal sample, which can be used as a template to compare the image being queried."  # noqa: E501
        )
        for _ in range(k):
            incontext = incontext + "\n" + """ <image>\n"""
    payload = GPT4V_INSTRUCTION + incontext + "\n" + "Following is the query image: " + "\n" + "<image> "
    if agent:
        payload = payload + INTERNVL_AGENT[agent]
    return (
        payload
        + "\n"
        + "Following is the question list. Answer with the option's letter from the given choices directly: "
        + "\n"
    )


def internvl_query(k: int, i: int, qa: dict[str, Any], **extras: Any) -> str:
    """Transformers/internvl_query.py: payload + conversation_text for questions[i:i + 1]."""
    return internvl_payload(k, **extras) + gpt4v_question(i, qa) + "\n"


def normalise_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """mmad's OpenAI payload with each data URL replaced by (its MIME type, the decoded image's size)."""

    def image(url: str) -> tuple[str, tuple[int, int]]:
        header, _, data = url.partition(",")
        with Image.open(io.BytesIO(base64.b64decode(data))) as opened:
            return header[len("data:") : header.index(";")], opened.size

    out = {**payload, "messages": []}
    for message in payload["messages"]:
        content = message["content"]
        if isinstance(content, list):
            content = [
                {**part, "image_url": {**part["image_url"], "url": image(part["image_url"]["url"])}}
                if part["type"] == "image_url"
                else part
                for part in content
            ]
        out["messages"].append({**message, "content": content})
    return out
