"""Secrets: read from the environment or a file at the moment of use, never stored.

Every secret that is read is remembered (in this process only) so that `scrub` can
blank it out of any text that is about to be logged or shown: a server or a library
that echoes a credential back must not leak it through us.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from dataclasses import dataclass

REDACTED = "****"

_known: set[str] = set()
_lock = threading.Lock()
# A sweep reads thousands of secrets (and their base64 forms). They are indexed by their
# first four characters, so scrubbing a text costs one dictionary look-up per character,
# however many secrets there are, and remembering one costs next to nothing.
_PREFIX = 4
_by_prefix: dict[str, list[str]] = {}


class SecretError(Exception):
    """A configured secret could not be read (unset variable, missing file)."""


@dataclass(frozen=True)
class SecretSource:
    """Where a secret lives: an environment variable or a file. Holds no secret itself."""

    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"${self.env}" if self.env else f"file {self.file}"

    def read(self) -> str:
        """The secret's value; raises SecretError when it cannot be read."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise SecretError(f"environment variable {self.env} is not set")
        elif self.file is not None:
            try:
                with open(self.file, encoding="utf-8") as handle:
                    value = handle.read().strip()
            except OSError as exc:
                raise SecretError(f"cannot read {self.file}: {exc.strerror}") from None
            if not value:
                raise SecretError(f"{self.file} is empty")
        else:
            raise SecretError("no secret source configured")
        remember(value)
        return value


def remember(value: str) -> None:
    """Register a secret so that `scrub` removes it from text: as it is, and in lower case,
    because DNS names are (a DQS key is part of a query name, and resolvers and our own
    cache lower-case those)."""
    _remember(value)
    if value.lower() != value:
        _remember(value.lower())


def _remember(value: str) -> None:
    if len(value) < _PREFIX or value in _known:  # shorter strings would blank ordinary words
        return
    with _lock:
        _known.add(value)
        _by_prefix.setdefault(value[:_PREFIX], []).append(value)


def remember_auth_forms(user: str, secret: str) -> tuple[str, ...]:
    """Register a secret as it travels in SMTP AUTH (plain, and base64 as in LOGIN, PLAIN and
    XOAUTH2), so that a server echoing one back cannot leak it; longest first."""
    forms = (
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"\0{user}\0{secret}".encode()).decode(),
        base64.b64encode(f"user={user}\1auth=Bearer {secret}\1\1".encode()).decode(),
    )
    for form in forms:
        remember(form)
    return tuple(sorted(forms, key=len, reverse=True))


def scrub(text: str) -> str:
    """Replace every secret this process has read with ****."""
    if not _known:
        return text
    parts: list[str] = []
    start = index = 0
    end = len(text) - _PREFIX
    while index <= end:
        bucket = _by_prefix.get(text[index : index + _PREFIX])
        # the longest secret that starts here wins
        match = (
            max((s for s in bucket if text.startswith(s, index)), key=len, default=None)
            if bucket
            else None
        )
        if match is None:
            index += 1
            continue
        parts += [text[start:index], REDACTED]
        index = start = index + len(match)
    if not parts:
        return text
    parts.append(text[start:])
    return "".join(parts)


class Scrubbed:
    """Text for a log call, scrubbed only if the record is actually formatted."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return scrub(self.text)


class ScrubFilter(logging.Filter):
    """A logging filter that blanks known secrets from every record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        # A traceback quotes exception messages and source lines: scrub it too, and hand
        # the formatter the clean text instead of the exception to format again.
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
