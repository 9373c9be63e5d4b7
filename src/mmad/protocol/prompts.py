"""How an image's questions become requests: the official MMAD prompt and its variants.

- ``per-question`` (default): one question per request, no history; the layout of the official
  open-model scripts (instruction, template sentence, templates, query, question list).
- ``cumulative``: the GPT-4o script; request i holds questions 1..i, the last letter answers i.
- ``gemini``: the Gemini script; question 1 alone, then all the rest in one request.
- ``per-image``: all of an image's questions in one request, answered as a numbered list.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mmad.data.schema import LETTERS, Benchmark, ImageItem, Question
from mmad.protocol import official_text as text
from mmad.protocol.messages import ImagePart, Message, Part, PosedQuestion, Prompt, TextPart


class Variant(StrEnum):
    """How questions are grouped into requests."""

    PER_QUESTION = "per-question"
    CUMULATIVE = "cumulative"
    GEMINI = "gemini"
    PER_IMAGE = "per-image"


@dataclass(frozen=True)
class PromptSettings:
    """What shapes the prompts of a run (recorded in run.json)."""

    variant: Variant = Variant.PER_QUESTION
    shots: int = 1
    similar_templates: bool = False
    blind: bool = False
    circular: bool = False
    max_tokens: int = 128


@dataclass(frozen=True)
class Extras:
    """What strategies add to an image's prompts."""

    knowledge: str | None = None
    expert_image: ImagePart | None = None
    expert_text: str = ""
    chain_of_thought: bool = False


def pose(question: Question, *, rotation: int = 0, circular: bool = False) -> PosedQuestion:
    """Re-letter the options by position (json order, rotated for circular evaluation); map the gold letter."""
    items = list(question.options.items())
    if rotation:
        items = items[rotation:] + items[:rotation]
    options = {LETTERS[i]: option_text for i, (_, option_text) in enumerate(items)}
    gold = next((LETTERS[i] for i, (letter, _) in enumerate(items) if letter == question.answer), question.answer)
    return PosedQuestion(
        question_id=question.id,
        image=question.image,
        question_type=question.type,
        text=question.stem,
        options=options,
        correct_answer=gold,
        number=question.index + 1,
        variant=f"rot{rotation}" if circular else "",
    )


def posed_questions(item: ImageItem, settings: PromptSettings) -> list[list[PosedQuestion]]:
    """Per question, the posings to ask: one, or one per rotation under circular evaluation."""
    out = []
    for question in item.questions:
        n = len(question.options) if settings.circular else 1
        out.append([pose(question, rotation=r, circular=settings.circular) for r in range(n)])
    return out


def _images(benchmark: Benchmark, item: ImageItem, settings: PromptSettings) -> tuple[list[ImagePart], ImagePart]:
    templates = [
        ImagePart(path=str(benchmark.resolve(path)), role="template")
        for path in item.templates(settings.shots, similar=settings.similar_templates)
    ]
    return templates, ImagePart(path=str(benchmark.resolve(item.key)), role="query")


def _knowledge_text(extras: Extras) -> str:
    return text.DOMAIN_KNOWLEDGE_PREFIX + extras.knowledge if extras.knowledge else ""


def _context_parts(templates: list[ImagePart], query: ImagePart, extras: Extras, blind: bool) -> list[Part]:
    """Instruction, knowledge, templates and query in the open-model scripts' layout."""
    lead = text.INSTRUCTION + _knowledge_text(extras)
    if blind:
        return [TextPart(text=lead + text.BLIND_HINT)]
    parts: list[Part] = []
    if templates:
        parts.append(TextPart(text=lead + text.template_sentence(len(templates)) + "\n"))
        parts.extend(templates)
        parts.append(TextPart(text="\n" + text.QUERY_SENTENCE + "\n"))
    else:
        parts.append(TextPart(text=lead + text.QUERY_SENTENCE + "\n"))
    parts.append(query)
    if extras.expert_image is not None:
        parts.append(TextPart(text=" " + extras.expert_text))
        parts.append(extras.expert_image)
    return parts


def _question_list(questions: list[PosedQuestion], *, numbered_by_position: bool = False) -> str:
    blocks = [
        text.question_block(i + 1 if numbered_by_position else q.number, q.text, q.options)
        for i, q in enumerate(questions)
    ]
    return "\n" + text.QUESTION_LIST_SENTENCE + "\n" + "".join(blocks) + "\n"


