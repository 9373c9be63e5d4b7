"""The MLLM-assisted path through a real local server, and the human-review round trip."""

import csv
import json
from pathlib import Path

import numpy as np

from mmad.builder import build_benchmark, make_synthetic_dataset
from mmad.builder.assisted import QUESTION_SCHEMA, assist, mark_defect, parse_generated
from mmad.builder.review import export_review, import_review
from mmad.cli import main
from mmad.data.official import load_benchmark
from mmad.data.validate import validate
from mmad.models.base import Completion, Model, Request
from mmad.models.openai_api import OpenAICompatibleModel
from mmad.protocol.messages import Message, TextPart
from tests.helpers.serving import running_server

EVIL = "<script>alert('x')</script>"


class Writer(Model):
    """Captions with some markup in them; writes a valid question, except for Defect Analysis on every
    other request, where it answers with broken JSON."""

    name = "writer"

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: Request) -> Completion:
        self.calls += 1
        text = request.messages[-1].text
        if request.messages[-1].images:
            return Completion(text=f"A product with a red-outlined dark mark near the rim. {EVIL}")
        if "potential" in text or ("may cause" in text and self.calls % 2):
            return Completion(text="{not json")
        reply = {
            "question": f"What is true of the product? {EVIL}",
            "options": {"A": "It is round.", "B": "It is square.", "C": "It is blue.", "D": "It is soft."},
            "answer": "A",
        }
        return Completion(text=json.dumps(reply))


def _bench(tmp_path: Path) -> Path:
    source = make_synthetic_dataset(tmp_path / "src", categories=["washer"], n_train=2, n_test_good=2, n_per_defect=1)
    build_benchmark(source.root, tmp_path / "bench", name="SynthAD", knowledge=source.knowledge)
    return tmp_path / "bench" / "mmad.json"


def test_assisted_questions_review_and_import(tmp_path: Path) -> None:
    path = _bench(tmp_path)
    before = load_benchmark(path).n_questions
    built = json.loads(path.read_text())
    recorded = [qa["id"] for record in built.values() for qa in record["conversation"]]
    assert recorded == [q.uid for q in load_benchmark(path).questions()]  # mmad build records content ids
    assert len(set(recorded)) == len(recorded)
    with running_server(Writer()) as server:
        model = OpenAICompatibleModel("writer", base_url=server.base_url, key_env=None, provider="mmad", is_local=True)
        report = assist(path, model)
    bench = load_benchmark(path)
    added = [q for q in bench.questions() if q.extra.get("mmad_source", {}).get("generator") == "mllm"]
    assert report.captions == len(bench.items)
    assert len(added) == sum(report.added.values()) > 0 and bench.n_questions == before + len(added)
    assert any("schema" in reason or "JSON" in reason for reason in report.rejected)
    assert all(q.annotation is False for q in added)
    rewritten = json.loads(path.read_text())
    assert all(qa["id"].startswith("q-") for record in rewritten.values() for qa in record["conversation"])
    assert [qa["id"] for record in rewritten.values() for qa in record["conversation"]][:3] == recorded[:3]
    assert all("caption" in item.extra for item in bench.items)
    assert validate(path).ok
    marked = list((tmp_path / "bench" / "assist" / "marked").glob("*.png"))
    assert marked  # the defect outlined in red on a copy

    csv_path, html_path = export_review(path, tmp_path / "review")
    page = html_path.read_text()
    assert EVIL not in page and "&lt;script&gt;" in page  # model text is escaped
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    generated = [r for r in rows if r["generator"] == "mllm"]
    for i, row in enumerate(rows):
        row["verdict"] = "reject" if row in generated[:1] else ("accept" if i % 2 else "")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["review", "import", str(path), str(csv_path)]) == 0
    after = load_benchmark(path)
    assert after.n_questions == bench.n_questions - 1
    assert sum(q.annotation is True for q in after.questions()) == sum(r["verdict"] == "accept" for r in rows)
    assert validate(path).ok
    for item in after.items:
        assert [q.index for q in item.questions] == list(range(len(item.questions)))


def test_bad_verdicts_leave_the_benchmark_untouched(tmp_path: Path) -> None:
    path = _bench(tmp_path)
    csv_path, _ = export_review(path, tmp_path / "review")
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    rows[0]["verdict"] = "maybe"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = path.read_bytes()
    import pytest

    from mmad.errors import AnswersFormatError

    with pytest.raises(AnswersFormatError, match=r"line 2 .*'maybe'"):
        import_review(path, csv_path)
    assert path.read_bytes() == before


def test_schema_request_and_reply_checks() -> None:
    model = OpenAICompatibleModel("m", base_url="http://127.0.0.1:9/v1", key_env=None, is_local=True)
    request = Request(messages=(Message(role="user", parts=(TextPart(text="x"),)),), response_schema=QUESTION_SCHEMA)
    body = model.payload(request)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["question", "options", "answer"]
    good = parse_generated(
        'Sure: {"question": "q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer": "C"}'
    )
    assert good.answer == "C"
    for bad in [
        '{"question": "q", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer": "E"}',
        '{"question": "q", "options": {"A": "same", "B": "same", "C": "c", "D": "d"}, "answer": "A"}',
        "no json here",
    ]:
        try:
            parse_generated(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_marking_draws_the_outline_only() -> None:
    from PIL import Image

    image = Image.new("RGB", (40, 40), (0, 0, 0))
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    marked = np.asarray(mark_defect(image, mask))
    assert tuple(marked[10, 20]) == (255, 0, 0) and tuple(marked[20, 20]) == (0, 0, 0)
