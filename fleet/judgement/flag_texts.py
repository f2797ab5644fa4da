"""The words of every flag the matrix, the delivery check and the runner raise themselves:
each flag's evidence and remediation sentences, keyed by its FlagCode, then by the case.

A flag raised for a failed conversation (IP_REPUTATION, RELAY_DENIED, ...) has no entry:
its words are the conversation's finding and remediation, from the rule that judged it.
Templates are `str.format` strings; `flag_text` fills them.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet.judgement.remedies import AUTH_ALTERNATIVES
from fleet.results import FlagCode

_RESOLVER_ADVICE = (
    "Check the resolver in defaults.dns.nameservers, and that the domain's DNS servers answer."
)

_DIRTY_IP_FIX = (
    "Site IP {ip} is listed or rejected ({lists}) and these copiers send unauthenticated "
    "on port 25: move them to authenticated submission (smtp.office365.com:587 with "
    "STARTTLS for Microsoft 365), with OAuth (XOAUTH2) where the copier supports it, "
    "because a password login only works until Basic AUTH is off ({notice}); or send "
    "through a connector relay from a clean static IP, Microsoft 365 High Volume Email, "
    "or an SMTP relay service. Then find what got the IP listed and request delisting"
)

_LISTED_FIX = "Find why {ip} is listed on {name} ({meaning}), fix it, then request removal"

# The test message a delivery flag is about (its `test` field).
_TEST_MESSAGE = "test message {id} for {mailbox}"

FLAG_TEXTS: Mapping[FlagCode, Mapping[str, str]] = {
    FlagCode.DIRECT_SEND_DIRTY_IP: {
        "listed": "listed: {listing}",
        "rejected": "rejected ({names}) at {at}",
        "fix": _DIRTY_IP_FIX + ".",
        "fix_delist": _DIRTY_IP_FIX + " ({delist}).",
    },
    FlagCode.DIRECT_SEND_DYNAMIC_IP: {
        "evidence": "policy listing: {listing}",
        "fix": (
            "Site IP {ip} is in a dynamic or residential range that must not send directly to "
            "MX: receivers that use these lists will reject it. Move these copiers to "
            "authenticated submission (OAuth where supported) or a relay from a static "
            "business IP."
        ),
    },
    FlagCode.BASIC_AUTH_RETIRING: {
        "evidence": "password (Basic) AUTH to Microsoft 365 client submission; {notice}",
        "fix": "{notice}: move these copiers to " + AUTH_ALTERNATIVES + ".",
    },
    FlagCode.CERT_EXPIRING: {
        "evidence": "the certificate of {host} ({subject}) expires on {expiry}, in {days} days",
        "fix": (
            "Renew the certificate of {host} before {expiry}: copiers that verify it will stop "
            "sending the day it expires."
        ),
    },
    FlagCode.EGRESS_IP_CHANGED: {
        "evidence": "declared {declared}, but servers saw {seen}",
        "fix": (
            "The site's traffic leaves from {seen}, not {declared}: a dynamic IP changed or "
            "traffic takes another WAN link. Update egress.ip, and any connector and SPF record "
            "that names the old IP."
        ),
    },
    FlagCode.LISTED: {
        "fix": _LISTED_FIX + ".",
        "fix_delist": _LISTED_FIX + ": {delist}.",
    },
    FlagCode.BLOCKLIST_UNKNOWN: {
        "evidence": "{ip} on {zone}: {detail}",
        "lookup_failed": "the lookup failed",
        "fix": (
            "fleet could not tell whether the site's IP is listed: {detail}. Check the resolver "
            "in defaults.dns.nameservers."
        ),
        "fix_not_ipv6": (
            "{zone} does not cover IPv6 addresses, so it cannot say whether {ip} is listed (nor "
            "can a receiver that uses it block {ip} by it). Rely on lists that cover IPv6 "
            "(Spamhaus), or set `ipv6: true` on {zone} if it does cover IPv6."
        ),
        "no_ip": "the site's public IP is not known: it is not declared and no server echoed it",
        "fix_no_ip": (
            "Declare the site's public IP in egress.ip, so fleet can look it up on the blocklists."
        ),
    },
    FlagCode.MX_MISMATCH: {
        "fix": (
            "Set these copiers' SMTP server to {mx} (the current MX of {domain}) instead of "
            "{host}: {why}."
        ),
        "why_ip": (
            "an IP address stops working without warning when the provider moves its servers"
        ),
        "why_host": (
            "a stale or mistyped host fails, or reaches a server that no longer takes the "
            "domain's mail"
        ),
    },
    FlagCode.MX_UNKNOWN: {
        "fix": "fleet could not tell whether these copiers use the MX of {domain}. "
        + _RESOLVER_ADVICE,
    },
    FlagCode.SPF_NOT_AUTHORISED: {
        "evidence": (
            "SPF of {domain} for {ip}: {result}: {detail}; {consequence}; record: {record}"
        ),
        "rejected": "receivers that enforce SPF or DMARC reject this mail",
        "suspect": "receivers treat this mail as suspect and often junk it",
        "fix": (
            "Add {add} to the SPF record of {domain}, so that receivers accept Direct Send mail "
            "from the site's IP {ip}. It reads {record}; make it `{fixed}`."
        ),
        "fix_no_record": (
            "{domain} publishes no SPF record: publish the TXT record `v=spf1 {add} "
            "include:spf.protection.outlook.com -all` at {domain} (the include is Microsoft "
            "365's; add one for every other service that sends as the domain)."
        ),
    },
    FlagCode.SPF_BROKEN: {
        "evidence": "SPF of {domain} for {ip}: permerror: {detail}; record: {record}",
        "fix": (
            "Fix the SPF record of {domain} ({detail}): receivers treat a broken record as "
            "failing SPF, for every sender of the domain.{hint} Make sure the fixed record "
            "authorises {ip} ({add})."
        ),
        "too_many_lookups": (
            " Replace some include: terms with the ip4:/ip6: ranges they stand for, or remove "
            "services that no longer send as the domain, to stay within 10 lookups."
        ),
    },
    FlagCode.SPF_UNKNOWN: {
        "evidence": "SPF of {domain} for {ip}: temperror: {detail}",
        "fix": "fleet could not tell whether {domain} authorises {ip}: {detail}. "
        + _RESOLVER_ADVICE,
        "no_ip": "SPF of {domain}: {detail}",
        "fix_no_ip": (
            "Declare the site's public IP in egress.ip, so fleet can check that the SPF record "
            "of {domain} authorises it."
        ),
    },
    FlagCode.DELIVERED_TO_JUNK: {
        "evidence": _TEST_MESSAGE + " was delivered to {folder} after {delay_s} s; {cause}",
        "fix": "Scans from this site land in Junk, and users report them as never sent. {fix}",
        # The likely cause, from the message's Authentication-Results, and its fix.
        "spf": "likely cause: SPF {spf} for {ip} (Authentication-Results: spf={spf})",
        "fix_spf": (
            "Add {ip} to the sender domain's SPF record (ip4:{ip}), or send through a relay the "
            "record names."
        ),
        "dmarc": "likely cause: DMARC {dmarc} (spf={spf}, dkim={dkim})",
        "fix_dmarc": (
            "Align SPF or DKIM with the From domain: authorise the site's IP in SPF, or sign "
            "with DKIM for the From domain."
        ),
        "compauth": (
            "likely cause: Microsoft composite authentication failed (compauth={compauth})"
        ),
        "fix_compauth": (
            "Authenticate the sender domain (SPF naming the site's IP, DKIM, DMARC), or send "
            "through an inbound connector for the site's IP."
        ),
        "filter": (
            "authentication passed or was not reported ({verdicts}): the receiver's content "
            "filter or a user rule filed it"
        ),
        "no_verdicts": "no Authentication-Results",
        "unknown_ip": "the site's IP",
        "fix_filter": (
            "Check the receiver's spam filter and the mailbox's rules; allow the copier's "
            "sender if it is trusted."
        ),
    },
    FlagCode.NOT_DELIVERED: {
        "evidence": (
            "the server accepted the " + _TEST_MESSAGE + ", but it was in neither the Inbox "
            "nor Junk after {within_s:g} s"
        ),
        "fix": (
            "Accepted is not delivered: look the message up in the receiver's message trace "
            "(Microsoft 365: Exchange admin center > Mail flow > Message trace, by its "
            "X-Fleet-Test-Id or subject) for a quarantine, a transport rule or a silent drop."
        ),
    },
    FlagCode.DELIVERY_UNKNOWN: {
        "evidence": (
            "the mailbox {mailbox} could not be checked for the " + _TEST_MESSAGE + ": {detail}"
        ),
        "fix": (
            "Fix the verify mailbox settings (host, login, CA) so fleet can see where the test "
            "message goes."
        ),
    },
    FlagCode.INTERNAL_ERROR: {
        "evidence": "{kind}: {error}",
        "fix": (
            "fleet failed on this site: run `fleet scan` on it with --debug and report the trace."
        ),
    },
}


def flag_text(code: FlagCode, case: str, **fields: object) -> str:
    """One of a flag's sentences (`case`: "evidence", "fix", ...), filled with `fields`."""
    return FLAG_TEXTS[code][case].format(**fields)
