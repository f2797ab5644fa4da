"""Results -> per-site verdict and flags (pure functions).

A site's verdict is the worst of its flags: critical > unknown > warn > ok. `unknown` is
a verdict of its own: a site whose blocklist lookups could not be answered is never `ok`.
The headline flag is DIRECT_SEND_DIRTY_IP: a copier sending unauthenticated on port 25
from an IP that is listed on a blocklist, or that a server rejected for reputation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from fleet import m365
from fleet.classify import RuleId
from fleet.dns import is_ip
from fleet.results import (
    SEVERITY_ORDER,
    BlocklistResult,
    BlocklistStatus,
    Category,
    Conversation,
    DeviceResult,
    DirectSendCheck,
    Egress,
    Flag,
    ListingSeverity,
    Mode,
    MxResult,
    Severity,
    SiteResult,
    SpfResult,
    Stage,
    Verdict,
    worst,
)

CERT_WARNING_DAYS = 21


@dataclass(frozen=True)
class DeviceObservation:
    """One copier and the conversation it shares."""

    device: str
    model: str | None
    location: str | None
    mode: Mode
    authenticated: bool
    uses_password: bool
    tls_max: str | None
    conversation: Conversation
    mailbox: str | None = None  # the login's username
    login: str | None = None  # password | oauth2

    @property
    def port25_unauthenticated(self) -> bool:
        """Direct Send, or relay without a login (port 25 in real life; the mode says it,
        so a lab on another port is judged the same way)."""
        return not self.authenticated and self.mode in (Mode.direct_send, Mode.relay)


@dataclass(frozen=True)
class SiteObservation:
    site: str
    client: str
    name: str | None
    tags: list[str]
    egress: Egress
    devices: list[DeviceObservation]
    blocklists: list[BlocklistResult]
    checks: list[DirectSendCheck]
    started_at: datetime
    finished_at: datetime
    zones: int = 0  # blocklist zones configured for the sweep


SEVERITY_VERDICT = {
    Severity.critical: Verdict.critical,
    Severity.unknown: Verdict.unknown,
    Severity.warn: Verdict.warn,
    Severity.info: Verdict.ok,
}

# A failed conversation's category -> (flag, severity).
_CATEGORY_FLAGS: dict[Category, tuple[str, Severity]] = {
    Category.ip_reputation: ("IP_REPUTATION", Severity.critical),
    Category.auth_disabled: ("AUTH_DISABLED", Severity.critical),
    Category.auth_failed: ("AUTH_FAILED", Severity.critical),
    Category.auth_required: ("AUTH_REQUIRED", Severity.critical),
    Category.relay_denied: ("RELAY_DENIED", Severity.critical),
    Category.sender_rejected: ("SENDER_REJECTED", Severity.critical),
    Category.recipient_rejected: ("RECIPIENT_REJECTED", Severity.critical),
    Category.message_rejected: ("MESSAGE_REJECTED", Severity.critical),
    Category.tls_required: ("TLS_REQUIRED", Severity.critical),
    Category.tls_failure: ("TLS_FAILURE", Severity.critical),
    Category.throttled: ("THROTTLED", Severity.warn),
    Category.temporary_failure: ("TEMPORARY_FAILURE", Severity.warn),
    Category.unreachable: ("UNREACHABLE", Severity.critical),
    Category.timeout: ("TIMEOUT", Severity.critical),
    Category.egress_unreachable: ("EGRESS_UNREACHABLE", Severity.unknown),
    Category.resolver_failure: ("RESOLVER_FAILURE", Severity.unknown),
    Category.protocol_error: ("PROTOCOL_ERROR", Severity.critical),
    Category.domain_reputation: ("DOMAIN_LISTED", Severity.critical),
    Category.reverse_dns: ("REVERSE_DNS", Severity.critical),
    Category.helo_rejected: ("HELO_REJECTED", Severity.critical),
    Category.receiver_fault: ("RECEIVER_FAULT", Severity.critical),
    Category.unrecognised_refusal: ("UNRECOGNISED_REFUSAL", Severity.critical),
}

_DIRECT_SEND_REJECTED_RULES = {
    RuleId.m365_reject_direct_send,
    RuleId.m365_reject_direct_send_text,
    RuleId.m365_tenant_attribution,
    RuleId.m365_tenant_attribution_text,
}
# A token the SMTP server refused after XOAUTH2 (classify.classify_oauth_refusal).
_OAUTH_REFUSED_RULES = {
    RuleId.oauth_send_as_app_missing,
    RuleId.oauth_service_principal,
    RuleId.oauth_google_refused,
}
_TLS_VERSION_RULES = {RuleId.tls_version, RuleId.m365_tls_legacy}


def evidence_of(conversation: Conversation) -> str:
    """`rcpt: 550 5.7.606 Access denied, banned sending IP [...]`, or the fault's detail."""
    stage = conversation.failed_stage.value if conversation.failed_stage else "conversation"
    reply = conversation.reply
    if reply is not None and reply.code is not None:
        text = " ".join(reply.text.split())
        return f"{stage}: {reply.code} {text}"
    return f"{stage}: {conversation.finding}"


