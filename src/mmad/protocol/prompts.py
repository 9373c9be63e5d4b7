"""How an image's questions become requests: the official MMAD prompts and mmad's variants.

Each official variant rebuilds one script's request text byte for byte (the strings are in
`official_text`; the spec is docs/protocol.md):

- ``per-question`` (default): ``Transformers/internvl_query.py``: one question per request, the
  instruction, template sentence, templates, query and question list around the images exactly as
  that script's ``<image>`` placeholders sit in its text.
- ``cumulative``: ``GPT4/gpt4o.py``: request i holds questions 1..i; the last letter answers i.
- ``gemini``: ``Gemini/gemini_query.py``: question 1 alone, then all the rest in one request.
- ``api-per-question``: ``GPT4/gpt4o-mini.py``: one question per request ("Question k"), images
  first, the API-style text.
- ``system-cumulative``: ``GPT4/gpt4v.py``: the instruction as a system message, then cumulative
  questions, each its own text part.
- ``per-image`` (mmad's own): all of an image's questions in one request, answered as a numbered list.

`build_prompts` always sees all of an image's questions (the context of the cumulative variants);
``asked`` chooses which of them get prompts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mmad.data.schema import LETTERS, Benchmark, ImageItem, Question
from mmad.errors import ConfigError
from mmad.protocol import official_text as text
from mmad.protocol.messages import AnswerFormat, ImagePart, Message, Part, PosedQuestion, Prompt, TextPart


class Variant(StrEnum):
    """How questions are grouped into requests."""

    PER_QUESTION = "per-question"
    CUMULATIVE = "cumulative"
    GEMINI = "gemini"
    PER_IMAGE = "per-image"
    API_PER_QUESTION = "api-per-question"
    SYSTEM_CUMULATIVE = "system-cumulative"


# The variants with a chain-of-thought turn: the official one (internvl_query.py) and per-image,
# which keeps the same turn structure. The official code made CoT with no other request shape.
COT_VARIANTS = frozenset({Variant.PER_QUESTION, Variant.PER_IMAGE})
# The variants whose scripts send each option under its json letter, in the json's order.
FILE_LETTER_VARIANTS = frozenset({Variant.CUMULATIVE, Variant.API_PER_QUESTION, Variant.GEMINI})


@dataclass(frozen=True)
class PromptSettings:
    """What shapes the prompts of a run (recorded in run.json). ``max_tokens=None`` leaves the limit out."""

    variant: Variant = Variant.PER_QUESTION
    shots: int = 1
    similar_templates: bool = False
    blind: bool = False
    circular: bool = False
    max_tokens: int | None = 128
    # With chain of thought, each question also carries the earlier questions and replies of its image:
    # internvl_query.py hands chat() the CoT turn's history list, which chat() extends in place.
    cot_history: bool = False


@dataclass(frozen=True)
class Extras:
    """What strategies add to an image's prompts."""

    knowledge: str | None = None
    expert_image: ImagePart | None = None
    expert_text: str = ""
    chain_of_thought: bool = False


def check_settings(settings: PromptSettings, *, chain_of_thought: bool) -> None:
    """Refuse combinations the protocol does not define (call it before a run starts)."""
    variant = Variant(settings.variant)
    if chain_of_thought and variant not in COT_VARIANTS:
        msg = (
            f"--strategies cot is not defined for --protocol {variant.value}: the official code has a "
            "chain-of-thought turn only in Transformers/internvl_query.py (per-question); use --protocol "
            "per-question or per-image, or drop cot"
        )
        raise ConfigError(msg)


def pose(question: Question, *, rotation: int = 0, circular: bool = False, file_letters: bool = False) -> PosedQuestion:
    """The options as asked, and the gold letter among them.

    Options are re-lettered by position (json order, rotated for circular evaluation), as
    ``GPT4/gpt4v.py``'s ``parse_conversation`` does (and InternVL's script, which imports it).
    ``file_letters`` keeps the file's letters in the file's order instead, as ``GPT4/gpt4o.py``,
    ``GPT4/gpt4o-mini.py`` and ``Gemini/gemini_query.py`` send them: ``{"B": ..., "A": ...}`` goes
    out as "B. ..." then "A. ...".
    """
    if file_letters and not circular and not rotation:
        return PosedQuestion(
            question_id=question.id,
            image=question.image,
            question_type=question.type,
            text=question.stem,
            options=dict(question.options),
            correct_answer=question.answer,
            number=question.index + 1,
            variant="",
        )
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
    file_letters = Variant(settings.variant) in FILE_LETTER_VARIANTS
    for question in item.questions:
        n = len(question.options) if settings.circular else 1
        out.append(
            [pose(question, rotation=r, circular=settings.circular, file_letters=file_letters) for r in range(n)]
        )
    return out


