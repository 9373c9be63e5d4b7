"""The OpenAI-compatible backend, on the official ``openai`` SDK (``AsyncOpenAI``).

One backend serves OpenAI, the OpenAI-compatible endpoints of Gemini and Anthropic, OpenRouter,
vLLM, SGLang, Ollama, LM Studio and `mmad serve`. The SDK's own retries are off: the runner
retries with its own bounded, jittered back-off, honouring Retry-After.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from typing import Any

from mmad.errors import ConfigError, ModelCallError, PermanentError, RetryableError
from mmad.models.base import Completion, Model, Request
from mmad.models.openai_convert import classify_status, from_openai_response, json_body, to_openai_payload
from mmad.models.transport import classify_transport_error
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder

logger = logging.getLogger(__name__)


class OpenAICompatibleModel(Model):
    """Any server that speaks the OpenAI chat-completions API."""

    prefetch_images = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        key_env: str | None = "OPENAI_API_KEY",
        key_required: bool = False,
        provider: str = "openai",
        detail: str | None = "low",
        extra_body: dict[str, Any] | None = None,
        timeout_s: float = 120.0,
        max_connections: int = 64,
        text_only: bool = False,
        is_local: bool = False,
        top_logprobs: int = 20,
    ) -> None:
        if not base_url:
            msg = f"model {provider}:{model} needs a base URL: pass --base-url http://host:port/v1"
            raise ConfigError(msg)
        self.name = f"{provider}:{model}"
        self.model = model
        self.provider = provider
        # Several servers of one model (e.g. vLLM replicas) may be given, comma-separated: each
        # request goes to the one with the fewest requests in flight.
        self.base_urls = [url.strip() for url in base_url.split(",") if url.strip()]
        self.base_url = base_url
        self.endpoint = base_url
        self.in_flight = dict.fromkeys(self.base_urls, 0)
        self.key_env = key_env
        self.detail = detail
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        self.text_only = text_only
        self.is_local = is_local
        self.key_required = key_required
        self.top_logprobs = top_logprobs
        self._max_connections = max_connections
        self._clients: list[Any] = []
        self._next = 0
        self._fallback_images = ImageEncoder(ImageSettings())
        # The SDK makes a uuid4 per request for an idempotency header it never sends to these
        # servers; os.urandom gives up the GIL, and getting it back behind the image-prefetch
        # thread cost 0.3-4 ms a request. A counter is as unique within the process.
        self._request_ids = itertools.count()
        self._id_prefix = f"mmad-{os.getpid()}-{id(self):x}-"

    def _api_key(self) -> str:
        if self.key_env is None:
            return "not-needed"
        key = os.environ.get(self.key_env)
        if key:
            return key
        if self.key_required:  # named on purpose (--key-env): a missing key is a mistake even locally
            msg = (
                f"--key-env {self.key_env}: that environment variable is not set or empty; export it, or leave "
                "--key-env out for a server that needs no key"
            )
            raise ConfigError(msg)
        if self.is_local:
            return "not-needed"
        msg = f"{self.name} needs an API key in the environment variable {self.key_env}; set it and try again"
        raise ConfigError(msg)

    def check(self) -> None:
        """Refuse to start without the API key."""
        self._api_key()

    def client(self) -> Any:
        """An SDK client for the least busy endpoint, created on first use.

        The SDK's aiohttp transport (the ``openai[aiohttp]`` extra) is used when installed: at
        high concurrency it costs a fraction of the CPU of the default httpx transport, whose
        pool also checks every idle connection on each request. With httpx, connections are
        spread over several clients of at most 8 connections each for that reason.
        """
        if not self._clients:
            import httpx2
            from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient

            key = self._api_key()
            try:
                limits = httpx2.Limits(
                    max_connections=self._max_connections, max_keepalive_connections=self._max_connections
                )
                transports = [DefaultAioHttpClient(limits=limits, timeout=self.timeout_s)]
            except RuntimeError:  # aiohttp is not installed
                per_client = 8
                limits = httpx2.Limits(max_connections=per_client, max_keepalive_connections=per_client)
                shards = max(1, -(-self._max_connections // per_client))
                transports = [DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout_s) for _ in range(shards)]
            self._clients = [
                AsyncOpenAI(api_key=key, base_url=url, max_retries=0, timeout=self.timeout_s, http_client=transport)
                for url in self.base_urls
                for transport in transports
            ]
        if len(self.base_urls) == 1:
            self._next = (self._next + 1) % len(self._clients)
            return self._clients[self._next]
        url = min(self.base_urls, key=lambda u: self.in_flight[u])
        per_url = len(self._clients) // len(self.base_urls)
        self._next = (self._next + 1) % per_url
        return self._clients[self.base_urls.index(url) * per_url + self._next]

    def payload(self, request: Request) -> dict[str, Any]:
        """The chat-completions arguments of a request (pure apart from image encoding)."""
        images = request.images or self._fallback_images
        return to_openai_payload(
            self.model,
            request,
            images.encode,
            detail=self.detail,
            text_only=self.text_only,
            top_logprobs=self.top_logprobs,
        )

    async def generate(self, request: Request) -> Completion:
        """Send one chat-completions request."""
        import httpx2
        import openai

        body = {**self.payload(request), **self.extra_body}
        client = self.client()
        url = str(client.base_url).rstrip("/")
        endpoint = next((u for u in self.base_urls if u.rstrip("/") == url), self.base_urls[0])
        self.in_flight[endpoint] += 1
        try:
            # The SDK's documented raw-request path: the body goes out as built here, without the
            # per-field transformation `chat.completions.create` applies (milliseconds per request),
            # and as bytes encoded once by json_body, which copies the images' base64 instead of
            # JSON-escaping it (the SDK's own encoding took 1.3 ms for two 512-px JPEGs).
            response = await client.post(
                "/chat/completions",
                content=json_body(body),
                cast_to=httpx2.Response,
                options={"idempotency_key": f"{self._id_prefix}{next(self._request_ids)}"},
            )
            data = response.json()
        except openai.APIStatusError as exc:
            headers = exc.response.headers if exc.response is not None else {}
            raise classify_status(exc.status_code, _body_text(exc), headers.get("retry-after")) from exc
        except openai.APIConnectionError as exc:  # APITimeoutError included: the cause says which
            raise classify_transport_error(exc, endpoint, self.timeout_s) from exc
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError) as exc:
            msg = f"the server's reply could not be read: {exc}"
            raise RetryableError(msg, error_class="malformed") from exc
        except ModelCallError:
            raise
        except openai.OpenAIError as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise PermanentError(msg, error_class="client") from exc
        finally:
            self.in_flight[endpoint] -= 1
        return from_openai_response(data)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        for client in self._clients:
            await client.close()
        self._clients = []

    def describe(self) -> dict[str, Any]:
        """Provider, model, endpoint and settings; the key's variable name, never the key."""
        return {
            "name": self.name,
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url,
            "key_env": self.key_env,
            "detail": self.detail,
            "extra_body": self.extra_body,
            "text_only": self.text_only,
        }


def _body_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body is None:
        return str(exc)
    return body if isinstance(body, str) else json.dumps(body)[:500]