def _listing_text(results: Iterable[BlocklistResult]) -> str:
    parts = []
    for r in results:
        lists = "/".join(r.lists) or r.name
        part = f"{r.ip} on {r.zone} ({lists}: {r.meaning})"
        if r.reason:
            part += f" - {r.reason}"
        parts.append(part)
    return "; ".join(parts)


def _dirty_ip_remedy(ip: str, lists: str, delist: str | None, today: date) -> str:
    notice = m365.basic_auth_notice(today)
    text = (
        f"Site IP {ip} is listed or rejected ({lists}) and these copiers send unauthenticated "
        "on port 25: move them to authenticated submission (smtp.office365.com:587 with "
        f"STARTTLS for Microsoft 365), with OAuth (XOAUTH2) where the copier supports it, "
        f"because a password login only works until Basic AUTH is off ({notice}); or send "
        "through a connector relay from a clean static IP, Microsoft 365 High Volume Email, "
        "or an SMTP relay service. Then find what got the IP listed and request delisting"
    )
    return text + (f" ({delist})." if delist else ".")


class _Flags:
    """Collects flags; one flag per (code, remediation), devices merged."""

    def __init__(self) -> None:
        self.flags: list[Flag] = []

    def add(
        self, code: str, severity: Severity, devices: list[str], evidence: str, remediation: str
    ) -> None:
        for i, flag in enumerate(self.flags):
            if flag.code == code and flag.remediation == remediation:
                merged = list(dict.fromkeys([*flag.devices, *devices]))
                text = (
                    flag.evidence if evidence in flag.evidence else f"{flag.evidence}; {evidence}"
                )
                self.flags[i] = flag.model_copy(update={"devices": merged, "evidence": text})
                return
        self.flags.append(
            Flag(
                code=code,
                severity=severity,
                devices=list(dict.fromkeys(devices)),
                evidence=evidence,
                remediation=remediation,
            )
        )

    def sorted(self) -> list[Flag]:
        return sorted(self.flags, key=lambda f: (SEVERITY_ORDER[f.severity], f.code))


