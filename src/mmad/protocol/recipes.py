"""Recipes: the settings that rebuild one official script's requests (``mmad eval --recipe NAME``).

A recipe names its source script in jam-cc/MMAD (``evaluation/examples/...``), the published
result files it made, and overrides per config section: ``prompt`` (`PromptSettings` fields),
``images`` (`ImageSettings` fields), ``decoding`` (``max_tokens``, ``temperature``; None = the
field is left out of the request), ``answers`` (``parser``) and ``processor`` (processor
arguments for in-process backends). Explicit flags override a recipe; the run records which.
A recipe also names the scoring policy that made its published rows (``upstream``: what the
official ``helper/summary.py`` computes); a recipe run's headline and files use it.

``exact`` recipes rebuild the script's request: texts byte for byte, part order, image sizes,
decoding fields. The others are presets: the image handling and decoding of a script whose text
layout mmad does not rebuild; ``not_reproduced`` lists what differs, for every recipe.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from mmad.errors import ConfigError
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.prompts import PromptSettings, Variant


@dataclasses.dataclass(frozen=True)
class DecodingSettings:
    """The decoding fields a recipe can set; None leaves the field out of the request."""

    max_tokens: int | None = 128
    temperature: float | None = 0.0


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
    """How replies become letters."""

    parser: Literal["mmad", "upstream", "upstream-first"] = "mmad"


SECTIONS: dict[str, type] = {
    "prompt": PromptSettings,
    "images": ImageSettings,
    "decoding": DecodingSettings,
    "answers": AnswerSettings,
}


def section_fields(section: str) -> set[str]:
    """The field names a recipe may override in a config section."""
    return {f.name for f in dataclasses.fields(SECTIONS[section])}


class Recipe(BaseModel):
    """One official script's request settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    source: str
    published: tuple[str, ...] = ()
    exact: bool = True
    not_reproduced: tuple[str, ...] = ()
    prompt: dict[str, Any]
    images: dict[str, Any]
    decoding: dict[str, Any]
    answers: dict[str, Any]
    processor: dict[str, Any] = {}
    # The published rows were computed by helper/summary.py, whose numbers are the upstream policy's.
    policy: Literal["strict", "upstream"] = "upstream"
    # What a model behind an HTTP server (vllm:, sglang:, compat:, ...) does not take from the recipe:
    # the server's own processor prepares the pixels, and mmad cannot reach it.
    server_caveats: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _known_fields(self) -> Recipe:
        for section in SECTIONS:
            overrides: dict[str, Any] = getattr(self, section)
            unknown = set(overrides) - section_fields(section)
            if unknown:
                msg = f"recipe {self.name}: {section} has no field {sorted(unknown)}"
                raise ValueError(msg)
            SECTIONS[section](**overrides)  # the values build a settings object
        Variant(self.prompt.get("variant", Variant.PER_QUESTION))
        return self

    def settings(self, section: str) -> Any:
        """The section's settings object with this recipe's overrides on the defaults."""
        return SECTIONS[section](**getattr(self, section))


