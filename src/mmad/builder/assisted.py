"""The paper's MLLM-assisted generation, and human review (mmad-protocol.md §F).

1. Caption: each defective image is shown to a model with the defect's contour drawn in red on a
   copy (and a normal template), and the model describes the product and the marked defect.
2. Questions: from each caption, the model writes one multiple-choice question per descriptive
   subtask (Defect Description, Defect Analysis; Object Analysis for normal images from a
   description of the product), constrained by a JSON schema; answers outside the options,
   duplicate options and malformed replies are rejected with a reason.
3. Review (:mod:`mmad.builder.review`): a CSV and an HTML page to fill in; the verdicts are
   applied by each question's content id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ValidationError

from mmad.builder.geometry import load_mask
from mmad.builder.questions import STEMS, near_duplicate
from mmad.data.official import load_benchmark, write_benchmark
from mmad.data.schema import Benchmark, ImageItem, Question, question_id
from mmad.errors import ModelCallError
from mmad.expert.render import regions
from mmad.models.base import Model, Request
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart, Message, TextPart

logger = logging.getLogger(__name__)

CAPTION_PROMPT = (
    "The first image shows a normal {product}. The second image shows another one; its defect is outlined in red. "
    "Describe the product, then the outlined defect: what it looks like, where it is, how large it is, and what "
    "it could cause. Write a short paragraph."
)
NORMAL_CAPTION_PROMPT = (
    "The image shows a normal {product}. Describe its structure, parts, materials, colours and any printed "
    "details in a short paragraph."
)
QUESTION_PROMPT = (
    "Here is a description of an industrial product image:\n{caption}\n\n"
    "Write one multiple-choice question of the kind '{kind}' that the description answers, with four options "
    "of which exactly one is correct, and plausible but clearly wrong distractors. {guidance} "
    'Reply with JSON only: {{"question": ..., "options": {{"A": ..., "B": ..., "C": ..., "D": ...}}, '
    '"answer": "A"|"B"|"C"|"D"}}.'
)
GUIDANCE = {
    "Defect Description": "Ask about the defect's appearance.",
    "Defect Analysis": "Ask what the defect may cause.",
    "Object Structure": "Ask about the product's parts or structure.",
    "Object Details": "Ask about a visible detail of the product.",
}
QUESTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "question": {"type": "string"},
        "options": {
            "type": "object",
            "properties": {letter: {"type": "string"} for letter in "ABCD"},
            "required": list("ABCD"),
            "additionalProperties": False,
        },
        "answer": {"type": "string", "enum": list("ABCD")},
    },
    "required": ["question", "options", "answer"],
    "additionalProperties": False,
}


class GeneratedQuestion(BaseModel):
    """What the schema allows."""

    question: str
    options: dict[str, str]
    answer: str


def mark_defect(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """A copy of the image with the mask's outline drawn in red, 2 px."""
    from scipy import ndimage

    pixels = np.asarray(image.convert("RGB")).copy()
    for part in regions(mask, min_area_fraction=0.0):
        edge = part & ~ndimage.binary_erosion(part)
        pixels[ndimage.binary_dilation(edge)] = (255, 0, 0)
    return Image.fromarray(pixels)