def assess(site: SiteObservation, today: date) -> SiteResult:
    """The site's verdict and flags from its conversations, blocklists and checks."""
    flags = _Flags()
    egress_ip = site.egress.egress_ip
    listed = [b for b in site.blocklists if b.status is BlocklistStatus.listed]
    abuse = [b for b in listed if b.severity is ListingSeverity.abuse]
    policy = [b for b in listed if b.severity is ListingSeverity.policy]
    unknown = [b for b in site.blocklists if b.status is BlocklistStatus.unknown]
    port25 = [d for d in site.devices if d.port25_unauthenticated]

    # -- the headline: Direct Send from a dirty IP ----------------------------------------
    rejected = [d for d in port25 if d.conversation.category is Category.ip_reputation]
    dirty = list(
        dict.fromkeys([d.device for d in rejected] + ([d.device for d in port25] if abuse else []))
    )
    if dirty:
        evidence = []
        if abuse:
            evidence.append("listed: " + _listing_text(abuse))
        by_conversation: dict[str, list[DeviceObservation]] = {}
        for d in rejected:
            by_conversation.setdefault(d.conversation.id, []).append(d)
        for sharing in by_conversation.values():
            names = ", ".join(d.device for d in sharing)
            evidence.append(f"rejected ({names}) at {evidence_of(sharing[0].conversation)}")
        lists = ", ".join(
            dict.fromkeys(
                [
                    *(n for b in abuse for n in (b.lists or [b.name])),
                    *(["server rejection"] if rejected else []),
                ]
            )
        )
        delist = abuse[0].delist if abuse else None
        ip = egress_ip or "(unknown)"
        flags.add(
            "DIRECT_SEND_DIRTY_IP",
            Severity.critical,
            dirty,
            " | ".join(evidence),
            _dirty_ip_remedy(ip, lists, delist, today),
        )
    # Not (yet) rejected for its IP: a copier that failed for another reason (an unknown
    # recipient, a dead MX) still sends from a range receivers will refuse.
    dynamic = [d.device for d in port25 if d.device not in dirty]
    if policy and dynamic:
        flags.add(
            "DIRECT_SEND_DYNAMIC_IP",
            Severity.warn,
            dynamic,
            "policy listing: " + _listing_text(policy),
            f"Site IP {egress_ip} is in a dynamic or residential range that must not send directly "
            "to MX: receivers that use these lists will reject it. Move these copiers to "
            "authenticated submission (OAuth where supported) or a relay from a static business IP.",
        )

    # -- what each conversation ended with --------------------------------------------------
    for d in site.devices:
        conversation = d.conversation
        if conversation.category is Category.ok:
            continue
        if conversation.category is Category.ip_reputation and d.port25_unauthenticated:
            continue  # DIRECT_SEND_DIRTY_IP above says it, with the current remediation
        code, severity = _CATEGORY_FLAGS[conversation.category]
        if (
            conversation.category is Category.relay_denied
            and conversation.rule in _DIRECT_SEND_REJECTED_RULES
        ):
            code = "DIRECT_SEND_REJECTED"
        elif (
            conversation.category is Category.tls_failure
            and d.tls_max
            and conversation.rule in _TLS_VERSION_RULES
        ):
            code = "TLS_TOO_OLD_FOR_DEVICE"
        elif (
            conversation.category is Category.timeout and conversation.failed_stage is Stage.connect
        ):
            code = "UNREACHABLE"
        elif conversation.rule is not None and conversation.rule.startswith("oauth.token."):
            code = "OAUTH_TOKEN_FAILED"  # fleet.oauth: no token, nothing sent to the server
        elif conversation.rule in _OAUTH_REFUSED_RULES:
            code = "OAUTH_REFUSED"
        flags.add(
            code,
            severity,
            [d.device],
            evidence_of(conversation),
            conversation.remediation or conversation.finding,
        )

    # -- Basic AUTH retirement, certificates ------------------------------------------------
    retiring = [
        d.device
        for d in site.devices
        if d.uses_password
        and d.mode is Mode.submission
        and (m365.is_submission_host(d.conversation.host) or _spoke_like_exchange(d.conversation))
        and d.conversation.category is not Category.auth_disabled
    ]
    if retiring:
        notice = m365.basic_auth_notice(today)
        flags.add(
            "BASIC_AUTH_RETIRING",
            Severity.warn,
            retiring,
            f"password (Basic) AUTH to Microsoft 365 client submission; {notice}",
            f"{notice}: move these copiers to {m365.ALTERNATIVES}.",
        )
    for d in site.devices:
        tls = d.conversation.tls
        if tls is not None and tls.not_after is not None:
            days = (tls.not_after.date() - today).days
            if 0 <= days < CERT_WARNING_DAYS:
                flags.add(
                    "CERT_EXPIRING",
                    Severity.warn,
                    [d.device],
                    f"the certificate of {d.conversation.host} ({tls.subject}) expires on "
                    f"{tls.not_after.date().isoformat()}, in {days} days",
                    f"Renew the certificate of {d.conversation.host} before {tls.not_after.date().isoformat()}: "
                    "copiers that verify it will stop sending the day it expires.",
                )

    # -- egress and blocklists ------------------------------------------------------------
    egress = site.egress
    changed = [ip for ip in egress.observed_ips if egress.declared_ip and ip != egress.declared_ip]
    if changed:
        flags.add(
            "EGRESS_IP_CHANGED",
            Severity.warn,
            [d.device for d in site.devices],
            f"declared {egress.declared_ip}, but servers saw {', '.join(changed)}",
            f"The site's traffic leaves from {', '.join(changed)}, not {egress.declared_ip}: a dynamic "
            "IP changed or traffic takes another WAN link. Update egress.ip, and any connector "
            "and SPF record that names the old IP.",
        )
    for b in listed:
        flags.add(
            "LISTED",
            Severity.warn if b.severity is ListingSeverity.abuse else Severity.info,
            [d.device for d in site.devices],
            _listing_text([b]),
            f"Find why {b.ip} is listed on {b.name} ({b.meaning}), fix it, then request removal"
            + (f": {b.delist}." if b.delist else "."),
        )
    for b in unknown:
        flags.add(
            "BLOCKLIST_UNKNOWN",
            Severity.unknown,
            [d.device for d in site.devices],
            f"{b.ip} on {b.zone}: {b.detail}",
            "fleet could not tell whether the site's IP is listed: "
            + (b.detail or "the lookup failed")
            + ". Check the resolver in defaults.dns.nameservers.",
        )
    if not site.blocklists and site.zones and egress_ip is None:
        flags.add(
            "BLOCKLIST_UNKNOWN",
            Severity.unknown,
            [d.device for d in site.devices],
            "the site's public IP is not known: it is not declared and no server echoed it",
            "Declare the site's public IP in egress.ip, so fleet can look it up on the blocklists.",
        )

    for flag in _check_flags(site):
        flags.add(flag.code, flag.severity, flag.devices, flag.evidence, flag.remediation)

    ordered = flags.sorted()
    verdict = worst([SEVERITY_VERDICT[f.severity] for f in ordered])
    devices = [_device_result(d, ordered) for d in site.devices]
    return SiteResult(
        site=site.site,
        client=site.client,
        name=site.name,
        tags=site.tags,
        verdict=verdict,
        flags=ordered,
        egress_ip=egress_ip,
        egress=egress,
        blocklists=site.blocklists,
        devices=devices,
        checks=site.checks,
        started_at=site.started_at,
        finished_at=site.finished_at,
    )


