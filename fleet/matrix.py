"""Results -> per-site verdict and flags (pure functions).

A site's verdict is the worst of its flags: critical > unknown > warn > ok. `unknown` is
a verdict of its own: a site whose blocklist lookups could not be answered is never `ok`.
The headline flag is DIRECT_SEND_DIRTY_IP: a copier sending unauthenticated on port 25
from an IP that is listed on a blocklist, or that a server rejected for reputation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from fleet import m365
from fleet.classify import OAUTH_TOKEN_RULES, RuleId
from fleet.net import is_ip
from fleet.results import (
    SEVERITY_ORDER,
    SPF_MAX_LOOKUPS,
    BlocklistResult,
    BlocklistStatus,
    Category,
    Conversation,
    ConversationRecord,
    DeviceObservation,
    DeviceResult,
    Flag,
    FlagCode,
    ListingSeverity,
    Mode,
    MxCheck,
    MxResult,
    Severity,
    SiteObservation,
    SiteResult,
    SpfCheck,
    SpfResult,
    Stage,
    worst,
)
from fleet.verify.findings import delivery_flag

CERT_WARNING_DAYS = 21


# A failed conversation's category -> (flag, severity).
_CATEGORY_FLAGS: dict[Category, tuple[FlagCode, Severity]] = {
    Category.ip_reputation: (FlagCode.IP_REPUTATION, Severity.critical),
    Category.auth_disabled: (FlagCode.AUTH_DISABLED, Severity.critical),
    Category.auth_failed: (FlagCode.AUTH_FAILED, Severity.critical),
    Category.auth_required: (FlagCode.AUTH_REQUIRED, Severity.critical),
    Category.relay_denied: (FlagCode.RELAY_DENIED, Severity.critical),
    Category.sender_rejected: (FlagCode.SENDER_REJECTED, Severity.critical),
    Category.recipient_rejected: (FlagCode.RECIPIENT_REJECTED, Severity.critical),
    Category.message_rejected: (FlagCode.MESSAGE_REJECTED, Severity.critical),
    Category.tls_required: (FlagCode.TLS_REQUIRED, Severity.critical),
    Category.tls_failure: (FlagCode.TLS_FAILURE, Severity.critical),
    Category.throttled: (FlagCode.THROTTLED, Severity.warn),
    Category.temporary_failure: (FlagCode.TEMPORARY_FAILURE, Severity.warn),
    Category.unreachable: (FlagCode.UNREACHABLE, Severity.critical),
    Category.timeout: (FlagCode.TIMEOUT, Severity.critical),
    Category.egress_unreachable: (FlagCode.EGRESS_UNREACHABLE, Severity.unknown),
    Category.resolver_failure: (FlagCode.RESOLVER_FAILURE, Severity.unknown),
    Category.protocol_error: (FlagCode.PROTOCOL_ERROR, Severity.critical),
    Category.domain_reputation: (FlagCode.DOMAIN_LISTED, Severity.critical),
    Category.reverse_dns: (FlagCode.REVERSE_DNS, Severity.critical),
    Category.helo_rejected: (FlagCode.HELO_REJECTED, Severity.critical),
    Category.receiver_fault: (FlagCode.RECEIVER_FAULT, Severity.critical),
    Category.unrecognised_refusal: (FlagCode.UNRECOGNISED_REFUSAL, Severity.critical),
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
# No token at all (fleet.oauth): nothing was sent to the server.
_OAUTH_TOKEN_FAILED_RULES = frozenset(OAUTH_TOKEN_RULES.values())


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
        self,
        code: FlagCode,
        severity: Severity,
        devices: list[str],
        evidence: str,
        remediation: str,
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


@dataclass(frozen=True)
class _Facts:
    """What the flag functions share about one site."""

    site: SiteObservation
    today: date
    listed: list[BlocklistResult]
    abuse: list[BlocklistResult]
    policy: list[BlocklistResult]
    port25: list[DeviceObservation]
    rejected: list[DeviceObservation]  # port-25 copiers a server refused for the site's IP

    @property
    def dirty(self) -> list[str]:
        return list(
            dict.fromkeys(
                [d.device for d in self.rejected]
                + ([d.device for d in self.port25] if self.abuse else [])
            )
        )

    @property
    def everyone(self) -> list[str]:
        return [d.device for d in self.site.devices]


def _facts(site: SiteObservation, today: date) -> _Facts:
    listed = [b for b in site.blocklists if b.status is BlocklistStatus.listed]
    port25 = [d for d in site.devices if d.port25_unauthenticated]
    return _Facts(
        site=site,
        today=today,
        listed=listed,
        abuse=[b for b in listed if b.severity is ListingSeverity.abuse],
        policy=[b for b in listed if b.severity is ListingSeverity.policy],
        port25=port25,
        # Only a reply classified ip_reputation is evidence about the site's IP (#16): a
        # listed domain, a missing PTR or the receiver's own fault never is.
        rejected=[d for d in port25 if d.conversation.category is Category.ip_reputation],
    )


_Found = tuple[FlagCode, Severity, list[str], str, str]  # code, severity, devices, evidence, fix


def _dirty_ip(f: _Facts) -> list[_Found]:
    """The headline: copiers sending unauthenticated on port 25 from a dirty IP."""
    dirty = f.dirty
    if not dirty:
        return []
    evidence = []
    if f.abuse:
        evidence.append("listed: " + _listing_text(f.abuse))
    by_conversation: dict[str, list[DeviceObservation]] = {}
    for d in f.rejected:
        by_conversation.setdefault(d.conversation.id, []).append(d)
    for sharing in by_conversation.values():
        names = ", ".join(d.device for d in sharing)
        evidence.append(f"rejected ({names}) at {evidence_of(sharing[0].conversation)}")
    lists = ", ".join(
        dict.fromkeys(
            [
                *(n for b in f.abuse for n in (b.lists or [b.name])),
                *(["server rejection"] if f.rejected else []),
            ]
        )
    )
    delist = f.abuse[0].delist if f.abuse else None
    ip = f.site.egress.egress_ip or "(unknown)"
    return [
        (
            FlagCode.DIRECT_SEND_DIRTY_IP,
            Severity.critical,
            dirty,
            " | ".join(evidence),
            _dirty_ip_remedy(ip, lists, delist, f.today),
        )
    ]


def _dynamic_ip(f: _Facts) -> list[_Found]:
    # Not (yet) rejected for its IP: a copier that failed for another reason (an unknown
    # recipient, a dead MX) still sends from a range receivers will refuse.
    dirty = f.dirty
    dynamic = [d.device for d in f.port25 if d.device not in dirty]
    if not (f.policy and dynamic):
        return []
    return [
        (
            FlagCode.DIRECT_SEND_DYNAMIC_IP,
            Severity.warn,
            dynamic,
            "policy listing: " + _listing_text(f.policy),
            f"Site IP {f.site.egress.egress_ip} is in a dynamic or residential range that must "
            "not send directly to MX: receivers that use these lists will reject it. Move these "
            "copiers to authenticated submission (OAuth where supported) or a relay from a "
            "static business IP.",
        )
    ]


def _conversation_flag(d: DeviceObservation) -> tuple[FlagCode, Severity] | None:
    """The flag a failed conversation raises: by its rule where the rule says more than its
    category, else by its category."""
    conversation = d.conversation
    category = conversation.category
    if category is Category.ok:
        return None
    if category is Category.ip_reputation and d.port25_unauthenticated:
        return None  # DIRECT_SEND_DIRTY_IP says it, with the current remediation
    code, severity = _CATEGORY_FLAGS[category]
    if category is Category.relay_denied and conversation.rule in _DIRECT_SEND_REJECTED_RULES:
        code = FlagCode.DIRECT_SEND_REJECTED
    elif category is Category.tls_failure and d.tls_max and conversation.rule in _TLS_VERSION_RULES:
        code = FlagCode.TLS_TOO_OLD_FOR_DEVICE
    elif category is Category.timeout and conversation.failed_stage is Stage.connect:
        code = FlagCode.UNREACHABLE
    elif conversation.rule in _OAUTH_TOKEN_FAILED_RULES:
        code = FlagCode.OAUTH_TOKEN_FAILED
    elif conversation.rule in _OAUTH_REFUSED_RULES:
        code = FlagCode.OAUTH_REFUSED
    return code, severity


def _conversations(f: _Facts) -> list[_Found]:
    found = []
    for d in f.site.devices:
        flag = _conversation_flag(d)
        if flag is not None:
            conversation = d.conversation
            found.append(
                (
                    *flag,
                    [d.device],
                    evidence_of(conversation),
                    conversation.remediation or conversation.finding,
                )
            )
    return found


def _basic_auth_retiring(f: _Facts) -> list[_Found]:
    retiring = [
        d.device
        for d in f.site.devices
        if d.uses_password
        and d.mode is Mode.submission
        and m365.is_microsoft(d.conversation.host, _banners(d.conversation))
        and not m365.is_hve(d.conversation.host)
        and d.conversation.category is not Category.auth_disabled
    ]
    if not retiring:
        return []
    notice = m365.basic_auth_notice(f.today)
    return [
        (
            FlagCode.BASIC_AUTH_RETIRING,
            Severity.warn,
            retiring,
            f"password (Basic) AUTH to Microsoft 365 client submission; {notice}",
            f"{notice}: move these copiers to {m365.ALTERNATIVES}.",
        )
    ]


def _certificates(f: _Facts) -> list[_Found]:
    found = []
    for d in f.site.devices:
        tls = d.conversation.tls
        if tls is None or tls.not_after is None:
            continue
        days = (tls.not_after.date() - f.today).days
        if 0 <= days < CERT_WARNING_DAYS:
            host, expiry = d.conversation.host, tls.not_after.date().isoformat()
            found.append(
                (
                    FlagCode.CERT_EXPIRING,
                    Severity.warn,
                    [d.device],
                    f"the certificate of {host} ({tls.subject}) expires on {expiry}, in {days} days",
                    f"Renew the certificate of {host} before {expiry}: copiers that verify it will "
                    "stop sending the day it expires.",
                )
            )
    return found


def _egress_changed(f: _Facts) -> list[_Found]:
    egress = f.site.egress
    changed = [ip for ip in egress.observed_ips if egress.declared_ip and ip != egress.declared_ip]
    if not changed:
        return []
    return [
        (
            FlagCode.EGRESS_IP_CHANGED,
            Severity.warn,
            f.everyone,
            f"declared {egress.declared_ip}, but servers saw {', '.join(changed)}",
            f"The site's traffic leaves from {', '.join(changed)}, not {egress.declared_ip}: a "
            "dynamic IP changed or traffic takes another WAN link. Update egress.ip, and any "
            "connector and SPF record that names the old IP.",
        )
    ]


def _listings(f: _Facts) -> list[_Found]:
    return [
        (
            FlagCode.LISTED,
            Severity.warn if b.severity is ListingSeverity.abuse else Severity.info,
            f.everyone,
            _listing_text([b]),
            f"Find why {b.ip} is listed on {b.name} ({b.meaning}), fix it, then request removal"
            + (f": {b.delist}." if b.delist else "."),
        )
        for b in f.listed
    ]


def _blocklists_unknown(f: _Facts) -> list[_Found]:
    site = f.site
    found: list[_Found] = [
        (
            FlagCode.BLOCKLIST_UNKNOWN,
            Severity.unknown,
            f.everyone,
            f"{b.ip} on {b.zone}: {b.detail}",
            "fleet could not tell whether the site's IP is listed: "
            + (b.detail or "the lookup failed")
            + ". Check the resolver in defaults.dns.nameservers.",
        )
        for b in site.blocklists
        if b.status is BlocklistStatus.unknown
    ]
    if not site.blocklists and site.zones and site.egress.egress_ip is None:
        found.append(
            (
                FlagCode.BLOCKLIST_UNKNOWN,
                Severity.unknown,
                f.everyone,
                "the site's public IP is not known: it is not declared and no server echoed it",
                "Declare the site's public IP in egress.ip, so fleet can look it up on the "
                "blocklists.",
            )
        )
    return found


def _checks(f: _Facts) -> list[_Found]:
    return [
        (FlagCode(flag.code), flag.severity, flag.devices, flag.evidence, flag.remediation)
        for flag in _check_flags(f.site)
    ]


def _deliveries(f: _Facts) -> list[_Found]:
    found: list[_Found] = []
    for device in f.site.devices:
        flag = delivery_flag(device.delivery, f.site.egress.egress_ip) if device.delivery else None
        if flag is not None:
            code, severity, evidence, remediation = flag
            found.append((code, severity, [device.device], evidence, remediation))
    return found


# Every flag a site can raise, by the function that finds it, in the order they are merged.
_FLAG_FUNCTIONS: tuple[Callable[[_Facts], list[_Found]], ...] = (
    _dirty_ip,
    _dynamic_ip,
    _conversations,
    _basic_auth_retiring,
    _certificates,
    _egress_changed,
    _listings,
    _blocklists_unknown,
    _checks,
    _deliveries,
)


def assess(site: SiteObservation, today: date) -> SiteResult:
    """The site's verdict and flags from its conversations, blocklists and checks."""
    facts = _facts(site, today)
    flags = _Flags()
    for find in _FLAG_FUNCTIONS:
        for code, severity, names, evidence, remediation in find(facts):
            flags.add(code, severity, names, evidence, remediation)
    ordered = flags.sorted()
    verdict = worst([f.severity.verdict for f in ordered])
    devices = [_device_result(d, ordered) for d in site.devices]
    conversations: dict[str, ConversationRecord] = {}
    for d in site.devices:
        if d.conversation.id not in conversations:
            conversations[d.conversation.id] = _record(d.conversation)
    return SiteResult(
        site=site.site,
        client=site.client,
        name=site.name,
        tags=site.tags,
        verdict=verdict,
        flags=ordered,
        egress=site.egress,
        blocklists=site.blocklists,
        devices=devices,
        conversations=conversations,
        checks=site.checks,
        started_at=site.started_at,
        finished_at=site.finished_at,
    )


