"""Results -> per-site verdict and flags (pure functions).

A site's verdict is the worst of its flags: critical > unknown > warn > ok. `unknown` is
a verdict of its own: a site whose blocklist lookups could not be answered is never `ok`.
The headline flag is DIRECT_SEND_DIRTY_IP: a copier sending unauthenticated on port 25
from an IP that is listed on a blocklist, or that a server rejected for reputation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import NamedTuple

from fleet import m365
from fleet.classify import OAUTH_TOKEN_RULES, RuleId
from fleet.judgement.flag_texts import flag_text
from fleet.net import is_ip, unmapped
from fleet.probes.dnsbl_zones import NOT_IPV6
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
    RuleId.oauth_given_refused,
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
    # Its Basic AUTH alternatives are worded around the notice, not as m365.ALTERNATIVES.
    notice = m365.basic_auth_notice(today)
    code = FlagCode.DIRECT_SEND_DIRTY_IP
    if delist:
        return flag_text(code, "fix_delist", ip=ip, lists=lists, notice=notice, delist=delist)
    return flag_text(code, "fix", ip=ip, lists=lists, notice=notice)


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


class _Facts(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
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
    code = FlagCode.DIRECT_SEND_DIRTY_IP
    evidence = []
    if f.abuse:
        evidence.append(flag_text(code, "listed", listing=_listing_text(f.abuse)))
    by_conversation: dict[str, list[DeviceObservation]] = {}
    for d in f.rejected:
        by_conversation.setdefault(d.conversation.id, []).append(d)
    for sharing in by_conversation.values():
        names = ", ".join(d.device for d in sharing)
        at = evidence_of(sharing[0].conversation)
        evidence.append(flag_text(code, "rejected", names=names, at=at))
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
            code,
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
    code = FlagCode.DIRECT_SEND_DYNAMIC_IP
    return [
        (
            code,
            Severity.warn,
            dynamic,
            flag_text(code, "evidence", listing=_listing_text(f.policy)),
            flag_text(code, "fix", ip=f.site.egress.egress_ip),
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
    code = FlagCode.BASIC_AUTH_RETIRING
    return [
        (
            code,
            Severity.warn,
            retiring,
            flag_text(code, "evidence", notice=notice),
            flag_text(code, "fix", notice=notice),
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
            code = FlagCode.CERT_EXPIRING
            evidence = flag_text(
                code, "evidence", host=host, subject=tls.subject, expiry=expiry, days=days
            )
            fix = flag_text(code, "fix", host=host, expiry=expiry)
            found.append((code, Severity.warn, [d.device], evidence, fix))
    return found


def _same_ip(seen: str, declared: str) -> bool:
    try:
        return unmapped(seen) == unmapped(declared)
    except ValueError:
        return seen == declared


def _egress_changed(f: _Facts) -> list[_Found]:
    egress = f.site.egress
    declared = egress.declared_ip
    # compared as addresses: `::ffff:192.0.2.1` and `2001:DB8::1` are the same as written
    changed = [ip for ip in egress.observed_ips if declared and not _same_ip(ip, declared)]
    if not changed:
        return []
    code, seen = FlagCode.EGRESS_IP_CHANGED, ", ".join(changed)
    return [
        (
            code,
            Severity.warn,
            f.everyone,
            flag_text(code, "evidence", declared=egress.declared_ip, seen=seen),
            flag_text(code, "fix", declared=egress.declared_ip, seen=seen),
        )
    ]


def _listings(f: _Facts) -> list[_Found]:
    return [
        (
            FlagCode.LISTED,
            Severity.warn if b.severity is ListingSeverity.abuse else Severity.info,
            f.everyone,
            _listing_text([b]),
            flag_text(
                FlagCode.LISTED,
                "fix_delist" if b.delist else "fix",
                ip=b.ip,
                name=b.name,
                meaning=b.meaning,
                delist=b.delist,
            ),
        )
        for b in f.listed
    ]


def _blocklists_unknown(f: _Facts) -> list[_Found]:
    site, code = f.site, FlagCode.BLOCKLIST_UNKNOWN
    found: list[_Found] = [
        (
            code,
            # A list without IPv6 entries cannot speak for an IPv6 site, nor can a receiver
            # block the site by it: said, but no reason to call the site's standing unknown
            # (it would be every night, and exit 3 with it).
            Severity.info if b.detail == NOT_IPV6 else Severity.unknown,
            f.everyone,
            flag_text(code, "evidence", ip=b.ip, zone=b.zone, detail=b.detail),
            flag_text(code, "fix_not_ipv6", zone=b.zone, ip=b.ip)
            if b.detail == NOT_IPV6  # not the resolver's fault: the list has no IPv6 entries
            else flag_text(code, "fix", detail=b.detail or flag_text(code, "lookup_failed")),
        )
        for b in site.blocklists
        if b.status is BlocklistStatus.unknown
    ]
    if not site.blocklists and site.zones and site.egress.egress_ip is None:
        found.append(
            (
                code,
                Severity.unknown,
                f.everyone,
                flag_text(code, "no_ip"),
                flag_text(code, "fix_no_ip"),
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


def _mx_flag(check: MxCheck) -> Flag | None:
    result = check.result
    if result is MxResult.mismatch and check.mx_hosts:
        code = FlagCode.MX_MISMATCH
        why = flag_text(code, "why_ip" if check.host and is_ip(check.host) else "why_host")
        return Flag(
            code=code,
            severity=Severity.warn,
            devices=[check.device],
            evidence=check.detail,
            remediation=flag_text(
                code, "fix", mx=check.mx_hosts[0], domain=check.domain, host=check.host, why=why
            ),
        )
    if result is MxResult.unknown:
        return Flag(
            code=FlagCode.MX_UNKNOWN,
            severity=Severity.unknown,
            devices=[check.device],
            evidence=check.detail,
            remediation=flag_text(FlagCode.MX_UNKNOWN, "fix", domain=check.domain),
        )
    return None


def _with_mechanism(record: str, mechanism: str) -> str:
    """The record with `mechanism` first, before anything that could end the evaluation."""
    return f"{record[:6]} {mechanism}{record[6:]}"


def _spf_flag(check: SpfCheck) -> Flag | None:
    result, domain, ip = check.result, check.domain, check.ip
    record = f"`{check.record}`" if check.record else "(none)"
    if result in (SpfResult.fail, SpfResult.softfail, SpfResult.neutral, SpfResult.none):
        code = FlagCode.SPF_NOT_AUTHORISED
        if check.record and check.add:
            fixed = _with_mechanism(check.record, check.add)
            fix = flag_text(
                code, "fix", add=check.add, domain=domain, ip=ip, record=record, fixed=fixed
            )
        else:
            fix = flag_text(code, "fix_no_record", add=check.add, domain=domain)
        consequence = flag_text(code, "rejected" if result is SpfResult.fail else "suspect")
        evidence = flag_text(
            code,
            "evidence",
            domain=domain,
            ip=ip,
            result=result,
            detail=check.detail,
            consequence=consequence,
            record=record,
        )
        return Flag(
            code=code,
            severity=Severity.critical if result is SpfResult.fail else Severity.warn,
            devices=[check.device],
            evidence=evidence,
            remediation=fix,
        )
    if result is SpfResult.permerror:
        code = FlagCode.SPF_BROKEN
        hint = (
            flag_text(code, "too_many_lookups")
            if check.lookups is not None and check.lookups > SPF_MAX_LOOKUPS
            else ""
        )
        return Flag(
            code=code,
            severity=Severity.warn,
            devices=[check.device],
            evidence=flag_text(
                code, "evidence", domain=domain, ip=ip, detail=check.detail, record=record
            ),
            remediation=flag_text(
                code, "fix", domain=domain, detail=check.detail, hint=hint, ip=ip, add=check.add
            ),
        )
    if result is SpfResult.temperror:
        return Flag(
            code=FlagCode.SPF_UNKNOWN,
            severity=Severity.unknown,
            devices=[check.device],
            evidence=flag_text(
                FlagCode.SPF_UNKNOWN, "evidence", domain=domain, ip=ip, detail=check.detail
            ),
            remediation=flag_text(
                FlagCode.SPF_UNKNOWN, "fix", domain=domain, ip=ip, detail=check.detail
            ),
        )
    if result is SpfResult.unknown:
        return Flag(
            code=FlagCode.SPF_UNKNOWN,
            severity=Severity.unknown,
            devices=[check.device],
            evidence=flag_text(FlagCode.SPF_UNKNOWN, "no_ip", domain=domain, detail=check.detail),
            remediation=flag_text(FlagCode.SPF_UNKNOWN, "fix_no_ip", domain=domain),
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
        rule=conversation.rule,
        failed_stage=conversation.failed_stage,
        reply=conversation.reply,
        finding=finding,
        remediation=remediation,
        conversation=conversation.id,
        mailbox=d.mailbox,
        login=d.login,
        delivery=d.delivery,
    )
