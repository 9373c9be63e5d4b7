"""An OpenAI-compatible chat-completions server on 127.0.0.1 over any mmad model backend.

It takes images as ``image_url`` data URLs and returns usage counts; it takes ``tools`` and
returns ``tool_calls`` (checking, as OpenAI's API does, that every call is answered by a ``tool``
message right after it), or with ``refuse_tools`` answers a request with tools as a server without
tool calling does. For tests and benchmarks it
can add a fixed latency and inject faults: 429 with Retry-After, 500 and 503, time-outs, dropped
connections, malformed JSON and empty choices. Plain asyncio, HTTP/1.1 with keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mmad.errors import ModelCallError
from mmad.models.base import Model, Request
from mmad.models.openai_convert import from_openai_messages, tool_calls_to_openai
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Message
from mmad.serve.asked import asked_questions, with_roles

logger = logging.getLogger(__name__)

FAULT_KINDS = ("429", "500", "503", "timeout", "drop", "malformed", "empty")
TEXT_ONLY_MESSAGE = "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
"""What llama.cpp's server answers (HTTP 500) when a text-only model (no --mmproj) is sent an image."""
TOOLS_REFUSED_MESSAGE = "tools are not supported by this server (it has no tool-calling template)"
"""What a server without tool calling answers (HTTP 400) to a request with ``tools``."""
TLS_RECORD_HANDSHAKE = 0x16
"""The first byte of a TLS ClientHello: a client that was given https:// for this plain-HTTP server."""
# A backend's failure reaches the client as the HTTP status a real server would answer with.
_STATUS_OF_ERROR = {"bad_request": 400, "refused": 400, "auth": 401, "not_found": 404, "rate_limit": 429}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class FaultPlan:
    """Which requests fail, and how."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after_s: float = 0.2
    hang_s: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            msg = f"unknown fault kinds {sorted(unknown)}; choose from {FAULT_KINDS}"
            raise ValueError(msg)
        if self.rate > 0 and not self.kinds:
            msg = f"a fault rate of {self.rate:g} needs at least one fault kind; choose from {FAULT_KINDS}"
            raise ValueError(msg)


@dataclass
class ServerStats:
    """What the server has seen."""

    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0


class ChatServer:
    """Serves one model over HTTP."""

    def __init__(
        self,
        model: Model,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        faults: FaultPlan | None = None,
        model_name: str | None = None,
        any_model: bool = False,
        text_only: bool = False,
        refuse_tools: bool = False,
    ) -> None:
        """``any_model`` answers whatever model name a request gives (tests that name the model freely);
        otherwise, as real servers do, a name it does not serve gets 404. ``text_only`` plays a
        text-only llama.cpp server: a request carrying images gets its HTTP 500. ``refuse_tools`` plays
        a server without tool calling: a request with ``tools`` gets a 400 that names them."""
        self.model = model
        self.host = host
        self.port = port
        self.latency_s = latency_s
        self.faults = faults or FaultPlan()
        self.model_name = model_name or model.name
        self.any_model = any_model
        self.text_only = text_only
        self.refuse_tools = refuse_tools
        self.stats = ServerStats()
        self._rng = random.Random(self.faults.seed)
        self._images = ImageEncoder(ImageSettings(original=True))
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        """The /v1 URL clients use."""
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("serving %s at %s", self.model_name, self.base_url)

    async def serve_forever(self) -> None:
        """Start and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting, end open connections, and close the model."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        await self.model.aclose()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                first = await reader.readexactly(1)
                if first[0] == TLS_RECORD_HANDSHAKE:
                    # A plain-HTTP server waiting for a request line would leave the client's handshake
                    # hanging until its time-out; closing makes the client's TLS layer fail at once.
                    logger.warning("a client began a TLS handshake; this server speaks plain HTTP (use http://)")
                    break
                head = first + await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                keep_open = await self._handle(method, path, body, writer)
                if not keep_open or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            # Cancelled here by close(): ending quietly keeps asyncio from logging a traceback per connection.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                writer.close()
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, payload: bytes, extra: dict[str, str] | None = None
    ) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(payload)), **(extra or {})}
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        writer.write(head.encode("latin-1") + b"\r\n" + payload)
        await writer.drain()

    async def _error(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        message: str,
        kind: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
        await self._send(writer, status, payload, extra)

    async def _handle(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and route in {"/v1/models", "/models"}:
            data = {
                "object": "list",
                "data": [{"id": self.model_name, "object": "model", "owned_by": "mmad"}],
            }
            await self._send(writer, 200, json.dumps(data).encode())
            return True
        if method == "GET" and route == "/health":
            await self._send(writer, 200, b'{"status": "ok"}')
            return True
        if method != "POST" or route not in {"/v1/chat/completions", "/chat/completions"}:
            await self._error(writer, 404, f"no route {method} {path}", "not_found")
            return True
        self.stats.requests += 1
        self.stats.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
        try:
            return await self._chat(body, writer)
        finally:
            self.stats.in_flight -= 1

    def _pick_fault(self) -> str | None:
        if self.faults.rate > 0 and self._rng.random() < self.faults.rate:
            kind = self._rng.choice(self.faults.kinds)
            self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
            return kind
        return None

    def _serves(self, payload: Any) -> str | None:
        """The model name a request asks for, when this server does not serve it."""
        if self.any_model or not isinstance(payload, dict):
            return None  # an unreadable body gets its 400 in _chat
        name = payload.get("model")
        # The backend's family answers too: `mmad:fixed` asks `mmad serve --model fixed:A` for "fixed".
        served = {self.model_name, self.model.name, self.model_name.partition(":")[0]}
        if not isinstance(name, str) or name in served:
            return None
        return name

    async def _chat(self, body: bytes, writer: asyncio.StreamWriter) -> bool:
        # Read once: the body is nearly all base64 images. An unreadable one is answered after the faults.
        try:
            payload: Any = json.loads(body)
        except ValueError as exc:
            payload = exc
        unknown = self._serves(payload)
        if unknown is not None:
            message = f"The model `{unknown}` does not exist: this server serves `{self.model_name}`"
            await self._error(writer, 404, message, "not_found_error")
            return True
        fault = self._pick_fault()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault == "429":
            await self._error(
                writer,
                429,
                "rate limit reached (injected)",
                "rate_limit_error",
                {"Retry-After": f"{self.faults.retry_after_s:g}"},
            )
            return True
        if fault in {"500", "503"}:
            await self._error(writer, int(fault), "server error (injected)", "server_error")
            return True
        if fault == "timeout":
            await asyncio.sleep(self.faults.hang_s)
            return False
        if fault == "drop":
            return False
        if fault == "malformed":
            await self._send(writer, 200, b'{"id": "x", "choices": [{"message": {"content": "A"')
            return True
        try:
            if isinstance(payload, ValueError):
                raise payload
            messages = from_openai_messages(payload.get("messages") or [])
        except (ValueError, AttributeError, ModelCallError) as exc:
            await self._error(writer, 400, f"bad request: {exc}", "invalid_request_error")
            return True
        if self.text_only and any(m.images for m in messages):
            await self._error(writer, 500, TEXT_ONLY_MESSAGE, "server_error")
            return True
        tools = payload.get("tools") or []
        if tools and self.refuse_tools:
            await self._error(writer, 400, TOOLS_REFUSED_MESSAGE, "invalid_request_error")
            return True
        problem = tool_turns_problem(messages)
        if problem is not None:
            await self._error(writer, 400, problem, "invalid_request_error")
            return True
        choice_of_tool = payload.get("tool_choice")
        # Backends read structured questions, never the text: the prompt's are read back here, once.
        messages = with_roles(messages)
        request = Request(
            messages=messages,
            questions=asked_questions(messages),
            max_tokens=int(payload.get("max_tokens") or payload.get("max_completion_tokens") or 128),
            temperature=payload.get("temperature"),
            want_logprobs=bool(payload.get("logprobs")),
            images=self._images,
            tools=tuple(tools) if isinstance(tools, list) else (),
            tool_choice=choice_of_tool if isinstance(choice_of_tool, str) else None,
        )
        started = time.monotonic()
        try:
            completion = await self.model.generate(request)
        except ModelCallError as exc:
            status = _STATUS_OF_ERROR.get(exc.error_class, 500)
            await self._error(writer, status, str(exc), exc.error_class)
            return True
        n_images = sum(len(m.images) for m in messages)
        prompt_tokens = completion.prompt_tokens or (sum(len(m.text) for m in messages) // 4 + 85 * n_images)
        completion_tokens = completion.completion_tokens or max(1, len(completion.text) // 4)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": completion.text},
            "finish_reason": completion.finish_reason or "stop",
        }
        if completion.tool_calls:
            choice["message"] = {
                "role": "assistant",
                "content": completion.text or None,
                "tool_calls": tool_calls_to_openai(completion.tool_calls),
            }
            choice["finish_reason"] = "tool_calls"
        # mmad's own field (other servers have none): a model that declines by design, the visual expert,
        # stays an abstention over HTTP instead of an empty reply counted as unreadable
        if completion.abstained:
            choice["mmad_abstained"] = True
        if completion.abstained_items:
            choice["mmad_abstained_items"] = list(completion.abstained_items)
        if completion.letter_logprobs:
            top = [
                {"token": k, "logprob": v} for k, v in sorted(completion.letter_logprobs.items(), key=lambda kv: -kv[1])
            ]
            choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        response = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [] if fault == "empty" else [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "mmad": {"latency_s": round(time.monotonic() - started, 4), **completion.scores},
        }
        await self._send(writer, 200, json.dumps(response).encode())
        return True


def tool_turns_problem(messages: tuple[Message, ...]) -> str | None:
    """What OpenAI's API refuses in a tool conversation, or None: every call of an assistant turn
    answered by the tool messages right after it, and no tool message answering nothing."""
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id not in pending:
                return (
                    f"messages[{index}]: a tool message answers {message.tool_call_id!r}, which no open tool call has"
                )
            pending.discard(message.tool_call_id)
            continue
        if pending:
            return (
                f"messages[{index}]: an assistant message with tool_calls must be followed by tool messages "
                f"responding to each tool_call_id; unanswered: {', '.join(sorted(pending))}"
            )
        if message.role == "assistant":
            pending = {call.id for call in message.tool_calls}
    return None


@contextlib.contextmanager
def serve_in_thread(server: ChatServer) -> Iterator[ChatServer]:
    """Run a server on its own event loop in a background thread (tests, notebooks)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="mmad-serve", daemon=True)
    thread.start()
    if not ready.wait(10):
        msg = "the server did not start within 10 s"
        raise RuntimeError(msg)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
