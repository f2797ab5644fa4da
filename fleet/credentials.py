"""Secrets: where they are read from, and the one boundary that keeps them out of output.

A secret is read from the environment or a file at the moment of use, never stored.
`Secrets` is one sweep's (one command's) book of every secret it handled, in every form
it took on the wire: as written, base64 of it (an AUTH LOGIN line), the AUTH PLAIN blob,
the XOAUTH2 blob, a DQS key in any letter case. `Secrets.scrub` blanks them out of text,
whole or in long fragments, and also when a server spreads one over several lines;
`Secrets.scrub_model` does it to every string of a result before it is stored, rendered
or logged. There is no process-wide registry: two sweeps never share (or hide) secrets.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple, TypeVar

from msgspec import Struct, structs

from fleet.errors import SecretError

REDACTED = "****"

# The agents' keys (fleet.agent): named here, so that every command can keep them out of
# its output without loading the agent's module (hashing, the inventory, the results).
AGENT_KEY_ENV = "FLEET_AGENT_KEY"
AGENT_MASTER_KEY_ENV = "FLEET_AGENT_MASTER_KEY"

log = logging.getLogger("fleet.credentials")

# Shorter strings would blank ordinary words.
MIN_SECRET = 4
# A piece of an encoded form of a secret (base64, as AUTH sends it) this long is a leak: a
# server that cuts an echo short, or wraps it over lines, must not give a password away.
FRAGMENT = 8
# A secret as written may hold ordinary words ("internal"): there a piece must be at least
# half of it (rounded down: either half of a password a server split in two), and never
# shorter than this, so that the words stay readable. A piece shorter than FRAGMENT is
# blanked only beside another piece of the same secret in the same text (a split echo):
# alone it is a word ("Summer" of "Summer2024" in "Summerfield", a client's name).
WRITTEN_FRAGMENT = 6
# Text is probed every _STRIDE characters for a _GRAM-long piece of a known form, then the
# match is grown both ways: every fragment of WRITTEN_FRAGMENT characters or more holds one
# probed piece (WRITTEN_FRAGMENT >= _GRAM + _STRIDE - 1), at a third of the cost of probing
# everywhere.
_GRAM = 4
_STRIDE = 3
# Multi-line replies repeat their code (and often an enhanced code) on every line: the text
# between them is what a server may have split a secret over.
# What lies between the pieces: line breaks and spaces, the reply code starting a line, and
# an enhanced code as a word (it starts every line of such a reply, and stays between the
# pieces when a finding or a flag's evidence quotes the reply on one line).
# Invisible characters (soft hyphen, zero-width space and joiners, word joiner, BOM) are
# gaps too: a text shows the same with or without them.
_INVISIBLE = "\u00ad\u200b-\u200d\u2060\ufeff"
_GAPS = re.compile(
    rf"(?m)^[ \t]*\d{{3}}[ -]|[\s{_INVISIBLE}]+|(?<![^\s-])[245]\.\d{{1,3}}\.\d{{1,3}}(?!\S)"
)
_SPACE = re.compile(rf"[\s{_INVISIBLE}]")
_INVISIBLES = re.compile(rf"[{_INVISIBLE}]+")

M = TypeVar("M", bound=Struct)
_UNSEEN: Any = object()  # a string not scrubbed yet (Secrets._clean)


class SecretSource(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
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
                with open(self.file, "rb") as handle:
                    warn_if_exposed(self.file, handle.fileno())
                    value = _decode_text_file(handle.read()).strip()
            except OSError as exc:
                raise SecretError(f"cannot read {self.file}: {exc.strerror}") from None
            except UnicodeError:
                raise SecretError(
                    f"cannot read {self.file}: it is not UTF-8 text (nor UTF-16 with a byte "
                    "order mark); save it as UTF-8"
                ) from None
            if not value:
                raise SecretError(f"{self.file} is empty")
        else:
            raise SecretError("no secret source configured")
        return value


# Windows tools write text files with a byte order mark: PowerShell 5.1's `>` and Out-File
# in UTF-16, Notepad and Set-Content -Encoding utf8 in UTF-8. The mark is no part of a secret.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16's: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decode_text_file(data: bytes) -> str:
    """A secret file's text: UTF-8 (a BOM dropped), or UTF-16/32 when a BOM says so."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding)
    return data.decode("utf-8-sig")


