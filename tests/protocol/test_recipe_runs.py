"""Recipe runs end to end with a scripted model: how each official script reads its replies and
what its scoring policy makes of them (Gemini's dropped images, LLaVA's first letter)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mmad.api import evaluate_async
from mmad.models.base import Completion, Model, Request
from mmad.records.record import Record, read_records
from mmad.run.config import RunConfig
from mmad.score.answers import graded_from_records
from mmad.score.table import ScoreTable, score_answers

BASE_URL = "http://127.0.0.1:9/v1"  # never reached: the model is given in-process


class Scripted(Model):
    """Replies what a function of the request says."""

    name = "scripted"

    def __init__(self, reply: Callable[[Request], str]) -> None:
        self.reply = reply

    async def generate(self, request: Request) -> Completion:
        return Completion(text=self.reply(request))


def _run(mmad_json: Path, out: Path, model: Model, **settings: object) -> list[Record]:
    config = RunConfig.from_flat("compat:scripted", str(mmad_json), **{"cache": False, "concurrency": 1, **settings})
    asyncio.run(evaluate_async(config, out=out, model=model))
    return read_records(out / "records.jsonl")


def _figures(table: ScoreTable) -> tuple[object, ...]:
    return (table.n_counted, table.n_skipped, table.average_cells, [(r.name, r.cells) for r in table.rows])


def cot_model(seen: list[Request], *, quote_prompt: bool = False) -> Scripted:
    """A model that keeps each request in ``seen`` and answers the CoT turn (no question) "thoughts" and each
    question "reply to <question id>", followed, with ``quote_prompt``, by " as " and the prompt's tail."""

    def reply(request: Request) -> str:
        seen.append(request)
        if not request.question_ids:
            return "thoughts"
        text = f"reply to {request.question_ids[0]}"
        return f"{text} as {request.messages[-1].text[-40:]!r}" if quote_prompt else text

    return Scripted(reply)


def test_llava_reads_the_first_letter(mmad_json: Path, tmp_path: Path) -> None:
    """LLaVA_Query/llava_query.py keeps parse_answer(...)[0], the first standalone letter; the other
    scripts keep the last."""
    model = Scripted(lambda request: "A or B? B")
    llava = _run(mmad_json, tmp_path / "llava", model, recipe="llava", base_url=BASE_URL, limit=3)
    internvl = _run(mmad_json, tmp_path / "internvl", model, recipe="internvl", base_url=BASE_URL, limit=3)
    assert {r.answer for r in llava} == {"A"}
    assert {r.answer for r in internvl} == {"B"}


def test_gemini_drops_the_whole_image_when_the_second_reply_miscounts(mmad_json: Path, tmp_path: Path) -> None:
    """Gemini/gemini_query.py: when the second reply's standalone letters are not one per question,
    the script drops the image, question 1 included, and writes none of its answers. Under the
    upstream policy the image is left out whole, so the table is the one the script's answers make;
    question 1 of the next image is not skipped."""
    dropped: list[str] = []

    def reply(request: Request) -> str:
        if len(request.choices) == 1:
            return "B"
        image = request.question_ids[0].rsplit("#", 1)[0]
        if not dropped:
            dropped.append(image)
            return "A"  # one letter for several questions
        return "\n".join(f"{i}. {options[-1]}" for i, options in enumerate(request.choices, start=1))

    records = _run(mmad_json, tmp_path / "gemini", Scripted(reply), recipe="gemini", base_url=BASE_URL)
    (image,) = dropped
    rest = [r for r in records if r.image == image and not r.question_id.endswith("#0")]
    assert rest and all(r.answer is None and r.parse_method == "upstream-dropped-image" for r in rest)
    graded = graded_from_records(records)
    assert any(a.image == image and a.answer for a in graded)  # mmad keeps question 1's letter (strict)
    upstream = score_answers(graded, "upstream")
    as_the_script_wrote_them = score_answers([a for a in graded if a.image != image], "upstream")
    assert _figures(upstream) == _figures(as_the_script_wrote_them)
    assert any("every answer of 1 image left out" in note for note in upstream.notes)
    (answers_json,) = (tmp_path / "gemini").glob("answers_*_shot_*.json")
    written = {r["image"] for r in json.loads(answers_json.read_text())}
    assert image not in written and len(written) == len({a.image for a in graded}) - 1


