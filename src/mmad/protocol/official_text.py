"""The prompt strings of the official MMAD code, verbatim, each named after the file it comes from.

Source: ``jam-cc/MMAD`` at ``bad03b4``, ``evaluation/examples/``. A string without a source file
is mmad's own and says so.
"""

from __future__ import annotations

_INSPECTOR = (
    "You are an industrial inspector who checks products by images. You should judge whether there is a "
    "defect in the query image and answer the questions about it.\n"
)
_LIST_EXAMPLE = "1. Answer: B.\n2. Answer: B.\n3. Answer: A.\n...\n"

# GPT4/gpt4v.py `instruction`, imported by every local-model script (internvl_query.py, qwen_query.py,
# minicpm_query.py, internlm_xcomposer_query.py, llava_query.py, cambrian_query.py, sphinx_query.py, ...).
INSTRUCTION = "\n" + _INSPECTOR + "Answer with the option's letter from the given choices directly.\n"

# GPT4/gpt4o.py `instruction`: "directly!", then the answer-list request.
INSTRUCTION_GPT4O = (
    "\n"
    + _INSPECTOR
    + "Answer with the option's letter from the given choices directly!\n\nFinally, you should output a list of "
    "answer, such as:\n" + _LIST_EXAMPLE
)

# GPT4/gpt4o-mini.py `instruction`: as gpt4o.py with "directly." instead of "directly!".
INSTRUCTION_GPT4O_MINI = (
    "\n"
    + _INSPECTOR
    + "Answer with the option's letter from the given choices directly.\n\nFinally, you should output a list of "
    "answer, such as:\n" + _LIST_EXAMPLE
)

# Gemini/gemini_query.py `instruction`: "a answer list of every question" and one more newline at the end.
INSTRUCTION_GEMINI = (
    "\n"
    + _INSPECTOR
    + "Answer with the option's letter from the given choices directly.\n\nFinally, you should output a answer "
    "list of every question, such as:\n" + _LIST_EXAMPLE + "\n"
)


def template_sentence(k: int) -> str:
    """Transformers/internvl_query.py (also qwen_query.py, qwen2_5_vl_query.py): before the template images."""
    return (
        f"Following is/are {k} image of normal sample, which can be used as a template to compare the image being "
        "queried."
    )


# Transformers/internvl_query.py `get_query`: the text around the `<image>` placeholders.
QUERY_SENTENCE = "Following is the query image: "
QUESTION_LIST_SENTENCE = (
    "Following is the question list. Answer with the option's letter from the given choices directly: "
)
# InternVL's `<image>` placeholder. With history, InternVL's chat() gives the images to the first
# placeholders of the whole conversation (the chain-of-thought turn); the later turn's stay literal text.
IMAGE_PLACEHOLDER = "<image>"


def api_incontext(k: int) -> str:
    """GPT4/gpt4o.py, GPT4/gpt4o-mini.py, Gemini/gemini_query.py: the template text (joined with no separator)."""
    return f"The first {k} image is the normal sample, which can be used as a template to compare."


# GPT4/gpt4o.py, GPT4/gpt4o-mini.py, Gemini/gemini_query.py (joined with no separator, as there).
API_QUERY_SENTENCE = "The last image is the query image"
API_QUESTION_LIST = "Following is the question list: "


def gpt4v_incontext(k: int) -> str:
    """GPT4/gpt4v.py `get_query`: the text part before the template images."""
    return f"Following is {k} image of normal sample, which can be used as a template to compare."


# GPT4/gpt4v.py `get_query`: the text parts before the query image and before the questions.
GPT4V_QUERY_SENTENCE = "Following is the query image: "
GPT4V_QUESTION_LIST = "Following is the question list: "

# LLaVA_Query/llava_query.py and Cambrian_Query/cambrian_query.py `--text_only` blind baseline.
BLIND_HINT = "Although you can not see the image. Answer with the option's letter from the given choices directly. "

# Transformers/internvl_query.py `get_query` (RAG), placed before the few-shot text.
DOMAIN_KNOWLEDGE_PREFIX = (
    "Following is the domain knowledge which contains some type of defect and the normal object characteristics: \n "
)

# Transformers/internvl_query.py `--CoT`: the preliminary turn's text (sent after the context and the
# question-list sentence, followed by "\n"), asked with max_new_tokens=256 and kept in the history.
COT_PROMPT = (
    "Before answering the following questions, we need to understand the query image. \n"
    "First, identify the objects in the template image and imagine the possible types of defects. \n"
    "Second, simply describe the differences between the query image with the template sample. \n"
    "Third, if exist, judge whether those differences are defect or normal. \n"
    "Output a simple thoughts in 100 words. Notice that slight movement of objects or changes in image quality "
    "fall within the normal range.\n"
)
COT_MAX_TOKENS = 256

# Transformers/internvl_query.py `get_query` (agent): the text before the expert's image, without
# its trailing "<image>" (the image part follows). Upstream's wording, grammar included.
AGENT_TEXTS = {
    "bbox": (
        "Following is the reference image where some suspicious areas are marked by red bounding boxes. "
        "Please note that even if the query image does not have any defects, the red boxes still highlight some "
        "areas. Therefore, you still need to make a judgement by yourself. "
    ),
    "contour": (
        "Following is the reference image where some suspicious areas are marked by red contour. "
        "Please note that even if the query image does not have any defects, the image still highlight some "
        "areas. Therefore, you still need to make a judgement by yourself. "
    ),
    "highlight": (
        "Following is the reference image where some suspicious areas are highlight. "
        "Please note that even if the query image does not have any defects, the image still highlight some "
        "areas. Therefore, you still need to make a judgement by yourself. "
    ),
    # mmad's own: internvl_query.py has no heatmap branch (its request has one <image> too few and fails).
    "heatmap": (
        "Following is the anomaly heatmap of the query image, where brighter areas are more suspicious. "
        "You still need to make a judgement by yourself. "
    ),
    "mask": "Following is the mask of some suspicious areas. But you still need to make a judgement by yourself. ",
}


def question_block(number: int | None, stem: str, options: dict[str, str]) -> str:
    """``Question k: stem \\n`` then ``X. text\\n`` per option (GPT4/gpt4v.py `parse_conversation`);
    without a number, ``Question: stem \\n`` (GPT4/gpt4o.py, Gemini/gemini_query.py)."""
    head = f"Question {number}: {stem} \n" if number is not None else f"Question: {stem} \n"
    return head + "".join(f"{letter}. {text}\n" for letter, text in options.items())


# mmad's own (per-image): the GPT4/gpt4o.py answer-list request, after the question list.
PER_IMAGE_SUFFIX = "\nFinally, you should output a list of answer, such as:\n" + _LIST_EXAMPLE