def _banners(conversation: Conversation) -> list[str]:
    return [s.reply.text for s in conversation.stages if s.stage is Stage.banner and s.reply]


def _check_flags(site: SiteObservation) -> list[Flag]:
    """Flags from the MX and SPF checks of Direct Send devices (see probes/direct_send)."""
    flags = []
    for check in site.checks:
        flag = _mx_flag(check) if isinstance(check, MxCheck) else _spf_flag(check)
        if flag is not None:
            flags.append(flag)
    return flags


_CHECK_RESOLVER_ADVICE = (
    "Check the resolver in defaults.dns.nameservers, and that the domain's DNS servers answer."
)


def _mx_flag(check: MxCheck) -> Flag | None:
    result = check.result
    if result is MxResult.mismatch and check.mx_hosts:
        why = (
            "an IP address stops working without warning when the provider moves its servers"
            if check.host and is_ip(check.host)
            else "a stale or mistyped host fails, or reaches a server that no longer takes "
            "the domain's mail"
        )
        return Flag(
            code=FlagCode.MX_MISMATCH,
            severity=Severity.warn,
            devices=[check.device],
            evidence=check.detail,
            remediation=f"Set these copiers' SMTP server to {check.mx_hosts[0]} (the current MX "
            f"of {check.domain}) instead of {check.host}: {why}.",
        )
    if result is MxResult.unknown:
        return Flag(
            code=FlagCode.MX_UNKNOWN,
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


def _spf_flag(check: SpfCheck) -> Flag | None:
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
            if result is SpfResult.fail
            else "receivers treat this mail as suspect and often junk it"
        )
        return Flag(
            code=FlagCode.SPF_NOT_AUTHORISED,
            severity=Severity.critical if result is SpfResult.fail else Severity.warn,
            devices=[check.device],
            evidence=f"SPF of {domain} for {ip}: {result}: {check.detail}; {consequence}; "
            f"record: {record}",
            remediation=fix,
        )
    if result is SpfResult.permerror:
        hint = (
            " Replace some include: terms with the ip4:/ip6: ranges they stand for, or remove "
            "services that no longer send as the domain, to stay within 10 lookups."
            if check.lookups is not None and check.lookups > SPF_MAX_LOOKUPS
            else ""
        )
        return Flag(
            code=FlagCode.SPF_BROKEN,
            severity=Severity.warn,
            devices=[check.device],
            evidence=f"SPF of {domain} for {ip}: permerror: {check.detail}; record: {record}",
            remediation=f"Fix the SPF record of {domain} ({check.detail}): receivers treat a "
            f"broken record as failing SPF, for every sender of the domain.{hint} Make sure the "
            f"fixed record authorises {ip} ({check.add}).",
        )
    if result is SpfResult.temperror:
        return Flag(
            code=FlagCode.SPF_UNKNOWN,
            severity=Severity.unknown,
            devices=[check.device],
            evidence=f"SPF of {domain} for {ip}: temperror: {check.detail}",
            remediation=f"fleet could not tell whether {domain} authorises {ip}: "
            f"{check.detail}. {_CHECK_RESOLVER_ADVICE}",
        )
    if result is SpfResult.unknown:
        return Flag(
            code=FlagCode.SPF_UNKNOWN,
            severity=Severity.unknown,
            devices=[check.device],
            evidence=f"SPF of {domain}: {check.detail}",
            remediation="Declare the site's public IP in egress.ip, so fleet can check that "
            f"the SPF record of {domain} authorises it.",
        )
    return None


def _record(conversation: Conversation) -> ConversationRecord:
    """What the site's result keeps of a conversation, once for all the devices that had it."""
    return ConversationRecord(
        host=conversation.host,
        port=conversation.port,
        tls=conversation.tls,
        transcript=conversation.stages,
        test_message_id=conversation.test_message_id,
        queue_id=conversation.queue_id,
    )


def _device_result(d: DeviceObservation, flags: list[Flag]) -> DeviceResult:
    mine = [f for f in flags if d.device in f.devices]
    verdict = worst([f.severity.verdict for f in mine])
    conversation = d.conversation
    finding = conversation.finding
    remediation = conversation.remediation
    top = mine[0] if mine and mine[0].severity is not Severity.info else None
    if top is not None and (
        conversation.category is Category.ok or top.code == FlagCode.DIRECT_SEND_DIRTY_IP
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
        mailbox=d.mailbox,
        login=d.login,
        delivery=d.delivery,
    )
