"""Mistakes a new user makes: each is one clear line and exit 2, never a traceback, and nothing on disk changes."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest

from mmad.cli import main
from tests.helpers.serving import running_server


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def workspace(mmad_json: Path, tmp_path: Path) -> Path:
    """A copy of the test benchmark and a finished run, in a folder whose content the test watches."""
    data = tmp_path / "data"
    shutil.copytree(mmad_json.parent, data)
    assert main(["eval", "-m", "random", "-d", str(data), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    return tmp_path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


EVAL_MISTAKES = [
    (["--limit", "-5"], r"limit \(--limit\): must be at least 1"),
    (["--limit", "abc"], r"--limit takes a whole number or 'none'; got 'abc'"),
    (["--concurrency", "0"], r"concurrency \(--concurrency\): must be at least 1"),
    (["--shots", "-1"], r"shots \(--shots\): must be at least 0"),
    (["--shots", "9"], r"--shots 9: .* fewer than 9 random_templates .*choose --shots 3 or fewer"),
    (["--max-retries", "-1"], r"max_retries \(--max-retries\): must be at least 0"),
    (["--protocol", "bogus"], r"protocol \(--protocol\): must be 'per-question', 'cumulative'"),
    (["--detail", "bogus"], r"detail \(--detail\): must be 'low', 'high', 'auto' or 'none'"),
    (["--parser", "bogus"], r"parser \(--parser\): must be 'mmad', 'upstream' or 'upstream-first'"),
    (["--subtask", "bogus"], r"subtasks \(--subtasks\): unknown subtask 'bogus'"),
    (["--strategy", "bogus"], r"strategies \(--strategies\): unknown strategy 'bogus'"),
    (["--image-size", "-1"], r"size \(--image-size\): must be at least 16"),
    (["--max-tokens", "0"], r"max_tokens \(--max-tokens\): must be at least 1"),
    (["--max-tokens", "lots"], r"--max-tokens takes a whole number or 'none'"),
    (["--temperature", "5"], r"temperature \(--temperature\): must be at most 2"),
    (["--max-cost", "-1"], r"max_cost \(--max-cost\): must be more than 0"),
    (["--max-errors", "-2"], r"max_errors \(--max-errors\): must be at least 0"),
    (["--answer-from", "bogus"], r"answer_from \(--answer-from\): must be 'text' or 'likelihood'"),
    (["--answer-from", "likelihood", "--protocol", "cumulative"], r"needs the per-question protocol"),
    (["--base-url", "localhost:8000"], r"base_url \(--base-url\): must start with http:// or https://"),
    (["--key-env", "sk-live-1234"], r"key_env \(--key-env\): must be the NAME of an environment variable"),
    (["--extra-body", "{nope"], r"--extra-body is not valid json"),
    (["--dataset", "Nowhere"], r"--datasets Nowhere is not in this benchmark"),
    (["--category", "spaceship"], r"--categories spaceship is not in this benchmark"),
    (["--seed", "-3"], r"seed \(--seed\): must be at least 0"),
    (["--batch-size", "0"], r"batch_size \(--batch-size\): must be at least 1"),
    (["--timeout", "0"], r"timeout_s \(--timeout-s\): must be more than 0"),
    # Flags that this run would ignore: refused by name, with the reason and the fix
    (
        ["--ray-actors", "3"],
        r"--ray-actors applies to the Ray engine only.*add --engine ray, or leave --ray-actors out",
    ),
    (["--ray-gpus", "1"], r"--ray-gpus applies to the Ray engine only"),
    (["--engine", "ray", "--ray-gpus", "1"], r"--ray-gpus reserves GPUs for models loaded in each Ray actor.*random"),
    (["--ray-address", "auto"], r"--ray-address applies to the Ray engine only"),
    (["--device", "cuda"], r"--device applies to in-process models \(hf:, vllm-local:, expert\), but random"),
    (["--dtype", "bfloat16"], r"--dtype applies to in-process models"),
    (["--batch-size", "4"], r"--batch-size applies to in-process models"),
    (["--model-args", '{"a": 1}'], r"--model-args applies to in-process models"),
    (["--base-url", "http://127.0.0.1:9/v1"], r"--base-url applies to models behind an HTTP API.*random runs in this"),
    (["--key-env", "MY_KEY"], r"--key-env applies to models behind an HTTP API"),
    (["--extra-body", '{"top_k": 1}'], r"--extra-body applies to models behind an HTTP API"),
    (["--text-only-server"], r"--text-only applies to models behind an HTTP API"),
    (["--knowledge", "k.json"], r"--knowledge is the domain-knowledge file of the rag strategy.*add --strategies rag"),
    (
        ["--similar", "--shots", "0"],
        r"--similar-templates chooses which template images.*--shots is 0.*leave --similar-templates out",
    ),
    (["--device", "cuda", "--dtype", "float16"], r"--device applies .*\(and 1 more: --dtype\)"),
    # --dry-run makes the checks of a real run (templates for the shots, the model's provider)
    (["--dry-run", "--shots", "9"], r"--shots 9: .* fewer than 9 random_templates"),
    (["--dry-run", "-m", "nosuch:model"], r"unknown model provider 'nosuch'"),
    (["--dry-run", "--shots", "0", "--strategy", "agent:expert:bbox"], r"agent:expert fits the expert .* --shots 1"),
    (["--dry-run", "--strategy", "agent:gt:heatmap"], r"agent:gt:heatmap does not exist"),
    (["--dry-run", "--strategy", "rag"], r"the rag strategy needs domain_knowledge.json: none in .*pass --knowledge"),
    # A baseline's id is a letter or a seed: anything else used to run as fixed:A or end in a traceback
    (["-m", "fixed:yes"], r"'fixed:yes': fixed answers one option letter, fixed:A, .*fixed:E \(not 'yes'\)"),
    (["-m", "fixed:Z"], r"'fixed:Z': fixed answers one option letter"),
    (["-m", "random:abc"], r"'random:abc': random takes a whole-number seed, e.g. random or random:1"),
    (["--dry-run", "-m", "fixed:yes"], r"'fixed:yes': fixed answers one option letter"),
    (["--seed", "3"], r"--seed seeds the sample --limit draws, but this run has no --limit.*add --limit N"),
    (["--dry-run", "--seed", "3"], r"--seed seeds the sample --limit draws"),
    # Inline JSON was taken for a file name ("No such file"); the help said "json {...}"
    (["--prices", '{"gpt-4o": [2.5, 10]}'], r"--prices.*takes the path of a JSON file, not inline JSON"),
    # "none" beside a strategy was dropped silently: the run went on as tools
    (["--strategy", "tools", "--strategy", "none"], r"none and tools contradict each other.*give tools alone"),
    (["--strategies", "tools,none"], r"none and tools contradict each other"),
    (["--strategies", "plain+rag+cot"], r"plain and rag\+cot contradict each other"),
]


@pytest.mark.parametrize(("extra", "message"), EVAL_MISTAKES)
def test_eval_mistakes(workspace: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    before = snapshot(workspace)
    out = workspace / "new-run"
    code, text = run_cli(["eval", "-m", "random", "-d", str(workspace / "data"), "--out", str(out), *extra], capsys)
    assert code == 2
    assert re.search(message, text), text
    assert "Traceback" not in text and text.count("\n") <= 2
    assert snapshot(workspace) == before and not out.exists()


def test_the_same_bad_value_gives_the_same_error_from_the_api_and_a_run_file(workspace: Path) -> None:
    import mmad
    from mmad.errors import ConfigError

    # named as the keyword and the key were written: a flag is the CLI's word, and says nothing to a script
    with pytest.raises(ConfigError, match=r"^shots: must be at least 0 \(got -1\)$"):
        mmad.evaluate("random", workspace / "data", shots=-1)
    run_file = workspace / "run.toml"
    run_file.write_text(f'model = "random"\ndata = "{workspace / "data"}"\n[prompt]\nshots = -1\n')
    with pytest.raises(ConfigError, match=r"run.toml: shots: must be at least 0 \(got -1\)$"):
        mmad.RunConfig.from_file(run_file)
    run_file.write_text(f'model = "random"\ndata = "{workspace / "data"}"\n[prompt]\nshot = 2\n')
    with pytest.raises(ConfigError, match=r"prompt.shot: is not a setting of \[prompt\]"):
        mmad.RunConfig.from_file(run_file)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], None),
        (["bogus"], r"No such command 'bogus'"),
        (["eval", "--bogus"], r"No such option: --bogus"),
        (["eval", "-v"], r"No such option: -v \(-v goes before the command: mmad -v eval \.\.\.\)"),
        (["score", "--verbose"], r"--verbose goes before the command: mmad --verbose score \.\.\."),
        (["info", "--version"], r"No such option: --version.*goes before the command: mmad --version\)"),
        (["eval", "-x"], r"No such option: -x \(see 'mmad eval --help'\)$"),
        (["eval"], r"give --model and --data"),
        (["score"], r"Missing argument 'answers'"),
        (["score", "/nonexistent/run"], r"/nonexistent/run does not exist"),
        (["runs", "/nonexistent"], r"/nonexistent does not exist"),
    ],
)
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str | None) -> None:
    code, text = run_cli(args, capsys)
    if message is None:  # bare `mmad` shows the help
        assert code == 0 and "Usage: mmad" in text
        return
    assert code == 2 and "Traceback" not in text
    assert re.search(message, text), text
    assert len(text.strip().splitlines()) == 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import mmad

    code, text = run_cli(["--version"], capsys)
    assert code == 0 and text.strip() == f"mmad {mmad.__version__}"


def test_score_and_compare_mistakes(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = str(workspace / "run")
    code, text = run_cli(["score", run, "--policy", "bogus"], capsys)
    assert code == 2 and "'bogus' is not one of 'strict', 'upstream'" in text
    code, text = run_cli(["compare", run, run, "--samples", "0"], capsys)
    assert code == 2 and "--samples" in text


def test_resume_refuses_settings_that_change_what_is_asked(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(workspace)
    run = str(workspace / "run")
    for extra, changed in ((["--shots", "0"], "prompt.shots"), (["--limit", "3"], "selection.limit")):
        code, text = run_cli(["eval", "--resume", run, *extra], capsys)
        assert code == 2 and f"--resume {run} would change {changed}" in text
    code, text = run_cli(["eval", "--resume", run, "-m", "fixed:A"], capsys)
    assert code == 2 and "would change model" in text
    assert snapshot(workspace) == before
    # How requests are sent may change: a finished run resumes with nothing to ask.
    code, text = run_cli(["eval", "--resume", run, "--concurrency", "4"], capsys)
    assert code == 0 and "asked 92 of 92" in text


def test_an_existing_run_is_never_overwritten(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(workspace)
    code, text = run_cli(
        ["eval", "-m", "random", "-d", str(workspace / "data"), "--out", str(workspace / "run")], capsys
    )
    assert code == 2 and "already holds a run" in text
    code, text = run_cli(
        ["eval", "-m", "random", "-d", str(workspace / "data"), "--out", str(workspace / "data")], capsys
    )
    assert code == 2 and "is not an empty folder or a run" in text
    assert snapshot(workspace) == before


def test_serve_mistakes(capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in (
        (["--fault-rate", "2"], "--fault-rate 2: must be 0 to 1: the fraction of requests that fail"),
        (["--latency", "-1"], "--latency -1: must be 0 or more: seconds added to every request"),
        (["--retry-after", "-0.5"], "--retry-after -0.5: must be 0 or more: seconds an injected 429 asks to wait"),
        (["--hang", "-3"], "--hang -3: must be 0 or more: seconds an injected time-out hangs"),
        (["--port", "-1"], "--port -1: must be 0 to 65535 (0 picks a free port)"),
        (["--faults", "bogus"], "--faults bogus: unknown fault kind"),
        (["--host", "no such host.invalid"], "is not an address of this machine"),
        (["--port", "70000"], "--port 70000: must be 0 to 65535 (0 picks a free port)"),
        (["-m", "compat:x"], "-m compat:x is a model asked over HTTP, not one mmad runs"),
        (["-m", "mmad:random"], "mmad serve serves random, fixed:X or expert"),
        # a typo is answered with what serve serves (scripted-tools is no eval provider), not an eval-only example
        (["-m", "scripted-tool"], "did you mean 'scripted-tools'?"),
        (["-m", "randon"], "did you mean 'random'?"),
    ):
        code, text = run_cli(["serve", *args], capsys)
        assert code == 2 and message in text, text
        assert "Input should be" not in text  # typer's range check speaks pydantic, not the flag's meaning
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, text = run_cli(["serve", "--port", str(busy.getsockname()[1])], capsys)
    assert code == 2 and "cannot listen on 127.0.0.1" in text


def test_serve_refuses_data_its_model_would_not_read(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(["serve", "-m", "random", "--data", str(workspace / "data"), "--port", "0"], capsys)
    assert code == 2 and "--data: random looks at no benchmark" in text


def test_demo_never_deletes_what_it_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("months of work")
    before = snapshot(tmp_path)
    code, text = run_cli(["demo", "--out", str(precious)], capsys)
    assert code == 2 and "was not made by `mmad demo`" in text
    code, text = run_cli(["demo", "--out", str(precious), "--force"], capsys)
    assert code == 2 and "was not made by `mmad demo`" in text
    code, text = run_cli(["demo", "--out", str(precious / "chapter1.tex")], capsys)
    assert code == 2 and "is a file" in text
    assert snapshot(tmp_path) == before


def test_build_refuses_to_write_into_its_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers.ad_trees import make_tree

    source = make_tree(tmp_path / "src", "mvtec")
    before = snapshot(tmp_path)
    for out in (source, source / "bench"):
        code, text = run_cli(["build", str(source), "--out", str(out)], capsys)
        assert code == 2 and "overlaps the source" in text
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("keep")
    code, text = run_cli(["build", str(source), "--out", str(full)], capsys)
    assert code == 2 and "is not empty; nothing was changed" in text
    assert snapshot(tmp_path) == {**before, "full/keep.txt": snapshot(tmp_path)["full/keep.txt"]}


def test_a_dead_or_unauthorised_server_stops_the_run(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.errors import PermanentError
    from mmad.models.base import Completion, Model, Request

    class Unauthorised(Model):
        async def generate(self, request: Request) -> Completion:
            raise PermanentError("not authorised (401): check the API key variable", error_class="auth")

    with running_server(Unauthorised()) as server:
        base = ["eval", "-m", "compat:x", "--base-url", server.base_url, "-d", str(workspace / "data"), "--no-cache"]
        code, text = run_cli([*base, "--out", str(workspace / "auth")], capsys)
        requests = server.stats.requests
    assert code == 1 and "stopped early" in text and "no answers" in text and "Average" not in text
    assert requests < 92
    assert sorted(p.name for p in (workspace / "auth").iterdir() if not p.name.startswith(".")) == [
        "records.jsonl",
        "run.json",
    ], "a run without one answer leaves no score files (they would hold only zeros)"
    code, text = run_cli(["leaderboard", str(workspace / "auth"), str(workspace / "run"), "--no-published"], capsys)
    assert code == 0 and "1 runs have no answer" in text and str(workspace / "auth") in text
    code, text = run_cli(["leaderboard", str(workspace / "auth"), "--no-published"], capsys)
    assert code == 2 and "nothing to rank" in text and "0.00" not in text
    code, text = run_cli(["report", str(workspace / "auth"), "--out", str(workspace / "r.html")], capsys)
    assert code == 2 and "none of the 1 runs has an answer" in text and not (workspace / "r.html").exists()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = ["eval", "-m", "compat:x", "--base-url", f"http://127.0.0.1:{port}/v1", "-d", str(workspace / "data")]
    code, text = run_cli([*dead, "--out", str(workspace / "dead"), "--max-errors", "3", "--max-retries", "0"], capsys)
    assert code == 1 and "connection_refused" in text and "no reply within" not in text
    meta = json.loads((workspace / "dead" / "run.json").read_text())
    # No request ever reached a server: the first refusal stops the run (not --max-errors later).
    assert meta["status"] == "partial" and "is the server running" in meta["stopped_reason"]


def test_runs_names_a_missing_folder_and_where_runs_go(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(["runs", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "does not exist" in text and "mmad runs DIR" in text
    (tmp_path / "file").write_text("x")
    code, text = run_cli(["runs", str(tmp_path / "file")], capsys)
    assert code == 2 and "is a file, not a folder" in text


def test_help_and_catalogue_show_every_choice(capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.protocol.prompts import Variant

    assert main(["eval", "--help"]) == 0
    text = re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(capsys.readouterr().out.split()))  # lines joined
    assert all(v.value in text for v in Variant), "every protocol variant is named in --protocol's help"
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "[expert] extra" in text and "[hf] extra" in text and "[vllm] extra" in text


def test_output_paths_the_file_system_refuses_are_one_line(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, taken = workspace / "run", workspace / "taken.txt"
    taken.write_text("mine")
    before = snapshot(workspace)
    code, text = run_cli(["score", str(run), "-o", str(taken)], capsys)
    assert code == 2 and f"cannot make the folder {taken}: a file of that name is there" in text
    code, text = run_cli(["leaderboard", str(run), "-o", str(workspace), "--format", "csv"], capsys)
    assert code == 2 and f"cannot write {workspace}: it is a folder" in text
    code, text = run_cli(["report", str(run), "--out", str(taken / "r.html")], capsys)
    assert code == 2 and "Traceback" not in text and str(taken) in text
    assert snapshot(workspace) == before and taken.read_text() == "mine"


def test_a_named_key_variable_must_be_set_even_for_a_local_server(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMAD_TEST_UNSET_KEY", raising=False)
    with running_server() as server:
        args = ["eval", "-m", "compat:x", "--base-url", server.base_url, "-d", str(workspace / "data")]
        code, text = run_cli([*args, "--key-env", "MMAD_TEST_UNSET_KEY", "--out", str(workspace / "k")], capsys)
        assert server.stats.requests == 0
    assert code == 2 and "--key-env MMAD_TEST_UNSET_KEY: that environment variable is not set" in text
    assert not (workspace / "k").exists()


def test_ray_address_in_the_environment_alone_is_no_error(
    mmad_json: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # $RAY_ADDRESS is read when a Ray engine joins a cluster; on the local engine it is simply not used.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    code, text = run_cli(["eval", "-m", "random", "-d", str(mmad_json), "--dry-run"], capsys)
    assert code == 0 and "nothing sent" in text


def test_compare_names_the_protocol_differences_in_the_terminal(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero = workspace / "zero-shot"
    assert main(["eval", "-m", "random", "-d", str(workspace / "data"), "--out", str(zero), "--shots", "0"]) == 0
    cards = [json.loads((run / "run.json").read_text())["card_hash"] for run in (workspace / "run", zero)]
    assert cards[0] != cards[1]
    capsys.readouterr()
    code, text = run_cli(["compare", str(workspace / "run"), str(zero)], capsys)
    flat = " ".join(text.split())
    assert code == 0 and "Average" in text
    assert f"different protocols (A card {cards[0]}, B card {cards[1]})" in flat, text
    assert "protocol differs: shots: 1 vs 0" in flat
    code, text = run_cli(["compare", str(workspace / "run"), str(workspace / "run")], capsys)
    assert code == 0 and "protocol differs" not in text and "different protocols" not in text
    code, text = run_cli(["compare", str(workspace / "run"), str(zero), "--json"], capsys)
    payload = json.loads(text)
    assert payload["card_hashes"] == {"a": cards[0], "b": cards[1]}
    assert "protocol differs: shots: 1 vs 0" in payload["notes"]


def test_compare_refuses_runs_over_different_benchmarks(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = workspace / "other-data"
    shutil.copytree(workspace / "data", other)
    questions = json.loads((other / "mmad.json").read_text())
    first = next(iter(questions.values()))
    first["conversation"][0]["Question"] += " (reworded)"
    (other / "mmad.json").write_text(json.dumps(questions))
    assert main(["eval", "-m", "random", "-d", str(other), "--out", str(workspace / "other"), "--no-cache"]) == 0
    capsys.readouterr()
    before = snapshot(workspace)
    code, text = run_cli(["compare", str(workspace / "run"), str(workspace / "other")], capsys)
    assert code == 2 and "Traceback" not in text
    assert "were run on different benchmarks (mmad.json sha256" in text and "not the same questions" in text
    assert snapshot(workspace) == before


def test_score_of_a_partial_run_says_partial_and_how_much_was_asked(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.runs import copy_run, edit_records

    cut = copy_run(workspace / "run", workspace / "cut")
    edit_records(cut, lambda i, r: r if i < 48 else None)
    code, text = run_cli(["score", str(cut), "--no-plot"], capsys)
    flat = " ".join(text.split())
    assert code == 0, text
    assert "(PARTIAL: asked 48 of 92 selected" in flat, text
    assert "asked 48 of 92 selected" in flat.split("PARTIAL", 1)[1]  # again under the table, with the status
    assert "run.json says complete, but records.jsonl lacks 44 of the selected questions" in flat
    code, text = run_cli(["score", str(cut), "--no-plot", "--json"], capsys)
    run = json.loads(text)["run"]
    assert (run["asked"], run["selected"], run["complete"]) == (48, 92, False)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            "{not json",
            r': a price file is a JSON object \{"model": \[input_usd_per_M, output_usd_per_M\]\} \(Expecting',
        ),
        ('["gpt-4o", 2.5, 10]', r': a price file is a JSON object \{"model": .*\}, not a JSON list'),
        ('{"gpt-4o": 2.5}', r': "gpt-4o" is 2.5; each price is a list of two non-negative numbers'),
        ('{"gpt-4o": "cheap"}', r': "gpt-4o" is "cheap"; each price is a list of two non-negative numbers'),
        ('{"gpt-4o": ["cheap", "dear"]}', r': "gpt-4o" is \["cheap", "dear"\]; each price is a list of two'),
        (
            '{"gpt-4o": [2.5]}',
            r': "gpt-4o" is \[2.5\]; each price is a list of two non-negative numbers, '
            r'\[input_usd_per_M, output_usd_per_M\], e.g. "gpt-4o": \[2.5, 10.0\]',
        ),
        ('{"gpt-4o": [2.5, -1]}', r': "gpt-4o" is \[2.5, -1\]; each price is a list of two non-negative numbers'),
    ],
)
def test_a_bad_price_file_is_named(
    workspace: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str
) -> None:
    """One line naming the file, the key, what it holds and the shape expected; never Python's own words
    ("list index out of range", "could not convert string to float")."""
    prices = workspace / "prices.json"
    prices.write_text(content)
    before = snapshot(workspace)
    out = workspace / "priced"
    code, text = run_cli(
        ["eval", "-m", "random", "-d", str(workspace / "data"), "--out", str(out), "--prices", str(prices)], capsys
    )
    flat = " ".join(text.split())
    assert code == 2 and "Traceback" not in text
    assert re.search(re.escape(str(prices)) + reason, flat), flat
    assert "index out of range" not in flat and "could not convert" not in flat
    assert snapshot(workspace) == before and not out.exists()


def _records(run: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_an_unresolvable_host_is_a_dns_failure_that_stops_the_run(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")  # a remote URL needs a key; .invalid never resolves
    out = workspace / "dns"
    base = "http://no-such-host.invalid/v1"
    code, text = run_cli(
        ["eval", "-m", "compat:x", "--base-url", base, "-d", str(workspace / "data"), "--out", str(out),
         "--max-retries", "0", "--no-cache"],
        capsys,
    )  # fmt: skip
    flat = " ".join(text.split())
    assert code == 1 and "Traceback" not in text
    assert f"stopped early: dns: cannot resolve the host of {base} (DNS:" in flat and "check --base-url" in flat
    records = _records(out)
    assert records and len(records) < 92 and {r["error_class"] for r in records} == {"dns"}
    assert "sk-test-not-a-key" not in text + (out / "records.jsonl").read_text() + (out / "run.json").read_text()


def test_https_to_a_plain_http_server_is_a_tls_failure(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        stop = threading.Event()

        def answer_plain_http() -> None:  # what a plain-HTTP server says to bytes it cannot read as a request
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(5)
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        thread = threading.Thread(target=answer_plain_http, daemon=True)
        thread.start()
        base = f"https://127.0.0.1:{listener.getsockname()[1]}/v1"
        out = workspace / "tls"
        try:
            code, text = run_cli(
                ["eval", "-m", "compat:x", "--base-url", base, "-d", str(workspace / "data"), "--out", str(out),
                 "--max-retries", "0", "--no-cache"],
                capsys,
            )  # fmt: skip
        finally:
            stop.set()
            thread.join()
    flat = " ".join(text.split())
    assert code == 1 and "Traceback" not in text
    assert f"stopped early: tls: TLS with {base} failed" in flat and "is the URL's scheme (http/https) right?" in flat
    records = _records(out)
    assert records and {r["error_class"] for r in records} == {"tls"}


def test_https_to_a_server_that_never_answers_the_handshake_names_the_scheme(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain-HTTP server that waits for a request line (mmad serve closes on a TLS hello; others wait):
    only a time-out comes, and the error says what to try."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    base = f"https://127.0.0.1:{listener.getsockname()[1]}/v1"
    out = workspace / "hang"
    try:
        code, text = run_cli(
            ["eval", "-m", "compat:x", "--base-url", base, "-d", str(workspace / "data"), "--out", str(out),
             "--max-retries", "0", "--timeout", "1", "--limit", "1", "--no-cache"],
            capsys,
        )  # fmt: skip
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()
    flat = " ".join(text.split())
    assert code == 1 and "Traceback" not in text
    assert f"no reply from {base} within 1 s" in flat, text
    assert "if the server speaks plain HTTP, use http:// in --base-url" in flat
    assert {r["error_class"] for r in _records(out)} == {"timeout"}


def test_a_flag_over_a_recipe_is_announced(mmad_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "-m", "random", "-d", str(mmad_json), "--recipe", "gpt4o", "--dry-run"]
    code, text = run_cli([*args, "--max-tokens", "64", "--shots", "0"], capsys)
    assert code == 0 and "nothing sent" in text, text
    assert "note: --max-tokens 64 overrides the gpt4o recipe's max_tokens = 200" in text
    assert "note: --shots 0 overrides the gpt4o recipe's shots = 1" in text
    code, text = run_cli(args, capsys)  # the recipe alone: nothing to announce
    assert code == 0 and "overrides" not in text


def test_the_dry_run_on_ray_names_a_missing_ray_extra(
    mmad_json: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does without the [ray] extra
    args = ["eval", "-m", "random", "-d", str(mmad_json), "--engine", "ray"]
    code, text = run_cli([*args, "--dry-run"], capsys)
    assert code == 2 and "nothing sent" not in text, text
    assert re.search(r"The Ray engine \(--engine ray\).*\[ray\]", text) and len(text.strip().splitlines()) == 1
    code, text = run_cli([*args, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "[ray]" in text and not (tmp_path / "run").exists()


def test_visa_split_on_a_source_that_is_not_raw_visa_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.ad_trees import make_tree

    source = make_tree(tmp_path / "src", "mvtec")
    for split in ("bogus", "2cls_fewshot"):
        code, text = run_cli(["build", str(source), "--out", str(tmp_path / "bench"), "--visa-split", split], capsys)
        assert code == 2 and "Traceback" not in text, text
        assert f"--visa-split {split} chooses raw VisA's split_csv/ scheme" in " ".join(text.split())
        assert "leave --visa-split out" in text
        assert not (tmp_path / "bench").exists() or not any((tmp_path / "bench").iterdir())


def test_a_run_file_over_a_recipe_is_announced_by_its_key(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A setting over the recipe that came from the run file is named as the file's key, not as a flag
    the user never typed; a flag given on top is still named as the flag."""
    run_file = tmp_path / "c.toml"
    run_file.write_text(
        f'model = "random"\ndata = "{mmad_json.as_posix()}"\nrecipe = "gpt4o"\nprotocol = "per-image"\n'
        "[prompt]\nshots = 0\n"
    )
    code, text = run_cli(["eval", "--config", str(run_file), "--dry-run", "--max-tokens", "64"], capsys)
    flat = " ".join(text.split())
    assert code == 0 and "nothing sent" in text, text
    assert f'note: protocol = "per-image" in {run_file} overrides the gpt4o recipe\'s protocol = ' in flat, flat
    assert f"note: shots = 0 in {run_file} overrides the gpt4o recipe's shots = 1" in flat
    assert "note: --max-tokens 64 overrides the gpt4o recipe's max_tokens = 200" in flat
    assert "--protocol" not in flat and "--shots" not in flat