def test_a_recipe_run_is_scored_under_its_published_rows_policy(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The published gpt-4o row was computed by helper/summary.py: `--recipe gpt4o`'s headline, its
    files and `mmad score` of the run use the upstream policy and say so; without a recipe, strict."""
    from mmad.cli import main

    model = Scripted(lambda request: "B")
    out = tmp_path / "gpt4o"
    config = RunConfig.from_flat("compat:scripted", str(mmad_json), cache=False, recipe="gpt4o", base_url=BASE_URL)
    result = asyncio.run(evaluate_async(config, out=out, model=model))
    assert result.table.policy.value == "upstream"
    assert "gpt4o recipe" in result.table.notes[0]
    assert json.loads((out / "scores.json").read_text())["policy"] == "upstream"
    assert result.card["scoring"].startswith("upstream, as the gpt4o recipe's published rows")
    written = (out / "scores.json").read_text()
    assert main(["score", str(out), "--no-plot"]) == 0
    assert "upstream policy, the one behind the gpt4o recipe's published rows" in capsys.readouterr().out
    assert (out / "scores.json").read_text() == written  # the same files as `mmad eval` wrote
    assert main(["score", str(out), "--no-plot", "--policy", "strict"]) == 0
    assert json.loads((out / "strict_scores.json").read_text())["policy"] == "strict"
    plain = asyncio.run(
        evaluate_async(
            RunConfig.from_flat("compat:scripted", str(mmad_json), cache=False), out=tmp_path / "p", model=model
        )
    )
    assert plain.table.policy.value == "strict" and plain.card["scoring"] == "strict (upstream beside it)"


def test_official_debug_is_the_scripts_debug_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Transformers/internvl_query.py (the only released script with it) under --debug: random.seed(1), then
    random.sample(list(chat_ad.keys()), 1600); the answers file gets "_Debug". The images are asked in
    the sample's order, so the answers file is in that order too, and the order matters to the numbers:
    helper/summary.py removes answers without a letter while iterating, skipping the answer after each,
    and after an image's last question that is the next image *in the file's order* of answers."""
    import random

    from mmad.cli import main
    from mmad.data.official import load_benchmark
    from mmad.protocol.prompts import PromptSettings
    from mmad.run.naming import answers_file_name
    from mmad.run.plan import select_questions

    qa = {"Question": "Is there any defect?", "Options": {"A": "Yes.", "B": "No."}, "Answer": "B"}
    keys = [f"VisA/candle/test/{'good' if i % 3 else 'bad'}/{i:04d}.JPG" for i in range(1700)]
    data = {
        key: {"mask_path": "", "random_templates": [], "conversation": [{**qa, "type": "Anomaly Detection"}]}
        for key in keys
    }
    (tmp_path / "mmad.json").write_text(json.dumps(data))
    benchmark = load_benchmark(tmp_path / "mmad.json")
    config = RunConfig.from_flat("random", str(tmp_path), subset="official-debug")
    selection = select_questions(benchmark, config.selection, PromptSettings())
    random.seed(1)
    expected = random.sample(list(data.keys()), 1600)
    assert [s.item.key for s in selection.items] == expected
    assert [key[0].split("#")[0] for key in selection.keys] == expected
    assert answers_file_name(config) == "answers_1_shot_random_Debug.json"
    small = {key: data[key] for key in keys[:10]}
    (tmp_path / "small.json").write_text(json.dumps(small))
    assert main(["eval", "-m", "random", "-d", str(tmp_path / "small.json"), "--subset", "official-debug"]) == 2
    assert "1,600 images" in capsys.readouterr().err


def test_the_snapshot_the_provider_reports_is_recorded_beside_the_alias(mmad_json: Path, tmp_path: Path) -> None:
    """A published row names a snapshot (gpt-4o-2024-08-06); the response's model field says which one
    answered an alias. It goes into every record and, counted, into run.json beside config.model."""
    from mmad.cli import main
    from tests.helpers.serving import running_server

    out = tmp_path / "run"
    with running_server() as server:  # answers as the model "random", whatever was asked for
        args = ["eval", "-m", "compat:gpt-4o", "-d", str(mmad_json), "--recipe", "gpt4o", "--limit", "3"]
        assert main([*args, "--base-url", server.base_url, "--out", str(out), "--no-cache"]) == 0
    records = read_records(out / "records.jsonl")
    assert {r.extra.get("model_snapshot") for r in records} == {"random"}
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["model"] == "compat:gpt-4o" and meta["model_snapshots"] == {"random": 3}


def test_a_server_backend_is_told_what_it_will_not_honour(mmad_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Transformers/internvl_query.py loads one 448-px tile per image (load_image(max_num=1)); a vLLM
    server tiles its own way and mmad cannot reach its processor. The dry run and the card say so;
    an in-process model, or a recipe with nothing to say, gets no caveat."""
    from mmad.cli import main
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import StrategySet
    from mmad.run.card import protocol_card

    args = ["eval", "-d", str(mmad_json), "--recipe", "internvl", "--dry-run"]
    assert main([*args, "-m", "vllm:OpenGVLab/InternVL2-8B"]) == 0
    err = capsys.readouterr().err
    assert "asked over HTTP" in err and "max_dynamic_patch" in err
    assert main([*args, "-m", "random"]) == 0
    assert "asked over HTTP" not in capsys.readouterr().err
    benchmark = load_benchmark(mmad_json)

    def card(model: str, recipe: str) -> dict[str, object]:
        return protocol_card(RunConfig.from_flat(model, str(mmad_json), recipe=recipe), benchmark, StrategySet())

    served = card("vllm:OpenGVLab/InternVL2-8B", "internvl")
    assert "max_dynamic_patch" in str(served["server_not_honoured"])
    assert "server_not_honoured" not in card("random", "internvl")
    assert "server_not_honoured" not in card("openai:gpt-4o", "gpt4o")


def test_internvl_with_cot_carries_each_images_earlier_questions(mmad_json: Path, tmp_path: Path) -> None:
    """Transformers/internvl_query.py with --CoT: the CoT turn's history list goes to every chat() call,
    and chat() appends each question and reply to it, so question k is sent after the CoT turn with
    questions 1..k-1 and their replies (question 2: user, assistant, user, assistant, user), even
    without --record_history. mmad's own cot sends three messages."""
    seen: list[Request] = []
    model = cot_model(seen)
    records = _run(
        mmad_json, tmp_path / "r", model, recipe="internvl", base_url=BASE_URL, strategies=["cot"], concurrency=8
    )
    assert records and all(r.status.value in {"answered", "unparsed"} for r in records)
    by_id = {r.question_ids[0]: r for r in seen if r.question_ids}
    image = records[0].image
    ids = sorted((q for q in by_id if q.startswith(image + "#")), key=lambda q: int(q.rsplit("#", 1)[1]))
    assert len(ids) >= 3
    for k, qid in enumerate(ids):
        messages = by_id[qid].messages
        assert [m.role for m in messages] == ["user", "assistant"] + ["user", "assistant"] * k + ["user"]
        assert messages[1].text == "thoughts"
        for j in range(k):
            earlier = by_id[ids[j]].messages[-1]
            assert messages[2 + 2 * j] == earlier  # the earlier question's turn, <image> placeholders as text
            assert messages[3 + 2 * j].text == f"reply to {ids[j]}"
        assert not any(m.images for m in messages[1:])  # only the CoT turn carries the images
    seen.clear()
    _run(mmad_json, tmp_path / "plain", model, strategies=["cot"], base_url=BASE_URL, limit=5)
    assert {len(r.messages) for r in seen if r.question_ids} == {3}


def test_the_estimate_counts_the_history_internvl_resends(mmad_json: Path) -> None:
    """With cot under --recipe internvl each question re-sends its image's earlier turns: the dry run's
    token estimate grows with them."""
    from mmad.run.estimate import dry_run

    def tokens(**settings: object) -> int:
        config = RunConfig.from_flat("vllm:OpenGVLab/InternVL2-8B", str(mmad_json), strategies=["cot"], **settings)
        return dry_run(config).prompt_tokens

    assert tokens(recipe="internvl") > tokens(recipe="internvl", cot_history=False)
