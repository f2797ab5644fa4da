"""Blocklist (DNSBL) lookups of egress IPs, which never say "clean" when they do not know.

Only NXDOMAIN means clean. A 127.0.0.x answer is a listing, read through the zone's
meaning map. Everything else (timeouts, SERVFAIL, REFUSED, Spamhaus's 127.255.255.x
refusal answers, answers outside 127.0.0.0/8) is `unknown`, with the reason. Each zone
is self-tested once per sweep (RFC 5782: 127.0.0.2 listed, 127.0.0.1 not); a zone that
fails it answers `unknown` for every IP, without being asked.
"""

from __future__ import annotations

import asyncio
import ipaddress

from fleet.credentials import SecretError
from fleet.dns import Answer, Dns, Outcome
from fleet.probes.dnsbl_zones import SPAMHAUS_ERRORS, Zone, reverse_name
from fleet.results import BlocklistResult, BlocklistStatus, ListingSeverity

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_ERROR_RANGE = ipaddress.IPv4Network("127.255.255.0/24")


class BlocklistProbe:
    """Looks up IPs on the sweep's zones; each (ip, zone) is asked once per sweep."""

    def __init__(self, dns: Dns, zones: list[Zone]) -> None:
        self.dns = dns
        self.zones = zones
        self._suffix: dict[str, str | None] = {}
        self._suffix_error: dict[str, str] = {}
        self._self_tests: dict[str, asyncio.Future[str | None]] = {}
        self._results: dict[tuple[str, str], asyncio.Future[BlocklistResult]] = {}

    async def check(self, ips: list[str]) -> list[BlocklistResult]:
        """Every zone for every IP, concurrently; results in (ip, zone) order."""
        jobs = [self.lookup(ip, zone) for ip in ips for zone in self.zones]
        return list(await asyncio.gather(*jobs))

    async def lookup(self, ip: str, zone: Zone) -> BlocklistResult:
        key = (ip, zone.display)
        task = self._results.get(key)
        if task is None:
            task = asyncio.ensure_future(self._lookup(ip, zone))
            self._results[key] = task
        return await asyncio.shield(task)

    def self_test(self, zone: Zone) -> asyncio.Future[str | None]:
        """Why this zone cannot be trusted with this resolver (None: it passed)."""
        task = self._self_tests.get(zone.display)
        if task is None:
            task = asyncio.ensure_future(self._self_test(zone))
            self._self_tests[zone.display] = task
        return task

    # -- internals ----------------------------------------------------------------------

    def _query_suffix(self, zone: Zone) -> str | None:
        if zone.display not in self._suffix:
            if zone.key is None:
                self._suffix[zone.display] = zone.display
            else:
                try:
                    self._suffix[zone.display] = f"{zone.key.read()}.{zone.display}"
                except SecretError as exc:
                    self._suffix[zone.display] = None
                    self._suffix_error[zone.display] = f"the DQS key is not available ({exc})"
        return self._suffix[zone.display]

    async def _ask(self, ip: str, zone: Zone, rtype: str) -> Answer:
        suffix = self._query_suffix(zone)
        assert suffix is not None  # noqa: S101 - callers check the self-test first
        return await self.dns.query(f"{reverse_name(ip)}.{suffix}", rtype)

    async def _self_test(self, zone: Zone) -> str | None:
        if self._query_suffix(zone) is None:
            return self._suffix_error[zone.display]
        positive, negative = await asyncio.gather(
            self._ask("127.0.0.2", zone, "A"), self._ask("127.0.0.1", zone, "A")
        )
        where = f"resolver {self.dns.description}"
        if positive.outcome is Outcome.answer:
            refusal = _refusal(zone, positive.records)
            if refusal is not None:
                return refusal
        elif positive.outcome is Outcome.nxdomain:
            return (
                "self-test failed: the test entry 127.0.0.2 is not listed (wrong zone name, a dead "
                f"list, or a {where} that rewrites answers)"
            )
        else:
            return f"self-test failed: {positive.detail} ({where})"
        if negative.outcome is Outcome.answer:
            refusal = _refusal(zone, negative.records)
            return refusal or (
                "self-test failed: 127.0.0.1 is listed, so this list answers 'listed' for every IP "
                "(a dead or hijacked list)"
            )
        if negative.outcome is not Outcome.nxdomain:
            return f"self-test failed: {negative.detail} ({where})"
        return None

    async def _lookup(self, ip: str, zone: Zone) -> BlocklistResult:
        base = {"ip": ip, "zone": zone.display, "name": zone.name}
        failed = await self.self_test(zone)
        if failed is not None:
            return BlocklistResult(**base, status=BlocklistStatus.unknown, detail=failed)
        answer = await self._ask(ip, zone, "A")
        if answer.outcome is Outcome.nxdomain:
            return BlocklistResult(**base, status=BlocklistStatus.clean)
        if answer.outcome is not Outcome.answer:
            return BlocklistResult(**base, status=BlocklistStatus.unknown, detail=answer.detail)
        return await self._interpret(ip, zone, answer, base)

    async def _interpret(
        self, ip: str, zone: Zone, answer: Answer, base: dict[str, str]
    ) -> BlocklistResult:
        codes = sorted(set(answer.records), key=_sort_key)
        refusal = _refusal(zone, codes)
        if refusal is not None:
            return BlocklistResult(
                **base, status=BlocklistStatus.unknown, codes=codes, detail=refusal
            )
        if "127.0.0.1" in codes:
            return BlocklistResult(
                **base,
                status=BlocklistStatus.unknown,
                codes=codes,
                detail="answered 127.0.0.1, which is not a listing code (RFC 5782)",
            )
        meanings = []
        for code in codes:
            meaning = zone.meaning(code)
            meanings.append(
                meaning.meaning
                if meaning
                else f"listed with code {code}, which fleet has no meaning for"
            )
        lists = []
        for code in codes:
            meaning = zone.meaning(code)
            name = meaning.list if meaning else zone.name
            if name not in lists:
                lists.append(name)
        # A listing is "policy" only if every code is a policy code (PBL alone).
        severities = {m.severity for m in (zone.meaning(c) for c in codes) if m is not None}
        policy_only = severities == {ListingSeverity.policy} and all(zone.meaning(c) for c in codes)
        txt = await self._ask(ip, zone, "TXT")
        reason = "; ".join(txt.records)[:500] if txt.ok else None
        return BlocklistResult(
            **base,
            status=BlocklistStatus.listed,
            codes=codes,
            lists=lists,
            meaning="; ".join(dict.fromkeys(meanings)),
            severity=ListingSeverity.policy if policy_only else ListingSeverity.abuse,
            reason=reason,
            delist=zone.delist.format(ip=ip) if zone.delist else None,
        )


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
        if address in _ERROR_RANGE:
            if zone.spamhaus:
                return SPAMHAUS_ERRORS.get(
                    code, f"Spamhaus answered the error code {code} (not a listing)"
                )
            return f"answered the error code {code} (not a listing)"
    return None


def _sort_key(code: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in code.split("."))
    except ValueError:
        return (999,)
