"""Each recipe's requests against the official script's, field by field, on generated images.

The images: a non-square PNG (700x300), a JPG with one side of 1,700 px and a PNG mask named
.jpg in mmad.json, a small JPG that is scaled up; templates of each kind. The expected requests
are rebuilt from the scripts' texts in `official_scripts.py`, never from mmad's constants.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark, ImageItem
from mmad.errors import ConfigError
from mmad.models.base import Request
from mmad.models.openai_convert import to_openai_payload
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart, Prompt, TextPart
from mmad.protocol.prompts import PromptSettings, build_prompts
from mmad.protocol.recipes import NO_RECIPE, RECIPES, SECTIONS, get_recipe, recipe_for_file, section_fields
from tests.helpers.mmad_tree import ABNORMAL_QUESTIONS, NORMAL_QUESTIONS
from tests.protocol import official_scripts as O

PNG_KEY = "DS-MVTec/bottle/image/broken_large/000.png"  # 700x300 PNG
BIG_KEY = "VisA/candle/test/bad/000.JPG"  # 1700x1000 JPG; its PNG mask is named .jpg in the json
SMALL_KEY = "GoodsAD/drink_can/test/good/000.jpg"  # 300x200 JPG, scaled up
SIZES = {
    PNG_KEY: (700, 300),
    BIG_KEY: (1700, 1000),
    SMALL_KEY: (300, 200),
    "MVTec-AD/bottle/train/good/000.png": (640, 480),
    "MVTec-AD/bottle/train/good/001.png": (500, 500),
    "VisA/candle/train/good/000.JPG": (1700, 1000),
    "VisA/candle/train/good/001.JPG": (1600, 900),
    "GoodsAD/drink_can/train/good/000.jpg": (320, 240),
    "GoodsAD/drink_can/train/good/001.jpg": (240, 320),
}


def _qa(spec: tuple[str, dict[str, str], str, str]) -> dict[str, Any]:
    stem, options, answer, qtype = spec
    return {"Question": stem, "Options": dict(options), "Answer": answer, "type": qtype}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    root = tmp_path_factory.mktemp("recipes")
    rng = np.random.default_rng(7)
    for key, (width, height) in SIZES.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    mask = np.zeros((1000, 1700), np.uint8)
    mask[100:300, 200:600] = 255
    (root / "VisA/candle/ground_truth/bad").mkdir(parents=True)
    Image.fromarray(mask).save(root / "VisA/candle/ground_truth/bad/000.png")
    small = np.zeros((300, 700), np.uint8)
    small[10:50, 10:80] = 255
    (root / "DS-MVTec/bottle/ground_truth/broken_large").mkdir(parents=True)
    Image.fromarray(small).save(root / "DS-MVTec/bottle/ground_truth/broken_large/000_mask.png")
    data = {
        PNG_KEY: {
            "mask_path": "ground_truth/broken_large/000_mask.png",
            "random_templates": ["MVTec-AD/bottle/train/good/000.png", "MVTec-AD/bottle/train/good/001.png"],
            "similar_templates": ["MVTec-AD/bottle/train/good/001.png", "MVTec-AD/bottle/train/good/000.png"],
            "conversation": [_qa(q) for q in ABNORMAL_QUESTIONS],
        },
        BIG_KEY: {
            "mask_path": "ground_truth/bad/000.jpg",
            "random_templates": ["VisA/candle/train/good/000.JPG", "VisA/candle/train/good/001.JPG"],
            "similar_templates": ["VisA/candle/train/good/001.JPG"],
            "conversation": [_qa(q) for q in ABNORMAL_QUESTIONS],
        },
        SMALL_KEY: {
            "mask_path": "",
            "random_templates": ["GoodsAD/drink_can/train/good/000.jpg", "GoodsAD/drink_can/train/good/001.jpg"],
            "similar_templates": ["GoodsAD/drink_can/train/good/001.jpg"],
            "conversation": [_qa(q) for q in NORMAL_QUESTIONS],
        },
    }
    (root / "mmad.json").write_text(json.dumps(data, indent=4))
    return load_benchmark(root / "mmad.json")


def _raw(bench: Benchmark, key: str) -> list[dict[str, Any]]:
    return json.loads(Path(bench.source or "").read_text())[key]["conversation"]


def _recipe_prompts(bench: Benchmark, name: str, item: ImageItem, **prompt: Any) -> list[Prompt]:
    recipe = get_recipe(name)
    settings = PromptSettings(**{**recipe.prompt, **prompt, "max_tokens": recipe.decoding["max_tokens"]})
    return build_prompts(bench, item, settings)


def _payload(name: str, prompt: Prompt, model: str) -> dict[str, Any]:
    """The final OpenAI payload mmad sends for a prompt under a recipe."""
    recipe = get_recipe(name)
    images = ImageEncoder(recipe.settings("images"))
    request = Request(
        messages=prompt.messages, max_tokens=prompt.max_tokens, temperature=recipe.decoding["temperature"]
    )
    return to_openai_payload(model, request, images.encode, detail=recipe.images.get("detail", "low"))


def _templates(bench: Benchmark, key: str, k: int = 1) -> list[tuple[str, tuple[int, int]]]:
    return [(t, SIZES[t]) for t in bench.item(key).random_templates[:k]]


def _as_text(prompt_message: Any) -> str:
    """A message's parts as internvl_query.py's string: each image is an `<image>` placeholder."""
    return "".join(p.text if isinstance(p, TextPart) else "<image>" for p in prompt_message.parts)


KEYS = [PNG_KEY, BIG_KEY, SMALL_KEY]


def test_the_official_sizes_truncate() -> None:
    assert O.official_size(1700, 1000) == (511, 301)  # 1700 * (512 / 1700) == 511.99999999999994
    assert O.official_size(700, 300) == (512, 219)
    assert O.official_size(300, 200) == (512, 341)
    assert ImageSettings().resize == "mmad"  # mmad's rounding stays the default; recipes ask for the official one


@pytest.mark.parametrize("key", KEYS)
def test_image_sizes_official_and_mmad(bench: Benchmark, key: str) -> None:
    path = bench.resolve(key)
    official = ImageEncoder(ImageSettings(resize="official")).encode(ImagePart(path=str(path)))
    mmad = ImageEncoder(ImageSettings()).encode(ImagePart(path=str(path)))
    assert (official.width, official.height) == O.official_size(*SIZES[key])
    width, height = SIZES[key]
    scale = 512 / max(width, height)
    assert (mmad.width, mmad.height) == (round(width * scale), round(height * scale))
    if key == BIG_KEY:
        assert (official.width, mmad.width) == (511, 512)


@pytest.mark.parametrize("key", KEYS)
def test_gpt4o_recipe_is_the_gpt4o_script(bench: Benchmark, key: str) -> None:
    item = bench.item(key)
    raw = _raw(bench, key)
    prompts = _recipe_prompts(bench, "gpt4o", item)
    assert len(prompts) == len(raw)
    for i, prompt in enumerate(prompts):
        sent = O.normalise_payload(_payload("gpt4o", prompt, "gpt-4o"))
        expected = O.gpt4o_payload("gpt-4o", _templates(bench, key), (key, SIZES[key]), raw[: i + 1])
        assert sent == expected
        assert "temperature" not in sent and sent["max_tokens"] == 200
        assert prompt.answer_format == "last-letter"
    png = O.normalise_payload(_payload("gpt4o", prompts[0], "gpt-4o"))["messages"][0]["content"]
    if key == PNG_KEY:  # JPEG bytes labelled by the file's extension, as gpt4o.py does
        assert png[1]["image_url"]["url"][0] == "image/png"
        data = _payload("gpt4o", prompts[0], "gpt-4o")["messages"][0]["content"][1]["image_url"]["url"]
        assert base64.b64decode(data.split(",", 1)[1])[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize("key", KEYS)
def test_gpt4o_mini_recipe_is_the_gpt4o_mini_script(bench: Benchmark, key: str) -> None:
    item = bench.item(key)
    raw = _raw(bench, key)
    prompts = _recipe_prompts(bench, "gpt4o-mini", item)
    assert len(prompts) == len(raw)
    for i, prompt in enumerate(prompts):
        sent = O.normalise_payload(_payload("gpt4o-mini", prompt, "gpt-4o-mini"))
        assert sent == O.gpt4o_mini_payload("gpt-4o-mini", _templates(bench, key), (key, SIZES[key]), i, raw[i])
        assert "temperature" not in sent and sent["max_tokens"] == 600


@pytest.mark.parametrize("key", KEYS)
def test_gpt4v_recipe_is_the_gpt4v_script(bench: Benchmark, key: str) -> None:
    item = bench.item(key)
    raw = _raw(bench, key)
    prompts = _recipe_prompts(bench, "gpt4v", item)
    for i, prompt in enumerate(prompts):
        sent = O.normalise_payload(_payload("gpt4v", prompt, "gpt-4o"))
        assert sent == O.gpt4v_payload("gpt-4o", _templates(bench, key), (key, SIZES[key]), raw[: i + 1])
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]


@pytest.mark.parametrize("key", KEYS)
def test_gemini_recipe_is_the_gemini_script(bench: Benchmark, key: str) -> None:
    item = bench.item(key)
    raw = _raw(bench, key)
    first, rest = _recipe_prompts(bench, "gemini", item)
    assert [len(first.questions), len(rest.questions)] == [1, len(raw) - 1]
    for prompt, qas in ((first, raw[:1]), (rest, raw[1:])):
        sent = O.normalise_payload(_payload("gemini", prompt, "gemini-1.5-flash"))
        assert set(sent) == {"model", "messages"}  # no generation settings at all
        (message,) = sent["messages"]
        parts = [
            {"inline_data": {"mime_type": p["image_url"]["url"][0], "data": p["image_url"]["url"][1]}}
            if p["type"] == "image_url"
            else {"text": p["text"]}
            for p in message["content"]
        ]
        assert all("detail" not in p.get("image_url", {}) for p in message["content"])
        assert parts == O.gemini_parts(_templates(bench, key), (key, SIZES[key]), qas)


@pytest.mark.parametrize("key", KEYS)
def test_internvl_recipe_is_the_internvl_script(bench: Benchmark, key: str) -> None:
    item = bench.item(key)
    raw = _raw(bench, key)
    prompts = _recipe_prompts(bench, "internvl", item)
    for i, prompt in enumerate(prompts):
        (message,) = prompt.messages
        assert _as_text(message) == O.internvl_query(1, i, raw[i])
        assert [p.path for p in message.images] == [
            str(bench.resolve(item.random_templates[0])),
            str(bench.resolve(key)),
        ]
        sent = _payload("internvl", prompt, "OpenGVLab/InternVL2-8B")
        assert sent["max_tokens"] == 128 and sent["temperature"] == 0.0
        urls = [p["image_url"] for p in sent["messages"][0]["content"] if p["type"] == "image_url"]
        assert all("detail" not in url for url in urls)
        for url, path in zip(urls, [item.random_templates[0], key], strict=True):  # the original files' bytes
            assert base64.b64decode(url["url"].split(",", 1)[1]) == bench.resolve(path).read_bytes()


def test_internvl_layout_with_more_shots_knowledge_and_agent(bench: Benchmark) -> None:
    item = bench.item(PNG_KEY)
    raw = _raw(bench, PNG_KEY)
    two = build_prompts(bench, item, PromptSettings(shots=2))
    assert _as_text(two[1].messages[0]) == O.internvl_query(2, 1, raw[1])
    zero = build_prompts(bench, item, PromptSettings(shots=0))
    assert _as_text(zero[0].messages[0]) == O.internvl_query(0, 0, raw[0])
    from mmad.protocol.official_text import AGENT_TEXTS
    from mmad.protocol.prompts import Extras

    for notation in ("bbox", "contour", "highlight", "mask"):
        extras = Extras(
            knowledge="KNOW", expert_image=ImagePart(path="x.png", role="expert"), expert_text=AGENT_TEXTS[notation]
        )
        prompt = build_prompts(bench, item, PromptSettings(), extras)[3]
        expected = O.internvl_query(1, 3, raw[3], knowledge="KNOW", agent=notation)
        assert _as_text(prompt.messages[0]) == expected
        assert [p.role for p in prompt.messages[0].images] == ["template", "query", "expert"]


def test_chain_of_thought_is_the_internvl_turn_structure(bench: Benchmark) -> None:
    from mmad.protocol.prompts import Extras, preamble_prompt, with_preamble

    item = bench.item(BIG_KEY)
    raw = _raw(bench, BIG_KEY)
    prompts = build_prompts(bench, item, PromptSettings(), Extras(chain_of_thought=True))
    prompt = prompts[2]
    cot, question = prompt.messages
    # the CoT turn: the whole payload (context and question-list sentence), the CoT text, "\n"
    assert _as_text(cot) == O.internvl_payload(1) + O.INTERNVL_COT + "\n"
    assert [p.role for p in cot.images] == ["template", "query"]
    # the question turn re-sends the payload; its <image> placeholders reach the model as text
    assert question.parts == (TextPart(text=O.internvl_query(1, 2, raw[2])),)
    pre = preamble_prompt(prompt)
    assert pre.messages == (cot,) and pre.max_tokens == 256
    full = with_preamble(prompt, "thoughts")
    assert [m.role for m in full.messages] == ["user", "assistant", "user"]
    assert full.messages[1].text == "thoughts"


@pytest.mark.parametrize("name", ["cumulative", "gemini", "api-per-question", "system-cumulative"])
def test_chain_of_thought_is_refused_where_no_script_defines_it(bench: Benchmark, name: str) -> None:
    from mmad.protocol.prompts import Extras

    with pytest.raises(ConfigError, match=r"internvl_query\.py"):
        build_prompts(bench, bench.item(PNG_KEY), PromptSettings(variant=name), Extras(chain_of_thought=True))


@pytest.mark.parametrize("name", ["qwen2.5-vl", "qwen2-vl"])
def test_qwen_presets(bench: Benchmark, name: str) -> None:
    from mmad.models.hf import PRESETS

    recipe = get_recipe(name)
    assert not recipe.exact and recipe.not_reproduced
    assert recipe.processor == PRESETS[name]  # min_pixels 64*28*28, max_pixels 1280*28*28
    assert recipe.processor["size"] == {"shortest_edge": 50176, "longest_edge": 1003520}
    prompt = _recipe_prompts(bench, name, bench.item(BIG_KEY))[0]
    sent = _payload(name, prompt, "Qwen/Qwen2.5-VL-7B-Instruct")
    assert sent["max_tokens"] == 128 and sent["temperature"] == 0.0
    url = next(p for p in sent["messages"][0]["content"] if p["type"] == "image_url")["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == bench.resolve(bench.item(BIG_KEY).random_templates[0]).read_bytes()


def test_llava_preset(bench: Benchmark) -> None:
    recipe = get_recipe("llava")
    prompt = _recipe_prompts(bench, "llava", bench.item(BIG_KEY))[0]
    sent = O.normalise_payload(_payload("llava", prompt, "llava-v1.6-34b"))
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.2  # llava_query.py's defaults
    sizes = [p["image_url"]["url"][1] for p in sent["messages"][0]["content"] if p["type"] == "image_url"]
    assert sizes == [(511, 301), (511, 301)]
    assert recipe.answers["parser"] == "upstream-first"  # llava_query.py keeps the first letter
    assert not any("first" in line for line in recipe.not_reproduced)


def test_every_override_is_a_real_settings_field() -> None:
    assert set(SECTIONS) == {"prompt", "images", "decoding", "answers"}
    assert section_fields("prompt") == {f.name for f in dataclasses.fields(PromptSettings)}
    assert {"max_side", "format", "detail", "original", "resize", "mime"} <= section_fields("images")
    assert section_fields("decoding") == {"max_tokens", "temperature"}
    assert section_fields("answers") == {"parser"}
    for recipe in RECIPES.values():
        for section in SECTIONS:
            assert set(getattr(recipe, section)) <= section_fields(section), (recipe.name, section)
        assert recipe.answers["parser"] in {"mmad", "upstream", "upstream-first"}
        assert set(recipe.decoding) == {"max_tokens", "temperature"}
        assert recipe.source and recipe.description
    with pytest.raises(ValueError, match="no field"):
        RECIPES["gpt4o"].model_validate({**RECIPES["gpt4o"].model_dump(), "images": {"size": 512}})


def test_the_required_recipes_exist_and_unknown_names_are_refused() -> None:
    assert {"gpt4o", "gpt4o-mini", "gpt4v", "gemini", "internvl", "qwen2-vl", "qwen2.5-vl", "llava"} <= set(RECIPES)
    with pytest.raises(ConfigError, match="known recipes: gpt4o, gpt4o-mini"):
        get_recipe("gpt5")
    copy = get_recipe("gpt4o")
    copy.decoding["max_tokens"] = 1
    assert RECIPES["gpt4o"].decoding["max_tokens"] == 200  # callers get their own copy


def test_every_published_file_has_a_recipe_or_a_reason(reference_dir: Path) -> None:
    files = {p.name for p in (reference_dir / "official" / "all_result").glob("*.csv")}
    assert len(files) == 22
    covered = {f for r in RECIPES.values() for f in r.published}
    assert covered | set(NO_RECIPE) == files and not covered & set(NO_RECIPE)
    assert recipe_for_file("answers_1_shot_gpt-4o_accuracy.csv") == RECIPES["gpt4o"]
    assert recipe_for_file("answers_1_shot_claude-3-5-sonnet-20241022_accuracy.csv") is None


def test_the_docs_table_names_each_files_recipe() -> None:
    rows = [
        line
        for line in (Path(__file__).parents[2] / "docs" / "protocol.md").read_text().splitlines()
        if line.startswith("| `answers_")
    ]
    assert len(rows) == 22
    for row in rows:
        name = row.split("`")[1]
        recipe = recipe_for_file(name)
        last = row.rstrip(" |").rsplit("|", 1)[1]
        if recipe is None:
            assert name in NO_RECIPE and "no recipe" in last, row
        else:
            assert f"`{recipe.name}`" in last, row


def test_internvl_recipe_with_the_ground_truth_agent_on_a_jpg_with_a_png_mask(bench: Benchmark, tmp_path: Path) -> None:
    from mmad.protocol.agent import AgentRenderer
    from mmad.protocol.prompts import Extras

    item = bench.item(BIG_KEY)  # mmad.json names the mask 000.jpg; the file is 000.png
    raw = _raw(bench, BIG_KEY)
    image, text = AgentRenderer("gt", "contour", tmp_path).render(bench, item)
    settings = PromptSettings(**{**get_recipe("internvl").prompt, "max_tokens": 128})
    prompt = build_prompts(bench, item, settings, Extras(expert_image=image, expert_text=text))[0]
    assert _as_text(prompt.messages[0]) == O.internvl_query(1, 0, raw[0], agent="contour")
    with Image.open(image.path or "") as drawn:
        assert drawn.size == (511, 301) and drawn.format == "PNG"


def _reversed_options(bench: Benchmark) -> Benchmark:
    """The bench with every question's Options written in reverse ({"D": ..., ..., "A": ...})."""
    source = Path(bench.source or "")
    data = json.loads(source.read_text())
    for record in data.values():
        for qa in record["conversation"]:
            qa["Options"] = dict(reversed(list(qa["Options"].items())))
    swapped = source.with_name("mmad-reversed-options.json")
    swapped.write_text(json.dumps(data, indent=4))
    return load_benchmark(swapped)


