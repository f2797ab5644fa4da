"""Blocklist (DNSBL) lookups of egress IPs, which never say "clean" when they do not know.

Only NXDOMAIN means clean, and only on a list that covers the address's IP version (an
IPv6 address on an IPv4-only list is `unknown`, unasked). A 127.0.0.x answer is a listing, read through the zone's
meaning map. Everything else (timeouts, SERVFAIL, REFUSED, Spamhaus's 127.255.255.x
refusal answers, answers outside 127.0.0.0/8) is `unknown`, with the reason. Each zone
is self-tested once per sweep (RFC 5782: 127.0.0.2 listed, 127.0.0.1 not); a zone that
fails it answers `unknown` for every IP, without being asked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re

from fleet.credentials import REDACTED, Secrets, SecretSource
from fleet.dns import Answer, Dns, Outcome
from fleet.errors import SecretError
from fleet.net import unmapped
from fleet.once import Once
from fleet.probes.dnsbl_zones import (
    LISTING_RANGE,
    NOT_IPV6,
    SPAMHAUS_ERRORS,
    Zone,
    reverse_name,
)
from fleet.results import BlocklistResult, BlocklistStatus, ListingSeverity

log = logging.getLogger("fleet.dnsbl")

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_ERROR_RANGE = ipaddress.IPv4Network("127.255.255.0/24")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


# One zone as the cache sees it: two DQS entries with different keys are two zones.
ZoneKey = tuple[str, SecretSource | None]


def _zone_key(zone: Zone) -> ZoneKey:
    return (zone.display.lower(), zone.key)


class BlocklistProbe:
    """Looks up IPs on the sweep's zones; each (ip, zone) is asked once per sweep."""

    def __init__(self, dns: Dns, zones: list[Zone], secrets: Secrets | None = None) -> None:
        self.dns = dns
        self.zones = zones
        # The sweep's book: a DQS key read here is scrubbed from everything the sweep keeps.
        self.secrets = secrets if secrets is not None else Secrets()
        self._suffix: dict[ZoneKey, str | None] = {}
        self._suffix_error: dict[ZoneKey, str] = {}
        self._self_tests: Once[ZoneKey, str | None] = Once()

    async def check(self, ips: list[str]) -> list[BlocklistResult]:
        """Every zone for every IP, concurrently; results in (ip, zone) order."""
        jobs = [self.lookup(ip, zone) for ip in ips for zone in self.zones]
        if len(jobs) == 1:  # the common case, one IP on one zone: no task to gather
            return [await jobs[0]]
        return list(await asyncio.gather(*jobs))

    async def lookup(self, ip: str, zone: Zone) -> BlocklistResult:
        """One IP on one zone; never raises for DNS trouble."""
        try:
            address = unmapped(ip)  # a mapped IPv4 client is listed as IPv4
        except ValueError:
            return _unknown(ip, zone, f"{ip!r} is not an IP address")
        if address.version == 6 and not zone.ipv6:
            # Its NXDOMAIN would say nothing about the address: never "clean" from it.
            return _unknown(ip, zone, NOT_IPV6)
        # The question is asked once per sweep however many sites share the IP (the
        # resolver's memo); reading its answer is cheaper than a task to share the reading.
        result = await self._lookup(str(address), zone)
        return result if result.ip == ip else result.model_copy(update={"ip": ip})

    def self_test(self, zone: Zone) -> asyncio.Future[str | None]:
        """Why this zone cannot be trusted with this resolver (None: it passed); once per sweep."""
        return self._self_tests.future(_zone_key(zone), lambda: self._self_test(zone))

    # -- internals ----------------------------------------------------------------------

    def _query_suffix(self, zone: Zone) -> str | None:
        """The zone as queried: with the DQS key in front (never shown or logged)."""
        key = _zone_key(zone)
        if key not in self._suffix:
            self._suffix[key] = zone.display
            if zone.key is not None:
                try:
                    secret = zone.key.read()
                except SecretError as exc:
                    self._suffix[key] = None
                    self._suffix_error[key] = (
                        f"the Spamhaus DQS key is not available ({exc}): nothing was queried"
                    )
                else:
                    self.secrets.add(secret)
                    if _DNS_LABEL.fullmatch(secret):
                        self._suffix[key] = f"{secret}.{zone.display}"
                    else:
                        self._suffix[key] = None
                        self._suffix_error[key] = (
                            f"the Spamhaus DQS key from {zone.key.describe()} is not a valid DNS "
                            "label (letters, digits and hyphens): nothing was queried"
                        )
        return self._suffix[key]

    async def _ask(self, ip: str, zone: Zone, rtype: str) -> Answer:
        suffix = self._query_suffix(zone)
        assert suffix is not None  # noqa: S101 - callers check the self-test first
        # `unmapped` is cached: the address `lookup` parsed, not parsed again.
        reverse = reverse_name(unmapped(ip))
        name = f"{reverse}.{suffix}"
        # The name holds the DQS key: it is logged with the key blanked.
        shown = name if zone.key is None else f"{reverse}.{REDACTED}.{zone.display}"
        return await self.dns.query(name, rtype, shown=shown)

    async def _self_test(self, zone: Zone) -> str | None:
        if self._query_suffix(zone) is None:
            return self._suffix_error[_zone_key(zone)]
        positive, negative = await asyncio.gather(
            self._ask("127.0.0.2", zone, "A"), self._ask("127.0.0.1", zone, "A")
        )
        failed = _judge_self_test(zone, positive, negative, self.dns.description)
        log.debug("self-test of %s: %s", zone.display, failed or "passed")
        return failed

    async def _lookup(self, ip: str, zone: Zone) -> BlocklistResult:
        # A finished self-test is read as is: a shield per lookup would cost a turn of the loop.
        failed = await self._self_tests.get(_zone_key(zone), lambda: self._self_test(zone))
        if failed is not None:
            result = _unknown(ip, zone, failed)
        else:
            answer = await self._ask(ip, zone, "A")
            if answer.outcome is Outcome.nxdomain:
                result = BlocklistResult(
                    ip=ip, zone=zone.display, name=zone.name, status=BlocklistStatus.clean
                )
            elif answer.outcome is not Outcome.answer:
                result = _unknown(
                    ip, zone, answer.detail or f"the lookup failed ({answer.outcome})"
                )
            else:
                result = await self._interpret(ip, zone, answer)
        log.debug("%s on %s: %s %s", ip, zone.display, result.status.value, result.codes)
        return result

    async def _interpret(self, ip: str, zone: Zone, answer: Answer) -> BlocklistResult:
        codes = sorted(set(answer.records), key=_sort_key)
        if not codes:  # an answer is a listing only if it says which
            return _unknown(ip, zone, "the answer had no A record")
        refusal = _refusal(zone, codes)
        if refusal is None and "127.0.0.1" in codes:
            refusal = "answered 127.0.0.1, which is not a listing code (RFC 5782)"
        if refusal is not None:
            return _unknown(ip, zone, refusal, codes)
        meanings = [zone.meaning(code) for code in codes]
        texts = [
            m.meaning if m else f"listed with code {code}, which fleet has no meaning for"
            for code, m in zip(codes, meanings, strict=True)
        ]
        lists = [m.list if m else zone.name for m in meanings]
        # "policy" only if every code is a known policy code (PBL alone); .4 + .10 is abuse.
        policy_only = all(m is not None and m.severity is ListingSeverity.policy for m in meanings)
        txt = await self._ask(ip, zone, "TXT")
        # A list's TXT may repeat the query name, which holds a DQS key: scrub what we keep.
        said = "; ".join(t for t in txt.records if t.strip())
        reason = self.secrets.scrub(said)[:500] if txt.ok else None
        return BlocklistResult(
            ip=ip,
            zone=zone.display,
            name=zone.name,
            status=BlocklistStatus.listed,
            codes=codes,
            lists=list(dict.fromkeys(lists)),
            meaning="; ".join(dict.fromkeys(texts)),
            severity=ListingSeverity.policy if policy_only else ListingSeverity.abuse,
            reason=reason or None,
            # replace, not str.format: a delisting text from the inventory may hold braces.
            delist=zone.delist.replace("{ip}", ip) if zone.delist else None,
        )