def _with_cot(context: list[Part], question_text: str, extras: Extras) -> tuple[Message, ...]:
    if extras.chain_of_thought:
        return (
            Message(role="user", parts=(*context, TextPart(text="\n" + text.COT_PROMPT))),
            Message(role="user", parts=(TextPart(text=question_text),)),
        )
    return (Message(role="user", parts=(*context, TextPart(text=question_text))),)


def _api_message(
    templates: list[ImagePart],
    query: ImagePart,
    instruction: str,
    questions_text: str,
    extras: Extras,
    blind: bool,
) -> Message:
    """GPT-4o / Gemini layout: images first, then one text made of sentences joined with no separator."""
    incontext = text.api_incontext(len(templates)) if templates else ""
    body = instruction + _knowledge_text(extras) + (text.BLIND_HINT if blind else "")
    body += incontext + text.API_QUERY_SENTENCE + text.API_QUESTION_LIST + "\n" + questions_text
    images: list[Part] = [] if blind else [*templates, query]
    if extras.expert_image is not None and not blind:
        images.append(extras.expert_image)
        body += " " + extras.expert_text
    return Message(role="user", parts=(*images, TextPart(text=body)))


def build_prompts(
    benchmark: Benchmark, item: ImageItem, settings: PromptSettings, extras: Extras | None = None
) -> list[Prompt]:
    """Every request needed to ask an image's questions under the chosen variant."""
    extras = extras or Extras()
    templates, query = _images(benchmark, item, settings)
    posings = posed_questions(item, settings)
    context = _context_parts(templates, query, extras, settings.blind)
    cot = extras.chain_of_thought
    prompts: list[Prompt] = []
    variant = settings.variant
    if variant is Variant.PER_QUESTION:
        for group in posings:
            for posed in group:
                prompts.append(
                    Prompt(
                        image=item.key,
                        messages=_with_cot(context, _question_list([posed]), extras),
                        questions=(posed,),
                        max_tokens=settings.max_tokens,
                        needs_preamble=cot,
                    )
                )
    elif variant is Variant.PER_IMAGE:
        for rotation in range(max((len(g) for g in posings), default=0)):
            batch = [group[rotation] for group in posings if rotation < len(group)]
            body = _question_list(batch, numbered_by_position=True) + text.PER_IMAGE_SUFFIX
            prompts.append(
                Prompt(
                    image=item.key,
                    messages=_with_cot(context, body, extras),
                    questions=tuple(batch),
                    answer_format="numbered-list",
                    max_tokens=max(settings.max_tokens, 16 * len(batch)),
                    needs_preamble=cot,
                )
            )
    elif variant is Variant.CUMULATIVE:
        for group_index, group in enumerate(posings):
            for posed in group:
                earlier = [g[0] for g in posings[:group_index]]
                blocks = "".join(text.question_block(None, q.text, q.options) for q in [*earlier, posed])
                message = _api_message(templates, query, text.INSTRUCTION_GPT4O, blocks, extras, settings.blind)
                prompts.append(
                    Prompt(
                        image=item.key,
                        messages=(message,),
                        questions=(posed,),
                        answer_format="last-letter",
                        max_tokens=settings.max_tokens,
                    )
                )
    elif variant is Variant.GEMINI:
        for rotation in range(max((len(g) for g in posings), default=0)):
            batch = [group[rotation] for group in posings if rotation < len(group)]
            if not batch:
                continue
            first, rest = batch[:1], batch[1:]
            for chunk, answer_format in ((first, "last-letter"), (rest, "numbered-list")):
                if not chunk:
                    continue
                blocks = "".join(text.question_block(None, q.text, q.options) for q in chunk)
                message = _api_message(templates, query, text.INSTRUCTION_GEMINI, blocks, extras, settings.blind)
                prompts.append(
                    Prompt(
                        image=item.key,
                        messages=(message,),
                        questions=tuple(chunk),
                        answer_format=answer_format,
                        max_tokens=max(settings.max_tokens, 16 * len(chunk)),
                    )
                )
    return prompts


def preamble_prompt(prompt: Prompt) -> Prompt:
    """The chain-of-thought turn of a prompt that needs one: its first message alone."""
    return Prompt(image=prompt.image, messages=prompt.messages[:1], questions=(), max_tokens=text.COT_MAX_TOKENS)


def with_preamble(prompt: Prompt, thoughts: str) -> Prompt:
    """The prompt with the model's chain-of-thought reply kept in the history."""
    first, *rest = prompt.messages
    reply = Message(role="assistant", parts=(TextPart(text=thoughts),))
    return prompt.model_copy(update={"messages": (first, reply, *rest), "needs_preamble": False})