# The API scripts' image handling: 512 px longest side with int() sizes, JPEG, detail low.
_API_IMAGES: dict[str, Any] = {
    "max_side": 512,
    "format": "jpeg",
    "detail": "low",
    "original": False,
    "resize": "official",
}
_JPEG_BYTES = (
    "image bytes: Pillow's box filter and JPEG encoder instead of OpenCV's INTER_AREA and imencode "
    "(same sizes, quality 95)"
)
_CRASH = (
    "a reply without a standalone letter crashes the script (IndexError); mmad's upstream parser "
    "falls back to difflib on the option texts"
)
_REFUSAL_RETRY = "the script re-asks replies containing 'please', 'sorry', 'today' or 'cannot assist'; mmad keeps them"
# Transformers/qwen2_5_vl_query.py: min_pixels = 64*28*28, max_pixels = 1280*28*28 (the image
# processor's size in transformers 5, as mmad.models.hf.PRESETS gives it).
_QWEN_PROCESSOR = {"size": {"shortest_edge": 64 * 28 * 28, "longest_edge": 1280 * 28 * 28}}
_QWEN_SERVER = (
    "the processor's 64-1280 28-px tokens per image: a server resizes with its own settings; start it with "
    'them (vLLM: --mm-processor-kwargs \'{"min_pixels": 50176, "max_pixels": 1003520}\')'
)
_QWEN_LAYOUT = (
    "text layout: the script's separate text items ('Answer with the option's letter from the given "
    "choices directly! ', 'Following is the question list: ') and apply_chat_template(add_vision_id=True); "
    "mmad sends the per-question (InternVL) layout"
)

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in [
        Recipe(
            name="gpt4o",
            description="GPT-4o: cumulative questions, 512-px JPEGs named by extension, max_tokens 200, no temperature",
            source="evaluation/examples/GPT4/gpt4o.py",
            published=("answers_1_shot_gpt-4o_accuracy.csv",),
            not_reproduced=(_JPEG_BYTES, _CRASH, _REFUSAL_RETRY),
            prompt={"variant": Variant.CUMULATIVE.value, "shots": 1},
            images={**_API_IMAGES, "mime": "extension"},
            decoding={"max_tokens": 200, "temperature": None},
            answers={"parser": "upstream"},
        ),
        Recipe(
            name="gpt4o-mini",
            description="GPT-4o-mini: one question per request ('Question k'), images first, max_tokens 600",
            source="evaluation/examples/GPT4/gpt4o-mini.py",
            published=("answers_1_shot_gpt-4o-mini_accuracy.csv",),
            not_reproduced=(_JPEG_BYTES, _CRASH, _REFUSAL_RETRY),
            prompt={"variant": Variant.API_PER_QUESTION.value, "shots": 1},
            images={**_API_IMAGES, "mime": "content"},
            decoding={"max_tokens": 600, "temperature": None},
            answers={"parser": "upstream"},
        ),
        Recipe(
            name="gpt4v",
            description="GPT-4V script: system instruction, cumulative questions as separate parts, max_tokens 600",
            source="evaluation/examples/GPT4/gpt4v.py",
            not_reproduced=(
                _JPEG_BYTES,
                _CRASH,
                "each question part of gpt4v.py also carries an 'options' key; mmad sends type and text only",
                "its __main__ reads a DS-MVTec folder through ADDataset (not mmad.json): no published file",
            ),
            prompt={"variant": Variant.SYSTEM_CUMULATIVE.value, "shots": 1},
            images={**_API_IMAGES, "mime": "content"},
            decoding={"max_tokens": 600, "temperature": None},
            answers={"parser": "upstream"},
        ),
        Recipe(
            name="gemini",
            description="Gemini 1.5: question 1 alone, then the rest in one request; no generation settings",
            source="evaluation/examples/Gemini/gemini_query.py",
            published=(
                "answers_1_shot_gemini-1.5-flash_accuracy.csv",
                "answers_1_shot_gemini-1.5-pro_accuracy.csv",
            ),
            not_reproduced=(
                _JPEG_BYTES,
                "transport: the script calls google.generativeai generate_content with inline_data parts; "
                "mmad sends the same parts to Gemini's OpenAI-compatible endpoint",
            ),
            prompt={"variant": Variant.GEMINI.value, "shots": 1},
            images={**_API_IMAGES, "detail": None, "mime": "extension"},
            decoding={"max_tokens": None, "temperature": None},
            answers={"parser": "upstream"},
        ),
        Recipe(
            name="internvl",
            description="InternVL2: one question per request, original image files, greedy, 128 tokens",
            source="evaluation/examples/Transformers/internvl_query.py",
            published=(
                "answers_1_shot_InternVL2-8B_accuracy.csv",
                "answers_1_shot_InternVL2-Llama3-76B_accuracy.csv",
            ),
            not_reproduced=(
                "pixels: the backend's processor (one 448-px tile with crop_to_patches=False on InternVL-hf) "
                "instead of the script's load_image(max_num=1)",
                _CRASH,
                "--record_history and --defect_shot",
            ),
            prompt={"variant": Variant.PER_QUESTION.value, "shots": 1, "cot_history": True},
            images={"original": True, "max_side": None, "detail": None},
            decoding={"max_tokens": 128, "temperature": 0.0},
            answers={"parser": "upstream"},
            processor={"crop_to_patches": False},
            server_caveats=(
                "one 448-px tile per image (load_image(max_num=1); crop_to_patches=False in-process): a server "
                "tiles each image its own way (vLLM's InternVL: up to the checkpoint's max_dynamic_patch tiles and a "
                "thumbnail); start it with "
                "--mm-processor-kwargs '{\"max_dynamic_patch\": 1}'",
            ),
        ),
        Recipe(
            name="qwen2.5-vl",
            description="Qwen2.5-VL image preset: original files, 64-1280 28-px tokens per image, 128 tokens",
            source="evaluation/examples/Transformers/qwen2_5_vl_query.py",
            published=(
                "answers_1_shot_Qwen2.5-VL-7B-Instruct_accuracy.csv",
                "answers_1_shot_Qwen2.5-VL-72B-Instruct-AWQ_accuracy.csv",
            ),
            exact=False,
            not_reproduced=(
                _QWEN_LAYOUT,
                "the script cannot run as released: it imports GPT4V.gpt4v and calls "
                "parse_conversation(add_question_id=False)",
                "decoding: the checkpoint's generation config; mmad decodes greedily",
            ),
            prompt={"variant": Variant.PER_QUESTION.value, "shots": 1},
            images={"original": True, "max_side": None, "detail": None},
            decoding={"max_tokens": 128, "temperature": 0.0},
            answers={"parser": "upstream"},
            processor=_QWEN_PROCESSOR,
            server_caveats=(_QWEN_SERVER,),
        ),
        Recipe(
            name="qwen2-vl",
            description="Qwen2-VL image preset (as Qwen2.5-VL's script): original files, 64-1280 tokens, 128 tokens",
            source="unreleased (the Qwen2-VL script is not in jam-cc/MMAD; settings of qwen2_5_vl_query.py)",
            published=(
                "answers_1_shot_Qwen2-VL-7B-Instruct_accuracy.csv",
                "answers_1_shot_Qwen2-VL-72B-Instruct_accuracy_test1.csv",
            ),
            exact=False,
            not_reproduced=(_QWEN_LAYOUT, "the script behind these files is not released"),
            prompt={"variant": Variant.PER_QUESTION.value, "shots": 1},
            images={"original": True, "max_side": None, "detail": None},
            decoding={"max_tokens": 128, "temperature": 0.0},
            answers={"parser": "upstream"},
            processor=_QWEN_PROCESSOR,
            server_caveats=(_QWEN_SERVER,),
        ),
        Recipe(
            name="llava",
            description="LLaVA image preset: 512-px JPEGs (int() sizes), temperature 0.2, 64 tokens",
            source="evaluation/examples/LLaVA_Query/llava_query.py",
            published=(
                "answers_1_shot_llava-v1.5-7b_accuracy.csv",
                "answers_1_shot_llava-v1.5-13b_accuracy.csv",
                "answers_1_shot_llava-v1.6-34b_accuracy.csv",
                "answers_1_shot_llava-onevision-qwen2-7b-si_accuracy.csv",
                "answers_1_shot_llava-next-interleave-qwen-7b-dpo_accuracy.csv",
            ),
            exact=False,
            not_reproduced=(
                "text layout: 'Following is 1 image of normal sample:<image>\\nTest image: \\n<image>\\n"
                "Following is new question list: ' in the llava_v1 conversation template",
                "options shuffled with an unseeded random.shuffle: no run can be repeated",
                "in-process backends load the original files; the 512-px JPEG applies to OpenAI-compatible servers",
            ),
            prompt={"variant": Variant.PER_QUESTION.value, "shots": 1},
            images={**_API_IMAGES, "detail": None, "mime": "content"},
            decoding={"max_tokens": 64, "temperature": 0.2},
            answers={"parser": "upstream-first"},
        ),
    ]
}

