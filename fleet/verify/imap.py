"""Find a test message over IMAP (the standard library's client, in a thread): TLS with a
verified certificate, one login (LOGIN with a password, or AUTHENTICATE XOAUTH2 with an
OAuth token), then the Inbox and the Junk folder searched once a second until the message
turns up or the window closes."""

from __future__ import annotations

import email
import imaplib
import re
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import Message

from fleet.errors import ImapProblem

POLL_S = 1.0  # between two searches: a delay is known to about this much

# Junk folders by name, for servers without SPECIAL-USE (RFC 6154): Exchange Online says
# "Junk Email", Gmail "[Gmail]/Spam", Dovecot and most others "Junk".
JUNK_NAMES = (
    "junk",
    "junk email",
    "junk e-mail",
    "spam",
    "[gmail]/spam",
    "inbox.junk",
    "inbox.spam",
)

_LIST_LINE = re.compile(r'^\((?P<flags>[^)]*)\)\s+(?:"(?:[^"\\]|\\.)*"|NIL)\s+(?P<name>.+)$')


@dataclass(frozen=True)
class Found:
    folder: str
    junk: bool
    headers: Message
    delay_s: float
    deleted: bool
    detail: str | None = None  # the delete did not work, and why


@dataclass(frozen=True)
class Mailbox:
    host: str
    port: int
    security: str  # tls | starttls
    username: str
    password: str  # the password, or the OAuth access token when `oauth` says which
    ca_file: str | None
    timeout_s: float
    oauth: str | None = None  # where the token came from: AUTHENTICATE XOAUTH2, not LOGIN


def find_test_message(
    box: Mailbox,
    test_id: str,
    *,
    sent_at: float,
    within_s: float,
    keep: bool,
    stop: threading.Event,
) -> Found | None:
    """Wait until `sent_at + within_s` (monotonic) for the message whose X-Fleet-Test-Id is
    `test_id`; delete it unless `keep`. None: not in the Inbox or Junk in time."""
    client = _connect(box)
    try:
        _login(client, box)
        folders = [("INBOX", False), *((name, True) for name in _junk_folders(client))]
        deadline = sent_at + within_s
        while True:
            for folder, junk in folders:
                hit = _search(client, folder, test_id)
                if hit is not None:
                    uid, headers = hit
                    delay_s = round(max(0.0, time.monotonic() - sent_at), 1)
                    deleted, detail = (False, None) if keep else _delete(client, folder, uid)
                    return Found(folder, junk, headers, delay_s, deleted, detail)
            if time.monotonic() + POLL_S > deadline or stop.wait(POLL_S):
                return None
    except (imaplib.IMAP4.error, OSError) as exc:
        raise ImapProblem(_words(exc)) from None
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _connect(box: Mailbox) -> imaplib.IMAP4:
    context = ssl.create_default_context(cafile=box.ca_file)  # verifies, checks the name
    try:
        if box.security == "tls":
            return imaplib.IMAP4_SSL(box.host, box.port, ssl_context=context, timeout=box.timeout_s)
        client = imaplib.IMAP4(box.host, box.port, timeout=box.timeout_s)
        client.starttls(context)
        return client
    except ssl.SSLCertVerificationError as exc:
        raise ImapProblem(f"TLS to {box.host}:{box.port}: {exc.verify_message}") from None
    except (imaplib.IMAP4.error, OSError) as exc:
        raise ImapProblem(f"{box.host}:{box.port}: {_words(exc)}") from None


def _login(client: imaplib.IMAP4, box: Mailbox) -> None:
    if box.oauth is not None:
        _login_xoauth2(client, box, box.oauth)
        return
    try:
        client.login(box.username, box.password)
    except imaplib.IMAP4.error as exc:
        raise ImapProblem(f"IMAP login as {box.username} refused: {_words(exc)}") from None


def _login_xoauth2(client: imaplib.IMAP4, box: Mailbox, source: str) -> None:
    """One AUTHENTICATE XOAUTH2 (Microsoft's and Google's IMAP OAuth): a refused token gets
    a JSON challenge back (Google), answered with an empty line to end the exchange; the
    token is never sent twice."""
    blob = f"user={box.username}\1auth=Bearer {box.password}\1\1".encode()
    answers = iter([blob])

    def respond(_challenge: bytes) -> bytes:
        return next(answers, b"")

    try:
        client.authenticate("XOAUTH2", respond)
    except imaplib.IMAP4.error as exc:
        raise ImapProblem(
            f"IMAP XOAUTH2 login as {box.username} refused the OAuth token from {source}: "
            f"{_words(exc)}"
        ) from None


def _junk_folders(client: imaplib.IMAP4) -> list[str]:
    status, lines = client.list()
    if status != "OK":
        return []
    return junk_folders([line for line in lines if isinstance(line, bytes)])


def junk_folders(lines: list[bytes]) -> list[str]:
    """From a LIST answer: the folders marked \\Junk, else the first whose name says junk
    or spam."""
    named: list[str] = []
    marked: list[str] = []
    for line in lines:
        match = _LIST_LINE.match(line.decode("utf-8", "replace"))
        if match is None:
            continue
        name = _unquote(match["name"])
        if "\\junk" in match["flags"].lower():
            marked.append(name)
        elif name.lower() in JUNK_NAMES:
            named.append(name)
    return marked or named[:1]


def _search(client: imaplib.IMAP4, folder: str, test_id: str) -> tuple[str, Message] | None:
    """The message in `folder` whose X-Fleet-Test-Id is `test_id` (UID and headers)."""
    status, _ = client.select(_quote(folder), readonly=True)
    if status != "OK":
        return None
    # The subject carries the id too, and every server searches subjects (not every one
    # searches an arbitrary header); the header is checked below.
    status, data = client.uid("SEARCH", "SUBJECT", test_id)
    if status != "OK" or not data or not data[0]:
        return None
    for uid in data[0].decode("ascii").split():
        status, parts = client.uid("FETCH", uid, "(BODY.PEEK[HEADER])")
        for part in parts if status == "OK" else []:
            if isinstance(part, tuple):
                headers = email.message_from_bytes(part[1])
                if str(headers.get("X-Fleet-Test-Id", "")).strip() == test_id:
                    return uid, headers
    return None


def _delete(client: imaplib.IMAP4, folder: str, uid: str) -> tuple[bool, str | None]:
    """Delete only this message: UID EXPUNGE (RFC 4315), never a folder-wide EXPUNGE that
    would also remove what the mailbox's owner marked deleted."""
    client.select(_quote(folder), readonly=False)
    status, _ = client.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
    if status != "OK":
        return False, f"could not mark the test message deleted in {folder}"
    if "UIDPLUS" not in _capabilities(client):
        return (
            False,
            f"marked deleted in {folder}; the server has no UID EXPUNGE to remove it alone",
        )
    status, _ = client.uid("EXPUNGE", uid)
    return status == "OK", None if status == "OK" else f"UID EXPUNGE refused in {folder}"


def _capabilities(client: imaplib.IMAP4) -> set[str]:
    """What the server offers after login (often more than before it)."""
    status, data = client.capability()
    words = data[0].split() if status == "OK" and data and isinstance(data[0], bytes) else []
    return {w.decode("ascii", "replace").upper() for w in words} | set(client.capabilities)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _words(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith("b'"):
        text = text[2:-1]
    return text or type(exc).__name__
