"""The prompt strings of the official MMAD code, verbatim.

Source: jam-cc/MMAD at bad03b4, as recorded in ../shared/reference/mmad-protocol.md §C and §G
(``GPT4/gpt4v.py``, ``GPT4/gpt4o.py``, ``Gemini/gemini_query.py``, ``Transformers/internvl_query.py``).
"""

from __future__ import annotations

# gpt4v.py's `instruction`, imported by every local-model script.
INSTRUCTION = (
    "\nYou are an industrial inspector who checks products by images. You should judge whether there is a "
    "defect in the query image and answer the questions about it.\nAnswer with the option's letter from the "
    "given choices directly.\n"
)

_LIST_EXAMPLE = "1. Answer: B.\n2. Answer: B.\n3. Answer: A.\n...\n"

# gpt4o.py: the same sentences, "directly!", then the answer-list request.
INSTRUCTION_GPT4O = (
    "\nYou are an industrial inspector who checks products by images. You should judge whether there is a "
    "defect in the query image and answer the questions about it.\nAnswer with the option's letter from the "
    "given choices directly!" + "\n\nFinally, you should output a list of answer, such as:\n" + _LIST_EXAMPLE
)

# gemini_query.py
INSTRUCTION_GEMINI = (
    "\nYou are an industrial inspector who checks products by images. You should judge whether there is a "
    "defect in the query image and answer the questions about it.\nAnswer with the option's letter from the "
    "given choices directly.\n\nFinally, you should output a answer list of every question, such as:\n"
    + _LIST_EXAMPLE
    + "\n"
)


def template_sentence(k: int) -> str:
    """InternVL / Qwen: the sentence before the template images."""
    return (
        f"Following is/are {k} image of normal sample, which can be used as a template to compare the image being "
        "queried."
    )


QUERY_SENTENCE = "Following is the query image: "
QUESTION_LIST_SENTENCE = (
    "Following is the question list. Answer with the option's letter from the given choices directly: "
)


def api_incontext(k: int) -> str:
    """GPT-4o / Gemini: the template text (concatenated with no separator, as upstream does)."""
    return f"The first {k} image is the normal sample, which can be used as a template to compare."


API_QUERY_SENTENCE = "The last image is the query image"
API_QUESTION_LIST = "Following is the question list: "

# LLaVA / Cambrian --text_only blind baseline.
BLIND_HINT = "Although you can not see the image. Answer with the option's letter from the given choices directly. "

# RAG (§G.1), placed before the few-shot text.
DOMAIN_KNOWLEDGE_PREFIX = (
    "Following is the domain knowledge which contains some type of defect and the normal object characteristics: \n "
)

# Chain of thought (§G.3, InternVL): one preliminary turn, max_new_tokens=256, kept in the history.
COT_PROMPT = (
    "Before answering the following questions, we need to understand the query image. \n"
    "First, identify the objects in the template image and imagine the possible types of defects. \n"
    "Second, simply describe the differences between the query image with the template sample. \n"
    "Third, if exist, judge whether those differences are defect or normal. \n"
    "Output a simple thoughts in 100 words. \n"
    "Notice that slight movement of objects or changes in image quality fall within the normal range.\n"
)
COT_MAX_TOKENS = 256

# Agent (§G.2, InternVL): the text that introduces the expert's image.
AGENT_TEXTS = {
    "bbox": (
        "Following is the reference image where some suspicious areas are marked by red bounding boxes. "
        "Please note that even if the query image does not have any defects, the red boxes still highlight some "
        "areas. Therefore, you still need to make a judgement by yourself. "
    ),
    "contour": (
        "Following is the reference image where some suspicious areas are marked by red contours. "
        "Please note that even if the query image does not have any defects, the red contours still highlight "
        "some areas. Therefore, you still need to make a judgement by yourself. "
    ),
    "highlight": (
        "Following is the reference image where some suspicious areas are highlighted. "
        "Please note that even if the query image does not have any defects, the highlighted areas still "
        "exist. Therefore, you still need to make a judgement by yourself. "
    ),
    "heatmap": (
        "Following is the anomaly heatmap of the query image, where brighter areas are more suspicious. "
        "You still need to make a judgement by yourself. "
    ),
    "mask": "Following is the mask of some suspicious areas. But you still need to make a judgement by yourself. ",
}


def question_block(number: int | None, stem: str, options: dict[str, str]) -> str:
    """``Question k: stem \\n`` then ``X. text\\n`` per option (gpt4v.parse_conversation)."""
    head = f"Question {number}: {stem} \n" if number is not None else f"Question: {stem} \n"
    return head + "".join(f"{letter}. {text}\n" for letter, text in options.items())


# per-image (mmad): the GPT-4o answer-list request, after the question list.
PER_IMAGE_SUFFIX = "\nFinally, you should output a list of answer, such as:\n" + _LIST_EXAMPLE
