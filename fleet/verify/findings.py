"""The flags a delivery check raises: Junk (warn, with the likely cause), not delivered
(critical), and a mailbox that could not be checked (unknown)."""

from __future__ import annotations

from fleet.results import Delivery, DeliveryStatus, FlagCode, Severity

_FAILED = {"fail", "softfail", "permerror", "temperror"}


def delivery_flag(
    delivery: Delivery, egress_ip: str | None
) -> tuple[FlagCode, Severity, str, str] | None:
    """(code, severity, evidence, remediation) for a delivery that was not to the Inbox."""
    test = f"test message {delivery.test_message_id} for {delivery.mailbox}"
    if delivery.status is DeliveryStatus.junk:
        cause, fix = likely_cause(delivery, egress_ip)
        return (
            FlagCode.DELIVERED_TO_JUNK,
            Severity.warn,
            f"{test} was delivered to {delivery.folder} after {delivery.delay_s} s; {cause}",
            f"Scans from this site land in Junk, and users report them as never sent. {fix}",
        )
    if delivery.status is DeliveryStatus.not_delivered:
        return (
            FlagCode.NOT_DELIVERED,
            Severity.critical,
            f"the server accepted the {test}, but it was in neither the Inbox nor Junk after "
            f"{delivery.within_s:g} s",
            "Accepted is not delivered: look the message up in the receiver's message trace "
            "(Microsoft 365: Exchange admin center > Mail flow > Message trace, by its "
            "X-Fleet-Test-Id or subject) for a quarantine, a transport rule or a silent drop.",
        )
    if delivery.status is DeliveryStatus.unknown:
        return (
            FlagCode.DELIVERY_UNKNOWN,
            Severity.unknown,
            f"the mailbox {delivery.mailbox} could not be checked for the {test}: {delivery.detail}",
            "Fix the verify mailbox settings (host, login, CA) so fleet can see where the test "
            "message goes.",
        )
    return None


def likely_cause(delivery: Delivery, egress_ip: str | None) -> tuple[str, str]:
    """What Authentication-Results says most likely sent it to Junk, and the fix."""
    ip = egress_ip or "the site's IP"
    if delivery.spf in _FAILED:
        return (
            f"likely cause: SPF {delivery.spf} for {ip} (Authentication-Results: spf={delivery.spf})",
            f"Add {ip} to the sender domain's SPF record (ip4:{ip}), or send through a relay "
            "the record names.",
        )
    if delivery.dmarc in _FAILED:
        return (
            f"likely cause: DMARC {delivery.dmarc} (spf={delivery.spf}, dkim={delivery.dkim})",
            "Align SPF or DKIM with the From domain: authorise the site's IP in SPF, or sign "
            "with DKIM for the From domain.",
        )
    if delivery.compauth is not None and delivery.compauth.split()[0] in _FAILED:
        return (
            f"likely cause: Microsoft composite authentication failed (compauth={delivery.compauth})",
            "Authenticate the sender domain (SPF naming the site's IP, DKIM, DMARC), or send "
            "through an inbound connector for the site's IP.",
        )
    verdicts = ", ".join(
        f"{name}={value}"
        for name, value in (
            ("spf", delivery.spf),
            ("dkim", delivery.dkim),
            ("dmarc", delivery.dmarc),
            ("compauth", delivery.compauth),
        )
        if value is not None
    )
    return (
        f"authentication passed or was not reported ({verdicts or 'no Authentication-Results'}):"
        " the receiver's content filter or a user rule filed it",
        "Check the receiver's spam filter and the mailbox's rules; allow the copier's sender "
        "if it is trusted.",
    )