def parse_generated(text: str) -> GeneratedQuestion:
    """A model's JSON reply as a question; raises ValueError with the reason."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        msg = "no JSON object in the reply"
        raise ValueError(msg)
    try:
        question = GeneratedQuestion.model_validate(json.loads(text[start : end + 1]))
    except (ValidationError, json.JSONDecodeError) as exc:
        msg = f"the reply does not fit the schema: {exc}"
        raise ValueError(msg) from exc
    if sorted(question.options) != list("ABCD"):
        msg = "the options are not A, B, C, D"
        raise ValueError(msg)
    if question.answer not in question.options:
        msg = "the answer is not one of the options"
        raise ValueError(msg)
    texts = list(question.options.values())
    if any(near_duplicate(t, texts[:i] + texts[i + 1 :]) for i, t in enumerate(texts)):
        msg = "two options are (nearly) the same"
        raise ValueError(msg)
    return question


@dataclass
class AssistReport:
    """What the assisted pass added and rejected."""

    captions: int = 0
    added: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


async def _ask(
    model: Model,
    parts: Sequence[TextPart | ImagePart],
    images: ImageEncoder,
    max_tokens: int,
    schema: dict[str, Any] | None = None,
) -> str:
    request = Request(
        messages=(Message(role="user", parts=tuple(parts)),),
        max_tokens=max_tokens,
        images=images,
        response_schema=schema,
    )
    completion = await model.generate(request)
    return completion.text


async def assist_async(benchmark: Benchmark, model: Model, out_dir: Path, *, concurrency: int = 4) -> AssistReport:
    """Caption every image and add model-written questions to the benchmark (in place)."""
    report = AssistReport()
    images = ImageEncoder(ImageSettings(max_side=768))
    marked_dir = out_dir / "assist" / "marked"
    marked_dir.mkdir(parents=True, exist_ok=True)
    limit = asyncio.Semaphore(concurrency)

    async def one(item: ImageItem) -> None:
        async with limit:
            product = item.category.replace("_", " ")
            query = benchmark.resolve(item.key)
            parts: list[TextPart | ImagePart] = []
            if item.defect_free:
                parts = [ImagePart(path=str(query)), TextPart(text=NORMAL_CAPTION_PROMPT.format(product=product))]
                kinds = ["Object Structure", "Object Details"]
            else:
                mask_file = benchmark.mask_file(item)
                with Image.open(query) as opened:
                    image = opened.convert("RGB")
                if mask_file is None:
                    report.rejected["no mask to mark"] += 1
                    return
                files = sorted(mask_file.glob("*.png")) if mask_file.is_dir() else [mask_file]
                marked_path = marked_dir / f"{hashlib.sha1(item.key.encode()).hexdigest()[:16]}.png"
                mark_defect(image, load_mask(files, (image.height, image.width))).save(marked_path)
                templates = [ImagePart(path=str(benchmark.resolve(t)), role="template") for t in item.templates(1)]
                parts = [
                    *templates,
                    ImagePart(path=str(marked_path)),
                    TextPart(text=CAPTION_PROMPT.format(product=product)),
                ]
                kinds = ["Defect Description", "Defect Analysis"]
            try:
                caption = await _ask(model, parts, images, 400)
            except ModelCallError as exc:
                report.rejected[f"caption failed: {exc.error_class}"] += 1
                return
            item.extra["caption"] = caption
            report.captions += 1
            for kind in kinds:
                text = QUESTION_PROMPT.format(caption=caption, kind=kind, guidance=GUIDANCE[kind])
                try:
                    reply = await _ask(model, [TextPart(text=text)], images, 400, QUESTION_SCHEMA)
                    generated = parse_generated(reply)
                except ModelCallError as exc:
                    report.rejected[f"{kind}: request failed ({exc.error_class})"] += 1
                    continue
                except ValueError as exc:
                    report.rejected[f"{kind}: {exc}"] += 1
                    continue
                stem = generated.question.strip() or STEMS[kind]
                existing = [q.stem for q in item.questions if q.type == kind]
                if near_duplicate(stem, existing):
                    report.rejected[f"{kind}: duplicates an existing question"] += 1
                    continue
                index = len(item.questions)
                item.questions.append(
                    Question(
                        id=question_id(item.key, index),
                        image=item.key,
                        index=index,
                        type=kind,
                        stem=stem,
                        options=dict(sorted(generated.options.items())),
                        answer=generated.answer,
                        annotation=False,
                        extra={"mmad_source": {"generator": "mllm", "model": model.name}},
                    )
                )
                report.added[kind] += 1

    try:
        await asyncio.gather(*(one(item) for item in benchmark.items))
    finally:
        await model.aclose()
    return report


def assist(benchmark_path: str | os.PathLike[str], model: Model, *, concurrency: int = 4) -> AssistReport:
    """Run the assisted pass on a built benchmark and rewrite its json (atomically)."""
    benchmark = load_benchmark(benchmark_path)
    assert benchmark.source is not None
    report = asyncio.run(assist_async(benchmark, model, benchmark.source.parent, concurrency=concurrency))
    write_benchmark(benchmark, benchmark.source)
    return report
