"""s/question is the model's seconds per question: a run answered from the response cache showed 0.00 s beside
0.51 s for the run that sent the same requests (a cache lookup's time). A cached reply now counts the seconds
its request took when it was asked (the cache keeps them); one whose cache entry or record kept none is not
measured: a dash with a note, never 0.00 s."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.models.baselines import FixedModel
from tests.helpers.serving import running_server

LATENCY_S = 0.2


def _seconds_row(out: str) -> list[str]:
    row = next(line for line in out.splitlines() if "cost:s/question" in line)
    return [cell.strip() for cell in row.strip("│ ").split("│")]


def _two_runs(
    mmad_json: Path, tmp_path: Path, *, forget_cached_times: bool = False, strategies: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """A run that sends its requests to a server taking LATENCY_S a reply, then the same run from the cache."""
    paid, cached, cache = tmp_path / "paid", tmp_path / "cached", tmp_path / "cache"
    with running_server(FixedModel("A"), latency_s=LATENCY_S) as server:
        command = ["eval", "-m", "compat:fixed", "-d", str(mmad_json), "--base-url", server.base_url]
        command += ["--cache-dir", str(cache), "--limit", "4", "--concurrency", "2"]
        command += [arg for strategy in strategies for arg in ("--strategies", strategy)]
        assert main([*command, "--out", str(paid)]) == 0
        asked = server.stats.requests
        if forget_cached_times:  # a cache written by mmad before it kept a reply's seconds
            with sqlite3.connect(cache / "responses.sqlite3") as db:
                db.execute("UPDATE responses SET value = json_remove(value, '$.latency_s')")
        assert main([*command, "--out", str(cached)]) == 0
        assert server.stats.requests == asked  # every reply of the second run came from the cache
    return paid, cached


def _cost(run: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["score", str(run), "--json"]) == 0
    cost: dict[str, object] = json.loads(capsys.readouterr().out)["metrics"]["cost"]
    return cost


def _seconds(cost: dict[str, object]) -> float | None:
    cells = cost["cells"]
    assert isinstance(cells, list)
    value = next(c["value"] for c in cells if c["name"] == "s/question")
    assert value is None or isinstance(value, float)
    return value


@pytest.mark.parametrize("strategies", [(), ("cot",)])
def test_a_cached_run_takes_per_question_the_seconds_the_paid_run_took(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], strategies: tuple[str, ...]
) -> None:
    """A chain-of-thought question waited for its image's CoT turn too: a cached one counts both requests."""
    paid, cached = _two_runs(mmad_json, tmp_path, strategies=strategies)
    requests = 1 + len(strategies)
    capsys.readouterr()
    assert main(["compare", str(paid), str(cached)]) == 0
    name, a, b, _ = _seconds_row(capsys.readouterr().out)
    assert name == "cost:s/question" and a != "0.00 s" and b != "0.00 s", (a, b)

    paid_s, cached_s = _seconds(_cost(paid, capsys)), _seconds(_cost(cached, capsys))
    assert paid_s is not None and cached_s is not None
    # The server's latency for each request a question waited for, not the lookup's
    assert paid_s >= requests * LATENCY_S and cached_s >= requests * LATENCY_S, (paid_s, cached_s)
    # The same requests' times, as the two runs measured them (a CoT question waited for a turn another began)
    assert abs(paid_s - cached_s) <= 0.25 * paid_s, (paid_s, cached_s)
    notes = " ".join(str(n) for n in _cost(cached, capsys)["notes"])  # type: ignore[attr-defined]
    assert "s/question counts the seconds they took when they were asked" in notes

    lines = (cached / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(r["cached"] and r["asked_latency_s"] >= requests * LATENCY_S for r in records)
    assert all(r["latency_s"] < LATENCY_S for r in records)  # what this run waited: the lookup


@pytest.mark.parametrize("forgotten", ["cache", "records"])
def test_cached_replies_without_their_seconds_are_unmeasured_not_free(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], forgotten: str
) -> None:
    paid, cached = _two_runs(mmad_json, tmp_path, forget_cached_times=forgotten == "cache")
    if forgotten == "records":  # records written by mmad before cached ones carried their seconds
        records = (cached / "records.jsonl").read_text().splitlines()
        kept = [{k: v for k, v in json.loads(line).items() if k != "asked_latency_s"} for line in records]
        (cached / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    cost = _cost(cached, capsys)
    assert _seconds(cost) is None
    notes = " ".join(str(n) for n in cost["notes"])  # type: ignore[attr-defined]
    assert "s/question leaves out 4 replies from the cache that kept no time of their own" in notes
    assert "so s/question is –" in notes

    assert main(["compare", str(paid), str(cached)]) == 0
    _, a, b, _ = _seconds_row(capsys.readouterr().out)
    assert a.endswith(" s") and a != "0.00 s" and b == "–", (a, b)
