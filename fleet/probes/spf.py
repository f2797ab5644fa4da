"""SPF as a receiver evaluates it (RFC 7208 check_host), on the sweep's own resolver.

Why not a library: pyspf (2.0.14, last released January 2020) is synchronous and resolves
through one module-wide function on dnspython's default resolver (the system's, not the
inventory's nameservers), calling `dns.resolver.query`, which dnspython deprecates: every
lookup warns, and it cannot share the sweep's de-duplicating aiodns resolver or run
concurrently without threads. checkdmarc (6.x, maintained) lints a domain's record and
counts its lookups, but has no check_host(ip): it cannot say whether an IP passes; it is
synchronous dnspython too, with process-wide caches. So fleet evaluates SPF itself on
fleet.dns.Dns: every lookup is de-duplicated per sweep, goes to the inventory's resolver,
and a resolver failure is a temperror, never a pass.

Covered: ip4, ip6, a, mx, include, redirect, exists, all, qualifiers; macros s l o d i p v h
with digit/reverse transformers, delimiters and URL-escaping upper-case letters; the limit of
10 terms that cost DNS lookups, the limit of 2 void lookups, 10 MX names per `mx`; permerror
for any syntax error before anything is evaluated. Left out, on purpose: `ptr` counts as a
lookup but never matches (it needs PTR queries, and RFC 7208 says not to use it), and %{p}
expands to "unknown" (which RFC 7208 7.3 allows). A domain that authorises an IP only through
`ptr` therefore reads as not authorising it: an error towards a warning, never a false pass.
`exp=` is only checked for syntax: fleet shows no explanations.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import urllib.parse
from typing import NamedTuple

from fleet.dns import Answer, Dns, Outcome
from fleet.net import unmapped
from fleet.results import SPF_MAX_LOOKUPS, SpfResult

MAX_LOOKUPS = SPF_MAX_LOOKUPS  # include, a, mx, ptr, exists and redirect (RFC 7208 4.6.4)
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_DEPTH = 20  # include/redirect nesting; loops hit the lookup limit first anyway
DEFAULT_BUDGET_S = 20.0  # RFC 7208 4.6.4: at least 20 s for the whole evaluation

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_QUALIFIERS = {
    "+": SpfResult.pass_,
    "-": SpfResult.fail,
    "~": SpfResult.softfail,
    "?": SpfResult.neutral,
}
_DNS_FAILURES = (Outcome.timeout, Outcome.servfail, Outcome.refused, Outcome.error)


class SpfEvaluation(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    """One check_host() of a domain for an IP, and how it came to its result."""

    domain: str
    ip: str
    result: SpfResult
    record: str | None  # the domain's own SPF record, exactly as published
    mechanism: str | None  # the term that decided, e.g. "include:_spf.x.test > ip4:192.0.2.0/24"
    detail: str
    lookups: int
    void_lookups: int
    sender: str
    helo: str
    uses_sender: bool  # a macro read the sender or HELO: another sender may get another result


class _Stop(Exception):
    """A permerror or temperror: it ends the whole evaluation."""

    def __init__(self, result: SpfResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


def _permerror(reason: str) -> _Stop:
    return _Stop(SpfResult.permerror, reason)


# ---- syntax -------------------------------------------------------------------------------


class _Macro(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    letter: str  # as written: upper case means URL-escape the value
    digits: int | None
    reverse: bool
    delimiters: str


_Token = str | _Macro

_MACRO = re.compile(r"%\{([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\}|%%|%_|%-")
_LITERAL = re.compile(r"[\x21-\x24\x26-\x7e]")  # visible characters except "%"
_TOPLABEL = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9]+|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_DOMAIN_SPEC_LETTERS = "slodipvh"  # c, r and t are for exp= only


def _tokens(text: str, where: str, letters: str = _DOMAIN_SPEC_LETTERS) -> list[_Token]:
    """A macro-string split into literals and macros; permerror if malformed."""
    out: list[_Token] = []
    i = 0
    while i < len(text):
        if text[i] == "%":
            match = _MACRO.match(text, i)
            if match is None:
                raise _permerror(f"bad macro in {where!r}: a '%' must start %{{...}}, %%, %_ or %-")
            if match.group(1) is None:
                out.append({"%%": "%", "%_": " ", "%-": "%20"}[match.group(0)])
            else:
                letter, digits, reverse, delimiters = match.groups()
                if letter.lower() not in letters:
                    raise _permerror(f"macro %{{{letter}}} is not allowed in {where!r}")
                if digits and int(digits) == 0:
                    raise _permerror(f"macro transformer 0 in {where!r}")
                out.append(
                    _Macro(letter, int(digits) if digits else None, bool(reverse), delimiters)
                )
            i = match.end()
        elif _LITERAL.match(text[i]):
            out.append(text[i])
            i += 1
        else:
            raise _permerror(f"invalid character {text[i]!r} in {where!r}")
    return out


def _check_domain_spec(spec: str, where: str) -> None:
    """domain-spec = macro-string domain-end: it ends in a macro or in '.' + a top label."""
    tokens = _tokens(spec, where)
    if not tokens:
        raise _permerror(f"empty domain in {where!r}")
    if isinstance(tokens[-1], _Macro):
        return
    literal = ""
    for token in reversed(tokens):
        if isinstance(token, _Macro):
            break
        literal = token + literal
    body = literal[:-1] if literal.endswith(".") else literal
    _, dot, toplabel = body.rpartition(".")
    if not dot or not _TOPLABEL.fullmatch(toplabel):
        raise _permerror(f"{where!r} does not end in a domain name")


class _Term(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    text: str
    name: str  # mechanism or modifier name, lower case
    qualifier: str = "+"
    spec: str | None = None  # domain-spec (a, mx, ptr, include, exists, redirect)
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


class _Record(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    mechanisms: list[_Term]
    redirect: _Term | None


_DUAL_CIDR = re.compile(
    r"(?P<spec>[^/]*)(?:/(?P<c4>0|[1-9][0-9]?))?(?://(?P<c6>0|[1-9][0-9]{0,2}))?"
)


def _network(text: str, term: str, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address, slash, length = text.partition("/")
    top = 32 if version == 4 else 128
    if slash and not re.fullmatch(r"0|[1-9][0-9]{0,2}", length):
        raise _permerror(f"bad prefix length in {term!r}")
    bits = int(length) if slash else top
    if bits > top:
        raise _permerror(f"prefix length over {top} in {term!r}")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise _permerror(f"{address!r} is not an IPv{version} address in {term!r}") from None
    if parsed.version != version:
        raise _permerror(f"{address!r} is not an IPv{version} address in {term!r}")
    return ipaddress.ip_network(f"{parsed}/{bits}", strict=False)


def _mechanism(text: str) -> _Term:
    qualifier = text[0] if text[0] in _QUALIFIERS else "+"
    body = text[1:] if text[0] in _QUALIFIERS else text
    match = _NAME.match(body)
    if match is None:
        raise _permerror(f"unknown term {text!r}")
    name, rest = match.group(0).lower(), body[match.end() :]
    if name == "all":
        if rest:
            raise _permerror(f"'all' takes no argument: {text!r}")
        return _Term(text, name, qualifier)
    if name in ("include", "exists"):
        if not rest.startswith(":") or not rest[1:]:
            raise _permerror(f"{name} needs a domain: {text!r}")
        _check_domain_spec(rest[1:], text)
        return _Term(text, name, qualifier, spec=rest[1:])
    if name in ("a", "mx"):
        found = _DUAL_CIDR.fullmatch(rest[1:] if rest.startswith(":") else rest)
        if found is None or (rest.startswith(":") and not found.group("spec")):
            raise _permerror(f"bad {name} mechanism {text!r}")
        if not rest.startswith(":") and found.group("spec"):
            raise _permerror(f"unknown term {text!r}")
        spec = found.group("spec") or None
        if spec is not None:
            _check_domain_spec(spec, text)
        cidr4 = int(found.group("c4")) if found.group("c4") else 32
        cidr6 = int(found.group("c6")) if found.group("c6") else 128
        if cidr4 > 32 or cidr6 > 128:
            raise _permerror(f"prefix length out of range in {text!r}")
        return _Term(text, name, qualifier, spec=spec, cidr4=cidr4, cidr6=cidr6)
    if name == "ptr":
        if rest and not rest.startswith(":"):
            raise _permerror(f"unknown term {text!r}")
        spec = rest[1:] or None
        if spec is not None:
            _check_domain_spec(spec, text)
        return _Term(text, name, qualifier, spec=spec)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise _permerror(f"{name} needs an address: {text!r}")
        return _Term(text, name, qualifier, network=_network(rest[1:], text, int(name[2])))
    raise _permerror(f"unknown mechanism {text!r}")


@functools.lru_cache(maxsize=1024)
def parse_record(text: str) -> _Record:
    """The terms of an SPF record; permerror (raised) for any syntax error anywhere in it.
    Parsed once per text (the terms are frozen): a sweep evaluates a client's record once
    for each of its sites' IPs."""
    words = text.split()
    if not words or words[0].lower() != "v=spf1":
        raise _permerror("not an SPF record (it must start with v=spf1)")
    mechanisms: list[_Term] = []
    modifiers: dict[str, _Term] = {}
    for word in words[1:]:
        modifier = re.match(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", word, re.S)
        if modifier is not None:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in ("redirect", "exp"):
                if name in modifiers:
                    raise _permerror(f"{name}= appears twice")
                _check_domain_spec(value, word)
                modifiers[name] = _Term(word, name, spec=value)
            else:  # unknown modifiers are ignored, but must still be well-formed
                _tokens(value, word, letters="slodipvhcrt")
            continue
        mechanisms.append(_mechanism(word))
    return _Record(mechanisms, modifiers.get("redirect"))


def is_spf_record(text: str) -> bool:
    """Record selection (RFC 7208 4.5): "v=spf1" alone or followed by a space."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


# ---- evaluation ---------------------------------------------------------------------------


_QUERYABLE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


def _valid_name(name: str) -> bool:
    """A name the resolver can ask about. Others (an empty label, or the "%40" of a
    URL-escaped macro, which c-ares refuses to send) count as names that do not exist."""
    labels = name.rstrip(".").split(".")
    return (
        len(name) <= 253
        and all(0 < len(label) <= 63 for label in labels)
        and _QUERYABLE.fullmatch(name) is not None
    )


def _nibbles(ip: IpAddress) -> str:
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


class _Outcome(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    result: SpfResult
    mechanism: str | None
    reason: str


class _Unanswered(Exception):
    """An evaluation from known answers needs one the sweep does not have yet."""


class _CheckHost:
    """One evaluation: its lookup counters and the sender it speaks for. `known_only`, it
    reads only the answers the sweep already has and raises _Unanswered for any other (see
    `evaluate`); else it asks the resolver and waits."""

    def __init__(
        self, dns: Dns, ip: IpAddress, sender: str, helo: str, *, known_only: bool = False
    ) -> None:
        self.dns = dns
        self.known_only = known_only
        self.ip = ip
        local, at, sender_domain = sender.rpartition("@")
        self.sender = sender if at else f"postmaster@{sender}"
        self.local = local or "postmaster"
        self.sender_domain = sender_domain
        self.helo = helo
        self.lookups = 0
        self.voids = 0
        self.uses_sender = False
        self.record: str | None = None  # the top domain's record

    # -- macros --------------------------------------------------------------------------

    def expand(self, spec: str, domain: str) -> str:
        out = []
        for token in _tokens(spec, spec):
            if isinstance(token, str):
                out.append(token)
                continue
            letter = token.letter.lower()
            if letter in "slh":
                self.uses_sender = True
            value = {
                "s": self.sender,
                "l": self.local,
                "o": self.sender_domain,
                "d": domain,
                "i": _nibbles(self.ip),
                "p": "unknown",
                "v": "in-addr" if self.ip.version == 4 else "ip6",
                "h": self.helo,
            }[letter]
            parts = re.split("[" + re.escape(token.delimiters or ".") + "]", value)
            if token.reverse:
                parts.reverse()
            if token.digits is not None:
                parts = parts[-token.digits :]
            value = ".".join(parts)
            if token.letter.isupper():
                value = urllib.parse.quote(value, safe="")
            out.append(value)
        name = "".join(out)
        # Longer than a DNS name may be: drop labels from the left until it fits (RFC 7208 7.3).
        while len(name.rstrip(".")) > 253 and "." in name:
            name = name.split(".", 1)[1]
        return name.rstrip(".")

    # -- DNS -------------------------------------------------------------------------------

    async def query(self, name: str, rtype: str) -> Answer:
        """An answer or "no such name/data"; any resolver failure ends it as temperror."""
        if not _valid_name(name):
            return Answer(Outcome.nxdomain, detail="not a valid domain name")
        if self.known_only:
            known = self.dns.answered(name, rtype)
            if known is None:
                raise _Unanswered
            answer = known
        else:
            answer = await self.dns.query(name, rtype)
        if answer.outcome in _DNS_FAILURES:
            raise _Stop(SpfResult.temperror, f"{rtype} lookup of {name}: {answer.detail}")
        return answer

    def count(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _permerror(f"more than {MAX_LOOKUPS} DNS lookups (the 11th is {term})")

    def void(self, name: str) -> None:
        self.voids += 1
        if self.voids > MAX_VOID_LOOKUPS:
            raise _permerror(
                f"more than {MAX_VOID_LOOKUPS} lookups found nothing (the last: {name})"
            )

    async def addresses(self, name: str) -> list[IpAddress] | None:
        """The A (IPv4 client) or AAAA (IPv6 client) addresses of a name; None if void."""
        answer = await self.query(name, "A" if self.ip.version == 4 else "AAAA")
        if not answer.ok:
            return None
        return [ipaddress.ip_address(a) for a in answer.records]

    def within(self, addresses: list[IpAddress], term: _Term) -> bool:
        bits = term.cidr4 if self.ip.version == 4 else term.cidr6
        return any(
            a.version == self.ip.version
            and self.ip in ipaddress.ip_network(f"{a}/{bits}", strict=False)
            for a in addresses
        )

    # -- check_host ------------------------------------------------------------------------

    async def check_host(self, domain: str, depth: int = 0) -> _Outcome:
        if depth > MAX_DEPTH:
            raise _permerror(f"includes and redirects nested more than {MAX_DEPTH} deep")
        labels = domain.rstrip(".").split(".")
        if len(labels) < 2 or not _valid_name(domain):
            return _Outcome(SpfResult.none, None, f"{domain} is not a valid domain name")
        answer = await self.query(domain, "TXT")
        if answer.outcome is Outcome.nxdomain:
            return _Outcome(SpfResult.none, None, f"{domain} does not exist (NXDOMAIN)")
        records = [r for r in answer.records if is_spf_record(r)]
        if depth == 0 and records:
            self.record = records[0]
        if not records:
            return _Outcome(SpfResult.none, None, f"{domain} publishes no SPF record")
        if len(records) > 1:
            raise _permerror(f"{domain} publishes {len(records)} SPF records (one is allowed)")
        try:
            record = parse_record(records[0])
        except _Stop as stop:
            raise _permerror(f"syntax error in the SPF record of {domain}: {stop.reason}") from None
        for term in record.mechanisms:
            matched = await self.matches(term, domain, depth)
            if matched is not None:
                return _Outcome(_QUALIFIERS[term.qualifier], matched, f"matched {matched}")
        if record.redirect is not None and record.redirect.spec is not None:
            self.count(record.redirect.text)
            target = self.expand(record.redirect.spec, domain)
            outcome = await self.check_host(target, depth + 1)
            if outcome.result is SpfResult.none:
                raise _permerror(f"redirect={target}: {outcome.reason}")
            via = f"redirect={target}" + (f" > {outcome.mechanism}" if outcome.mechanism else "")
            return _Outcome(outcome.result, via, outcome.reason)
        return _Outcome(SpfResult.neutral, None, f"no mechanism of {domain} matched, and no 'all'")

    async def matches(self, term: _Term, domain: str, depth: int) -> str | None:
        """The matching term's description, or None when it does not match."""
        ip = self.ip
        if term.name == "all":
            return term.text
        if term.name in ("ip4", "ip6"):
            network = term.network
            assert network is not None  # noqa: S101 - parse_record sets it for ip4/ip6
            return term.text if network.version == ip.version and ip in network else None
        self.count(term.text)
        name = self.expand(term.spec, domain) if term.spec else domain
        if term.name == "include":
            outcome = await self.check_host(name, depth + 1)
            if outcome.result is SpfResult.none:
                raise _permerror(f"{term.text}: {outcome.reason}")
            if outcome.result is SpfResult.pass_:
                return f"{term.text} > {outcome.mechanism}"
            return None
        if term.name == "a":
            addresses = await self.addresses(name)
            if addresses is None:
                self.void(name)
                return None
            return term.text if self.within(addresses, term) else None
        if term.name == "mx":
            return await self.match_mx(term, name)
        if term.name == "exists":
            answer = await self.query(name, "A")  # always A, whatever the client's family
            if not answer.ok:
                self.void(name)
                return None
            return term.text
        return None  # ptr: counted, never matched (see the module docstring)

    async def match_mx(self, term: _Term, name: str) -> str | None:
        answer = await self.query(name, "MX")
        if not answer.ok:
            self.void(name)
            return None
        if len(answer.mx) > MAX_MX_NAMES:
            raise _permerror(f"{term.text}: {name} has more than {MAX_MX_NAMES} MX records")
        hosts = [r.exchange for r in answer.mx]
        for host in (h for h in hosts if h):
            addresses = await self.addresses(host)
            if addresses and self.within(addresses, term):
                return term.text
        return None


async def evaluate(
    dns: Dns,
    domain: str,
    ip: str,
    sender: str,
    helo: str,
    budget_s: float = DEFAULT_BUDGET_S,
) -> SpfEvaluation:
    """check_host(ip, domain, sender) with HELO `helo`; never raises for DNS trouble.

    First from the answers the sweep has, which costs no task and no timer in the common
    case, a client's record already read for an earlier site (issue 20); when one is missing,
    once more, asking and waiting as it goes. Nothing is asked by the first reading, so the
    questions and their order are those of the second."""
    known = evaluate_known(dns, domain, ip, sender, helo)
    if known is not None:
        return known
    domain = domain.lower().rstrip(".")
    checker = _CheckHost(dns, unmapped(ip), sender, helo)
    try:
        async with asyncio.timeout(budget_s):
            outcome = await checker.check_host(domain)
    except _Stop as stop:
        outcome = _Outcome(stop.result, None, stop.reason)
    except TimeoutError:
        outcome = _Outcome(
            SpfResult.temperror, None, f"the evaluation did not finish within {budget_s:g} s"
        )
    return _evaluation(checker, domain, outcome, sender, helo)


def evaluate_known(dns: Dns, domain: str, ip: str, sender: str, helo: str) -> SpfEvaluation | None:
    """`evaluate`, when every DNS answer it needs is already in the sweep's memo: done at
    once, without waiting; None when it would have to wait for an answer."""
    domain = domain.lower().rstrip(".")
    checker = _CheckHost(dns, unmapped(ip), sender, helo, known_only=True)
    running = checker.check_host(domain)
    try:
        running.send(None)  # reading known answers only, nothing in it ever waits
    except StopIteration as done:
        return _evaluation(checker, domain, done.value, sender, helo)
    except _Stop as stop:
        return _evaluation(checker, domain, _Outcome(stop.result, None, stop.reason), sender, helo)
    except _Unanswered:
        return None
    running.close()
    raise RuntimeError("an SPF evaluation from known answers waited for something")


def _evaluation(
    checker: _CheckHost, domain: str, outcome: _Outcome, sender: str, helo: str
) -> SpfEvaluation:
    address = checker.ip
    return SpfEvaluation(
        domain=domain,
        ip=str(address),
        result=outcome.result,
        record=checker.record,
        mechanism=outcome.mechanism,
        detail=_detail(outcome, str(address)),
        lookups=checker.lookups,
        void_lookups=checker.voids,
        sender=sender.lower(),
        helo=helo.lower(),
        uses_sender=checker.uses_sender,
    )


def _detail(outcome: _Outcome, ip: str) -> str:
    result = outcome.result
    if result is SpfResult.pass_:
        return f"{ip} is authorised by {outcome.mechanism}"
    mechanism = outcome.mechanism
    if result in (SpfResult.fail, SpfResult.softfail, SpfResult.neutral) and mechanism:
        how = "falls through to" if mechanism.endswith("all") else "matches"
        return f"{ip} is not authorised: it {how} {mechanism}"
    if result is SpfResult.neutral:
        return f"{ip} is not authorised: {outcome.reason}"
    return outcome.reason
