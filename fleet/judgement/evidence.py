"""What a reply's own words prove: its enhanced status code, the client IP it echoes, the
blocklist or listed domain it names, whether a listing is about an IP."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fleet.credentials import REDACTED
from fleet.net import unmapped
from fleet.results import Reply

# ---- parsing ----------------------------------------------------------------------------

# An enhanced status code starts a reply line: "5.7.606 Access denied ...". Anchoring at the
# line start keeps the octets of a bracketed IP ("[40.107.5.7]") from reading as one, and a
# fourth number ("5.7.5.7 is listed") means an IP address, not a code.
_ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$|[;,:)\]]|\.(?!\d))", re.MULTILINE)


ENHANCED_FULL_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


# An enhanced code after a short prefix the server put first ("<user@example.com>: 5.1.1 ...",
# "mx1.example.net 5.7.1 ...", "(#5.7.1)"): the reply's code all the same, for the rules and the
# learned reader (the reply as stored keeps the code parsed only at a line's start).
PREFIXED_CODE_RE = re.compile(
    r"^[^\n]{0,160}?(?:^|(?<=[\s:<>(\[#]))([245]\.\d{1,3}\.\d{1,3})(?=\s|$|[;,:)\]]|\.(?!\d))"
)


def parse_enhanced(text: str) -> str | None:
    """The first enhanced status code (RFC 3463) at the start of a reply line, if any."""
    match = _ENHANCED_RE.search(text)
    return ".".join(match.groups()) if match else None


def make_reply(code: int | None, text: str, secrets: Iterable[str] = ()) -> Reply:
    """A Reply with its enhanced code parsed and its text made safe to store: valid Unicode,
    and none of the given secrets (what this conversation sent), should a server echo one."""
    clean = clean_text(text)
    for secret in secrets:
        if secret in clean:
            clean = clean.replace(secret, REDACTED)
    return Reply(code=code, enhanced=parse_enhanced(clean), text=clean)


def clean_text(text: str) -> str:
    """Text from a server as valid Unicode (aiosmtplib keeps undecodable bytes as surrogates)."""
    if text.isascii():  # most replies: nothing to check (isascii reads a flag)
        return text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Escaped bytes back to bytes; any other lone surrogate (from an exception's text, or
        # a library that decodes differently) passes as bytes that cannot decode either.
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogatepass")
        text = data.decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd")


_IP_PATTERNS = [
    # Microsoft 365 / Exchange: "Hello [203.0.113.5]"; Exim: "Hello name [203.0.113.5]"
    re.compile(r"\bHello\b[^\[\n]{0,200}\[([0-9A-Fa-f:.]+)\]"),
    # Google: "at your service, [203.0.113.5]"
    re.compile(r"at your service,?\s*\[([0-9A-Fa-f:.]+)\]"),
    # Postfix, Exim and EOP rejections: "Client host [203.0.113.5] blocked using ..."
    re.compile(r"Client host \[([0-9A-Fa-f:.]+)\]", re.IGNORECASE),
    # EOP: "banned sending IP [203.0.113.5]"; consumer Outlook: "messages from [x] weren't sent"
    re.compile(r"sending IP \[([0-9A-Fa-f:.]+)\]", re.IGNORECASE),
    re.compile(r"messages from \[([0-9A-Fa-f:.]+)\]", re.IGNORECASE),
]


# Each pattern reads the address in brackets: a text without one (most greetings) needs no
# search at all (issue 20: every conversation's banner is read here).
_BRACKETED = all(r"\[" in pattern.pattern for pattern in _IP_PATTERNS)


def echoed_client_ip(text: str) -> str | None:
    """The client IP a server echoed back (greeting or rejection), if it did."""
    if _BRACKETED and "[" not in text:
        return None
    for pattern in _IP_PATTERNS:
        for match in pattern.finditer(text):
            try:
                # an IPv4 client seen through an IPv6 socket is the IPv4 address it is
                return str(unmapped(match.group(1)))
            except ValueError:
                continue
    return None


def blocklist_named(text: str) -> str | None:
    """The blocklist a rejection names: 'blocked using zen.spamhaus.org' -> zen.spamhaus.org."""
    match = re.search(r"blocked using ([A-Za-z0-9.-]+[A-Za-z0-9])", text)
    if match:
        return match.group(1)
    match = re.search(
        r"\b((?:[a-z0-9-]{1,63}\.){0,4}(?:spamhaus|spamcop|barracudacentral|uribl|surbl|sorbs|abuseat|"
        r"mailspike|psbl\.surriel)\.(?:org|net|com))\b",
        text,
        re.IGNORECASE,
    )
    if match:
        return match.group(1).lower()
    for name in ("Spamhaus DBL", "Spamhaus", "URIBL", "SURBL", "Barracuda", "SpamCop"):
        if re.search(re.escape(name), text, re.IGNORECASE):
            return name
    return None


# Bounded repetitions throughout: a hostile server's 40,000 dots must not cost minutes.
DOMAIN = r"(?<![A-Za-z0-9.-])[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,63}"
_LISTED_DOMAIN_PATTERNS = (
    # Spamhaus's lookup link: https://check.spamhaus.org/listed/?searchterm=x, query/dbl?domain=x
    re.compile(r"(?:[?&](?:domain|searchterm|d)=)(" + DOMAIN + r")", re.IGNORECASE),
    # "Sender address [a@example.com] blocked using dbl.spamhaus.org"
    re.compile(r"address \[?<?[^@\s<>\[\]]+@(" + DOMAIN + r")", re.IGNORECASE),
    # "domain example.com is listed", "Helo domain [x.example] is listed", "example.com is listed"
    re.compile(
        r"(?:domain|helo|ehlo|host ?name|url|uri)\s+[\[<('\"]?(" + DOMAIN + r")[\]>)'\"]?"
        r"\s+(?:is |was |has been )?(?:listed|black ?listed|block ?listed|blocked|present|found)",
        re.IGNORECASE,
    ),
    re.compile(
        r"[\[<('\"]?(" + DOMAIN + r")[\]>)'\"]?\s+(?:is |was |has been )?"
        r"(?:listed|black ?listed|block ?listed) (?:at|on|in|by)",
        re.IGNORECASE,
    ),
)
_LIST_ZONE_RE = re.compile(
    r"(?:spamhaus|spamcop|barracudacentral|uribl|surbl|sorbs|abuseat|mailspike)\.(?:org|net|com)$",
    re.IGNORECASE,
)


def listed_domain(text: str) -> str | None:
    """The domain a domain-blocklist rejection names, if it names one (not the list's own)."""
    for pattern in _LISTED_DOMAIN_PATTERNS:
        for match in pattern.finditer(text):
            domain = match.group(1).rstrip(".").lower()
            if not _LIST_ZONE_RE.search(domain) and not domain.startswith("www.spamhaus"):
                return domain
    return None


# What makes a listing a listing of the site's IP: the reply names an IP address (not a
# list's own 127.0.0.x answer), the client host, or a list that holds only IP addresses.
_IP_EVIDENCE_RE = re.compile(
    r"(?<![\d.])(?!127\.)(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)|\[[0-9a-f]*:[0-9a-f:]+\]|"
    r"\b(?:client|sending|connecting|remote|source) (?:host|IP|address)\b|"
    r"\b(?:your|sender) (?:host|IP)\b|"
    # the client as a server ("because your server is listed in a blocklist")
    r"\b(?:your|sending|sender|client|connecting) (?:mail ?)?(?:server|mta|relay|machine)\b|"
    r"\bIP(?:v[46])?(?: address)?\b|"
    r"\b(?:zen|sbl|xbl|pbl|sbl-xbl|cbl|bl\.spamcop|b\.barracudacentral|dnsbl\.sorbs|"
    r"bl\.mailspike|psbl\.surriel)\b|\bRBL|\bDNSBL|query/ip|query/bl|\bBRBL\b",
    re.IGNORECASE,
)


def names_the_ip(text: str) -> bool:
    """Does a listing reply say it is about an IP address (the client's, or on an IP list)?"""
    return _IP_EVIDENCE_RE.search(text) is not None


# A multi-line reply repeats its enhanced code on every line, and Google wraps sentences
# across lines ("not authorized to\n5.7.1 send email directly"): key phrases are searched
# in the lines joined back into one.
_CONTINUATION_RE = re.compile(r"[ \t]*\r?\n(?:[245]\.\d{1,3}\.\d{1,3}(?=\s|$))?[ \t]*")


def unwrapped(text: str) -> str:
    """A reply's lines joined with single spaces, the repeated enhanced codes left out."""
    return _CONTINUATION_RE.sub(" ", text)


# Contractions spelt out ("isn't" -> "is not", a typographic apostrophe as a plain one), so
# that a rule written with one spelling reads the other: servers and the people quoting them
# use both.
_CONTRACTIONS = {
    "isn't": "is not",
    "aren't": "are not",
    "wasn't": "was not",
    "weren't": "were not",
    "doesn't": "does not",
    "don't": "do not",
    "didn't": "did not",
    "can't": "cannot",
    "couldn't": "could not",
    "won't": "will not",
    "hasn't": "has not",
    "haven't": "have not",
}
_CONTRACTION_RE = re.compile(
    r"\b(" + "|".join(word.replace("'", "['\u2019]") for word in _CONTRACTIONS) + r")(?!\w)",
    re.IGNORECASE,
)


# ... and the compounds written with a hyphen as one word ("mail-box", "black-listed")
_HYPHENED_RE = re.compile(
    r"\b(mail|black|block|white|allow|spam|user|host)-(box(?:es)?|list(?:ed|s|ing)?|names?)\b",
    re.IGNORECASE,
)


# ... and the misspellings servers ship ("ip adress", QQ's "requiered", "unavaiable"): the
# word a rule knows. (A typo's stem stays; the rest of the word is kept.)
_MISSPELT = {
    "adress": "address",
    "recieve": "receive",
    "recieved": "received",
    "recipent": "recipient",
    "reciepient": "recipient",
    "reciever": "receiver",
    "requiered": "required",
    "requierd": "required",
    "requied": "required",
    "unavaiable": "unavailable",
    "unavailible": "unavailable",
    "permited": "permitted",
    "mesage": "message",
    "authentification": "authentication",
    "authenication": "authentication",
    "authorised": "authorized",
}
_MISSPELT_RE = re.compile(r"\b(" + "|".join(_MISSPELT) + r")\b", re.IGNORECASE)


def spelt_out(text: str) -> str:
    """The text with its contractions spelt out (see `_CONTRACTIONS`), its hyphened
    compounds joined (see `_HYPHENED_RE`) and common misspellings corrected (`_MISSPELT`)."""
    text = _CONTRACTION_RE.sub(
        lambda m: _CONTRACTIONS[m.group(1).lower().replace("\u2019", "'")], text
    )
    text = _HYPHENED_RE.sub(r"\1\2", text)
    return _MISSPELT_RE.sub(lambda m: _MISSPELT[m.group(1).lower()], text)
