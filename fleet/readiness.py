"""Readiness for the Basic AUTH cut-off: per copier that logs in to Microsoft 365 with a
password, has this sweep proven a way forward for its mailbox?

At risk are the devices of `BASIC_AUTH_RETIRING`, and the password copiers whose login
Microsoft 365 already refuses as Basic AUTH switched off (5.7.139, `auth_disabled`): the
cut-off has reached their mailbox early, and they need the same way forward, first.

Proven means: a device with `oauth2` for the same mailbox got through (XOAUTH2, MAIL and
RCPT accepted), or a High Volume Email account of the same mail domain did
(smtp-hve.office365.com keeps Basic AUTH until September 2028, internal recipients only).
A pure function of a sweep's sites, so the table, CSV, JSON and HTML show the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet import m365
from fleet.results import Category, DeviceResult, FlagCode, Mode, Model, SiteResult

RETIRING_FLAG = FlagCode.BASIC_AUTH_RETIRING


# Plain structs like the results they are computed from (fleet/results.py).
class ReadinessRow(Model, frozen=True, kw_only=True):
    client: str
    site: str
    device: str
    mailbox: str | None
    host: str
    proven: bool
    way_forward: str | None = None  # what proved it: "oauth2: site/device", "hve: ..."
    already_refused: bool = False  # Basic AUTH is already off for it (5.7.139)


class Readiness(Model, frozen=True, kw_only=True):
    at_risk: int = 0
    proven: int = 0
    already_refused: int = 0
    copiers: list[ReadinessRow]

    @property
    def headline(self) -> str:
        refused = f" ({self.already_refused} already refused)" if self.already_refused else ""
        return (
            f"Basic AUTH cut-off: {self.at_risk} copiers at risk{refused}, {self.proven} with "
            "a proven way forward"
        )


def _domain(mailbox: str | None) -> str:
    return (mailbox or "").rpartition("@")[2].lower()


def _already_refused(device: DeviceResult, host: str) -> bool:
    """A password login to Microsoft 365 client submission (at `host`) refused as Basic
    AUTH off."""
    return (
        device.category is Category.auth_disabled
        and device.login == "password"
        and device.mode is Mode.submission
        and m365.is_microsoft(host)
        and not m365.is_hve(host)
    )


def readiness(sites: Iterable[SiteResult]) -> Readiness:
    """The cut-off readiness of a sweep (`sites` may be a stream: it is read once)."""
    at_risk: list[tuple[SiteResult, str, str | None, str, bool]] = []
    oauth_proven: dict[str, str] = {}  # mailbox -> where
    hve_proven: dict[str, str] = {}  # mail domain -> where
    for site in sites:
        retiring = {d for f in site.flags if f.code == RETIRING_FLAG for d in f.devices}
        for device in site.devices:
            where = f"{site.site}/{device.device}"
            mailbox = (device.mailbox or "").lower() or None
            host = site.conversation_of(device).host
            refused = _already_refused(device, host)
            if device.device in retiring or refused:
                at_risk.append((site, device.device, mailbox, host, refused))
            if device.category is not Category.ok or mailbox is None:
                continue
            if device.login == "oauth2":
                oauth_proven.setdefault(mailbox, where)
            elif m365.is_hve(host):
                hve_proven.setdefault(_domain(mailbox), f"{mailbox} at {where}")
    rows = []
    for site, device_id, mailbox, host, refused in at_risk:
        way = None
        if mailbox is not None and mailbox in oauth_proven:
            way = f"oauth2 (XOAUTH2) for {mailbox} proven at {oauth_proven[mailbox]}"
        elif _domain(mailbox) in hve_proven:
            way = f"High Volume Email account {hve_proven[_domain(mailbox)]}"
        rows.append(
            ReadinessRow(
                client=site.client,
                site=site.site,
                device=device_id,
                mailbox=mailbox,
                host=host,
                proven=way is not None,
                way_forward=way,
                already_refused=refused,
            )
        )
    return Readiness(
        at_risk=len(rows),
        proven=sum(r.proven for r in rows),
        already_refused=sum(r.already_refused for r in rows),
        copiers=rows,
    )
