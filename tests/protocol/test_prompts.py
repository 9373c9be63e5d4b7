"""Each protocol variant's text and image order against what the official scripts send (§C)."""

from pathlib import Path

from mmad.data.official import load_benchmark
from mmad.protocol import official_text as T
from mmad.protocol.messages import ImagePart, TextPart
from mmad.protocol.prompts import Extras, PromptSettings, Variant, build_prompts, pose, preamble_prompt, with_preamble

KEY = "DS-MVTec/bottle/image/broken_large/001.png"


def _item(mmad_json: Path):
    bench = load_benchmark(mmad_json)
    return bench, bench.item(KEY)


def _layout(message) -> list[str]:
    return [p.role if isinstance(p, ImagePart) else "text" for p in message.parts]


def test_per_question_matches_the_internvl_script(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    prompts = build_prompts(bench, item, PromptSettings())
    assert len(prompts) == len(item.questions)
    third = prompts[2]
    (message,) = third.messages
    assert _layout(message) == ["text", "template", "text", "query", "text"]
    template, query = message.images
    assert template.path == str(bench.resolve(item.random_templates[0]))
    assert query.path == str(bench.resolve(KEY))
    texts = [p.text for p in message.parts if isinstance(p, TextPart)]
    # internvl_query.py: incontext + "\n <image>\n", then "\n" + query sentence + "\n" + "<image> "
    assert texts[0].startswith("\nYou are an industrial inspector who checks products by images.")
    assert texts[0].endswith(
        "Following is/are 1 image of normal sample, which can be used as a template to compare the image being "
        "queried.\n "
    )
    assert texts[1] == "\n\nFollowing is the query image: \n"
    # The question keeps its number in the conversation even when asked alone; a "\n" follows it.
    assert texts[2] == (
        " \nFollowing is the question list. Answer with the option's letter from the given choices directly: \n"
        "Question 3: There is a defect in the object. Where is the defect? \n"
        "A. At the bottom\nB. Around the edges\nC. Around the center\nD. Top left\n\n"
    )
    assert third.questions[0].correct_answer == "B"


def test_shots_and_similar_templates(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    zero = build_prompts(bench, item, PromptSettings(shots=0))[0].messages[0]
    assert _layout(zero) == ["text", "query", "text"]
    assert "template" not in zero.parts[0].text
    three = build_prompts(bench, item, PromptSettings(shots=3, similar_templates=True))[0].messages[0]
    assert [p.path for p in three.images[:3]] == [str(bench.resolve(t)) for t in item.similar_templates[:3]]
    assert "Following is/are 3 image of normal sample" in three.parts[0].text


def test_cumulative_matches_the_gpt4o_script(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    prompts = build_prompts(bench, item, PromptSettings(variant=Variant.CUMULATIVE))
    assert len(prompts) == 5
    (message,) = prompts[2].messages
    assert _layout(message) == ["template", "query", "text"]
    body = message.parts[-1].text
    assert body.startswith(T.INSTRUCTION_GPT4O)
    assert "directly!\n\nFinally, you should output a list of answer" in body
    # Sentences joined with no separator, exactly as upstream:
    assert (
        "The first 1 image is the normal sample, which can be used as a template to compare."
        "The last image is the query imageFollowing is the question list: \n"
    ) in body
    assert body.count("Question: ") == 3 and "Question 1" not in body
    # gpt4o.py adds "\n" after every question (conversation_text += q['text'] + '\n')
    assert "B. No.\n\nQuestion: There is a defect" in body
    assert body.endswith(
        "Question: There is a defect in the object. Where is the defect? \n"
        "A. At the bottom\nB. Around the edges\nC. Around the center\nD. Top left\n\n"
    )
    assert prompts[2].answer_format == "last-letter"
    assert [q.question_id for q in prompts[2].questions] == [f"{KEY}#2"]


def test_gemini_asks_the_first_question_alone_then_the_rest(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    first, rest = build_prompts(bench, item, PromptSettings(variant=Variant.GEMINI))
    assert len(first.questions) == 1 and len(rest.questions) == 4
    assert first.messages[0].parts[-1].text.startswith(T.INSTRUCTION_GEMINI)
    assert first.messages[0].parts[-1].text.endswith("A. Yes.\nB. No.\n\n")
    assert rest.answer_format == "numbered-list"
    assert rest.messages[0].parts[-1].text.count("Question: ") == 4
    assert rest.messages[0].parts[-1].text.count("\n\nQuestion: ") == 3  # a "\n" after every question


def test_cumulative_context_does_not_depend_on_what_is_asked(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    everything = build_prompts(bench, item, PromptSettings(variant=Variant.CUMULATIVE))
    third = f"{KEY}#2"
    (only,) = build_prompts(bench, item, PromptSettings(variant=Variant.CUMULATIVE), asked={third})
    assert only == everything[2]  # questions 1 and 2 are still shown before question 3
    assert only.messages[0].parts[-1].text.count("Question: ") == 3
    gpt4v = build_prompts(bench, item, PromptSettings(variant=Variant.SYSTEM_CUMULATIVE), asked={third})
    assert len(gpt4v) == 1 and gpt4v[0].messages[1].text.count("Question ") == 3
    # Gemini: asking question 4 sends the whole "rest" request, as the script does
    (rest,) = build_prompts(bench, item, PromptSettings(variant=Variant.GEMINI), asked={f"{KEY}#3"})
    assert [q.question_id for q in rest.questions] == [f"{KEY}#{i}" for i in range(1, 5)]
    single = build_prompts(bench, item, PromptSettings(), asked={third, f"{KEY}#4"})
    assert [p.questions[0].question_id for p in single] == [third, f"{KEY}#4"]
    assert build_prompts(bench, item, PromptSettings(variant=Variant.PER_IMAGE), asked=set()) == []


def test_gpt4o_mini_and_gpt4v_variants(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    mini = build_prompts(bench, item, PromptSettings(variant=Variant.API_PER_QUESTION))
    assert len(mini) == 5
    body = mini[3].messages[0].parts[-1].text
    assert body.startswith(T.INSTRUCTION_GPT4O_MINI) and "directly.\n\nFinally" in body
    assert body.endswith(
        "\nQuestion 4: There is a defect in the object. What is the appearance of the defect? \n"
        "A. A dark spot.\nB. A bright line.\nC. A missing piece.\nD. A bent edge.\n\n"
    )
    system, user = build_prompts(bench, item, PromptSettings(variant=Variant.SYSTEM_CUMULATIVE))[1].messages
    assert system.role == "system" and system.text == T.INSTRUCTION
    assert [p.text if isinstance(p, TextPart) else p.role for p in user.parts] == [
        "Following is 1 image of normal sample, which can be used as a template to compare.",
        "template",
        "Following is the query image: ",
        "query",
        "Following is the question list: ",
        "Question 1: Is there any defect in the object? \nA. Yes.\nB. No.\n",
        "Question 2: There is a defect in the object. What is the type of the defect? \n"
        "A. A scratch.\nB. Contamination.\nC. A large break.\nD. A crack.\n",
    ]


def test_per_image_asks_everything_once(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    (prompt,) = build_prompts(bench, item, PromptSettings(variant=Variant.PER_IMAGE))
    assert len(prompt.questions) == 5 and prompt.answer_format == "numbered-list"
    body = prompt.messages[0].parts[-1].text
    assert [f"Question {i}:" in body for i in range(1, 6)] == [True] * 5
    assert body.endswith(T.PER_IMAGE_SUFFIX)
    assert len(prompt.messages[0].images) == 2  # the images are sent once for five questions


def test_blind_baseline_sends_no_image(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    for variant in Variant:
        for prompt in build_prompts(bench, item, PromptSettings(variant=variant, blind=True)):
            assert all(not m.images for m in prompt.messages)
            assert T.BLIND_HINT in "".join(m.text for m in prompt.messages)


def test_relettering_and_circular_rotation(mmad_json: Path) -> None:
    _, item = _item(mmad_json)
    question = item.questions[1]  # gold C = "A large break."
    rotated = pose(question, rotation=1, circular=True)
    assert list(rotated.options.values()) == ["Contamination.", "A large break.", "A crack.", "A scratch."]
    assert rotated.correct_answer == "B" and rotated.variant == "rot1"
    assert pose(question).correct_answer == "C"


def test_rag_and_cot_extras(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    prompt = build_prompts(bench, item, PromptSettings(), Extras(knowledge="KNOW", chain_of_thought=True))[0]
    assert prompt.needs_preamble
    assert prompt.messages[0].parts[0].text.startswith(T.INSTRUCTION + T.DOMAIN_KNOWLEDGE_PREFIX + "KNOW")
    pre = preamble_prompt(prompt)
    assert (
        pre.messages[0]
        .parts[-1]
        .text.endswith(
            "Following is the question list. Answer with the option's letter from the given choices directly: \n"
            + T.COT_PROMPT
            + "\n"
        )
    )
    assert "in 100 words. Notice that" in T.COT_PROMPT  # one line, as internvl_query.py has it
    assert pre.max_tokens == 256
    full = with_preamble(prompt, "thoughts")
    assert [m.role for m in full.messages] == ["user", "assistant", "user"]
    assert full.messages[1].text == "thoughts" and not full.needs_preamble
    # the question turn re-sends the context; InternVL's images stay with the first turn
    assert not full.messages[2].images and full.messages[2].text.count("<image>") == 2
    assert full.messages[2].text.startswith(T.INSTRUCTION + T.DOMAIN_KNOWLEDGE_PREFIX + "KNOW")