def _spoke_like_exchange(conversation: Conversation) -> bool:
    return any(
        s.reply is not None and "Microsoft ESMTP" in s.reply.text
        for s in conversation.stages
        if s.stage is Stage.banner
    )


def _check_flags(site: SiteObservation) -> list[Flag]:
    """Flags from the MX and SPF checks of Direct Send devices (see probes/direct_send)."""
    flags = []
    for check in site.checks:
        flag = _mx_flag(check) if check.kind == "mx" else _spf_flag(check)
        if flag is not None:
            flags.append(flag)
    return flags


_CHECK_RESOLVER_ADVICE = (
    "Check the resolver in defaults.dns.nameservers, and that the domain's DNS servers answer."
)


def _mx_flag(check: DirectSendCheck) -> Flag | None:
    result = check.result
    if result == MxResult.mismatch and check.mx_hosts:
        why = (
            "an IP address stops working without warning when the provider moves its servers"
            if check.host and is_ip(check.host)
            else "a stale or mistyped host fails, or reaches a server that no longer takes "
            "the domain's mail"
        )
        return Flag(
            code="MX_MISMATCH",
            severity=Severity.warn,
            devices=[check.device],
            evidence=check.detail,
            remediation=f"Set these copiers' SMTP server to {check.mx_hosts[0]} (the current MX "
            f"of {check.domain}) instead of {check.host}: {why}.",
        )
    if result == MxResult.unknown:
        return Flag(
            code="MX_UNKNOWN",
            severity=Severity.unknown,
            devices=[check.device],
            evidence=check.detail,
            remediation=f"fleet could not tell whether these copiers use the MX of "
            f"{check.domain}. {_CHECK_RESOLVER_ADVICE}",
        )
    return None


