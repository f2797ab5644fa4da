"""The flags a delivery check raises: Junk (warn, with the likely cause), not delivered
(critical), and a mailbox that could not be checked (unknown). Their words are in
fleet.judgement.flag_texts."""

from __future__ import annotations

from fleet.judgement.flag_texts import flag_text
from fleet.results import Delivery, DeliveryStatus, FlagCode, Severity

_FAILED = {"fail", "softfail", "permerror", "temperror"}
_JUNK = FlagCode.DELIVERED_TO_JUNK


def delivery_flag(
    delivery: Delivery, egress_ip: str | None
) -> tuple[FlagCode, Severity, str, str] | None:
    """(code, severity, evidence, remediation) for a delivery that was not to the Inbox."""
    test = {"id": delivery.test_message_id, "mailbox": delivery.mailbox}
    if delivery.status is DeliveryStatus.junk:
        cause, fix = likely_cause(delivery, egress_ip)
        folder, delay_s = delivery.folder, delivery.delay_s
        return (
            _JUNK,
            Severity.warn,
            flag_text(_JUNK, "evidence", **test, folder=folder, delay_s=delay_s, cause=cause),
            flag_text(_JUNK, "fix", fix=fix),
        )
    if delivery.status is DeliveryStatus.not_delivered:
        code = FlagCode.NOT_DELIVERED
        return (
            code,
            Severity.critical,
            flag_text(code, "evidence", **test, within_s=delivery.within_s),
            flag_text(code, "fix"),
        )
    if delivery.status is DeliveryStatus.unknown:
        code = FlagCode.DELIVERY_UNKNOWN
        return (
            code,
            Severity.unknown,
            flag_text(code, "evidence", **test, detail=delivery.detail),
            flag_text(code, "fix"),
        )
    return None


def likely_cause(delivery: Delivery, egress_ip: str | None) -> tuple[str, str]:
    """What Authentication-Results says most likely sent it to Junk, and the fix."""
    ip = egress_ip or flag_text(_JUNK, "unknown_ip")
    spf, dmarc, dkim, compauth = delivery.spf, delivery.dmarc, delivery.dkim, delivery.compauth
    if spf in _FAILED:
        return flag_text(_JUNK, "spf", spf=spf, ip=ip), flag_text(_JUNK, "fix_spf", ip=ip)
    if dmarc in _FAILED:
        cause = flag_text(_JUNK, "dmarc", dmarc=dmarc, spf=spf, dkim=dkim)
        return cause, flag_text(_JUNK, "fix_dmarc")
    if compauth is not None and compauth.split()[0] in _FAILED:
        return flag_text(_JUNK, "compauth", compauth=compauth), flag_text(_JUNK, "fix_compauth")
    verdicts = ", ".join(
        f"{name}={value}"
        for name, value in (("spf", spf), ("dkim", dkim), ("dmarc", dmarc), ("compauth", compauth))
        if value is not None
    )
    cause = flag_text(_JUNK, "filter", verdicts=verdicts or flag_text(_JUNK, "no_verdicts"))
    return cause, flag_text(_JUNK, "fix_filter")
