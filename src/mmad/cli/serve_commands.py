"""`mmad serve`: an mmad model behind an OpenAI-compatible chat-completions API."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

import typer

from mmad.cli.common import err_console
from mmad.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the serve command to the app."""
    app.command("serve")(serve_command)


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            socket.getaddrinfo(host, None)
        except OSError:
            msg = f"--host {host!r} is not an address of this machine; use 127.0.0.1 (local) or 0.0.0.0 (all)"
            raise ConfigError(msg) from None


def _reachable_from_elsewhere(host: str) -> bool:
    """Whether binding host lets other machines connect (0.0.0.0, ::, a LAN address, a name for one)."""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            found = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            return False  # _check_host has refused it already
        return any(not ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in found)


def _check_ranges(*, port: int, latency: float, fault_rate: float, retry_after: float, hang: float) -> None:
    """Out-of-range numbers, said in the flag's own terms: typer's range check answers in pydantic's
    words ("Input should be greater than or equal to 0") and says nothing of what the number means."""
    problems = [
        (port, 0 <= port <= 65535, "--port", "must be 0 to 65535 (0 picks a free port)"),
        (latency, latency >= 0, "--latency", "must be 0 or more: seconds added to every request"),
        (fault_rate, 0 <= fault_rate <= 1, "--fault-rate", "must be 0 to 1: the fraction of requests that fail"),
        (retry_after, retry_after >= 0, "--retry-after", "must be 0 or more: seconds an injected 429 asks to wait"),
        (hang, hang >= 0, "--hang", "must be 0 or more: seconds an injected time-out hangs"),
    ]
    for value, allowed, flag, rule in problems:
        if not allowed:
            msg = f"{flag} {value:g}: {rule}"
            raise ConfigError(msg)


def _served_expert_note(backend: object, data: Path | None) -> str | None:
    """What the expert over HTTP knows less than in process (docs/local-models.md): a query's category comes from
    its path in process; over HTTP only from its bytes, when they are a --data benchmark file's own."""
    from mmad.models.expert_model import ExpertModel

    if not isinstance(backend, ExpertModel):
        return None
    same = (
        "a query sent as its file's own bytes (mmad eval --original-images) is found in the benchmark and gets its "
        "category's calibrated threshold, as `mmad eval -m expert` gives it; a re-encoded one (the default 512-px "
        "images) cannot be placed and is scored against its request's templates (two or more) or a plain threshold"
    )
    if data is None:
        return (
            "without --data the expert knows no category: every query is scored against its request's templates "
            "(two or more) or a plain threshold, so its answers may differ from `mmad eval -m expert`; "
            "give --data BENCHMARK, and --original-images to the client"
        )
    return same + ", so its answers may differ from `mmad eval -m expert`"


def serve_command(
    model: str = typer.Option(
        "random", "--model", "-m", help="the mmad backend to serve (random, fixed:A, expert, scripted-tools[:plan])"
    ),
    port: int = typer.Option(8765, "--port", help="0 to 65535; 0 picks a free port"),
    host: str = typer.Option("127.0.0.1", "--host", help="the address to bind (keep it local)"),
    latency: float = typer.Option(0.0, "--latency", help="seconds added to every request (0 or more)"),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="fraction of requests that fail on purpose (0 to 1)"),
    faults: str = typer.Option(
        "429,500,503,timeout,drop,malformed,empty", "--faults", help="comma-separated fault kinds"
    ),
    retry_after: float = typer.Option(0.2, "--retry-after", help="Retry-After of injected 429s, seconds (0 or more)"),
    hang: float = typer.Option(30.0, "--hang", help="how long an injected time-out hangs, seconds (0 or more)"),
    seed: int = typer.Option(0, "--seed"),
    data: Path = typer.Option(None, "--data", help="a benchmark the model may prepare on (the expert calibrates)"),
    text_only: bool = typer.Option(
        False, "--text-only", help="act as a text-only llama.cpp server: requests with images get its HTTP 500"
    ),
    refuse_tools: bool = typer.Option(
        False, "--refuse-tools", help="act as a server without tool calling: requests with tools get a 400"
    ),
) -> None:
    """Serve an mmad model as an OpenAI-compatible chat-completions API."""
    from mmad.data.official import load_benchmark
    from mmad.models.registry import create_model
    from mmad.serve.server import FAULT_KINDS, ChatServer, FaultPlan

    _check_ranges(port=port, latency=latency, fault_rate=fault_rate, retry_after=retry_after, hang=hang)
    kinds = tuple(k.strip() for k in faults.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        msg = f"--faults {','.join(unknown)}: unknown fault kind; choose from {', '.join(FAULT_KINDS)}"
        raise ConfigError(msg)
    if fault_rate > 0 and not kinds:
        msg = f"--fault-rate {fault_rate:g} with no --faults: name at least one kind ({', '.join(FAULT_KINDS)})"
        raise ConfigError(msg)
    _check_host(host)
    if _reachable_from_elsewhere(host):
        err_console.print(
            f"[yellow]warning[/]: --host {host} lets other machines reach this server, and it has no "
            "authentication: anyone who can connect may use its model. Use 127.0.0.1 unless that is what you want",
            highlight=False,
            soft_wrap=True,
        )
    from mmad.models.base import Model
    from mmad.models.presets import PRESETS
    from mmad.models.providers import unknown_provider
    from mmad.models.registry import providers

    provider = model.partition(":")[0]
    servable = [name for name in providers() if name not in PRESETS] + ["scripted-tools"]
    if provider not in PRESETS and provider not in servable:
        raise unknown_provider(model, servable, served=True)  # the list of what mmad serve serves, scripted-tools too
    if provider in PRESETS:  # a client of another server: serving it would only relay (mmad: to this very port)
        msg = (
            f"-m {model} is a model asked over HTTP, not one mmad runs; mmad serve serves random, fixed:X "
            f"or expert (hf: with the [hf] extra). To evaluate {model}, give it to mmad eval "
            "with its server's --base-url"
        )
        raise ConfigError(msg)
    plan = FaultPlan(rate=fault_rate, kinds=kinds, retry_after_s=retry_after, hang_s=hang, seed=seed)
    if provider == "scripted-tools":  # the tools strategy's scripted user: a server-side model only
        from mmad.serve.scripted_tools import ScriptedToolUser

        backend: Model = ScriptedToolUser(model.partition(":")[2])
    else:
        backend = create_model(model)
    if data is not None and type(backend).prepare is Model.prepare:
        msg = (
            f"--data: {model} looks at no benchmark before it answers (only the expert calibrates on one); leave it out"
        )
        raise ConfigError(msg)
    backend.check()
    if data is not None:
        backend.prepare(load_benchmark(data))
    note = _served_expert_note(backend, data)
    if note:
        err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    server = ChatServer(
        backend,
        host=host,
        port=port,
        latency_s=latency,
        faults=plan,
        model_name=model,
        text_only=text_only,
        refuse_tools=refuse_tools,
    )

    async def main() -> None:
        try:
            await server.start()
        except OSError as exc:
            msg = f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port, or 0 for a free one"
            raise ConfigError(msg) from exc
        err_console.print(f"serving {model} at {server.base_url} (Ctrl-C to stop)")
        await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        err_console.print("stopped")
