"""Naming a failed call by its cause: connection refused, DNS, TLS, time-out, dropped connection.

The SDKs wrap the cause (the openai SDK reports a refused connection as a time-out); the cause is
found by walking the exception chain. Pure functions, tested without a network.
"""

from __future__ import annotations

import socket
import ssl

from mmad.errors import ModelCallError, PermanentError, RetryableError


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _during_tls_setup(endpoint: str, chain: list[BaseException]) -> bool:
    """An https:// connection that was cut while it was being set up: the TLS handshake was refused."""
    return endpoint.startswith("https://") and any("connect" in type(cause).__name__.lower() for cause in chain)


def classify_transport_error(exc: BaseException, endpoint: str, timeout_s: float) -> ModelCallError:
    """The ModelCallError for a call that got no HTTP reply, named by its root cause."""
    chain = _chain(exc)
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            msg = f"cannot resolve the host of {endpoint} (DNS: {cause.strerror or cause}); check --base-url"
            return PermanentError(msg, error_class="dns")
        if isinstance(cause, ssl.SSLCertVerificationError):
            msg = f"the TLS certificate of {endpoint} was not accepted ({cause.verify_message or cause})"
            return PermanentError(msg, error_class="tls")
        if isinstance(cause, ssl.SSLError):
            msg = f"TLS with {endpoint} failed ({cause}); is the URL's scheme (http/https) right?"
            return PermanentError(msg, error_class="tls")
        if isinstance(cause, ConnectionResetError | EOFError) and _during_tls_setup(endpoint, chain):
            msg = (
                f"TLS with {endpoint} failed: the server closed the connection during the handshake; "
                "if it speaks plain HTTP (mmad serve, a local llama.cpp or vLLM), use http:// in --base-url"
            )
            return PermanentError(msg, error_class="tls")
        if isinstance(cause, ConnectionRefusedError):
            msg = f"connection refused by {endpoint}: is the server running, and is --base-url right?"
            return RetryableError(msg, error_class="connection_refused")
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            msg = f"the connection to {endpoint} was dropped ({type(cause).__name__})"
            return RetryableError(msg, error_class="connection_dropped")
    if any(isinstance(cause, TimeoutError) for cause in chain) or "timeout" in type(exc).__name__.lower():
        msg = f"no reply from {endpoint} within {timeout_s:.0f} s"
        if _during_tls_setup(endpoint, chain):
            # A plain-HTTP server given a TLS handshake often just waits for a request line: no TLS error
            # ever comes, only this time-out, so the likely cause is named here.
            msg += " (the connection was never set up; if the server speaks plain HTTP, use http:// in --base-url)"
        return RetryableError(msg, error_class="timeout")
    root = chain[-1]
    msg = f"the connection to {endpoint} failed: {type(root).__name__}: {root}"
    return RetryableError(msg, error_class="connection")
