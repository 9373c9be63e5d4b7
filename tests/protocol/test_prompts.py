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


def test_per_question_matches_the_open_model_scripts(mmad_json: Path) -> None:
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
    assert texts[0] == T.INSTRUCTION + T.template_sentence(1) + "\n"
    assert texts[0].startswith("\nYou are an industrial inspector who checks products by images.")
    assert "Following is/are 1 image of normal sample" in texts[0]
    assert texts[1] == "\nFollowing is the query image: \n"
    # The question keeps its number in the conversation even when asked alone.
    assert texts[2] == (
        "\nFollowing is the question list. Answer with the option's letter from the given choices directly: \n"
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
    assert body.endswith(
        "Question: There is a defect in the object. Where is the defect? \n"
        "A. At the bottom\nB. Around the edges\nC. Around the center\nD. Top left\n"
    )
    assert prompts[2].answer_format == "last-letter"
    assert [q.question_id for q in prompts[2].questions] == [f"{KEY}#2"]


def test_gemini_asks_the_first_question_alone_then_the_rest(mmad_json: Path) -> None:
    bench, item = _item(mmad_json)
    first, rest = build_prompts(bench, item, PromptSettings(variant=Variant.GEMINI))
    assert len(first.questions) == 1 and len(rest.questions) == 4
    assert first.messages[0].parts[-1].text.startswith(T.INSTRUCTION_GEMINI)
    assert rest.answer_format == "numbered-list"
    assert rest.messages[0].parts[-1].text.count("Question: ") == 4


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
    assert pre.messages[0].parts[-1].text.endswith(T.COT_PROMPT) and pre.max_tokens == 256
    full = with_preamble(prompt, "thoughts")
    assert [m.role for m in full.messages] == ["user", "assistant", "user"]
    assert full.messages[1].text == "thoughts" and not full.needs_preamble
    assert not full.messages[2].images