def _images(benchmark: Benchmark, item: ImageItem, settings: PromptSettings) -> tuple[list[ImagePart], ImagePart]:
    templates = [
        ImagePart(path=str(benchmark.resolve(path)), role="template")
        for path in item.templates(settings.shots, similar=settings.similar_templates)
    ]
    return templates, ImagePart(path=str(benchmark.resolve(item.key)), role="query")


def _knowledge_text(extras: Extras) -> str:
    return text.DOMAIN_KNOWLEDGE_PREFIX + extras.knowledge if extras.knowledge else ""


def _merged(parts: Sequence[Part]) -> tuple[Part, ...]:
    """Adjacent text parts joined (empty ones dropped): a request's parts are the official ones, no more."""
    out: list[Part] = []
    for part in parts:
        if isinstance(part, TextPart):
            if not part.text:
                continue
            if out and isinstance(out[-1], TextPart):
                out[-1] = TextPart(text=out[-1].text + part.text)
                continue
        out.append(part)
    return tuple(out)


def _budget(max_tokens: int | None, n_questions: int) -> int | None:
    """A request holding several questions gets at least 16 tokens each; None stays None (left out)."""
    return None if max_tokens is None else max(max_tokens, 16 * n_questions)


# -- Transformers/internvl_query.py (per-question, per-image) --------------------------------------


def _internvl_context(templates: list[ImagePart], query: ImagePart, extras: Extras, blind: bool) -> list[Part]:
    """Everything before the question list, with the images where internvl_query.py puts `<image>`."""
    head = text.INSTRUCTION + _knowledge_text(extras)
    if blind:  # mmad's own: the LLaVA/Cambrian text-only hint in this layout
        return [TextPart(text=head + text.BLIND_HINT)]
    parts: list[Part] = []
    if templates:
        # incontext = sentence + "\n <image>\n" per template; then "\n" + query sentence + "\n" + "<image> "
        parts.append(TextPart(text=head + text.template_sentence(len(templates)) + "\n "))
        for index, template in enumerate(templates):
            if index:
                parts.append(TextPart(text="\n\n "))
            parts.append(template)
        parts.append(TextPart(text="\n\n" + text.QUERY_SENTENCE + "\n"))
    else:
        parts.append(TextPart(text=head + "\n" + text.QUERY_SENTENCE + "\n"))
    parts.append(query)
    parts.append(TextPart(text=" "))
    if extras.expert_image is not None:
        parts.append(TextPart(text=extras.expert_text))
        parts.append(extras.expert_image)
    return parts


def _question_list(questions: list[PosedQuestion], *, numbered_by_position: bool = False) -> str:
    """The question-list sentence and each question block followed by "\\n" (internvl_query.py)."""
    blocks = [
        text.question_block(i + 1 if numbered_by_position else q.number, q.text, q.options) + "\n"
        for i, q in enumerate(questions)
    ]
    return "\n" + text.QUESTION_LIST_SENTENCE + "\n" + "".join(blocks)


def _with_placeholders(parts: Sequence[Part]) -> str:
    """The context as the text of a later turn: each image is the literal `<image>` InternVL's chat() leaves."""
    return "".join(p.text if isinstance(p, TextPart) else text.IMAGE_PLACEHOLDER for p in parts)


def _internvl_messages(context: list[Part], questions_text: str, cot: bool) -> tuple[Message, ...]:
    """One user turn; with chain of thought the official two: the CoT turn, then the question turn.

    The CoT turn is the context, the question-list sentence and the CoT text. The question turn
    re-sends the whole context as internvl_query.py does; its images reach the model as literal
    ``<image>`` text, because InternVL's chat() gives the images to the first placeholders of the
    conversation (the CoT turn's). The reply to the CoT turn goes between them (`with_preamble`).
    """
    question_turn = Message(role="user", parts=_merged([*context, TextPart(text=questions_text)]))
    if not cot:
        return (question_turn,)
    cot_text = "\n" + text.QUESTION_LIST_SENTENCE + "\n" + text.COT_PROMPT + "\n"
    cot_turn = Message(role="user", parts=_merged([*context, TextPart(text=cot_text)]))
    later = Message(role="user", parts=(TextPart(text=_with_placeholders(context) + questions_text),))
    return (cot_turn, later)


