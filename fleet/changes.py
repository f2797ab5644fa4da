"""What changed between two results of the same sites (pure functions).

A site's state is summed up as a `SiteDigest` (verdict, egress IP, flag codes, listings),
small enough to keep beside every stored result, so comparing last night with tonight
never needs to re-read whole transcripts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fleet.results import (
    SEVERITY_ORDER,
    BlocklistStatus,
    Change,
    ChangeKind,
    Severity,
    SiteResult,
    Verdict,
)


# A NamedTuple, not a frozen dataclass: Python 3.11 compiles six methods for a frozen
# dataclass at import (about 0.5 ms of every command's start-up), a NamedTuple one.
class SiteDigest(NamedTuple):
    site: str
    client: str
    verdict: Verdict
    egress_ip: str | None
    flags: dict[str, Severity]  # code -> severity
    listed: dict[tuple[str, str], str]  # (ip, zone) -> "XBL" (list names)
    looked_up: frozenset[tuple[str, str]]  # (ip, zone) answered listed or clean

    @classmethod
    def of(cls, site: SiteResult) -> SiteDigest:
        flags: dict[str, Severity] = {}
        for flag in site.flags:
            flags.setdefault(flag.code, flag.severity)
        return cls(
            site=site.site,
            client=site.client,
            verdict=site.verdict,
            egress_ip=site.egress_ip,
            flags=flags,
            listed={
                (b.ip, b.zone): "/".join(b.lists) or b.name
                for b in site.blocklists
                if b.status is BlocklistStatus.listed
            },
            looked_up=frozenset(
                (b.ip, b.zone) for b in site.blocklists if b.status is not BlocklistStatus.unknown
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "client": self.client,
            "verdict": self.verdict.value,
            "egress_ip": self.egress_ip,
            "flags": {code: severity.value for code, severity in self.flags.items()},
            "listed": [[ip, zone, lists] for (ip, zone), lists in self.listed.items()],
            "looked_up": sorted([ip, zone] for ip, zone in self.looked_up),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SiteDigest:
        return cls(
            site=str(data["site"]),
            client=str(data["client"]),
            verdict=Verdict(data["verdict"]),
            egress_ip=data.get("egress_ip") or None,
            flags={str(code): Severity(sev) for code, sev in data["flags"].items()},
            listed={(str(ip), str(zone)): str(lists) for ip, zone, lists in data["listed"]},
            looked_up=frozenset((str(ip), str(zone)) for ip, zone in data["looked_up"]),
        )


def compare(before: SiteDigest, after: SiteDigest) -> list[Change]:
    """The changes of one site from one result to the next, most serious first."""
    site, client = after.site, after.client
    changes: list[Change] = []

    def add(
        kind: ChangeKind,
        severity: Severity,
        summary: str,
        was: str | None = None,
        now: str | None = None,
    ) -> None:
        changes.append(
            Change(
                site=site,
                client=client,
                kind=kind,
                severity=severity,
                summary=summary,
                before=was,
                after=now,
            )
        )

    if before.verdict is not after.verdict:
        add(
            ChangeKind.verdict,
            after.verdict.severity,
            f"verdict {before.verdict.value} -> {after.verdict.value}",
            before.verdict.value,
            after.verdict.value,
        )
    for code, severity in after.flags.items():
        if code not in before.flags and severity is not Severity.info:
            add(ChangeKind.new_flag, severity, f"new {code} ({severity.value})", None, code)
    for code, severity in before.flags.items():
        if code not in after.flags and severity is not Severity.info:
            add(ChangeKind.resolved_flag, Severity.info, f"resolved {code}", code, None)
    for (ip, zone), lists in after.listed.items():
        if (ip, zone) not in before.listed:
            add(
                ChangeKind.listed,
                Severity.warn,
                f"{ip} newly listed on {zone} ({lists})",
                None,
                f"{ip} {zone}",
            )
    for (ip, zone), lists in before.listed.items():
        if (ip, zone) not in after.listed and (ip, zone) in after.looked_up:
            add(
                ChangeKind.delisted,
                Severity.info,
                f"{ip} no longer listed on {zone} (was {lists})",
                f"{ip} {zone}",
                None,
            )
    if before.egress_ip and after.egress_ip and before.egress_ip != after.egress_ip:
        add(
            ChangeKind.egress_ip,
            Severity.warn,
            f"egress IP changed {before.egress_ip} -> {after.egress_ip}",
            before.egress_ip,
            after.egress_ip,
        )
    return sorted(changes, key=lambda c: SEVERITY_ORDER[c.severity])


def compare_digests(before: dict[str, SiteDigest], now: dict[str, SiteDigest]) -> list[Change]:
    """Changes of every site since its previous result. When some sites have one, a site
    seen for the first time (newly added to the inventory) has its findings as new: its
    flags and listings, not a verdict change from a state it never had. When none has one
    (the first sweep of a history), there is nothing to compare with: no changes."""
    if not before:
        return []
    changes: list[Change] = []
    for site, digest in now.items():
        previous = before.get(site) or _first_seen(digest)
        changes.extend(compare(previous, digest))
    return changes


def _first_seen(digest: SiteDigest) -> SiteDigest:
    """What a new site is compared with: the same verdict, and nothing found."""
    return SiteDigest(digest.site, digest.client, digest.verdict, None, {}, {}, frozenset())