def test_options_go_out_in_the_files_order_under_each_scripts_letters(bench: Benchmark) -> None:
    """GPT4/gpt4o.py, GPT4/gpt4o-mini.py and Gemini/gemini_query.py list QA['Options'].items() under
    their json letters; GPT4/gpt4v.py (and Transformers/internvl_query.py, which imports it) re-letter
    them by position. A question whose Options read {"B": ..., "A": ...} is sent as each script sends it."""
    reversed_bench = _reversed_options(bench)
    key = PNG_KEY
    item = reversed_bench.item(key)
    raw = _raw(reversed_bench, key)
    assert list(raw[0]["Options"]) == ["B", "A"]
    templates, query = _templates(reversed_bench, key), (key, SIZES[key])
    gpt4o = _recipe_prompts(reversed_bench, "gpt4o", item)
    for i, prompt in enumerate(gpt4o):
        assert O.normalise_payload(_payload("gpt4o", prompt, "gpt-4o")) == O.gpt4o_payload(
            "gpt-4o", templates, query, raw[: i + 1]
        )
        assert prompt.questions[0].correct_answer == raw[i]["Answer"]
    for i, prompt in enumerate(_recipe_prompts(reversed_bench, "gpt4o-mini", item)):
        sent = O.normalise_payload(_payload("gpt4o-mini", prompt, "gpt-4o-mini"))
        assert sent == O.gpt4o_mini_payload("gpt-4o-mini", templates, query, i, raw[i])
    _, rest = _recipe_prompts(reversed_bench, "gemini", item)
    (message,) = O.normalise_payload(_payload("gemini", rest, "gemini-1.5-flash"))["messages"]
    assert message["content"][-1]["text"] == O.gemini_parts(templates, query, raw[1:])[-1]["text"]
    for i, prompt in enumerate(_recipe_prompts(reversed_bench, "internvl", item)):
        assert _as_text(prompt.messages[0]) == O.internvl_query(1, i, raw[i])
        assert list(prompt.questions[0].options) == ["A", "B", "C", "D"][: len(raw[i]["Options"])]
    for i, prompt in enumerate(_recipe_prompts(reversed_bench, "gpt4v", item)):
        sent = O.normalise_payload(_payload("gpt4v", prompt, "gpt-4o"))
        assert sent == O.gpt4v_payload("gpt-4o", templates, query, raw[: i + 1])
