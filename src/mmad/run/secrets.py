"""Keep API keys out of logs, records and reports."""

from __future__ import annotations

import logging
import os
import re

_SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET|PASSWORD)$", re.IGNORECASE)  # _KEY takes API_KEY in
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{12,}|AIza[0-9A-Za-z_\-]{20,}|hf_[A-Za-z0-9]{20,})")


# Variables named as holding a key (--key-env NAME): any name, so the pattern above cannot be relied on.
_KEY_VARIABLES: set[str] = set()


def key_variable(name: str) -> None:
    """Treat the environment variable ``name`` as a credential from now on (its value is scrubbed)."""
    _KEY_VARIABLES.add(name)


def secret_values() -> list[str]:
    """The values of environment variables that look like credentials, or were named as holding one."""
    return [
        value
        for name, value in os.environ.items()
        if (_SECRET_NAME.search(name) or name in _KEY_VARIABLES) and len(value) >= 8
    ]


def redact(text: str) -> str:
    """Text with every credential-looking value replaced by ***."""
    for value in secret_values():
        text = text.replace(value, "***")
    return _KEY_SHAPES.sub("***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that removes credentials from every message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message, and the traceback a handler would print with it, without secrets."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set: an exception's message may hold a key too.
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