def _unknown(ip: str, zone: Zone, why: str, codes: list[str] | None = None) -> BlocklistResult:
    return BlocklistResult(
        ip=ip,
        zone=zone.display,
        name=zone.name,
        status=BlocklistStatus.unknown,
        codes=codes or [],
        detail=why,
    )


def _judge_self_test(zone: Zone, positive: Answer, negative: Answer, resolver: str) -> str | None:
    """RFC 5782: the test entry 127.0.0.2 must be listed, and 127.0.0.1 must not be."""
    where = f"resolver {resolver}"
    if positive.outcome is Outcome.nxdomain:
        return (
            "self-test failed: the test entry 127.0.0.2 is not listed (a wrong zone name, a dead "
            f"list, or a {where} that rewrites answers)"
        )
    if positive.outcome is not Outcome.answer:
        return (
            f"self-test failed: no answer for the test entry 127.0.0.2: {positive.detail} ({where})"
        )
    refusal = _refusal(zone, positive.records)
    if refusal is not None:
        return f"self-test failed: {refusal}"
    if set(positive.records) == {"127.0.0.1"}:
        return "self-test failed: the test entry 127.0.0.2 answered 127.0.0.1, not a listing code"
    if negative.outcome is Outcome.answer:
        refusal = _refusal(zone, negative.records)
        if refusal is not None:
            return f"self-test failed: {refusal}"
        return (
            "self-test failed: 127.0.0.1 is listed, so this list answers 'listed' for every IP "
            f"(a dead or hijacked list, or a {where} that answers every name)"
        )
    if negative.outcome is not Outcome.nxdomain:
        return (
            f"self-test failed: no answer for the test entry 127.0.0.1: {negative.detail} ({where})"
        )
    return None


def _refusal(zone: Zone, codes: list[str] | tuple[str, ...]) -> str | None:
    """Why an answer is not a listing at all (a refusal or a nonsense answer), if it is not."""
    for code in codes:
        try:
            address = ipaddress.ip_address(code)
        except ValueError:
            return f"answer {code!r} is not an address"
        if address.version != 4 or address not in _LOOPBACK:
            return (
                f"answer {code} is outside 127.0.0.0/8: not a blocklist answer (a resolver that "
                "rewrites missing names, or a dead list)"
            )
        if zone.spamhaus and code in SPAMHAUS_ERRORS:
            return SPAMHAUS_ERRORS[code]
        if address in _ERROR_RANGE:
            if zone.spamhaus:
                return f"Spamhaus answered the error code {code} (not a listing)"
            return f"answered the error code {code} (not a listing)"
        if zone.spamhaus and address not in LISTING_RANGE:
            # Spamhaus IP zones list only in 127.0.0.0/24; anything else is an error code.
            return f"Spamhaus answered {code}, which is not a listing code for an IP"
    return None


def _sort_key(code: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in code.split("."))
    except ValueError:
        return (999,)