# The published files no recipe reproduces, and why (docs/protocol.md has the whole table).
NO_RECIPE: dict[str, str] = {
    "answers_1_shot_Qwen-VL-Chat_accuracy.csv": (
        "Transformers/qwen_query.py: tokenizer.from_list_format layout and the checkpoint's generation config"
    ),
    "answers_1_shot_MiniCPM-V-2_6_accuracy.csv": (
        "Transformers/minicpm_query.py: its own text ('Image 1 is a normal sample, ...') and MiniCPM's chat defaults"
    ),
    "answers_1_shot_internlm-xcomposer2-vl-7b_accuracy.csv": (
        "Transformers/internlm_xcomposer_query.py: 1008x1008 squares, <ImageHere> layout, repetition_penalty 1.005"
    ),
    "answers_0_shot_cambrian-8b_accuracy.csv": (
        "Cambrian_Query/cambrian_query.py: unseeded option shuffle and sampling at temperature 0.2"
    ),
    "answers_0_shot_SPHINX-v2-1k_accuracy.csv": (
        "SPHINX_Query/sphinx_query.py: SPHINX's own generate_response (temperature 0.9, top_p 0.5)"
    ),
    "answers_1_shot_AnomalyGPT_train_mvtec_accuracy.csv": (
        "AnomalyGPT/anomalygpt_query.py: not a chat model; the script's __main__ is commented out"
    ),
    "answers_1_shot_claude-3-5-sonnet-20241022_accuracy.csv": "no script in the repository; a subset of the images",
}


def get_recipe(name: str) -> Recipe:
    """The recipe of a name; ConfigError listing the known ones."""
    try:
        return RECIPES[name].model_copy(deep=True)
    except KeyError:
        msg = f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}"
        raise ConfigError(msg) from None


def recipe_for_file(file_name: str) -> Recipe | None:
    """The recipe that reproduces a published result file, if any."""
    return next((r for r in RECIPES.values() if file_name in r.published), None)