_warned: set[str] = set()


def warn_if_exposed(path: str, fd: int | None = None) -> bool:
    """Warn (once per file), as ssh does, when a secret's file can be read by other users.
    Only where files have POSIX permissions; True when it warned."""
    if os.name != "posix":
        return False
    try:
        mode = os.fstat(fd).st_mode if fd is not None else os.stat(path).st_mode
    except OSError:
        return False
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return False
    if path not in _warned:
        _warned.add(path)
        log.warning(
            "the secret file %s is accessible by other users (mode %s): chmod 600 it",
            path,
            oct(stat.S_IMODE(mode)),
        )
    return True


def login_forms(user: str, secret: str) -> tuple[str, ...]:
    """A login's secret in every form SMTP AUTH sends it: as written, base64 (the AUTH LOGIN
    password line), the AUTH PLAIN blob and the XOAUTH2 blob."""
    return tuple(form for form, _ in _login_forms(user, secret))


def _login_forms(user: str, secret: str) -> list[tuple[str, int]]:
    """Each wire form with where, in it, the secret's own characters begin: what comes
    before only encodes the username, which is no secret."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    def encoded_from(prefix: str) -> int:  # the base64 group holding its first byte
        return len(prefix.encode("utf-8")) // 3 * 4

    plain = f"\0{user}\0"
    oauth = f"user={user}\1auth=Bearer "
    return [
        (secret, 0),
        (b64(secret), 0),
        (b64(plain + secret), encoded_from(plain)),
        (b64(f"{oauth}{secret}\1\1"), encoded_from(oauth)),
    ]


class Secrets:
    """Every secret one sweep or command handled, in every form it took, and the scrubber
    that blanks them (case-insensitively: DNS names, and resolvers that randomise the case
    of a query name, do not keep a DQS key's case)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()  # lower case, matched whole or in fragments
        self._whole: set[str] = set()  # lower case, matched whole only (URLs)
        self._short: set[str] = set()  # forms too short to be found by their pieces
        # Both, as one tuple replaced (never changed) on each add: a log record formatted in
        # another thread (a library's) reads it while the sweep adds a secret.
        self._exact: tuple[str, ...] = ()
        self._pieces: dict[str, list[str]] = {}  # piece -> the forms that hold it
        self._minimum: dict[str, int] = {}  # form -> the shortest piece of it that leaks

    def __bool__(self) -> bool:
        return bool(self._forms or self._whole)

    def add(
        self, value: str, *, fragments: bool = True, encoded: bool = False, secret_from: int = 0
    ) -> None:
        """Know a secret as it is (`fragments=False`: only whole, for a URL whose scheme and
        host are not secret; `encoded`: a base64 form, where a short piece is a leak;
        `secret_from`: where the secret's own characters begin, when what comes before is
        no secret, so pieces of that part alone are not looked for)."""
        form = value.strip().lower()
        if len(form) < MIN_SECRET or form in self._forms or form in self._whole:
            return
        with self._lock:
            if not fragments:
                self._whole.add(form)
                self._exact = (*self._exact, form)
                return
            self._forms.add(form)
            minimum = FRAGMENT if encoded else max(WRITTEN_FRAGMENT, len(form) // 2)
            self._minimum[form] = min(minimum, len(form))
            if len(form) < WRITTEN_FRAGMENT:
                self._short.add(form)
                self._exact = (*self._exact, form)
                return
            # Only the form is kept per piece (a sweep of 10,000 logins knows 40,000 forms):
            # where the piece sits in it is found again on the rare hit.
            for offset in range(max(0, secret_from - _GRAM + 1), len(form) - _GRAM + 1):
                holders = self._pieces.setdefault(form[offset : offset + _GRAM], [])
                if not holders or holders[-1] is not form:
                    holders.append(form)

    def add_login(self, user: str, secret: str) -> None:
        """Know a login's password or token in every form AUTH sends it."""
        (raw, _), *encoded = _login_forms(user, secret)
        self.add(raw)
        for form, secret_from in encoded:
            self.add(form, encoded=True, secret_from=secret_from)

    def add_key_file(self, value: str) -> None:
        """Know a secret, and when it is a PEM key (or a JSON key file holding one, as a
        Google service account's), each line of the key, which is what could be echoed."""
        self.add(value)
        texts = [value]
        if value.lstrip().startswith("{"):
            with contextlib.suppress(ValueError):
                document = json.loads(value)
                if isinstance(document, dict) and isinstance(document.get("private_key"), str):
                    texts.append(document["private_key"])
        for text in texts:
            for line in text.splitlines():
                if len(line.strip()) >= 2 * FRAGMENT and "-----" not in line:
                    self.add(line)

    def add_sources(self, sources: Iterable[tuple[str | None, SecretSource]]) -> None:
        """Read and know every (username, source) that can be read; one that cannot is left
        to its user, who reports it. A username makes the secret a login."""
        for user, source in sources:
            try:
                value = source.read()
            except SecretError:
                continue
            if user is None:
                self.add_key_file(value)
            else:
                self.add_login(user, value)

    # -- scrubbing ------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """The text with every known secret, or long piece of one, replaced by ****."""
        if not text or len(text) < MIN_SECRET or not (self._forms or self._whole):
            return text
        lower = text.lower()
        if len(lower) != len(text):  # a few characters grow when lower-cased
            lower = "".join(c.lower()[:1] or c for c in text)
        hidden = bytearray(len(text))
        self._mark(lower, range(len(lower)), hidden)
        if _SPACE.search(lower):
            self._mark_joined(lower, hidden)
        if not any(hidden):
            return text
        parts: list[str] = []
        index = 0
        while index < len(text):
            if hidden[index]:
                parts.append(REDACTED)
                while index < len(text) and hidden[index]:
                    index += 1
            else:
                start = index
                while index < len(text) and not hidden[index]:
                    index += 1
                parts.append(text[start:index])
        return "".join(parts)

    def _mark_joined(self, text: str, hidden: bytearray) -> None:
        """Mark the forms found once the text's words are run together, without the gaps a
        server or a one-line quote put between the pieces of a secret (see _GAPS)."""
        joined = _GAPS.sub("", text)
        found = bytearray(len(joined))
        self._mark(joined, range(len(joined)), found)
        if any(found):  # rare: only then where each character came from
            where = _kept_positions(text)
            for i, hit in enumerate(found):
                if hit:
                    hidden[where[i]] = 1
                    # invisible characters inside a secret go with it
                    if (
                        i
                        and found[i - 1]
                        and _INVISIBLES.fullmatch(text, where[i - 1] + 1, where[i])
                    ):
                        hidden[where[i - 1] + 1 : where[i]] = b"\1" * (where[i] - where[i - 1] - 1)

    def _mark(self, text: str, where: range | list[int], hidden: bytearray) -> None:
        """Mark in `hidden` (positions of the original text, through `where`) every known
        form of `text`: whole, or a piece of at least its minimum (see add)."""
        for form in self._exact:
            start = text.find(form)
            while start != -1:
                for i in range(start, start + len(form)):
                    hidden[where[i]] = 1
                start = text.find(form, start + 1)
        pieces = self._pieces
        if not pieces:
            return
        size = len(text)
        # form -> its short pieces found: (start, end in text, start in form)
        short: dict[str, set[tuple[int, int, int]]] = {}
        for index in range(0, size - _GRAM + 1, _STRIDE):
            piece = text[index : index + _GRAM]
            found = pieces.get(piece)
            if found is None:
                continue
            for form in found:
                offset = form.find(piece)
                while offset != -1:
                    left, at = index, offset
                    while left > 0 and at > 0 and text[left - 1] == form[at - 1]:
                        left, at = left - 1, at - 1
                    right, at = index + _GRAM, offset + _GRAM
                    while right < size and at < len(form) and text[right] == form[at]:
                        right, at = right + 1, at + 1
                    length = right - left
                    if length >= self._minimum[form]:
                        if length >= FRAGMENT or length == len(form):
                            for i in range(left, right):
                                hidden[where[i]] = 1
                        else:
                            short.setdefault(form, set()).add((left, right, at - length))
                    offset = form.find(piece, offset + 1)
        for found_short in short.values():
            if _split_echo(found_short):
                for left, right, _ in found_short:
                    for i in range(left, right):
                        hidden[where[i]] = 1

    def scrub_model(self, model: M) -> M:
        """The model with every string in it scrubbed (the same object when nothing was)."""
        if not self:
            return model
        # A site's result holds most of its strings more than once (each device's commands,
        # replies, findings and remediations: 116,000 strings, 48,000 distinct, in a sweep of
        # 1,000 sites with 5 copiers each): each distinct one is scrubbed once per model.
        # The book does not change meanwhile (secrets are added on the loop, and this runs
        # on it without a pause), so every copy reads as the first did.
        cleaned = self._clean(model, {})
        assert isinstance(cleaned, type(model))  # noqa: S101 - _clean keeps types
        return cleaned

    def _clean(self, value: Any, seen: dict[str, str | None]) -> Any:
        """`value` with its strings scrubbed; `seen` holds each string scrubbed so far (None
        when it was clean: the caller's own object is then returned, never a copy's)."""
        if type(value) is str:  # not an enum value: those are ours
            known = seen.get(value, _UNSEEN)
            if known is _UNSEEN:
                scrubbed = self.scrub(value)
                known = seen[value] = None if scrubbed is value else scrubbed
            return value if known is None else known
        if isinstance(value, Struct):  # a result (fleet/results.py)
            update = {}
            for name in value.__struct_fields__:
                field = getattr(value, name)
                clean = self._clean(field, seen)
                if clean is not field:
                    update[name] = clean
            return structs.replace(value, **update) if update else value
        if isinstance(value, list | tuple):
            items = [self._clean(item, seen) for item in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return type(value)(items)
        if isinstance(value, dict):
            # Compare each key and value with its own original (pairs made afresh never
            # are the originals): an untouched dict, and the model holding it, stay as is.
            cleaned = {}
            changed = False
            for key, item in value.items():
                clean_key, clean_item = self._clean(key, seen), self._clean(item, seen)
                changed = changed or clean_key is not key or clean_item is not item
                cleaned[clean_key] = clean_item
            return cleaned if changed else value
        return value


def _kept_positions(text: str) -> list[int]:
    """Where each character of `_GAPS.sub("", text)` is in the text."""
    where: list[int] = []
    last = 0
    for gap in _GAPS.finditer(text):
        where.extend(range(last, gap.start()))
        last = gap.end()
    where.extend(range(last, len(text)))
    return where


class ScrubFilter(logging.Filter):
    """A logging filter that blanks the given secrets from every record."""

    _formatter = logging.Formatter()

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.secrets.scrub(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        # A traceback quotes exception messages and source lines: scrub it too, and hand
        # the formatter the clean text instead of the exception to format again.
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.secrets.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.secrets.scrub(record.stack_info)
        return True


def _split_echo(found: set[tuple[int, int, int]]) -> bool:
    """Whether short pieces found of one secret are two of its parts (their places in the
    secret do not overlap, nor do they in the text): a split echo, not a word met twice."""
    spans = sorted(found)
    return any(
        a_end <= b_start
        and (a_form + (a_end - a_start) <= b_form or b_form + (b_end - b_start) <= a_form)
        for i, (a_start, a_end, a_form) in enumerate(spans)
        for b_start, b_end, b_form in spans[i + 1 :]
    )