# -- GPT4/gpt4o.py, GPT4/gpt4o-mini.py, Gemini/gemini_query.py -------------------------------------


def _api_message(
    templates: list[ImagePart],
    query: ImagePart,
    instruction: str,
    questions_text: str,
    extras: Extras,
    blind: bool,
) -> Message:
    """Images first, then one text of sentences joined with no separator."""
    incontext = text.api_incontext(len(templates)) if templates and not blind else ""
    body = instruction + _knowledge_text(extras) + (text.BLIND_HINT if blind else "")
    body += incontext + text.API_QUERY_SENTENCE + text.API_QUESTION_LIST + "\n" + questions_text
    images: list[Part] = [] if blind else [*templates, query]
    if extras.expert_image is not None and not blind:  # mmad's own: no API script has an agent
        images.append(extras.expert_image)
        body += " " + extras.expert_text
    return Message(role="user", parts=(*images, TextPart(text=body)))


def _api_questions(questions: Sequence[PosedQuestion], *, numbered: bool) -> str:
    """Each question block followed by "\\n"; "Question k:" (gpt4o-mini.py) or "Question:" (gpt4o.py, Gemini)."""
    return "".join(text.question_block(q.number if numbered else None, q.text, q.options) + "\n" for q in questions)


# -- GPT4/gpt4v.py ----------------------------------------------------------------------------------


def _gpt4v_messages(
    templates: list[ImagePart], query: ImagePart, questions: Sequence[PosedQuestion], extras: Extras, blind: bool
) -> tuple[Message, ...]:
    """A system message with the instruction; the user content as gpt4v.py's separate parts."""
    parts: list[Part] = []
    if extras.knowledge:  # mmad's own: gpt4v.py has no RAG
        parts.append(TextPart(text=_knowledge_text(extras)))
    if blind:
        parts.append(TextPart(text=text.BLIND_HINT))
    else:
        if templates:
            parts.append(TextPart(text=text.gpt4v_incontext(len(templates))))
            parts.extend(templates)
        parts += [TextPart(text=text.GPT4V_QUERY_SENTENCE), query]
        if extras.expert_image is not None:  # mmad's own
            parts += [TextPart(text=extras.expert_text), extras.expert_image]
    parts.append(TextPart(text=text.GPT4V_QUESTION_LIST))
    parts += [TextPart(text=text.question_block(q.number, q.text, q.options)) for q in questions]
    return (
        Message(role="system", parts=(TextPart(text=text.INSTRUCTION),)),
        Message(role="user", parts=tuple(parts)),
    )