def _with_mechanism(record: str, mechanism: str) -> str:
    """The record with `mechanism` first, before anything that could end the evaluation."""
    return f"{record[:6]} {mechanism}{record[6:]}"


def _spf_flag(check: DirectSendCheck) -> Flag | None:
    result, domain, ip = check.result, check.domain, check.ip
    record = f"`{check.record}`" if check.record else "(none)"
    if result in (SpfResult.fail, SpfResult.softfail, SpfResult.neutral, SpfResult.none):
        if check.record and check.add:
            fix = (
                f"Add {check.add} to the SPF record of {domain}, so that receivers accept Direct "
                f"Send mail from the site's IP {ip}. It reads {record}; make it "
                f"`{_with_mechanism(check.record, check.add)}`."
            )
        else:
            fix = (
                f"{domain} publishes no SPF record: publish the TXT record `v=spf1 {check.add} "
                f"include:spf.protection.outlook.com -all` at {domain} (the include is Microsoft "
                "365's; add one for every other service that sends as the domain)."
            )
        consequence = (
            "receivers that enforce SPF or DMARC reject this mail"
            if result == SpfResult.fail
            else "receivers treat this mail as suspect and often junk it"
        )
        return Flag(
            code="SPF_NOT_AUTHORISED",
            severity=Severity.critical if result == SpfResult.fail else Severity.warn,
            devices=[check.device],
            evidence=f"SPF of {domain} for {ip}: {result}: {check.detail}; {consequence}; "
            f"record: {record}",
            remediation=fix,
        )
    if result == SpfResult.permerror:
        hint = (
            " Replace some include: terms with the ip4:/ip6: ranges they stand for, or remove "
            "services that no longer send as the domain, to stay within 10 lookups."
            if "DNS lookups" in check.detail
            else ""
        )
        return Flag(
            code="SPF_BROKEN",
            severity=Severity.warn,
            devices=[check.device],
            evidence=f"SPF of {domain} for {ip}: permerror: {check.detail}; record: {record}",
            remediation=f"Fix the SPF record of {domain} ({check.detail}): receivers treat a "
            f"broken record as failing SPF, for every sender of the domain.{hint} Make sure the "
            f"fixed record authorises {ip} ({check.add}).",
        )
    if result == SpfResult.temperror:
        return Flag(
            code="SPF_UNKNOWN",
            severity=Severity.unknown,
            devices=[check.device],
            evidence=f"SPF of {domain} for {ip}: temperror: {check.detail}",
            remediation=f"fleet could not tell whether {domain} authorises {ip}: "
            f"{check.detail}. {_CHECK_RESOLVER_ADVICE}",
        )
    if result == SpfResult.unknown:
        return Flag(
            code="SPF_UNKNOWN",
            severity=Severity.unknown,
            devices=[check.device],
            evidence=f"SPF of {domain}: {check.detail}",
            remediation="Declare the site's public IP in egress.ip, so fleet can check that "
            f"the SPF record of {domain} authorises it.",
        )
    return None


def _device_result(d: DeviceObservation, flags: list[Flag]) -> DeviceResult:
    mine = [f for f in flags if d.device in f.devices]
    verdict = worst([SEVERITY_VERDICT[f.severity] for f in mine])
    conversation = d.conversation
    finding = conversation.finding
    remediation = conversation.remediation
    top = mine[0] if mine and mine[0].severity is not Severity.info else None
    if top is not None and (
        conversation.category is Category.ok or top.code == "DIRECT_SEND_DIRTY_IP"
    ):
        finding = f"{top.code}: {top.evidence}" if conversation.category is Category.ok else finding
        remediation = top.remediation
    return DeviceResult(
        device=d.device,
        model=d.model,
        location=d.location,
        mode=d.mode,
        verdict=verdict,
        category=conversation.category,
        failed_stage=conversation.failed_stage,
        reply=conversation.reply,
        finding=finding,
        remediation=remediation,
        conversation=conversation.id,
        host=conversation.host,
        port=conversation.port,
        tls=conversation.tls,
        transcript=conversation.stages,
        test_message_id=conversation.test_message_id,
        queue_id=conversation.queue_id,
        mailbox=d.mailbox,
        login=d.login,
    )