def build_prompts(
    benchmark: Benchmark,
    item: ImageItem,
    settings: PromptSettings,
    extras: Extras | None = None,
    asked: Collection[str] | None = None,
) -> list[Prompt]:
    """Every request needed to ask an image's questions under the chosen variant.

    ``item`` holds all of the image's questions: the cumulative variants show the earlier ones as
    context whatever is asked. ``asked`` (question ids; None = all) chooses which questions get a
    prompt. A Gemini "rest" request carries all its questions, asked or not, so that the reply's
    list positions stay right; the runner keeps the records of the asked ones.
    """
    extras = extras or Extras()
    check_settings(settings, chain_of_thought=extras.chain_of_thought)
    wanted = None if asked is None else set(asked)

    def is_asked(posed: PosedQuestion) -> bool:
        return wanted is None or posed.question_id in wanted

    templates, query = _images(benchmark, item, settings)
    posings = posed_questions(item, settings)
    cot = extras.chain_of_thought
    variant = Variant(settings.variant)
    prompts: list[Prompt] = []

    def add(
        messages: tuple[Message, ...],
        questions: Sequence[PosedQuestion],
        *,
        max_tokens: int | None,
        answer_format: AnswerFormat = "single",
        needs_preamble: bool = False,
        after: tuple[str, str] | None = None,
    ) -> None:
        prompts.append(
            Prompt(
                image=item.key,
                messages=messages,
                questions=tuple(questions),
                answer_format=answer_format,
                max_tokens=max_tokens,
                needs_preamble=needs_preamble,
                carries_history=needs_preamble and settings.cot_history,
                after=after,
            )
        )

    if variant in {Variant.PER_QUESTION, Variant.PER_IMAGE}:
        context = _internvl_context(templates, query, extras, settings.blind)
        if variant is Variant.PER_QUESTION:
            # One chain per rotation: under --circular a rotation must not carry the model's reply to
            # another rotation of the same question (its answer, under other letters).
            previous: dict[int, tuple[str, str]] = {}
            for group in posings:
                for rotation, posed in enumerate(group):
                    if is_asked(posed):
                        turns = _internvl_messages(context, _question_list([posed]), cot)
                        after = previous.get(rotation)
                        add(turns, [posed], max_tokens=settings.max_tokens, needs_preamble=cot, after=after)
                        previous[rotation] = posed.key
        else:
            for rotation in range(max((len(g) for g in posings), default=0)):
                batch = [g[rotation] for g in posings if rotation < len(g) and is_asked(g[rotation])]
                if batch:
                    body = _question_list(batch, numbered_by_position=True) + text.PER_IMAGE_SUFFIX
                    add(
                        _internvl_messages(context, body, cot),
                        batch,
                        answer_format="numbered-list",
                        max_tokens=_budget(settings.max_tokens, len(batch)),
                        needs_preamble=cot,
                    )
    elif variant in {Variant.CUMULATIVE, Variant.SYSTEM_CUMULATIVE}:
        for index, group in enumerate(posings):
            earlier = [g[0] for g in posings[:index]]
            for posed in group:
                if not is_asked(posed):
                    continue
                shown = [*earlier, posed]
                if variant is Variant.CUMULATIVE:
                    body = _api_questions(shown, numbered=False)
                    messages: tuple[Message, ...] = (
                        _api_message(templates, query, text.INSTRUCTION_GPT4O, body, extras, settings.blind),
                    )
                else:
                    messages = _gpt4v_messages(templates, query, shown, extras, settings.blind)
                add(messages, [posed], answer_format="last-letter", max_tokens=settings.max_tokens)
    elif variant is Variant.API_PER_QUESTION:
        for group in posings:
            for posed in group:
                if is_asked(posed):
                    body = _api_questions([posed], numbered=True)
                    message = _api_message(templates, query, text.INSTRUCTION_GPT4O_MINI, body, extras, settings.blind)
                    add((message,), [posed], answer_format="last-letter", max_tokens=settings.max_tokens)
    elif variant is Variant.GEMINI:
        for rotation in range(max((len(g) for g in posings), default=0)):
            batch = [g[rotation] for g in posings if rotation < len(g)]
            first, rest = batch[:1], batch[1:]
            chunks: tuple[tuple[list[PosedQuestion], AnswerFormat], ...] = (
                (first, "last-letter"),
                (rest, "numbered-list"),
            )
            for chunk, answer_format in chunks:
                if not any(is_asked(q) for q in chunk):
                    continue
                body = _api_questions(chunk, numbered=False)
                message = _api_message(templates, query, text.INSTRUCTION_GEMINI, body, extras, settings.blind)
                add(
                    (message,),
                    chunk,
                    answer_format=answer_format,
                    max_tokens=_budget(settings.max_tokens, len(chunk)),
                )
    return prompts


def preamble_prompt(prompt: Prompt) -> Prompt:
    """The chain-of-thought turn of a prompt that needs one: its first message alone."""
    return Prompt(image=prompt.image, messages=prompt.messages[:1], questions=(), max_tokens=text.COT_MAX_TOKENS)


def with_preamble(prompt: Prompt, thoughts: str, history: Sequence[tuple[Message, str]] = ()) -> Prompt:
    """The prompt with the model's chain-of-thought reply kept in the history, then (``carries_history``)
    each earlier question's turn and its reply, in the order they were asked."""
    first, *rest = prompt.messages
    turns: list[Message] = [Message(role="assistant", parts=(TextPart(text=thoughts),))]
    for asked, reply in history:
        turns += [asked, Message(role="assistant", parts=(TextPart(text=reply),))]
    return prompt.model_copy(update={"messages": (first, *turns, *rest), "needs_preamble": False})
