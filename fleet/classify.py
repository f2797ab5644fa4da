"""SMTP replies and network faults -> category, finding and remediation.

The knowledge lives in one ordered table of rules (see `RULES`): a rule names enhanced
status codes and/or a key phrase, and the first rule that matches decides. Enhanced codes
are matched before text, because Microsoft varies its wording far more than its codes.
A reply no rule knows still gets a category from its code class and the stage, and the
raw text is kept. Exceptions from the network are mapped in exactly one place,
`classify_exception`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib

from fleet import m365
from fleet.credentials import REDACTED
from fleet.errors import EgressError, ProbeTimeout
from fleet.oauth import TokenFailureReason
from fleet.results import Category, Mode, Reply, Stage, StageStatus

# ---- parsing ----------------------------------------------------------------------------

# An enhanced status code starts a reply line: "5.7.606 Access denied ...". Anchoring at the
# line start keeps the octets of a bracketed IP ("[40.107.5.7]") from reading as one, and a
# fourth number ("5.7.5.7 is listed") means an IP address, not a code.
_ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$|[;,:)\]]|\.(?!\d))", re.MULTILINE)


_ENHANCED_FULL_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


def parse_enhanced(text: str) -> str | None:
    """The first enhanced status code (RFC 3463) at the start of a reply line, if any."""
    match = _ENHANCED_RE.search(text)
    return ".".join(match.groups()) if match else None


def make_reply(code: int | None, text: str, secrets: Iterable[str] = ()) -> Reply:
    """A Reply with its enhanced code parsed and its text made safe to store: valid Unicode,
    and none of the given secrets (what this conversation sent), should a server echo one."""
    clean = clean_text(text)
    for secret in secrets:
        if secret in clean:
            clean = clean.replace(secret, REDACTED)
    return Reply.model_construct(code=code, enhanced=parse_enhanced(clean), text=clean)


def clean_text(text: str) -> str:
    """Text from a server as valid Unicode (aiosmtplib keeps undecodable bytes as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Escaped bytes back to bytes; any other lone surrogate (from an exception's text, or
        # a library that decodes differently) passes as bytes that cannot decode either.
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogatepass")
        text = data.decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd")


_IP_PATTERNS = [
    # Microsoft 365 / Exchange: "Hello [203.0.113.5]"; Exim: "Hello name [203.0.113.5]"
    re.compile(r"\bHello\b[^\[\n]{0,200}\[([0-9A-Fa-f:.]+)\]"),
    # Google: "at your service, [203.0.113.5]"
    re.compile(r"at your service,?\s*\[([0-9A-Fa-f:.]+)\]"),
    # Postfix, Exim and EOP rejections: "Client host [203.0.113.5] blocked using ..."
    re.compile(r"Client host \[([0-9A-Fa-f:.]+)\]", re.IGNORECASE),
    # EOP: "banned sending IP [203.0.113.5]"; consumer Outlook: "messages from [x] weren't sent"
    re.compile(r"sending IP \[([0-9A-Fa-f:.]+)\]", re.IGNORECASE),
    re.compile(r"messages from \[([0-9A-Fa-f:.]+)\]", re.IGNORECASE),
]


def echoed_client_ip(text: str) -> str | None:
    """The client IP a server echoed back (greeting or rejection), if it did."""
    for pattern in _IP_PATTERNS:
        for match in pattern.finditer(text):
            try:
                return str(ipaddress.ip_address(match.group(1)))
            except ValueError:
                continue
    return None


def blocklist_named(text: str) -> str | None:
    """The blocklist a rejection names: 'blocked using zen.spamhaus.org' -> zen.spamhaus.org."""
    match = re.search(r"blocked using ([A-Za-z0-9.-]+[A-Za-z0-9])", text)
    if match:
        return match.group(1)
    match = re.search(
        r"\b((?:[a-z0-9-]{1,63}\.){0,4}(?:spamhaus|spamcop|barracudacentral|uribl|surbl|sorbs|abuseat|"
        r"mailspike|psbl\.surriel)\.(?:org|net|com))\b",
        text,
        re.IGNORECASE,
    )
    if match:
        return match.group(1).lower()
    for name in ("Spamhaus DBL", "Spamhaus", "URIBL", "SURBL", "Barracuda", "SpamCop"):
        if re.search(re.escape(name), text, re.IGNORECASE):
            return name
    return None


# Bounded repetitions throughout: a hostile server's 40,000 dots must not cost minutes.
_DOMAIN = r"(?<![A-Za-z0-9.-])[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,63}"
_LISTED_DOMAIN_PATTERNS = (
    # Spamhaus's lookup link: https://check.spamhaus.org/listed/?searchterm=x, query/dbl?domain=x
    re.compile(r"(?:[?&](?:domain|searchterm|d)=)(" + _DOMAIN + r")", re.IGNORECASE),
    # "Sender address [a@example.com] blocked using dbl.spamhaus.org"
    re.compile(r"address \[?<?[^@\s<>\[\]]+@(" + _DOMAIN + r")", re.IGNORECASE),
    # "domain example.com is listed", "Helo domain [x.example] is listed", "example.com is listed"
    re.compile(
        r"(?:domain|helo|ehlo|host ?name|url|uri)\s+[\[<('\"]?(" + _DOMAIN + r")[\]>)'\"]?"
        r"\s+(?:is |was |has been )?(?:listed|black ?listed|block ?listed|blocked|present|found)",
        re.IGNORECASE,
    ),
    re.compile(
        r"[\[<('\"]?(" + _DOMAIN + r")[\]>)'\"]?\s+(?:is |was |has been )?"
        r"(?:listed|black ?listed|block ?listed) (?:at|on|in|by)",
        re.IGNORECASE,
    ),
)
_LIST_ZONE_RE = re.compile(
    r"(?:spamhaus|spamcop|barracudacentral|uribl|surbl|sorbs|abuseat|mailspike)\.(?:org|net|com)$",
    re.IGNORECASE,
)


def listed_domain(text: str) -> str | None:
    """The domain a domain-blocklist rejection names, if it names one (not the list's own)."""
    for pattern in _LISTED_DOMAIN_PATTERNS:
        for match in pattern.finditer(text):
            domain = match.group(1).rstrip(".").lower()
            if not _LIST_ZONE_RE.search(domain) and not domain.startswith("www.spamhaus"):
                return domain
    return None


# What makes a listing a listing of the site's IP: the reply names an IP address (not a
# list's own 127.0.0.x answer), the client host, or a list that holds only IP addresses.
_IP_EVIDENCE_RE = re.compile(
    r"(?<![\d.])(?!127\.)(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)|\[[0-9a-f]*:[0-9a-f:]+\]|"
    r"\b(?:client|sending|connecting|remote|source) (?:host|IP|address)\b|"
    r"\b(?:your|sender) (?:host|IP)\b|"
    r"\bIP(?:v[46])?(?: address)?\b|"
    r"\b(?:zen|sbl|xbl|pbl|sbl-xbl|cbl|bl\.spamcop|b\.barracudacentral|dnsbl\.sorbs|"
    r"bl\.mailspike|psbl\.surriel)\b|\bRBL|\bDNSBL|query/ip|query/bl|\bBRBL\b",
    re.IGNORECASE,
)


def names_the_ip(text: str) -> bool:
    """Does a listing reply say it is about an IP address (the client's, or on an IP list)?"""
    return _IP_EVIDENCE_RE.search(text) is not None


# ---- the context a remediation is written for -----------------------------------------


@dataclass(frozen=True)
class Context:
    """What the remediation text may mention about the device and the site."""

    mode: Mode
    host: str
    port: int
    authenticated: bool
    ip: str | None = None
    username: str | None = None
    sender: str | None = None
    tls_max: str | None = None
    provider: str = "other"  # microsoft | google | other
    ehlo_name: str | None = None  # the name the probe gave in EHLO, as the copier would

    def fields(self, reply_text: str) -> dict[str, str]:
        listed_by = blocklist_named(reply_text)
        domain = listed_domain(reply_text)
        if domain is None:
            text = reply_text.lower()
            if re.search(r"\b(?:helo|ehlo)\b", text) and self.ehlo_name:
                domain = self.ehlo_name
            elif re.search(r"mail ?from|sender|envelope", text) and self.sender:
                domain = self.sender.rpartition("@")[2]
        return {
            "listed_domain": domain
            or "a domain of this mail (the sender's, the EHLO name or a link)",
            "ehlo_name": repr(self.ehlo_name) if self.ehlo_name else "the copier's EHLO name",
            "ip": self.ip or "the site's public IP",
            "host": self.host,
            "port": str(self.port),
            "endpoint": f"{self.host}:{self.port}",
            "mailbox": self.username or "the copier's mailbox",
            "sender": self.sender or "the sender address",
            "submission": SUBMISSION_BY_PROVIDER.get(
                self.provider, SUBMISSION_BY_PROVIDER["other"]
            ),
            "list": listed_by or "a blocklist",
            "tls_max": self.tls_max or "its newest",
        }


SUBMISSION_BY_PROVIDER = {
    "microsoft": "smtp.office365.com:587",
    "google": "smtp.gmail.com:587 (or smtp-relay.gmail.com)",
    "other": "the provider's submission service on port 587",
}


def provider_of(host: str, texts: list[str]) -> str:
    """Whose mail service this is, from the host name or the server's own words."""
    if m365.is_microsoft(host, texts):
        return "microsoft"
    host = host.lower()
    joined = "\n".join(texts)
    if host.endswith(("gmail.com", "google.com", "googlemail.com")) or "gsmtp" in joined:
        return "google"
    return "other"


# ---- the rules --------------------------------------------------------------------------


class RuleId(StrEnum):
    """Every rule and fault fleet can name, as stored in `Conversation.rule`. Code refers to
    rules only through these members, so renaming one is a type error, not a silent miss."""

    receiver_dnsbl_open_resolver = "receiver.dnsbl_open_resolver"
    receiver_own_error = "receiver.own_error"
    rdns_fcrdns = "rdns.fcrdns"
    helo_named_at_ehlo = "helo.named_at_ehlo"
    smtp_message_loop = "smtp.message_loop"
    tls_starttls_not_advertised = "tls.starttls_not_advertised"
    auth_account_refused = "auth.account_refused"
    sender_not_authorised_address = "sender.not_authorised_address"
    sender_null_mx = "sender.null_mx"
    dnsbl_domain_listed = "dnsbl.domain_listed"
    rdns_missing_ptr_code = "rdns.missing_ptr_code"
    rdns_missing_ptr = "rdns.missing_ptr"
    m365_bad_helo = "m365.bad_helo"
    rdns_lookup_at_greeting = "rdns.lookup_at_greeting"
    helo_refused = "helo.refused"
    helo_syntax = "helo.syntax"
    helo_syntax_code = "helo.syntax_code"
    ipv6_needs_spf_or_dkim = "ipv6.needs_spf_or_dkim"
    sender_authentication = "sender.authentication"
    sender_spf_dkim_dmarc = "sender.spf_dkim_dmarc"
    smtp_frequency_limited = "smtp.frequency_limited"
    google_low_reputation_ip = "google.low_reputation_ip"
    google_unsolicited_rate = "google.unsolicited_rate"
    google_not_authorized_direct = "google.not_authorized_direct"
    ip_named_block = "ip.named_block"
    ip_complaints = "ip.complaints"
    m365_banned_sending_ip = "m365.banned_sending_ip"
    m365_banned_sender_ip = "m365.banned_sender_ip"
    m365_customer_block_list = "m365.customer_block_list"
    m365_low_reputation_ip = "m365.low_reputation_ip"
    outlook_network_block = "outlook.network_block"
    m365_tenant_block_list = "m365.tenant_block_list"
    m365_tenant_block_list_text = "m365.tenant_block_list_text"
    dnsbl_blocked_using = "dnsbl.blocked_using"
    vendor_ip_reputation = "vendor.ip_reputation"
    dnsbl_listing_unspecified = "dnsbl.listing_unspecified"
    m365_tls_legacy = "m365.tls_legacy"
    smtp_protocol_violation = "smtp.protocol_violation"
    tls_must_starttls_first = "tls.must_starttls_first"
    tls_message_not_over_tls = "tls.message_not_over_tls"
    tls_encryption_required_code = "tls.encryption_required_code"
    tls_not_available = "tls.not_available"
    m365_smtp_auth_disabled_tenant = "m365.smtp_auth_disabled_tenant"
    m365_security_defaults = "m365.security_defaults"
    m365_conditional_access = "m365.conditional_access"
    m365_federated_sts = "m365.federated_sts"
    m365_bad_credentials = "m365.bad_credentials"
    m365_smtp_auth_refused = "m365.smtp_auth_refused"
    m365_basic_auth_retired = "m365.basic_auth_retired"
    auth_basic_disabled = "auth.basic_disabled"
    m365_auth_unsuccessful = "m365.auth_unsuccessful"
    google_app_password_required = "google.app_password_required"  # noqa: S105
    google_web_login_required = "google.web_login_required"
    google_bad_credentials = "google.bad_credentials"
    m365_client_not_authenticated = "m365.client_not_authenticated"
    smtp_auth_required = "smtp.auth_required"
    smtp_auth_not_enabled = "smtp.auth_not_enabled"
    smtp_auth_failed = "smtp.auth_failed"
    m365_send_as_denied = "m365.send_as_denied"
    m365_send_as_denied_text = "m365.send_as_denied_text"
    m365_restricted_sender = "m365.restricted_sender"
    m365_banned_account = "m365.banned_account"
    m365_banned_sender_domain = "m365.banned_sender_domain"
    m365_tenant_threshold = "m365.tenant_threshold"
    m365_unregistered_domain = "m365.unregistered_domain"
    smtp_sender_rejected = "smtp.sender_rejected"
    smtp_greylisted = "smtp.greylisted"
    m365_message_format = "m365.message_format"
    smtp_content_rejected = "smtp.content_rejected"
    m365_reject_direct_send = "m365.reject_direct_send"
    m365_reject_direct_send_text = "m365.reject_direct_send_text"
    m365_tenant_attribution = "m365.tenant_attribution"
    m365_tenant_attribution_text = "m365.tenant_attribution_text"
    ipv6_not_accepted = "ipv6.not_accepted"
    m365_dbeb_unknown_recipient = "m365.dbeb_unknown_recipient"
    m365_relay_access_denied = "m365.relay_access_denied"
    m365_recipient_not_found = "m365.recipient_not_found"
    google_relay_ip_not_registered = "google.relay_ip_not_registered"
    m365_unable_to_relay = "m365.unable_to_relay"
    smtp_relay_denied = "smtp.relay_denied"
    m365_mailbox_full = "m365.mailbox_full"
    smtp_unknown_recipient = "smtp.unknown_recipient"
    smtp_recipient_status = "smtp.recipient_status"
    ip_blocked_at_greeting = "ip.blocked_at_greeting"
    smtp_sender_status = "smtp.sender_status"
    smtp_message_size = "smtp.message_size"
    m365_ip_throttled = "m365.ip_throttled"
    m365_sender_thread_limit = "m365.sender_thread_limit"
    m365_ipv6_range_limit = "m365.ipv6_range_limit"
    google_relay_peak_limit = "google.relay_peak_limit"
    m365_submission_quota = "m365.submission_quota"
    smtp_too_many_recipients = "smtp.too_many_recipients"
    smtp_temporary_server_error = "smtp.temporary_server_error"
    smtp_sending_limit = "smtp.sending_limit"
    smtp_rate_limited = "smtp.rate_limited"
    smtp_hello_first = "smtp.hello_first"
    smtp_message_header = "smtp.message_header"
    sender_authentication_checks = "sender.authentication_checks"
    smtp_sender_domain_mismatch = "smtp.sender_domain_mismatch"
    smtp_recipient_mailbox_full = "smtp.recipient_mailbox_full"
    smtp_recipient_inactive = "smtp.recipient_inactive"
    smtp_message_refused = "smtp.message_refused"
    smtp_service_unavailable = "smtp.service_unavailable"
    smtp_rcpt_address_refused = "smtp.rcpt_address_refused"
    ip_subject_refused = "ip.subject_refused"
    subject_sender_listed = "subject.sender_listed"
    subject_recipient_domain = "subject.recipient_domain"
    subject_sender_domain = "subject.sender_domain"
    subject_sender = "subject.sender"
    subject_address_at_mail = "subject.address_at_mail"
    subject_recipient = "subject.recipient"
    subject_message = "subject.message"
    status_recipient_address = "status.recipient_address"
    status_sender_address = "status.sender_address"
    status_recipient_mailbox = "status.recipient_mailbox"
    status_protocol = "status.protocol"
    status_too_many_recipients = "status.too_many_recipients"
    status_content = "status.content"
    status_message_integrity = "status.message_integrity"
    status_sender_authentication = "status.sender_authentication"
    status_recipient_owner_changed = "status.recipient_owner_changed"
    status_login_refused = "status.login_refused"
    status_receiver_not_accepting = "status.receiver_not_accepting"
    code_command_syntax = "code.command_syntax"
    tls_certificate = "tls.certificate"
    tls_not_tls = "tls.not_tls"
    tls_version = "tls.version"
    tls_cipher = "tls.cipher"
    tls_error = "tls.error"
    tls_ca_file = "tls.ca_file"
    tls_not_offered = "tls.not_offered"
    fleet_no_password_without_verified_tls = "fleet.no_password_without_verified_tls"  # noqa: S105
    smtp_auth_not_offered = "smtp.auth_not_offered"
    fleet_secret_unreadable = "fleet.secret_unreadable"  # noqa: S105
    fleet_auth_interrupted = "fleet.auth_interrupted"
    oauth_smtp_auth_disabled = "oauth.smtp_auth_disabled"
    oauth_google_refused = "oauth.google_refused"
    oauth_send_as_app_missing = "oauth.send_as_app_missing"
    oauth_service_principal = "oauth.service_principal"
    oauth_proven = "oauth.proven"
    # no OAuth token (fleet.oauth's TokenFailureReason): "oauth.token." and the reason
    oauth_token_credential_unreadable = "oauth.token.credential_unreadable"  # noqa: S105
    oauth_token_unreachable = "oauth.token.unreachable"  # noqa: S105
    oauth_token_bad_certificate = "oauth.token.bad_certificate"  # noqa: S105
    oauth_token_certificate_expired = "oauth.token.certificate_expired"  # noqa: S105
    oauth_token_wrong_tenant = "oauth.token.wrong_tenant"  # noqa: S105
    oauth_token_wrong_client = "oauth.token.wrong_client"  # noqa: S105
    oauth_token_bad_secret = "oauth.token.bad_secret"  # noqa: S105
    oauth_token_secret_expired = "oauth.token.secret_expired"  # noqa: S105
    oauth_token_consent_missing = "oauth.token.consent_missing"  # noqa: S105
    oauth_token_refused = "oauth.token.refused"  # noqa: S105
    oauth_token_timeout = "oauth.token.timeout"  # noqa: S105
    oauth_token_bad_key_file = "oauth.token.bad_key_file"  # noqa: S105
    oauth_token_delegation_missing = "oauth.token.delegation_missing"  # noqa: S105
    oauth_token_wrong_mailbox = "oauth.token.wrong_mailbox"  # noqa: S105
    oauth_token_bad_key = "oauth.token.bad_key"  # noqa: S105


Remedy = str | Mapping[str, str]  # one text, or by "unauthenticated" / "authenticated"


# The rule of a conversation that got no OAuth token, by fleet.oauth's reason.
OAUTH_TOKEN_RULES: Mapping[TokenFailureReason, RuleId] = {
    TokenFailureReason.credential_unreadable: RuleId.oauth_token_credential_unreadable,
    TokenFailureReason.unreachable: RuleId.oauth_token_unreachable,
    TokenFailureReason.bad_certificate: RuleId.oauth_token_bad_certificate,
    TokenFailureReason.certificate_expired: RuleId.oauth_token_certificate_expired,
    TokenFailureReason.wrong_tenant: RuleId.oauth_token_wrong_tenant,
    TokenFailureReason.wrong_client: RuleId.oauth_token_wrong_client,
    TokenFailureReason.bad_secret: RuleId.oauth_token_bad_secret,
    TokenFailureReason.secret_expired: RuleId.oauth_token_secret_expired,
    TokenFailureReason.consent_missing: RuleId.oauth_token_consent_missing,
    TokenFailureReason.refused: RuleId.oauth_token_refused,
    TokenFailureReason.timeout: RuleId.oauth_token_timeout,
    TokenFailureReason.bad_key_file: RuleId.oauth_token_bad_key_file,
    TokenFailureReason.delegation_missing: RuleId.oauth_token_delegation_missing,
    TokenFailureReason.wrong_mailbox: RuleId.oauth_token_wrong_mailbox,
    TokenFailureReason.bad_key: RuleId.oauth_token_bad_key,
}


@dataclass(frozen=True)
class Rule:
    id: RuleId
    category: Category
    finding: str
    remediation: Remedy
    enhanced: tuple[str, ...] = ()  # exact codes, or ranges "5.7.606-5.7.649"
    text: str | None = None  # a key phrase (regex, case-insensitive)
    code_class: str | None = None  # "4", "5" or a whole code ("501"): only those replies
    stages: tuple[Stage, ...] = ()
    providers: tuple[str, ...] = ()  # only for these services (see `provider_of`)
    unless: str | None = None  # a phrase (regex) that keeps the rule from matching
    ip_evidence: bool = False  # only when the reply says it is about an IP (`names_the_ip`)

    # Compiled when a reply first gets that far (most never do): compiling every rule's
    # phrases at import cost a `fleet scan` more than its conversation (issue 20).
    @functools.cached_property
    def _text_re(self) -> re.Pattern[str] | None:
        return None if self.text is None else re.compile(self.text, re.IGNORECASE)

    @functools.cached_property
    def _unless_re(self) -> re.Pattern[str] | None:
        return None if self.unless is None else re.compile(self.unless, re.IGNORECASE)

    def matches(self, stage: Stage, reply: Reply, provider: str, text: str) -> bool:
        """`text`: the reply text to search (see `unwrapped`)."""
        if self.stages and stage not in self.stages:
            return False
        if self.providers and provider not in self.providers:
            return False
        if self.code_class and not str(reply.code or "").startswith(self.code_class):
            return False
        if self.enhanced and not (reply.enhanced and _code_in(reply.enhanced, self.enhanced)):
            return False
        if self._text_re is not None and not self._text_re.search(text):
            return False
        if self._unless_re is not None and self._unless_re.search(text):
            return False
        return not (self.ip_evidence and not names_the_ip(text))


# A multi-line reply repeats its enhanced code on every line, and Google wraps sentences
# across lines ("not authorized to\n5.7.1 send email directly"): key phrases are searched
# in the lines joined back into one.
_CONTINUATION_RE = re.compile(r"[ \t]*\r?\n(?:[245]\.\d{1,3}\.\d{1,3}(?=\s|$))?[ \t]*")


def unwrapped(text: str) -> str:
    """A reply's lines joined with single spaces, the repeated enhanced codes left out."""
    return _CONTINUATION_RE.sub(" ", text)


def _code_in(code: str, wanted: tuple[str, ...]) -> bool:
    if not _ENHANCED_FULL_RE.fullmatch(code):
        return False  # a Reply built elsewhere (read back, hand-made) may hold anything
    parts = tuple(int(p) for p in code.split("."))
    for item in wanted:
        low, _, high = item.partition("-")
        lo = tuple(int(p) for p in low.split("."))
        hi = tuple(int(p) for p in (high or low).split("."))
        if lo <= parts <= hi:
            return True
    return False


_IP_REPUTATION_FIX: Remedy = {
    "unauthenticated": (
        "Site IP {ip} is rejected for reputation ({list}): move this copier to authenticated "
        "submission on {submission} with STARTTLS, or relay through a clean static IP; "
        "then find what got the IP listed and request delisting."
    ),
    "authenticated": (
        "Site IP {ip} is rejected for reputation ({list}) even with a login: find the infected "
        "or abusive machine behind that IP, fix it and request delisting; meanwhile relay "
        "through a clean static IP."
    ),
}

# Words of a blocklist rejection (an IP or a domain listing: see `names_the_ip`).
_LISTING_TEXT = (
    r"blocked using|spamhaus|listed (?:at|on|in|by) |\bRBL|\bDNSBLs?\b|black ?list|"
    r"(?<!allow )(?<!allow/)block ?list|is listed\b|are listed\b|found (?:in|on) (?:one or "
    r"more |a )?(?:\S+\.(?:org|net|com)|dnsbl|rbl|block|black)"
)

_TENANT_BLOCK_LIST_FIX = (
    "Your own tenant blocks this recipient in its Tenant Allow/Block List (5.7.703): the "
    "Microsoft 365 admin removes the entry (Microsoft Defender portal, Tenant Allow/Block "
    "Lists), or the copier sends to another recipient."
)

_AUTH_ALTERNATIVES = m365.ALTERNATIVES  # one sentence, kept with Microsoft's facts

_RECEIVER_FAULT_FIX = (
    "{host} refuses mail because its own blocklist lookups are broken: it asks {list} "
    "through a public or open resolver, which the list refuses (Spamhaus answers "
    "127.255.255.x), and the server reads the refusal as a listing. Nothing is listed and "
    "nothing can be delisted on your side: tell the receiving organisation's mail "
    "administrator to query the list through their own resolver (or a Spamhaus DQS key). "
    "Until they fix it, mail from any sender to them fails."
)

_DOMAIN_LISTED_FIX = (
    "The server refuses the mail because a domain is listed ({listed_domain} on {list}), "
    "not the site's IP: make sure the copier's sender ({sender}) and EHLO name "
    "({ehlo_name}) are in a domain you control; look the domain up at the list "
    "(https://check.spamhaus.org/ for the Spamhaus DBL, https://admin.uribl.com/, "
    "https://www.surbl.org/surbl-analysis), remove what got it listed (a compromised "
    "mailbox, spam that links to it), then request removal. There is no IP to delist."
)

_REVERSE_DNS_FIX = (
    "The receiver wants a reverse DNS (PTR) name for the site's IP {ip} that points back to "
    "it: ask the ISP that owns {ip} for a PTR record naming a host whose A record is {ip} "
    "(for example mail.yourdomain), or send through a relay that has one. This is a missing "
    "DNS record, not a blocklist listing: there is nothing to delist."
)

_HELO_FIX = (
    "The copier introduced itself as {ehlo_name} and {endpoint} refuses that name (copiers "
    "often send a bare device name): set the copier's host name, or its SMTP HELO/EHLO name "
    "setting, to a fully-qualified name that resolves in DNS (for example "
    "scanner1.yourdomain), never the server's own name; then set the same ehlo_name in the "
    "inventory so fleet tests what the copier sends."
)

# ---- the subject of a refusal: nouns of each family and words of refusal ------------------
# (see the "subject" rules at the end of RULES). Every window is bounded: linear on hostile text.
_REFUSED = (
    r"(?:rejected|refused|denied|blocked|banned|forbidden|prohibited|unacceptable|"
    r"not (?:allowed|permitted|accepted|authori[sz]ed|welcome|acceptable))"
)
_DOMAIN_UNKNOWN = (
    r"\b(?:host|domain)(?: ?name)?\b(?:[^.;:!]|\.(?=\w)){0,30}?\b(?:not found|unknown|unreachable|"
    r"not reachable|(?:does not|doesn't|do not) exist|must exist|not resolv\w*|unresolv\w*|"
    r"(?:is )?(?:a )?dead\b|(?:does not|doesn't|will not|won't) (?:accept|receive) (?:e-?)?mail)|"
    r"\bunknown (?:host|domain)\b|\bhost unknown\b|name or service not known|\bunroutable\b|"
    r"\bno route (?:to|for)\b|\bno (?:valid )?MX\b|\bMX records? (?:for|not)\b|"
    r"mail receiving disabled|" + _DOMAIN + r" (?:does not|doesn't) accept (?:e-?)?mail\b"
    # RFC 7504's 521: "example.com does not accept mail"
)
_SENDER_NOUN = (
    r"\b(?:sender|mail ?from|envelope[- ]from|envelope sender|return[- ]path|reverse[- ]path|"
    r"from[- ]address|from: ?(?:domain|address)|exp[eé]diteur|[eé]metteur|originator|"
    r"bounce address)\b"
)
_SENDER_SUBJECT = (
    _SENDER_NOUN
    + r"(?:[^.;:!]|\.(?=\w)){0,40}?\b(?:"
    + _REFUSED
    + r"|invalid[ea]?|unknown|inconnu|"
    r"not (?:found|known|valid|verified|approved|pre-?approved|registered|on|in)\b|unverif\w*|"
    r"(?:fail\w*|cannot|could not|unable) (?:to )?(?:be )?verif\w*|isn't on|bogus|forged|fake|"
    r"spammer|must (?:be|exist|have)|required)|"
    r"\b(?:invalid|bad|bogus|illegal|unknown|forged|fake|unverified|unresolvable|unroutable) "
    r"(?:mail ?from|from|sender|envelope|return[- ]path|reverse[- ]path)\b|\bbatv\b|backscatter|"
    r"\b(?:no|unsigned) (?:third-party )?dsns?\b|returned mail not accepted|"
    r"purported responsible address|fully[- ]qualified (?:e-?mail )?address (?:is )?required|"
    r"sending (?:this )?from a different address|\bblock(?:ed)? senders?\b|"
    r"\bblock policy for (?:the )?(?:envelope|header) from\b|\bsenders? (?:block ?)?list\b"
)
# A sender (address) on the receiver's own list: not a DNS blocklist, not the IP.
_SENDER_LISTED = (
    r"(?:" + _SENDER_NOUN + r"|\be-?mail address\b)(?:[^.;:!]|\.(?=\w)){0,30}?(?:\bblack ?listed|"
    r"\bblock ?listed|\b(?:in|on) (?:my|our|the|a) (?:local )?(?:black|block) ?list)"
)
# An address in a state that only an address has (unknown, invalid, gone). A bare "rejected"
# is not evidence at RCPT, where servers enforce client and sender policy too (#16).
_ADDRESS_STATE = (
    r"(?<!IP )(?<!IP-)\b(?:e-?mail )?address(?:es)?\b(?:[^.;:!]|\.(?=\w)){0,30}?\b(?:"
    r"invalid|unknown|not (?:found|known|valid|local)|(?:does not|doesn't) exist|"
    r"no longer (?:valid|in use|active|accepts?)|wrong)\b|"
    r"\b(?:invalid|unknown|bad|illegal|non-?existent|wrong) (?:e-?mail )?address|"
    # RFC 5321's own 553 text
    r"\bmailbox name (?:is )?(?:not allowed|invalid)"
)
_ADDRESS_REFUSED = (
    r"(?<!IP )(?<!IP-)\b(?:e-?mail )?address(?:es)?\b(?:[^.;:!]|\.(?=\w)){0,30}?\b"
    + _REFUSED
    + r"|"
    + _ADDRESS_STATE
)
_RECIPIENT_NOUN = (
    r"\b(?:recipients?|addressee|destinataire|destinatario|user ?names?|(?<!our )(?<!other )"
    r"users?|mail ?box(?:es)?|mail ?folder|accounts?|utilisateur|usuario|local[- ]part|rcpt|"
    r"person|alias)\b"
)
_RECIPIENT_SUBJECT = (
    # ("reason unknown" and "an unknown reason" are about the reason, not the recipient)
    _RECIPIENT_NOUN
    + r"(?:[^.;:!]|\.(?=\w)){0,40}?\b(?:invalid|(?<!reason )(?<!an )unknown|inconnu|"
    r"not (?:found|known|valid|active|available|local|exist\w*|registered|subscribed)|"
    r"(?:does not|doesn't|do not|don't) (?:exist|have)|non-?existent|unavailable|inactive|"
    r"disabled|suspended|terminated|locked|archived|expired|deactivated|closed|frozen|missing|"
    r"wrong|illegal|unrout\w*|no longer|(?:has )?moved|over ?quota|full)\b|"
    r"\b(?:no such|unknown|invalid|non-?existent|inexistent|illegal|disabled|inactive|"
    r"suspended|archived|banned|blocked) (?:\w{1,20} )?"
    + _RECIPIENT_NOUN
    + r"|\bthere is no one\b|"
    r"\bbad ?(?:rcpt|recipient) ?to\b|\bvalid ?rcpt ?to\b|\bbadrecipientto\b|"
    r"\benvelope recipient (?:has been |is |was )?(?:denied|rejected|refused)"
)
_NOT_THE_RECIPIENT = (
    r"\bsender\b|mail ?from|envelope[- ]from|return[- ]path|your (?:account|ip|host|server|"
    r"network)|authenticat|log ?in|password|\brelay|\bspam|\bIP\b"
)
_MESSAGE_SUBJECT = (
    r"\b(?:message|e-?mail|content|body|attachment|letter|data|text)s?\b(?:[^.;:!]|\.(?=\w)){0,40}?\b"
    r"(?:" + _REFUSED + r"|filtered|quarantined|flagged|classified as|considered|identified "
    r"as|detected as|deemed|dropped|discarded|unsolicited|suspicious|contains?)\b|"
    r"\bunsolicited\b|\bbulk\b|\badvertis\w*|\banti-?spam\b|\bphish\w*|\bfraud\w*|\bscam\b|"
    r"\bmalicious\b|\bexecutable\b|\bbase64\b|\bbinary content\b|improperly[- ]formatted|"
    r"\bline (?:limit|length)\b|\blines? (?:is |are )?too long\b|(?:length|size) exceeds?\b|"
    r"\bexceeds? (?:the )?(?:administrative |maximum |max |policy |allowed )?(?:size|length|"
    r"limit)\b|\btoo (?:large|big|long)\b|\breject, id=|\bour (?:spam )?filters?\b|"
    r"\bfilter(?:ed|ing)\b"
)
# The site's IP, host or network named as refused, or the client itself told it sends spam.
_CLIENT_REFUSED = (
    # ("remote server" is the receiver's own name for the server it asked: not the client)
    r"\b(?:(?:sender|sending|client|connecting|source|your|originating) ?(?:ip(?: "
    r"address)?|host|server|mail ?server|mta|network|remote ?host|machine)|remote ?(?:ip|host)|"
    r"(?<![\w.?&=/-])ips?(?: address(?:es)?)?|mail server at|server ip)\b(?:[^.;:!]|\.(?=\w)){0,60}?\b(?:blocked|banned|"
    r"refused|rejected|denied|forbidden|not (?:allowed|permitted|accepted|welcome)|"
    r"black ?listed|abusive|spammer|spam(?:ming)?|suspicious|(?:looks?|appears?) (?:\w+ )?like)\b|"
    r"\b(?:you are|you're|your (?:ip|server|host|network|mail server)(?: is| are| has been)?) "
    r"(?:currently |now )?(?:sending|a source of|known for|sent) (?:\w+ )?(?:spam|unsolicited|"
    r"junk)|\bspams? from your\b|\btoo many (?:spams|spam messages|unwanted messages)\b|"
    r"\b(?:not|no longer) (?:currently )?accepting (?:e-?mail |mail |connections? |messages? )?"
    r"from your (?:ip|host|server|network|mail server)\b|\b(?:banned|blocked|bad|black ?listed|abusive) (?:sending |sender |"
    r"client |source |connecting )?ips?\b|forbidden (?:by|for|to) your ip\b|"
    r"\b(?:traffic|mail|connections?|messages?) (?:is |are )?not accepted from (?:this|your) ip\b|"
    r"\b(?:access|connections?) from (?:ip|your)\b(?:[^.;:!]|\.(?=\w)){0,40}?(?:blocked|refused|denied|"
    r"not accepted)"
)


RULES: tuple[Rule, ...] = (
    # -- the receiver's own temporary fault: before the words it is wrapped in ("Helo command
    # rejected: Server configuration error" is Postfix's 4.3.5 for its own broken lookup table;
    # "DKIM signing failed" is the receiver's signer, not the sender's authentication).
    Rule(
        RuleId.receiver_own_error,
        Category.temporary_failure,
        "the receiving server reports an error in its own setup, not a verdict on this site",
        "{host} reports a fault of its own (configuration, lookup table or signer): run the "
        "site again later; if it persists, tell the administrator of {host}, with the reply text.",
        text=r"server configuration (?:error|problem)|temporary lookup failure|"
        r"insufficient system (?:storage|resources)|"
        r"(?:DKIM|ARC) (?:signing|signer|signature creation) (?:failed|error)|"
        r"(?:failed|unable) to DKIM[- ]sign",
    ),
    # -- the receiver's own fault: before anything that reads a list's name --------------
    Rule(
        RuleId.receiver_dnsbl_open_resolver,
        Category.receiver_fault,
        "the receiver's own blocklist lookups fail (it queries {list} through a public "
        "resolver): not the site's reputation",
        _RECEIVER_FAULT_FIX,
        text=r"open resolver|public (?:dns )?resolver|127\.255\.255\.\d+|spamhaus\.org/returnc|"
        r"excessive number of queries|blocklist quer(?:y|ies) (?:was |were )?refused",
    ),
    # -- a domain is listed, not the IP: before the IP lists ------------------------------
    Rule(
        RuleId.dnsbl_domain_listed,
        Category.domain_reputation,
        "{listed_domain} is on a domain blocklist ({list}), not the site's IP",
        _DOMAIN_LISTED_FIX,
        text=r"\bdbl\b|\buribl\b|\bsurbl\b|\bdomain block ?list|"
        r"(?:mail ?from|helo|ehlo|sender|envelope|from|sending|your|the) domain\b[^.;]{0,80}?"
        r"\b(?:is |was |has been )?(?:listed|black ?listed|block ?listed)|"
        r"domain (?:\S+ )?(?:is |was |has been )?(?:listed|black ?listed|block ?listed)|"
        r"(?:url|uri|link|web ?site)s?\b(?:[^.;]|\.(?!\s+(?-i:[A-Z]))){0,80}?\b(?:listed|black ?listed|"
        r"block ?listed)|"
        r"reputation of the sending domain|domain reputation|\(domain[- ]based\)|"
        r"(?:helo|ehlo) (?:name|host) "
        r"(?:is )?(?:listed|black ?listed|block ?listed)|\bCDRBL\b|"
        r"unsolicited (?:e-?)?mail (?:originating from your DKIM domain|containing one of your "
        r"URL domains)|(?:DKIM|URL|sending|sender) domain\b[^.;]{0,60}(?:poor|low|bad) reputation",
    ),
    # -- reverse DNS, at any stage --------------------------------------------------------
    Rule(
        # Gmail and Microsoft: "the sending IP(v6) address must have a reverse DNS record"
        RuleId.rdns_missing_ptr_code,
        Category.reverse_dns,
        "the receiver refuses {ip}: it has no reverse DNS (PTR) name, or one that does not match",
        _REVERSE_DNS_FIX,
        enhanced=("5.7.25", "4.7.25"),
    ),
    Rule(
        # Forward-confirmed reverse DNS (Haraka's fcrdns plugin, Postfix's
        # reject_unknown_client_hostname): the PTR name must resolve back to the IP.
        RuleId.rdns_fcrdns,
        Category.reverse_dns,
        "the receiver refuses {ip}: its reverse DNS (PTR) name does not resolve back to it",
        _REVERSE_DNS_FIX,
        text=r"\bfcrdns\b|forward[- ]confirmed(?: reverse)?|\biprev\b",
    ),
    Rule(
        RuleId.rdns_missing_ptr,
        Category.reverse_dns,
        "the receiver refuses {ip}: it has no reverse DNS (PTR) name, or one that does not match",
        _REVERSE_DNS_FIX,
        text=r"reverse[- ](?:dns|hostname|host name|lookup|name|record|resolution|resolve)|"
        r"\brdns\b|\bptr\b|find your (?:host ?name|reverse)|"
        r"(?:can ?not|can't|unable to|could not|failed to) (?:find|resolve|lookup|look up) "
        r"(?:your |the )?(?:host ?name|client ?host ?name|name for your (?:ip|address))|"
        r"ip name (?:lookup|possibly forged)|host ?name (?:does not|doesn't) match|"
        r"no (?:dns )?(?:host ?name|name) (?:for|found for) (?:your|the) (?:ip|address)|"
        r"(?:ip|address) (?:does not|doesn't|must) resolve|unknown client host|"
        r"client host rejected: (?:cannot|can't) find",
        # Haraka "HELO host does not match rDNS": the name is what is refused
        unless=r"\b(?:e?helo|ehlo) (?:host|name|hostname)\b[^.;]{0,20}(?:does not|doesn't) match",
    ),
    # -- the EHLO name ------------------------------------------------------------------
    Rule(
        RuleId.m365_bad_helo,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        "The server refuses the EHLO name {ehlo_name} (5.7.506: it looks like the server's own "
        "name, a spambot trait): set the copier's host name or EHLO name to its own "
        "fully-qualified name, never the server's; then set the same ehlo_name in the inventory.",
        enhanced=("5.7.506",),
    ),
    Rule(
        # Before any command, the only name a server can look up is the client IP's.
        RuleId.rdns_lookup_at_greeting,
        Category.reverse_dns,
        "the receiver refuses {ip}: it has no reverse DNS (PTR) name, or one that does not match",
        _REVERSE_DNS_FIX,
        text=r"\bDNS\b[^.;]{0,20}(?:look-?up|lookup|resolution)|(?:look-?up|lookup) (?:of your "
        r"(?:ip|address) )?failed",
        stages=(Stage.banner,),
    ),
    Rule(
        RuleId.helo_refused,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        _HELO_FIX,
        text=r"helo command rejected|(?:invalid|bad|illegal|forged|malformed|bogus) "
        r"(?:(?:e?helo|ehlo)|hello)|(?:(?:e?helo|ehlo)|hello)(?:/(?:e?helo|ehlo))? (?:name|hostname|host name|host|"
        r"argument|domain|string|greeting|ip literal|address literal|literal)s?\b"
        r"(?![^.;]{0,40}\blisted)|"
        # Haraka helo.checks: "Invalid address format in HELO", "HELO is dynamic"
        r"(?:invalid|bad|illegal|malformed|bogus|wrong)\b[\w ]{0,30}\b(?:in|for) (?:the |your )?"
        r"(?:e?helo|ehlo)\b|\b(?:e?helo|ehlo) (?:is|looks|appears) (?:to be )?(?:dynamic|forged|"
        r"invalid|a bare ip|an ip|not)|\b(?:e?helo|ehlo) not (?:allowed|accepted|permitted)|"
        r"(?:fully[- ]qualified|fqdn) (?:host ?name|domain name)|not (?:a )?(?:fully[- ]qualified|fqdn)|"
        r"syntactically invalid (?:e?helo|ehlo)|(?:e?helo|ehlo) (?:rejected|refused|not accepted|denied)|"
        r"your (?:e?helo|ehlo) (?:name |host ?name )?(?:is|was|does)|(?:e?helo|ehlo) (?:should|must)",
        unless=r"send (?:hello|(?:e?helo|ehlo))(?: command)? first",
    ),
    Rule(
        # EHLO's only argument is the name: a syntax refusal of EHLO is about the name.
        RuleId.helo_syntax,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        _HELO_FIX,
        stages=(Stage.ehlo, Stage.ehlo_tls),
        enhanced=("5.5.2", "5.5.4", "5.1.0-5.1.9"),
    ),
    Rule(
        RuleId.helo_syntax_code,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        _HELO_FIX,
        stages=(Stage.ehlo, Stage.ehlo_tls),
        code_class="501",
    ),
    Rule(
        # At EHLO a refusal that names HELO/EHLO is about the one thing EHLO sends: the name
        # (Haraka's helo.checks: "HELO host has no forward DNS match"). The server's own
        # faults were read above; "send HELO first" and listings are excluded here.
        RuleId.helo_named_at_ehlo,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        _HELO_FIX,
        text=r"\b(?:e?helo|ehlo)\b",
        stages=(Stage.ehlo, Stage.ehlo_tls),
        unless=r"send (?:hello|(?:e?helo|ehlo))|(?:e?helo|ehlo) (?:command )?(?:is )?required|"
        r"already|duplicate|listed",
    ),
    # -- IP reputation ------------------------------------------------------------------
    # -- a header problem is the message's, even when the header is DKIM-Signature --------
    Rule(
        # RFC 3463 X.4.6 "routing loop detected": the message went round; qmail "too many
        # hops, this message is looping", Exim "Too many \"Received\" headers - suspected mail
        # loop", Postfix "mail forwarding loop", OpenSMTPD "Routing loop detected".
        RuleId.smtp_message_loop,
        Category.message_rejected,
        "the server refuses the message as looping (too many hops)",
        "The receiver sees the test message looping (too many Received headers or hops): "
        "look for a forwarding rule or relay that sends mail for the recipient back to where "
        "it came from, and check the copier's relay settings.",
        text=r"too many hops|hop count|\blooping\b|(?:mail|routing|forwarding|message) loop|"
        r"loop detected|too many ['\"]?(?:received|delivered-to)['\"]? headers",
    ),
    Rule(
        RuleId.smtp_message_header,
        Category.message_rejected,
        "the server refuses the message's headers",
        "The receiver refuses the test message's headers (duplicated, too large, or with raw "
        "8-bit characters): check the copier's From/Subject settings (plain ASCII subject, "
        "one sender) and its firmware; a relay that adds its own signature twice can cause it.",
        text=r"duplicate (?:header|['\"]?[\w-]{1,40}['\"]? header)|(?:duplicate|multiple|too "
        r"many) ['\"]?[\w-]{1,40}['\"]? headers?\b|headers? (?:are |is )?too (?:large|long|big|"
        r"many)|too many headers|8-?bit (?:data |characters? )?in (?:the )?(?:message )?headers?|"
        r"(?:improper|illegal|invalid) use of 8-?bit|headers? (?:line|field)s? (?:are |is )?too "
        r"(?:long|large)|header\b[^.;]{0,20}not CRLF terminated|(?:header|message) syntax|"
        # a header missing, malformed or not allowed (Gmail: "missing a valid Message-ID
        # header", "a unicode character in a disallowed header", "encoded-word syntax")
        r"\bmessage-id\b|\bdisallowed header|\bencoded-word\b|\bheaders?\b[^.;:]{0,30}?\b(?:missing|"
        r"malformed|not permitted|not allowed|disallowed)\b",
    ),
    # -- SPF, DKIM, DMARC: the sender's domain, whatever else the reply mentions ------------
    Rule(
        RuleId.ipv6_needs_spf_or_dkim,
        Category.sender_rejected,
        "mail sent over IPv6 must pass SPF or DKIM, and this did not",
        "Mail sent over IPv6 must pass SPF or DKIM (4.7.26) and a copier does not sign with "
        "DKIM: add the site's IPv6 address (ip6:) to the SPF record of {sender}'s domain, or "
        "send over IPv4.",
        enhanced=("4.7.26",),
    ),
    Rule(
        RuleId.sender_authentication,
        Category.sender_rejected,
        "the receiver rejects the sender for SPF, DKIM or DMARC",
        "The sender domain's SPF/DKIM/DMARC does not authorise this source: add ip4:{ip} to "
        "the SPF record of {sender}'s domain, or send through an authorised relay.",
        enhanced=("5.7.23", "5.7.509", "5.7.515", "5.7.26"),
    ),
    Rule(
        RuleId.sender_spf_dkim_dmarc,
        Category.sender_rejected,
        "the receiver rejects the sender for SPF, DKIM or DMARC",
        "The sender domain's SPF/DKIM/DMARC does not authorise this source: add ip4:{ip} to "
        "the SPF record of {sender}'s domain (and publish DMARC), or send through an "
        "authorised relay.",
        text=r"\bSPF\b|\bDKIM\b|\bDMARC\b|sender policy framework",
    ),
    Rule(
        # Gmail: "does not have authentication information or fails to pass authentication
        # checks ... blocked": SPF/DKIM in other words, not the content and not a login.
        RuleId.sender_authentication_checks,
        Category.sender_rejected,
        "the receiver rejects the message for failing sender authentication (SPF, DKIM, DMARC)",
        "The message failed the receiver's sender authentication checks (SPF/DKIM/DMARC of "
        "{sender}'s domain): add ip4:{ip} to that domain's SPF record (and publish DMARC), or "
        "send through a relay the domain authorises.",
        text=r"authentication (?:information|checks?|results?)\b|"
        r"(?:fails?|failed) (?:to pass )?(?:sender |message |e-?mail )?authentication\b",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    # -- limits that name the IP are still limits -----------------------------------------
    Rule(
        RuleId.smtp_frequency_limited,
        Category.throttled,
        "the server limits how often this site may connect or send",
        "The server limits how often {ip} may connect or send: reduce how many devices send "
        "at once and how often, or wait and try again later.",
        text=r"frequency limit|receiving (?:e-?mail|mail|messages)? ?(?:at a rate|too quickly)|"
        r"ReceivingRate|too many (?:connections|sessions|concurrent)|connection (?:rate|limit)",
    ),
    # -- IP reputation ----------------------------------------------------------------------
    Rule(
        RuleId.google_low_reputation_ip,
        Category.ip_reputation,
        "Google rates {ip} as a sender of very low reputation",
        "Google refuses mail from {ip} for its very low reputation: find what sends spam from "
        "that IP and stop it; meanwhile send through authenticated submission on {submission} "
        "or a relay with a clean IP.",
        text=r"low reputation of the sending IP",
    ),
    Rule(
        RuleId.google_unsolicited_rate,
        Category.ip_reputation,
        "Google sees an unusual rate of unsolicited mail from {ip}",
        "Google refuses mail from {ip} for its reputation (unsolicited mail): find the machine "
        "sending spam behind that IP and stop it; meanwhile send through authenticated "
        "submission on {submission} or a relay with a clean IP.",
        text=r"unusual rate of unsolicited mail|UnsolicitedRateLimitError",
    ),
    Rule(
        RuleId.google_not_authorized_direct,
        Category.ip_reputation,
        "Google does not accept mail sent directly from {ip} (a dynamic or residential range)",
        _IP_REPUTATION_FIX,
        text=r"not authorized to send email directly|NotAuthorizedError",
    ),
    Rule(
        RuleId.ip_named_block,
        Category.ip_reputation,
        "the server refuses mail from {ip} for its reputation or its network",
        _IP_REPUTATION_FIX,
        text=r"blocked IP|IP (?:address )?(?:is |has been |was )?(?:temporarily |permanently |"
        r"currently )?(?:blocked|banned|blacklisted|denied)|(?:from|originating from) your IP(?: address)?\b[^.;]{0,80}(?:blocked|"
        r"deferred|refused|rejected|"
        r"unsolicited|spam)|unsolicited (?:e-?)?mail originating from your IP|"
        r"host network not allowed|network (?:is )?not allowed|\((?:BL|RBL|DYN)\)|"
        r"client host \[[^\]]*\] (?:is )?(?:blocked|banned)(?! (?:using|by))|"
        # GMX / WEB.DE explain a refusal by a code in their link: sp, bl = the IP's reputation
        r"postmaster\.(?:gmx|web)\.\w+/\S*[?&]c=(?:sp|bl|bs|bsp)\b|"
        r"smtp server of your (?:ISP|provider)|dynamic (?:ip|address|range|pool)|"
        r"residential|dial-?up|end[- ]user (?:ip|range|address)|dynamically[- ]assigned|"
        r"mail from your location|your IP is (?:on|in|sending)|block for spam|"
        r"(?:is|which is) an open relay|spam from your (?:mail )?server|\(IP[- ]based\)|"
        r"messages from \[?[0-9a-f.:]+\]?[^.;]{0,40}(?:permanently deferred|blocked|refused)|"
        r"\bbad (?:client |sending |source )?IP\b",
    ),
    Rule(
        RuleId.ip_complaints,
        Category.ip_reputation,
        "the server defers or refuses mail from {ip} for complaints about it",
        _IP_REPUTATION_FIX,
        text=r"complaints|unexpected volume",
        ip_evidence=True,
    ),
    Rule(
        RuleId.m365_banned_sending_ip,
        Category.ip_reputation,
        "Microsoft 365 refuses mail from {ip}: the IP is on Microsoft's own blocklist",
        {
            "unauthenticated": (
                "Site IP {ip} is banned by Microsoft (5.7.606): move this copier to "
                "authenticated submission on {submission} with STARTTLS, or relay through a "
                "clean static IP; fix the cause, then delist at https://sender.office.com/."
            ),
            "authenticated": (
                "Site IP {ip} is banned by Microsoft: fix the cause (an infected host, an open "
                "relay), then delist at https://sender.office.com/."
            ),
        },
        enhanced=("5.7.606-5.7.649",),
    ),
    Rule(
        RuleId.m365_banned_sender_ip,
        Category.ip_reputation,
        "Microsoft 365 refuses mail from {ip} as a banned sender",
        "Site IP {ip} is banned by Microsoft (5.7.511): e-mail delist@microsoft.com with the "
        "rejection text and the IP; until then relay through a clean static IP.",
        enhanced=("5.7.511",),
    ),
    Rule(
        RuleId.m365_customer_block_list,
        Category.ip_reputation,
        "the recipient's tenant blocks {ip} with its own block list",
        "The recipient organisation blocks {ip} on its own list (5.7.507, 5.7.513): ask its "
        "admin to remove the IP from their Tenant Allow/Block List or connection filter.",
        enhanced=("5.7.513", "5.7.507"),
    ),
    Rule(
        RuleId.m365_low_reputation_ip,
        Category.ip_reputation,
        "Microsoft 365 does not accept traffic from {ip} (low-reputation range)",
        "Microsoft refuses {ip} (5.7.708, typical of trial tenants on new IPs): contact "
        "Microsoft support for an exception, or send through a reputable relay.",
        enhanced=("5.7.708",),
    ),
    Rule(
        RuleId.outlook_network_block,
        Category.ip_reputation,
        "Outlook.com blocks the network {ip} belongs to",
        "Outlook.com blocks the ISP's range that {ip} is in: send through the ISP's relay or a "
        "reputable relay service instead of directly.",
        text=r"part of their network is on our block ?list",
    ),
    # Before the DNSBL phrases: a "Tenant Allow Block List" blocks recipients, not the IP.
    Rule(
        RuleId.m365_tenant_block_list,
        Category.recipient_rejected,
        "the sending tenant's Tenant Allow/Block List blocks the recipient",
        _TENANT_BLOCK_LIST_FIX,
        enhanced=("5.7.703",),
    ),
    Rule(
        RuleId.m365_tenant_block_list_text,
        Category.recipient_rejected,
        "the sending tenant's Tenant Allow/Block List blocks the recipient",
        _TENANT_BLOCK_LIST_FIX,
        text=r"Tenant Allow ?/? ?Block List",
    ),
    # Vendors' IP reputation services, which never say "DNSBL".
    Rule(
        # "Sender is in my black list", "your e-mail address has been blacklisted": the
        # receiver's own list of senders, no DNS blocklist and not the IP.
        RuleId.subject_sender_listed,
        Category.sender_rejected,
        "the server refuses the sender {sender}: it is on the receiver's own block list",
        "The receiver blocks the sender address {sender} on its own list: send from another "
        "address (the login mailbox or one in your own domain), or ask the recipient's "
        "administrator to remove the block.",
        text=_SENDER_LISTED,
        unless=r"spamhaus|\bdbl\b|uribl|surbl|\bIP\b|\bRBL|DNSBL|\bdomain\b",
    ),
    Rule(
        RuleId.dnsbl_blocked_using,
        Category.ip_reputation,
        "the server rejects {ip} because it is listed on {list}",
        _IP_REPUTATION_FIX,
        text=_LISTING_TEXT,
        ip_evidence=True,
    ),
    Rule(
        RuleId.vendor_ip_reputation,
        Category.ip_reputation,
        "the receiver's reputation service refuses {ip}",
        _IP_REPUTATION_FIX,
        text=r"ipcheck\.proofpoint\.com|proofpoint\.com/dnsbl|dnsbl-lookup|"
        r"blocked for spamming|spamming issues|cloudmark|\bCSI\b|"
        r"\bBRBL\b|barracudacentral|barracuda ?(?:networks )?reputation|\bSBRS\b|senderbase|"
        r"talosintelligence|trend ?micro|\bERS\b|mail-abuse\.com|\bQIL\b|\bRBL\+|"
        r"(?:ip|sending|sender|mta|network)(?:'s)? (?:address )?reputation|"
        r"(?:poor|bad|low) (?:ip |sender |sending )?reputation|reputation (?:is )?too low|"
        r"ip reputation",
        unless=r"domain",
    ),
    Rule(
        # The site's IP, host or network named as what is refused ("access from IP address
        # x blocked", "your remotehost looks like a spammer", "not accepting mail from your
        # IP"), in words no listing rule knows: the subject is the client, so its reputation.
        RuleId.ip_subject_refused,
        Category.ip_reputation,
        "the server refuses mail from {ip}: it names the site's IP or host as refused",
        _IP_REPUTATION_FIX,
        text=_CLIENT_REFUSED,
        unless=r"client host rejected:|\bdomain\b|\bspf\b|on behalf|relay|\bptr\b|reverse|"
        r"\b(?:e?helo|ehlo)\b|validation|verif|\bdns\b|authenticat",
    ),
    Rule(
        # Before any command the server knows nothing of the client but its IP address.
        RuleId.ip_blocked_at_greeting,
        Category.ip_reputation,
        "the server refuses {ip} at the greeting: it is blocked",
        _IP_REPUTATION_FIX,
        text=r"\b(?:blocked|banned|black ?listed|block ?listed)\b",
        stages=(Stage.banner,),
        code_class="5",
        unless=r"domain|helo|sender",
    ),
    Rule(
        # "Listed in Spamhaus" alone does not say whether the IP or a domain is listed: no
        # delisting advice for an IP that may be clean (and no DIRECT_SEND_DIRTY_IP).
        RuleId.dnsbl_listing_unspecified,
        Category.unrecognised_refusal,
        "the server cites a blocklist ({list}) without saying what is listed",
        "The server refuses and names a blocklist ({list}) but not whether the site's IP "
        "{ip} or a domain (the sender {sender}, the EHLO name {ehlo_name}) is listed: look each "
        "of them up at the list, and delist whichever is listed after fixing the cause.",
        text=_LISTING_TEXT,
    ),
    # -- TLS ------------------------------------------------------------------------------
    Rule(
        RuleId.m365_tls_legacy,
        Category.tls_failure,
        "Microsoft 365 refuses TLS 1.0 and 1.1",
        "The server needs TLS 1.2 or newer: update the copier's firmware; until then relay "
        "through a local relay that speaks old TLS (smtp-legacy.office365.com only while the "
        "tenant allows legacy TLS).",
        enhanced=("4.7.66",),
    ),
    Rule(
        RuleId.tls_must_starttls_first,
        Category.tls_required,
        "the server requires STARTTLS before this command",
        "Set the copier's security to STARTTLS (port {port}); the server refuses to go on "
        "without encryption.",
        text=r"STARTTLS (?:command )?first|Must issue a STARTTLS|(?:TLS|STARTTLS|encryption|"
        r"secure connection|SSL)(?: conversation| session| connection| transport)? (?:is )?"
        r"(?:required|needed|mandatory)|"
        r"requires? (?:TLS|STARTTLS|encryption|a secure connection|an encrypted)|"
        r"must (?:use|issue|start) (?:STARTTLS|TLS)|not (?:over|using) (?:TLS|an encrypted)|"
        r"unencrypted (?:connection|session)s? (?:are )?not (?:allowed|permitted|accepted)",
        unless=r"TLS 1\.[0-2]|TLS ?v?1\.[0-2]|version",
    ),
    Rule(
        RuleId.tls_message_not_over_tls,
        Category.tls_required,
        "the receiver requires mail to arrive over TLS",
        "The receiver refuses mail that did not come over TLS: set the copier's security to "
        "STARTTLS (port {port}) or implicit TLS.",
        text=r"(?:wasn't|was not|not) sent over (?:a )?TLS|requires? (?:all )?\w* ?(?:senders )?"
        r"to use TLS|TLS/SSL for SMTP",
    ),
    Rule(
        RuleId.tls_encryption_required_code,
        Category.tls_required,
        "the server requires encryption before this command",
        "Set the copier's security to STARTTLS (port {port}) or implicit TLS: the server "
        "refuses to go on without encryption.",
        # RFC 4954 / RFC 5248: X.7.11 encryption required, X.7.10 encryption needed
        enhanced=("5.7.10-5.7.11",),
        # Gmail sends 5.7.10 on "SMTP protocol violation ... pipeline after STARTTLS" too
        unless=r"TLS 1\.[0-2]|TLS ?v?1\.[0-2]|version|protocol violation|pipelin",
    ),
    Rule(
        RuleId.smtp_protocol_violation,
        Category.protocol_error,
        "the server saw a protocol violation",
        "{endpoint} reports an SMTP protocol violation (a command out of order or pipelined "
        "where it may not be): an SMTP-inspecting firewall between the site and {host} can "
        "cause this; turn off its SMTP inspection, else tell the server's administrator.",
        text=r"protocol (?:violation|error)|pipelin\w* after STARTTLS|out of sequence|bad "
        r"sequence of commands|commands? (?:was )?sent (?:too early|before)|need (?:MAIL|RCPT|"
        r"(?:E?HELO|EHLO))(?: FROM| TO)? command|command not (?:recogni[sz]ed|implemented)|"
        r"unrecogni[sz]ed command|syntax error|(?:improper|wrong|invalid|incorrect) (?:command )?"
        r"sequence|sequence of commands|parameter not (?:implemented|recogni[sz]ed)|"
        r"improper use of (?:smtp )?command pipelining|synchroni[sz]ation error",
        unless=r"(?:sender|recipient|mail ?from) address syntax",
    ),
    Rule(
        # Exim "STARTTLS command used when not advertised": a command out of place, not a
        # TLS failure (the server never offered TLS).
        RuleId.tls_starttls_not_advertised,
        Category.protocol_error,
        "the server did not offer STARTTLS, so it refused the command",
        "{endpoint} does not offer STARTTLS (fleet sent it anyway): set the copier's security "
        "to none or implicit TLS for this host, or use a host that offers STARTTLS.",
        text=r"not advertised|not offered|already (?:in |using |running |started |active)|"
        r"TLS already",
        stages=(Stage.starttls,),
        code_class="5",
    ),
    Rule(
        RuleId.tls_not_available,
        Category.tls_failure,
        "the server offered STARTTLS but could not start TLS",
        "The server's TLS is broken (it advertised STARTTLS and then refused it): tell the "
        "mail server's administrator; the copier cannot send securely until it is fixed.",
        stages=(Stage.starttls,),
        code_class="4",
    ),
    # -- authentication -----------------------------------------------------------------
    Rule(
        RuleId.m365_smtp_auth_disabled_tenant,
        Category.auth_disabled,
        "SMTP AUTH is turned off for this Microsoft 365 tenant or mailbox",
        "SMTP AUTH is disabled (5.7.139): enable it for {mailbox} only "
        "(Set-CASMailbox -SmtpClientAuthenticationDisabled $false), knowing Basic AUTH is "
        "being retired; better: " + _AUTH_ALTERNATIVES + ".",
        enhanced=("5.7.139",),
        text=r"SmtpClientAuthentication is disabled|smtp_auth_disabled",
    ),
    Rule(
        RuleId.m365_security_defaults,
        Category.auth_disabled,
        "Entra ID security defaults block password logins for this mailbox",
        "Security defaults block legacy authentication for {mailbox}: replace them with a "
        "Conditional Access policy that excludes this account, or move off passwords: "
        + _AUTH_ALTERNATIVES
        + ".",
        enhanced=("5.7.139",),
        text=r"security defaults",
    ),
    Rule(
        RuleId.m365_conditional_access,
        Category.auth_disabled,
        "a Conditional Access or legacy-authentication policy blocks this login",
        "A policy blocks password (legacy) authentication for {mailbox}: exclude the account "
        "from the legacy-auth block or enable SMTP AUTH for it, or move to "
        + _AUTH_ALTERNATIVES
        + ".",
        enhanced=("5.7.139",),
        text=r"did not meet the criteria",
    ),
    Rule(
        RuleId.m365_federated_sts,
        Category.auth_failed,
        "the tenant's federated sign-in service could not be reached",
        "The domain signs in through a federation service (ADFS) that Microsoft could not "
        "reach over TLS 1.2: fix the federation endpoint, or use a cloud-only mailbox.",
        enhanced=("5.7.139",),
        text=r"federated STS",
    ),
    Rule(
        RuleId.m365_bad_credentials,
        Category.auth_failed,
        "Microsoft 365 rejected the password for {mailbox}",
        "The password for {mailbox} is wrong or expired: update it on the copier and in "
        "fleet's secret store (one attempt per sweep, so the mailbox is not locked out).",
        enhanced=("5.7.139",),
        text=r"credentials were incorrect",
    ),
    Rule(
        RuleId.m365_smtp_auth_refused,
        Category.auth_disabled,
        "Microsoft 365 refuses password logins for {mailbox} (5.7.139)",
        "Microsoft refuses this login for a policy reason (5.7.139, see the reply text): check "
        "that SMTP AUTH is enabled for {mailbox} (Get-CASMailbox | fl "
        "SmtpClientAuthenticationDisabled) and that security defaults or Conditional Access "
        "do not block it; better: " + _AUTH_ALTERNATIVES + ".",
        enhanced=("5.7.139",),
        unless=r"credentials were incorrect|federated STS",
    ),
    Rule(
        RuleId.m365_basic_auth_retired,
        Category.auth_disabled,
        "Microsoft 365 no longer accepts Basic (password) authentication for SMTP",
        "Basic AUTH for SMTP is retired for this tenant (5.7.30): move the copier to "
        + _AUTH_ALTERNATIVES
        + ".",
        enhanced=("5.7.30",),
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.auth_basic_disabled,
        Category.auth_disabled,
        "the server no longer accepts Basic (password) authentication",
        "Basic (password) AUTH is turned off for {mailbox}: move the copier to "
        + _AUTH_ALTERNATIVES
        + ".",
        text=r"basic auth(?:entication)? (?:is )?(?:disabled|not (?:supported|allowed|enabled)|"
        r"blocked|turned off|deprecated)|legacy auth(?:entication)? (?:is )?(?:disabled|blocked)",
    ),
    Rule(
        RuleId.m365_auth_unsuccessful,
        Category.auth_failed,
        "Microsoft 365 refused the login for {mailbox}",
        "Login refused (535 5.7.3): check the password, that SMTP AUTH is enabled for "
        "{mailbox} (Get-CASMailbox | fl SmtpClientAuthenticationDisabled), and that MFA or "
        "Conditional Access do not block it.",
        enhanced=("5.7.3",),
        code_class="5",
    ),
    Rule(
        RuleId.google_app_password_required,
        Category.auth_disabled,
        "Google requires an App Password or OAuth for this account",
        "Google refuses plain account passwords: create an App Password (needs 2-Step "
        "Verification) for {mailbox}, or use OAuth (XOAUTH2).",
        enhanced=("5.7.9",),
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.google_web_login_required,
        Category.auth_failed,
        "Google wants this account to sign in through a browser first",
        "Google blocked the password login for {mailbox} until someone signs in through a web "
        "browser (5.7.14: a new device or a suspicious sign-in): sign in once in a browser from "
        "the site, then use an App Password or OAuth (XOAUTH2) on the copier.",
        enhanced=("5.7.14",),
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.google_bad_credentials,
        Category.auth_failed,
        "Google rejected the username or password for {mailbox}",
        "Google rejected the login: use an App Password for {mailbox} (ordinary passwords "
        "are refused) or OAuth (XOAUTH2).",
        text=r"Username and Password not accepted|BadCredentials",
    ),
    Rule(
        RuleId.m365_client_not_authenticated,
        Category.auth_required,
        "the server only accepts mail after a login",
        {
            "unauthenticated": (
                "{endpoint} requires a login (5.7.57): configure a mailbox and password or "
                "OAuth on the copier, or point it at the tenant's MX for Direct Send instead."
            ),
            "authenticated": (
                "The server did not see a successful login: make sure STARTTLS succeeds "
                "first (AUTH is only offered over TLS), then check the credentials."
            ),
        },
        enhanced=("5.7.57",),
    ),
    Rule(
        RuleId.smtp_auth_required,
        Category.auth_required,
        "the server only accepts mail after a login",
        "{endpoint} requires authentication: configure a mailbox and password (or OAuth) on "
        "the copier, or use a host that accepts unauthenticated mail for your domain.",
        text=r"authentication (?:is )?required|auth(?:entication)? required|not authenticated|"
        r"must (?:first )?authenticate|WantAuthError|unauthenticated (?:senders?|relay|mail|"
        r"sending|users?|clients?)|smtp auth(?:entication)? (?:is )?required|"
        r"(?:turn on|enable|use) smtp auth|without (?:prior )?authentication|"
        r"requires? (?:smtp )?auth(?:entication)?|must be authenticated|"
        r"(?:log ?in|authenticate) (?:first|before)|not logged in|please (?:log ?in|"
        r"authenticate)|issue an? AUTH command|(?:log ?in|authentication) (?:is )?(?:needed|"
        r"necessary)|"
        r"authentification (?:requise|obligatoire)|"
        r"anonymous (?:relay|mail|senders?) "
        r"(?:is |are )?not (?:allowed|permitted|accepted)",
        unless=r"invalid credentials",
    ),
    Rule(
        RuleId.smtp_auth_not_enabled,
        Category.auth_disabled,
        "the server does not offer SMTP AUTH here",
        "{endpoint} does not offer a login: use the provider's submission host ({submission}) "
        "for authenticated mail, or remove the login from the copier.",
        text=r"authentication not enabled|not supported|unrecognized authentication|"
        r"not advertised|AUTH (?:command )?not (?:available|allowed|offered)|"
        r"mechanism",
        stages=(Stage.auth,),
    ),
    Rule(
        # The account itself is refused at AUTH (Stalwart "Your account is not authorized to
        # use this service", MailEnable "User Account has been disabled").
        RuleId.auth_account_refused,
        Category.auth_failed,
        "the server refused the login for {mailbox}: the account is disabled or not allowed",
        "The server refuses the account {mailbox} itself (disabled, locked, suspended or not "
        "allowed to send): ask its administrator to enable it for SMTP, or use another mailbox.",
        text=r"account\b[^.;]{0,40}\b(?:not (?:authori[sz]ed|allowed|permitted|enabled)|"
        r"disabled|locked|suspended|blocked|inactive|expired|deactivated)|"
        r"(?:disabled|locked|suspended|blocked|inactive) (?:user|account)|"
        r"(?:user|mailbox) (?:is |has been )?(?:disabled|locked|suspended)",
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.smtp_auth_failed,
        Category.auth_failed,
        "the server rejected the login for {mailbox}",
        "The server rejected the credentials of {mailbox}: check the username and password.",
        text=r"authentication (failed|unsuccessful|credentials invalid)|incorrect authentication|"
        r"invalid credentials(?! for relay)|authenti(?:cation|fication) (?:failure|invalid\w*|"
        r"refused|rejected|error)|(?:bad|wrong|incorrect|invalid) (?:user ?name|login|password|"
        r"credentials|user(?: name)? or password)",
        stages=(Stage.auth,),
        unless=r"temporar",  # "Temporary authentication failure": the server's, try again
    ),
    # -- sender -----------------------------------------------------------------------------
    Rule(
        RuleId.m365_send_as_denied,
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The login mailbox may not send as {sender}: set the copier's From to {mailbox}, or "
        "grant {mailbox} Send As on {sender}, or use a connector relay.",
        enhanced=("5.7.60", "5.2.252"),
    ),
    Rule(
        RuleId.m365_send_as_denied_text,
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The login mailbox may not send as {sender}: set the copier's From to {mailbox}, or "
        "grant {mailbox} Send As on {sender}, or use a connector relay.",
        text=r"SendAsDenied|permissions to send as this sender",
    ),
    Rule(
        RuleId.m365_restricted_sender,
        Category.sender_rejected,
        "the sending mailbox is blocked for sending spam",
        "{mailbox} is on Microsoft's restricted users list (5.1.8): secure the account (reset "
        "the password, check for compromise), then release it in the Defender portal.",
        enhanced=("5.1.8",),
    ),
    Rule(
        RuleId.m365_banned_account,
        Category.sender_rejected,
        "Microsoft has banned the sending account for spam",
        {
            "unauthenticated": (
                "Microsoft has banned the sender {sender} for spam (5.7.501-5.7.503): secure the "
                "account (reset its credentials, look for a compromise), then contact Microsoft "
                "support to lift the ban."
            ),
            "authenticated": (
                "Microsoft has banned {mailbox} for sending spam (5.7.501-5.7.503): secure the "
                "account (reset its password, look for a compromise and forwarding rules), then "
                "contact Microsoft support to lift the ban, and give the copier the new password."
            ),
        },
        enhanced=("5.7.501-5.7.503",),
    ),
    Rule(
        RuleId.m365_banned_sender_domain,
        Category.sender_rejected,
        "Microsoft has banned a domain this sender uses",
        "Microsoft bans a domain of this conversation (5.7.800: the EHLO name, or the domain of "
        "{sender} in MAIL FROM or From): make sure the copier's EHLO name and sender are in "
        "your own domain, then contact Microsoft support.",
        enhanced=("5.7.800",),
    ),
    Rule(
        RuleId.m365_tenant_threshold,
        Category.sender_rejected,
        "the tenant is blocked from sending (it sent too much spam)",
        "The whole tenant is blocked (5.7.705): find the compromised account or connector, "
        "fix it, then contact Microsoft support.",
        enhanced=("5.7.705",),
    ),
    Rule(
        RuleId.m365_unregistered_domain,
        Category.sender_rejected,
        "the sender's domain is not an accepted domain of the tenant",
        "Add and verify the sender's domain in Microsoft 365 (5.7.750), or send from an "
        "address in an accepted domain.",
        enhanced=("5.7.750",),
    ),
    Rule(
        # The login may not use this sender address (Stalwart "You are not allowed to send
        # from this address", maddy "Unauthorized use of sender address", James "Incorrect
        # Authentication for Specified Email Address"), whatever its 5.5.x code says.
        RuleId.sender_not_authorised_address,
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The server does not let this login send as {sender}: set the copier's From to the "
        "login mailbox ({mailbox}) or an address it may send as, or grant it that right.",
        text=r"not (?:allowed|permitted|authori[sz]ed) to (?:send|use|relay) (?:mail )?"
        r"(?:from|as|on behalf of|with) (?:this|that|the|your|specified)\b|"
        r"unauthori[sz]ed (?:use of )?(?:the )?(?:sender|from|mail ?from|envelope)|"
        r"(?:authentication|login|credentials) (?:for|does not match|doesn't match) (?:the |this |"
        r"that |your |specified )?(?:e-?mail|sender|from|mail ?from) address|"
        r"(?:sender|from) (?:address )?(?:is )?not owned|"
        r"not owned by (?:the )?(?:user|login|account)",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        # RFC 7505: a sender domain that publishes "MX 0 ." receives no mail, so it may send none.
        RuleId.sender_null_mx,
        Category.sender_rejected,
        "the sender's domain publishes a null MX (RFC 7505): it takes no mail",
        "The domain of {sender} publishes a null MX (it receives no mail), so receivers refuse "
        "it as a sender: send from an address in a domain that receives mail.",
        text=r"null MX|RFC ?7505",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
        unless=r"recipient",
    ),
    Rule(
        # RFC 3463: at MAIL FROM, an X.1.x status is about the sender's address.
        RuleId.smtp_sender_status,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (its status code says the address is "
        "the problem)",
        "The server refuses {sender} as a sender: use an address in a domain that exists and "
        "that the server accepts mail from (usually the login mailbox or an accepted domain).",
        stages=(Stage.mail,),
        enhanced=("5.1.0-5.1.99", "4.1.0-4.1.99"),
    ),
    Rule(
        RuleId.smtp_sender_rejected,
        Category.sender_rejected,
        "the server rejects the sender address {sender}",
        "The server refuses {sender} as a sender: use an address in a domain the server "
        "accepts mail from (usually the login mailbox or an accepted domain).",
        text=r"sender address rejected|sender (?:is )?not (?:allowed|permitted|authori[sz]ed)|"
        r"(?:sender|mail ?from) address syntax|bad sender address|"
        r"sender verif\w+ failed|verification failed for|envelope blocked|"
        r"envelope sender|badmailfrom|sender (?:domain )?(?:must exist|not found|unknown|"
        r"rejected|denied|blocked)|(?:mail ?from|sender) (?:address )?(?:is )?(?:invalid|"
        r"rejected|refused|blocked|not accepted)|domain of sender address|"
        r"sender domain|unverifiable sender|spoof|unroutable sender|not a valid RFC ?5321|"
        r"(?:address|identit\w+) (?:is |are )?not verified|identities failed|"
        r"(?:sending|sender) (?:e-?mail )?account (?:has been|is) (?:\w+ )?suspended|"
        r"(?:verified|unverified) sender identity|sender identity|invalid sender|"
        r"(?:invalid|no|missing) (?:DNS )?MX (?:or A|record)|no such domain|"
        r"(?:for|of) your mail ?from address|"
        r"mail from <?[^\s@<>]{1,64}@[^\s<>]{1,255}>? (?:was |is )?(?:rejected|refused|denied|"
        r"not accepted)",
    ),
    Rule(
        # Outlook.com: "domain [example.com] mismatches client ip": the sender's domain does
        # not authorise the sending IP (SPF in other words).
        RuleId.smtp_sender_domain_mismatch,
        Category.sender_rejected,
        "the sender's domain does not match the sending IP {ip}",
        "The receiver says the sender's domain ({sender}) does not go with the site's IP "
        "{ip}: add ip4:{ip} to that domain's SPF record, or send from a domain (or through a "
        "relay) that authorises this IP.",
        text=r"mismatch\w* (?:the |with )?(?:client|connecting|sending|your|source) ip|"
        r"(?:sender|from) domain\b(?:[^.;]|\.(?=\S)){0,60}\b(?:mismatch|does not match|"
        r"doesn't match)|\bdomain\b(?:[^.;]|\.(?=\S)){0,60}\b(?:does not|doesn't) match (?:the |your )?(?:client|connecting|"
        r"sending|source) ip",
    ),
    # -- relay and recipient ------------------------------------------------------------
    Rule(
        RuleId.smtp_greylisted,
        Category.temporary_failure,
        "the server greylists: it defers a first attempt from an unknown source",
        "The server greylists ({host} defers mail from a source it has not seen before): a "
        "copier that retries after a few minutes gets through; fleet tries once, so run the "
        "site again later. Nothing is wrong with the site.",
        text=r"grey ?list|gray ?list",
        code_class="4",
    ),
    Rule(
        RuleId.m365_message_format,
        Category.message_rejected,
        "the message's From header is not RFC 5322 compliant",
        "Fix the copier's From formatting (angle brackets, quoted display name) (5.7.512).",
        enhanced=("5.7.512",),
    ),
    Rule(
        # RFC 3463: X.2.3 the message is longer than the mailbox takes, X.3.4 than the system.
        RuleId.smtp_message_size,
        Category.message_rejected,
        "the message is larger than the server accepts",
        "The server refuses messages this large: lower the copier's scan resolution or "
        "attachment size limit (or split large scans), or ask for a larger limit.",
        enhanced=("5.2.3", "5.3.4", "4.2.3", "4.3.4"),
    ),
    Rule(
        RuleId.smtp_recipient_mailbox_full,
        Category.recipient_rejected,
        "the recipient's mailbox is full",
        "The test recipient's mailbox is full (over its quota): empty it or raise its quota, "
        "or send the test to another recipient.",
        text=r"mailbox (?:size limit|quota|is full|full|over ?quota|storage)|over ?quota|"
        r"(?:mailbox|storage|disk|user|account)(?:'s)? quota|quota (?:exceeded|full)|"
        r"exceeded (?:its |the |their |his |her )?storage|storage allocation|"
        r"(?:mailbox|inbox) (?:has )?(?:exceeded|reached)|"
        # the recipient's storage in other words (a receiver's own disk is its own fault)
        r"\b(?:mail ?box|mail ?folder|inbox|boite\b[\w ]{0,20}?) (?:is |est )?(?:full|pleine)\b|"
        r"\bfull mail ?box|\b(?:user|account|recipient|mailbox)\b[^.;:]{0,20}?\b(?:is |are )?"
        r"(?:over|exceed\w*) (?:the |their |its |his |her |allowed |storage )*quota|"
        r"\bquota (?:violation|exceeded|full)|(?:not|does not have|doesn't have) (?:enough|"
        r"sufficient) (?:storage |mailbox )?space|space (?:has been|is) used up|"
        r"would exceed\b[^.;:]{0,30}?\b(?:storage|quota|size)|too many messages (?:on|in) "
        r"(?:the server|(?:the |this )?mailbox)",
        stages=(Stage.rcpt, Stage.data),
        unless=r"sending|submission|\bsend\b|\brate\b|per (?:hour|day|minute)|daily|hourly|"
        r"queue|organi[sz]ation|tenant",
    ),
    Rule(
        RuleId.smtp_content_rejected,
        Category.message_rejected,
        "the server refuses the message itself (content, size or headers)",
        "The receiver refused the test message itself (its content, size or headers): read "
        "the reply; scans are usually refused for their size or attachment type.",
        text=r"\bspam\b(?! ?(?:abuse|haus|from your))|\bUBE\b|virus|malware|content (?:rejected|"
        r"presents|filter|policy|denied|blocked|not allowed)|message content|spam ?signature|"
        r"(?:rejected|blocked) due to security polic|(?:message|size) (?:size )?(?:limit|exceed|too "
        r"(?:big|large))|exceeded .{0,30}size|From: header|(?:missing|invalid|malformed) "
        r"\w* ?header|header (?:value |field )?(?:is )?(?:not allowed|rejected|invalid|"
        r"forbidden)|not accepted for policy reasons|policy that prohibit\w*|security issue|attachment|"
        r"likely unsolicited|looks like spam|suspicious (?:content|message)|RFC ?5322|"
        r"\bMIME\b|nature of the content|links? within|headers? (?:are |is )?not RFC|"
        r"not RFC[- ]?\d* ?compliant|\(header[- ]based\)|message (?:was |has been )?filtered|"
        r"(?:e-?mail|message|content|mail) policy violation|8-?bit (?:data|char\w*|content|text)\b|"
        # content filters' verdicts: Amavis "Reject, id=... - INFECTED / BANNED", SpamAssassin
        r"\b(?-i:INFECTED)\b|- (?-i:BANNED)\b|\bbanned (?:attachment|file|content)|spamassassin|"
        r"spam ?filter|(?:message|mail|file) (?:\w+ )?too (?:big|large)",
        unless=r"rate limited",
    ),
    Rule(
        RuleId.m365_reject_direct_send,
        Category.relay_denied,
        "the tenant refuses Direct Send from unauthorised sources",
        "The tenant has RejectDirectSend on (5.7.68): create a partner (inbound) connector "
        "for the site's static IP {ip} or its certificate, or move the copier to "
        "authenticated submission on {submission}.",
        enhanced=("5.7.68",),
    ),
    Rule(
        RuleId.m365_reject_direct_send_text,
        Category.relay_denied,
        "the tenant refuses Direct Send from unauthorised sources",
        "The tenant has RejectDirectSend on (5.7.68): create a partner (inbound) connector "
        "for the site's static IP {ip} or its certificate, or move the copier to "
        "authenticated submission on {submission}.",
        text=r"TenantInboundAttribution|Direct Send not allowed",
    ),
    Rule(
        RuleId.m365_tenant_attribution,
        Category.relay_denied,
        "no inbound connector matches the site's IP any more",
        "The connector no longer matches (5.7.64 TenantAttribution): update the inbound "
        "connector (and SPF) to the IP the server saw, {ip}; a changed static IP is the usual "
        "cause.",
        enhanced=("5.7.64", "4.4.62"),
    ),
    Rule(
        RuleId.m365_tenant_attribution_text,
        Category.relay_denied,
        "no inbound connector matches the site's IP any more",
        "The connector no longer matches (TenantAttribution): update the inbound connector "
        "(and SPF) to the IP the server saw, {ip}.",
        text=r"TenantAttribution|wrong Office 365 region",
    ),
    Rule(
        RuleId.ipv6_not_accepted,
        Category.recipient_rejected,
        "the recipient's domain does not accept mail over IPv6",
        "The recipient's domain refuses mail over IPv6 (5.7.510): send over IPv4 (an IPv4 "
        "route from the site to {host}, or IPv6 turned off on the copier).",
        enhanced=("5.7.510",),
    ),
    Rule(
        RuleId.m365_dbeb_unknown_recipient,
        Category.recipient_rejected,
        "the recipient does not exist in the tenant",
        "The test recipient is not a known address in Microsoft 365 (Directory-Based Edge "
        "Blocking): fix the recipient address, or check the accepted domain type.",
        enhanced=("5.4.1", "5.7.504"),
        text=r"Recipient address(?:es)? rejected",
    ),
    Rule(
        RuleId.m365_relay_access_denied,
        Category.relay_denied,
        "this host does not accept mail for the recipient's domain",
        "{host} does not accept mail for the recipient's domain (5.4.1 Relay Access Denied): "
        "point the copier at the domain's current MX, and check the domain is accepted in "
        "the tenant.",
        enhanced=("5.4.1",),
        text=r"relay",
    ),
    Rule(
        RuleId.m365_recipient_not_found,
        Category.recipient_rejected,
        "the recipient address does not exist",
        "The test recipient does not exist: fix the 'to' address in the inventory (and on the "
        "copier's address book).",
        enhanced=("5.1.10",),
    ),
    Rule(
        RuleId.google_relay_ip_not_registered,
        Category.relay_denied,
        "Google's SMTP relay does not know {ip} (or this login) as a sender for the domain",
        "Register the site's IP {ip} in the Google Admin console (Apps > Google Workspace > "
        "Gmail > Routing > SMTP relay service), or configure the relay to accept SMTP AUTH "
        "and give the copier a login.",
        text=r"IP not in whitelist|invalid credentials for relay",
    ),
    Rule(
        RuleId.m365_unable_to_relay,
        Category.relay_denied,
        "Microsoft 365 will not relay to the recipient's domain",
        {
            "unauthenticated": (
                "{host} refuses to relay: Direct Send only reaches mailboxes hosted in the "
                "same tenant. For outside recipients use authenticated submission on "
                "{submission} or a connector relay from a static IP."
            ),
            "authenticated": (
                "{host} refuses to relay for {mailbox}: check that the login succeeded and the "
                "mailbox may send, or use {submission}."
            ),
        },
        text=r"unable to relay",
        providers=("microsoft",),
    ),
    Rule(
        RuleId.smtp_relay_denied,
        Category.relay_denied,
        "the server will not relay to the recipient's domain",
        {
            "unauthenticated": (
                "{host} only accepts mail for its own domains from this site: send to a "
                "recipient it hosts, log in first (submission on {submission}), or ask its "
                "administrator to allow relaying from {ip}."
            ),
            "authenticated": (
                "{host} refuses to relay for {mailbox}: allow relaying for this login on the "
                "server, or use the provider's submission host ({submission})."
            ),
        },
        text=r"unable to relay|relay(?:ing)? (?:access )?(?:is )?(?:denied|not permitted|"
        r"not allowed|prohibited|refused|disallowed)|not (?:permitted|allowed|authori[sz]ed) "
        r"to relay|list of allowed rcpthosts|use me as a relay|(?:we|i) do not relay|"
        r"does not relay|no relaying|relay (?:not|denied)|cannot relay|"
        r"(?:not|isn't) (?:a )?local (?:domain|recipient)|configured to relay|"
        r"not permitted to relay|"
        # the recipient's domain is not one this host serves
        r"allowed rcpthosts?\b|\b(?:do not|don't|does not|doesn't|not) (?:handle|accept|"
        r"receive) mail for\b|\bnot (?:a |an )?(?:gateway|local host|open relay)\b|"
        r"\b(?:insecure|open) (?:mail )?relay\b|\bas a relay\b|\brelaying mail to\b",
    ),
    Rule(
        RuleId.m365_mailbox_full,
        Category.message_rejected,
        "the sending mailbox is full",
        "The scanner mailbox's Sent Items filled it: add a retention policy to Sent Items.",
        enhanced=("5.2.2",),
        stages=(Stage.mail, Stage.data),
        providers=("microsoft",),
        unless=r"submission quota|SubmissionQuota",
    ),
    Rule(
        RuleId.smtp_unknown_recipient,
        Category.recipient_rejected,
        "the server does not know the recipient",
        "The test recipient is unknown to the server: fix the 'to' address.",
        text=r"user unknown|unknown user|no such (?:user|recipient|mailbox|address|account)|"
        r"recipient verif\w* failed|"
        r"mailbox (?:unavailable|not found|does not exist|unknown|disabled|inactive)|"
        r"recipient address rejected|does not exist|RecipientNotFound|"
        r"(?:invalid|unknown|bad) (?:recipient|mailbox|address)|recipient (?:not found|unknown|"
        r"invalid)|(?:user|account|address) (?:not found|disabled|unknown)|"
        r"unrouteable address|not a valid (?:mailbox|recipient)|over quota|mailbox (?:is )?full|"
        r"(?:recipient|destination)(?:'s)? account|compte du destinataire|"
        r"(?:user|recipient) doesn't exist|undeliverable address|no mailbox",
    ),
    Rule(
        RuleId.smtp_recipient_inactive,
        Category.recipient_rejected,
        "the recipient's mailbox is disabled or no longer in use",
        "The test recipient's mailbox is disabled, frozen or no longer in use: send the test "
        "to a live address (fix the 'to' address in the inventory and on the copier).",
        text=r"(?:mailbox|account|address|user|recipient|addressee)(?: address)? (?:is |has been |"
        r"was )?(?:disabled|frozen|inactive|deactivated|discontinued|closed|suspended|expired|"
        r"no longer (?:valid|active|in use|available|exists?))|(?:disabled|frozen|inactive|"
        r"deactivated|closed|suspended|expired|discontinued) (?:recipient|mailbox|account|user|"
        r"address)|\bis no longer (?:valid|active|in use|available)|"
        r"\b(?:is|has been) (?:currently |temporarily )?(?:suspended|deactivated|terminated|"
        r"archived)\b|\btemporar(?:y|ily) (?:locked|inactive)\b|\bsuspend(?:ed)? the service\b",
        stages=(Stage.rcpt, Stage.data),
        unless=r"sending|sender|your account|authenticat|log ?in|password",
    ),
    # -- throttling -----------------------------------------------------------------------
    Rule(
        RuleId.m365_ip_throttled,
        Category.throttled,
        "Microsoft 365 is temporarily limiting mail from {ip}",
        "Microsoft throttles {ip} (its volume changed or it is new): wait; for a relay, "
        "create an inbound connector so the traffic is attributed to the tenant.",
        enhanced=("4.7.500-4.7.699", "4.7.850-4.7.899"),
    ),
    Rule(
        RuleId.m365_sender_thread_limit,
        Category.throttled,
        "too many simultaneous connections for one mailbox",
        "More than 3 connections at once for {mailbox}: give each copier its own mailbox, or "
        "send one at a time.",
        enhanced=("4.3.2",),
        text=r"thread limit|concurrent",
    ),
    Rule(
        RuleId.m365_ipv6_range_limit,
        Category.throttled,
        "Microsoft 365 limits how much mail the site's IPv6 range may send",
        "The site's IPv6 range sent more than Microsoft permits (5.7.508): slow down (fewer "
        "devices or messages at once) and try again later, or send over IPv4.",
        text=r"exceeded permitted limits",
    ),
    Rule(
        RuleId.google_relay_peak_limit,
        Category.throttled,
        "the Workspace customer is over Google's SMTP relay peak limit",
        "Google's SMTP relay takes no more mail for this Workspace customer for now (4.2.1 "
        "peak limit): the copier should retry later; if it recurs, spread the sending over "
        "time and find what else sends through the relay.",
        text=r"Peak SMTP relay limit",
    ),
    Rule(
        RuleId.m365_submission_quota,
        Category.throttled,
        "the mailbox exceeded its daily sending limit",
        "{mailbox} exceeded SMTP AUTH limits (30 messages/min, 10,000 recipients/day): spread "
        "the load or use a relay.",
        text=r"SubmissionQuotaExceeded|submission quota",
    ),
    Rule(
        RuleId.smtp_too_many_recipients,
        Category.throttled,
        "the message has more recipients than the server takes at once",
        "The server takes fewer recipients per message (4.5.3): send the scan to fewer "
        "recipients at once, or to a distribution group.",
        enhanced=("4.5.3",),
    ),
    Rule(
        # Microsoft's "451 4.7.0 Temporary server error. Please try again later. PRX4": a
        # fault on its side, not a limit on the site.
        RuleId.smtp_temporary_server_error,
        Category.temporary_failure,
        "the server had a temporary internal error",
        "{host} reported an internal error of its own (a transient fault, not a limit on this "
        "site): run the site again later; if it persists for hours, check the provider's "
        "service health.",
        text=r"temporary server error|internal server error|temporary (?:local |system )?(?:problem|"
        r"failure|error)|system problem|local error in processing|try again later.{0,20}\bPRX\d|"
        r"insufficient (?:disk|system) ?(?:space|storage)|temporar(?:y|ily) unavailable|"
        r"service (?:is )?(?:temporarily )?unavailable",
        code_class="4",
    ),
    Rule(
        # A limit is a limit even when the server says it permanently (Gmail 550 5.4.5).
        RuleId.smtp_sending_limit,
        Category.throttled,
        "the server says a sending limit was exceeded",
        "A sending limit was exceeded ({mailbox} or this site): spread the sending over time "
        "or over more mailboxes, or use a relay service sized for the volume.",
        text=r"sending (?:limit|quota)|(?:daily|hourly|message|rate|recipient) (?:user )?"
        r"(?:sending )?(?:limit|quota) (?:exceeded|reached)|(?:limit|quota) (?:exceeded|reached)|"
        r"exceeded (?:the |your )?(?:\w+ )?(?:sending |message |rate )?(?:limit|quota)|"
        r"(?:reached|hit) (?:the |your )?(?:daily |hourly )?(?:sending )?limit|"
        r"too many (?:messages|mails|emails|connections|recipients)|rate ?limit|"
        r"limits? (?:for|on) how many|(?:messages|recipients) (?:per|this) (?:hour|day)|"
        # a limit named, then said to be exceeded ("per hour message receive limit ... exceeded")
        r"\blimit\b[^.;:]{0,40}?\bexceeded\b|\bexceed\w* (?:the |your |its |an? )?(?:\w+ ){0,2}limit\b",
        code_class="5",
        unless=r"mailbox (?:is )?full|over quota|mailbox quota|storage|\bsize\b|\blength\b|header",
    ),
    Rule(
        RuleId.smtp_rate_limited,
        Category.throttled,
        "the server is limiting the rate or number of connections",
        "The server is rate-limiting this source: reduce how many devices send at once, or "
        "wait and try again later.",
        text=r"too many|rate ?limit|throttl|exceeded|slow down|too much mail|excessive "
        r"(?:volume|mail|messages|connections)|high volume|limits? (?:for|on) how many|"
        r"(?:messages|recipients|connections) (?:per|this|an) (?:hour|day|minute)|unusual rate|"
        r"messages? per (?:connection|session)",
        code_class="4",
        unless=r"time ?out|time limit",  # "Error: timeout exceeded" is the session's clock
    ),
    Rule(
        # RFC 3463: X.1.x are address statuses; X.2.1/X.2.2 the mailbox is disabled or full.
        RuleId.smtp_recipient_status,
        Category.recipient_rejected,
        "the server refuses the recipient (its status code says the address is the problem)",
        "The server refuses the test recipient (an address status code): check the 'to' address, and that the "
        "mailbox exists and is not full.",
        stages=(Stage.rcpt,),
        enhanced=("5.1.0-5.1.6", "5.1.9-5.1.99", "5.2.1-5.2.2", "4.2.2"),
    ),
    # -- protocol -------------------------------------------------------------------------
    Rule(
        RuleId.smtp_hello_first,
        Category.protocol_error,
        "the server wants EHLO before this command",
        "The server asked for EHLO although fleet sent one (and sends it again after STARTTLS, "
        "as RFC 3207 requires): an SMTP-inspecting firewall between the site and {host}, or "
        "the server, loses the session state; turn off the firewall's SMTP inspection, else "
        "tell the server's administrator.",
        text=r"send (hello|(?:e?helo|ehlo))( command)? first|"
        r"(?:(?:e?helo|ehlo)|hello)(?:/(?:e?helo|ehlo))? (?:command )?(?:is )?required",
    ),
    # -- words that say what was refused, with no cause fleet knows ------------------------
    Rule(
        # At DATA the thing refused is the message: "Message rejected", "Message Filtered".
        RuleId.smtp_message_refused,
        Category.message_rejected,
        "the server refuses the message (it gives no more specific reason)",
        "The receiver refused the test message itself without saying why: read the reply; "
        "try a small scan with a plain subject, and ask the administrator of {host} which "
        "filter refused it.",
        text=r"\b(?:message|content)s? (?:was |has been |is )?(?:rejected|refused|"
        r"not accepted|filtered|blocked)",
        stages=(Stage.data,),
        code_class="5",
        # RFC 3463's own text for X.7.1 names no cause
        unless=r"destination domain|delivery not authori[sz]ed",
    ),
    Rule(
        # At RCPT the address refused is the recipient's (the sender's is refused at MAIL,
        # or named as such: see smtp.sender_rejected).
        RuleId.smtp_rcpt_address_refused,
        Category.recipient_rejected,
        "the server refuses the recipient address (it gives no more specific reason)",
        "The server refuses the test recipient's address without saying why: check the 'to' "
        "address, and that {host} receives mail for its domain.",
        text=r"^#?(?:[245]\.\d{1,3}\.\d{1,3} )?(?:<[^<>\s]{1,255}>:? |\S{1,255}@\S{1,255}:? )?"
        r"(?:the )?(?:recipient )?address(?:es)? (?:is |was )?(?:rejected|refused|not accepted|"
        r"invalid)|(?:restricted|invalid|illegal) characters? in (?:the )?(?:local part|address)",
        stages=(Stage.rcpt,),
    ),
    Rule(
        # RFC 5321's "Service not available" (421) sent as a 5xx with no reason: the server
        # is not taking mail now, which is not a refusal of this site.
        RuleId.smtp_service_unavailable,
        Category.temporary_failure,
        "the server says its service is unavailable for now",
        "{host} says its mail service is unavailable (its own state, no reason given about "
        "this site): run the site again later; if it persists, ask the administrator of {host}.",
        text=r"service (?:is )?(?:currently |temporarily )?(?:unavailable|not available)",
        # a 554 greeting is RFC 5321's "no SMTP service here" for this client: a refusal
        stages=(
            Stage.ehlo,
            Stage.starttls,
            Stage.ehlo_tls,
            Stage.auth,
            Stage.mail,
            Stage.rcpt,
            Stage.data,
        ),
        code_class="5",  # a 4xx says so already, and its finding names the code
        unless=r"no smtp service|\bptr\b|blocked|listed|denied|refused",
    ),
    # -- RFC 3463 enhanced status codes, read by class, subject and detail when no words did.
    # Only the registered meanings that point at one party (IANA's SMTP Enhanced Status Codes
    # registry); X.7.1 "delivery not authorized" and X.4.x routing name no cause of their own.
    # -- the SUBJECT of a refusal, when no cause above was recognised ---------------------
    # Real servers name what they refuse far more consistently than why: "Recipient address
    # rejected", "user not known", "sender was rejected", "message refused". When the words
    # name no cause fleet knows, the thing refused decides (below every cause, above the
    # status codes): a refused recipient is the recipient's, a refused sender the sender's,
    # a refused message the message's. Each rule is a noun of its family within a short
    # window of a word of refusal (bounded: linear on hostile replies).
    Rule(
        RuleId.subject_recipient_domain,
        Category.recipient_rejected,
        "the server refuses the recipient: its domain does not exist or takes no mail",
        "The recipient's domain does not resolve or does not take mail: check the 'to' "
        "address's domain (a typo, an expired domain) and its MX records.",
        text=_DOMAIN_UNKNOWN,
        stages=(Stage.rcpt, Stage.data),
        unless=_NOT_THE_RECIPIENT,
    ),
    Rule(
        RuleId.subject_sender_domain,
        Category.sender_rejected,
        "the server refuses the sender {sender}: its domain does not exist or takes no mail",
        "The domain of {sender} does not resolve or takes no mail, so receivers refuse it as "
        "a sender: send from an address in a domain with working DNS (an MX or A record).",
        text=_DOMAIN_UNKNOWN,
        stages=(Stage.mail,),
    ),
    Rule(
        RuleId.subject_sender,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (it gives no more specific reason)",
        "The server refuses {sender} as a sender without saying why: use an address in a "
        "domain the server accepts mail from (usually the login mailbox or an accepted "
        "domain), and check that domain's DNS and SPF.",
        text=_SENDER_SUBJECT,
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        # At MAIL FROM the only address on the table is the sender's.
        RuleId.subject_address_at_mail,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (it gives no more specific reason)",
        "The server refuses {sender} as a sender without saying why: use an address in a "
        "domain the server accepts mail from (usually the login mailbox or an accepted "
        "domain), and check that domain's DNS and SPF.",
        text=_ADDRESS_REFUSED,
        stages=(Stage.mail,),
        unless=r"\bIP\b|client|host|server|connection",
    ),
    Rule(
        RuleId.subject_recipient,
        Category.recipient_rejected,
        "the server refuses the recipient (it gives no more specific reason)",
        "The server refuses the test recipient without saying why: check the 'to' address "
        "(it may not exist, be disabled or refuse this sender), and that {host} receives "
        "mail for its domain.",
        text=_RECIPIENT_SUBJECT + "|" + _ADDRESS_STATE,
        stages=(Stage.rcpt, Stage.data),
        unless=_NOT_THE_RECIPIENT,
    ),
    Rule(
        RuleId.subject_message,
        Category.message_rejected,
        "the server refuses the message (it gives no more specific reason)",
        "The receiver refused the test message itself: read the reply; try a small scan "
        "with a plain subject and a PDF attachment, and ask the administrator of {host} "
        "which filter refused it.",
        text=_MESSAGE_SUBJECT,
        stages=(Stage.data,),
        code_class="5",  # a 4xx "temporarily rejected this message" is a deferral
        unless=r"\bIP\b|your (?:host|server|network)|relay|authenticat|log ?in|"
        r"destination domain|delivery not authori[sz]ed",
    ),
    Rule(
        RuleId.status_sender_address,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (its status code says so)",
        "The server refuses {sender} as a sender (X.1.7/X.1.8: bad sender address or its "
        "domain): use an address in a domain that exists and that the server accepts.",
        enhanced=("5.1.7-5.1.8", "4.1.7-4.1.8"),
    ),
    Rule(
        RuleId.status_recipient_address,
        Category.recipient_rejected,
        "the server refuses the recipient (its status code says the address is the problem)",
        "The server refuses the test recipient (X.1.x: an address status code): check the "
        "'to' address and that its domain receives mail.",
        enhanced=("5.1.0-5.1.6", "5.1.9-5.1.99"),
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_recipient_mailbox,
        Category.recipient_rejected,
        "the recipient's mailbox is disabled or full (its status code says so)",
        "The test recipient's mailbox is disabled or full (X.2.1/X.2.2): send the test to a "
        "live mailbox with room, or have it emptied.",
        enhanced=("5.2.1-5.2.2", "5.2.4", "4.2.2"),
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_too_many_recipients,
        Category.throttled,
        "the message has more recipients than the server takes at once",
        "The server takes fewer recipients per message (X.5.3): send the scan to fewer "
        "recipients at once, or to a distribution group.",
        enhanced=("5.5.3",),
    ),
    Rule(
        RuleId.status_protocol,
        Category.protocol_error,
        "the server refuses a command as invalid (its status code says so)",
        "{endpoint} refused a command as invalid or out of place (X.5.x): an SMTP-inspecting "
        "firewall between the site and {host} can cause this; else tell the server's "
        "administrator, with the reply text.",
        enhanced=("5.5.1-5.5.2", "5.5.4-5.5.6"),
        stages=(Stage.banner, Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_content,
        Category.message_rejected,
        "the server refuses the message's format or content (its status code says so)",
        "The receiver refuses the test message's format or encoding (X.6.x): check the "
        "copier's character set and attachment settings, or update its firmware.",
        enhanced=("5.6.0-5.6.6", "5.6.8-5.6.99"),
    ),
    Rule(
        RuleId.status_message_integrity,
        Category.message_rejected,
        "the server refuses the message itself (message integrity or policy, X.7.7)",
        "The receiver refused the test message itself (X.7.7): read the reply; scans are "
        "usually refused for their size or attachment type.",
        enhanced=("5.7.7",),
        stages=(Stage.data,),
    ),
    Rule(
        RuleId.status_sender_authentication,
        Category.sender_rejected,
        "the receiver rejects the sender for SPF, DKIM, DMARC or ARC (its status code says so)",
        "The sender domain's SPF/DKIM/DMARC does not authorise this source (X.7.20-X.7.29): "
        "add ip4:{ip} to the SPF record of {sender}'s domain, or send through an authorised "
        "relay.",
        enhanced=("5.7.20-5.7.24", "5.7.27", "5.7.29"),
    ),
    Rule(
        RuleId.status_recipient_owner_changed,
        Category.recipient_rejected,
        "the recipient's mailbox or domain changed owner (its status code says so)",
        "The test recipient's mailbox or domain has a new owner (X.7.17/X.7.18): check the "
        "'to' address.",
        enhanced=("5.7.17-5.7.18",),
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        # X.7.12 password transition needed, X.7.13 account disabled (RFC 4954): at AUTH
        # they are about the login.
        RuleId.status_login_refused,
        Category.auth_failed,
        "the server refused the login for {mailbox} (its status code says so)",
        "The server refused the login of {mailbox} (X.7.12/X.7.13: a password change "
        "needed, or the account disabled): check the account and its "
        "password, then update the copier.",
        enhanced=("5.7.12-5.7.13",),  # X.7.8 is the fallback's already
        stages=(Stage.auth,),
    ),
    Rule(
        # X.3.1 mail system full, X.3.2 system not accepting network messages: the receiver's
        # own state, not a verdict on this site.
        RuleId.status_receiver_not_accepting,
        Category.temporary_failure,
        "the receiving system is not accepting mail now (its status code says so)",
        "{host} says its mail system is full or not accepting mail (X.3.1/X.3.2): run the "
        "site again later; if it persists, ask the administrator of {host}.",
        enhanced=("5.3.1-5.3.2",),  # a 4xx is a deferral already
    ),
    Rule(
        # RFC 5321 500-504: syntax error, bad parameters, not implemented, bad sequence.
        # Not at EHLO (the name, see helo.syntax_code), STARTTLS (no TLS) or AUTH (mechanism).
        RuleId.code_command_syntax,
        Category.protocol_error,
        "the server refuses a command as invalid or out of sequence (50x)",
        "{endpoint} refused a command as invalid, unimplemented or out of sequence (RFC 5321 "
        "50x): an SMTP-inspecting firewall between the site and {host} can cause this; else "
        "tell the server's administrator, with the reply text.",
        code_class="50",
        stages=(Stage.banner, Stage.mail, Stage.rcpt, Stage.data),
    ),
)


# ---- classification -----------------------------------------------------------------------

# A reply no rule knows. A 4xx is a deferral, whatever it says; a 5xx claims only what its
# stage or its code proves (a refused STARTTLS cannot start TLS; 535 is RFC 4954's "credentials
# invalid"), and is otherwise an unrecognised refusal, shown in the server's own words.
_FALLBACK_FINDING: dict[Category, str] = {
    Category.tls_failure: "the server refused to start TLS ({stage}: {code})",
    Category.auth_failed: "the server rejected the login ({stage}: {code})",
    Category.unrecognised_refusal: "the server refused at {stage} ({code}) for a reason fleet "
    'does not recognise: "{said}"',
    Category.protocol_error: "the server gave an unexpected reply ({stage}: {code})",
    Category.temporary_failure: "the server deferred with a temporary error ({stage}: {code})",
}

_FALLBACK_REMEDY: dict[Category, str] = {
    Category.tls_failure: "{endpoint} could not start TLS: tell the server's administrator.",
    Category.auth_failed: "Check the copier's username and password for {endpoint}.",
    Category.unrecognised_refusal: "fleet does not recognise these words and claims no cause: "
    "read the server's reply; if it names a list, a policy or a vendor, look it up there, "
    "otherwise ask the administrator of {host} what the refusal at {stage} means.",
    Category.protocol_error: "Read the reply text; if it persists, tell the server's "
    "administrator.",
    Category.temporary_failure: "The server deferred (4xx): run the site again later; if it "
    "persists, read the reply text.",
}


# A 4xx in words of refusal ("421 4.7.0 Not allowed") is a refusal dressed as a deferral.
_REFUSAL_WORDS_RE = re.compile(
    r"not allowed|not permitted|denied|refused|rejected|blocked|prohibited|forbidden",
    re.IGNORECASE,
)


_LATER_RE = re.compile(r"later|temporar|try again|retry", re.IGNORECASE)


def _fallback_category(stage: Stage, reply: Reply) -> Category:
    code = reply.code or 0
    if 400 <= code <= 499:
        refusal = _REFUSAL_WORDS_RE.search(reply.text) and not _LATER_RE.search(reply.text)
        return Category.unrecognised_refusal if refusal else Category.temporary_failure
    if not 500 <= code <= 599:
        return Category.protocol_error
    if stage is Stage.starttls:
        return Category.tls_failure
    if stage is Stage.auth and (code == 535 or reply.enhanced == "5.7.8"):
        return Category.auth_failed
    return Category.unrecognised_refusal


@dataclass(frozen=True)
class Classification:
    category: Category
    finding: str
    remediation: str
    rule: RuleId | None = None


def _render(template: Remedy, context: Context, fields: dict[str, str]) -> str:
    if not isinstance(template, str):
        key = "authenticated" if context.authenticated else "unauthenticated"
        template = template[key]
    return template.format_map(fields)


# Real refusals say what they mean in a few hundred characters; a server that sends
# megabytes gets its words read this far (the whole reply is still kept and shown).
CLASSIFY_CHARS = 4096


def classify_reply(stage: Stage, reply: Reply, context: Context) -> Classification:
    """Category, finding and remediation for a negative reply at a stage."""
    said = reply.text[:CLASSIFY_CHARS]
    text = unwrapped(said)
    for rule in RULES:
        if rule.matches(stage, reply, context.provider, text):
            fields = context.fields(said)
            return Classification(
                rule.category,
                _render(rule.finding, context, fields),
                _render(rule.remediation, context, fields),
                rule.id,
            )
    category = _fallback_category(stage, reply)
    said = " ".join(reply.text.split())
    fields = {
        **context.fields(reply.text[:CLASSIFY_CHARS]),
        "stage": stage.value,
        "code": str(reply.code or "no valid code"),
        "said": said if len(said) <= 200 else said[:199] + "\N{HORIZONTAL ELLIPSIS}",
    }
    return Classification(
        category,
        _FALLBACK_FINDING[category].format_map(fields),
        _FALLBACK_REMEDY[category].format_map(fields),
        None,
    )


# ---- OAuth (XOAUTH2) refusals -------------------------------------------------------------

SEND_AS_APP = "SMTP.SendAsApp"


def classify_oauth_refusal(
    reply: Reply,
    context: Context,
    *,
    roles: tuple[str, ...] | None,
    client_id: str | None,
    tenant_id: str | None,
) -> Classification | None:
    """A refused XOAUTH2 login with a token fleet fetched itself. Exchange Online answers
    `535 5.7.3 Authentication unsuccessful` whatever is missing; what the token carries
    (its app roles) tells a missing SMTP.SendAsApp apart from an app Exchange does not know.
    None: the general rules say it better."""
    text = unwrapped(reply.text)
    mailbox = context.username or "the mailbox"
    if reply.enhanced == "5.7.139" and re.search(r"SmtpClientAuthentication is disabled", text):
        scope = "Tenant" if re.search(r"for the Tenant", text, re.IGNORECASE) else "Mailbox"
        return Classification(
            Category.auth_disabled,
            f"SMTP AUTH is disabled for the {scope.lower()}: XOAUTH2 needs it enabled too",
            (
                f"Enable SMTP AUTH for {mailbox} only: Set-CASMailbox -Identity {mailbox} "
                "-SmtpClientAuthenticationDisabled $false (OAuth logins need it as well; Basic "
                "AUTH stays off by the tenant's own policy)."
                if scope == "Mailbox"
                else "SMTP AUTH is off for the whole tenant: enable it for this mailbox only "
                f"(Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false), "
                "which overrides the tenant setting; OAuth logins need it as well."
            ),
            RuleId.oauth_smtp_auth_disabled,
        )
    if context.provider == "google" or reply.enhanced == "5.7.8":
        return Classification(
            Category.auth_failed,
            f"Google refused the OAuth token for {mailbox}",
            "Check the service account's domain-wide delegation (Admin console > Security > "
            "API controls > Domain-wide delegation): its client ID needs the scope "
            "https://mail.google.com/, and the username must be a mailbox of the domain.",
            RuleId.oauth_google_refused,
        )
    if reply.code != 535 or reply.enhanced not in ("5.7.3", None):
        return None  # e.g. 5.7.139 for a policy: the general rules know those words
    if roles is not None and SEND_AS_APP not in roles:
        return Classification(
            Category.auth_failed,
            f"the token carries no {SEND_AS_APP} permission, so Exchange refuses it for {mailbox}",
            f"In the app registration {client_id}: API permissions > Add a permission > APIs my "
            "organization uses > Office 365 Exchange Online > Application permissions > "
            f"{SEND_AS_APP}, then 'Grant admin consent' for tenant {tenant_id}.",
            RuleId.oauth_send_as_app_missing,
        )
    return Classification(
        Category.auth_failed,
        f"Exchange Online refused the app's token for {mailbox}: the app's service principal "
        "is not registered in Exchange, or has no permission on this mailbox",
        "In Exchange Online PowerShell: Connect-ExchangeOnline -Organization "
        f"{tenant_id}; New-ServicePrincipal -AppId {client_id} -ObjectId <the Object ID of "
        "the app's Enterprise application, not of its App registration>; Add-MailboxPermission "
        f"-Identity {mailbox} -User <that Object ID> -AccessRights FullAccess. Changes can take "
        "up to 30 minutes to apply.",
        RuleId.oauth_service_principal,
    )


# ---- fleet's own decisions: no server reply, the probe decided ------------------------------

# RuleId -> (category, finding, remediation); a remediation may have variants (see `own`).
_OWN: dict[RuleId, tuple[Category, str, Remedy]] = {
    RuleId.tls_ca_file: (
        Category.tls_failure,
        "{detail}",
        "Fix the device's ca_file ({ca_file}): it must be a PEM file of the CA that signed the "
        "server's certificate.",
    ),
    RuleId.tls_not_offered: (
        Category.tls_failure,
        "the server does not offer STARTTLS",
        "{endpoint} does not offer STARTTLS: set the copier to the security the server offers, "
        "or use a host that supports TLS.",
    ),
    RuleId.fleet_no_password_without_verified_tls: (
        Category.tls_required,
        "fleet did not send the password: {why}",
        "Use STARTTLS or implicit TLS with a certificate the copier verifies: a password sent "
        "without verified TLS can be read or stolen on the way.",
    ),
    RuleId.smtp_auth_not_offered: (
        Category.auth_disabled,
        "the server offers {offered}: no mechanism this login can use",
        {
            "password": "{endpoint} offers {offered}: password (Basic) AUTH is not available "
            "here; use OAuth (XOAUTH2) if the copier supports it, or the provider's submission "
            "host.",
            "oauth": "{endpoint} does not offer XOAUTH2: use a password mechanism or another host.",
        },
    ),
    RuleId.fleet_secret_unreadable: (
        Category.auth_failed,
        "could not read the secret: {detail}",
        "Provide {secret} on the machine that sweeps.",
    ),
    RuleId.fleet_auth_interrupted: (
        Category.timeout,
        "the login attempt was cut off before the server answered",
        "Give the site more time (timeouts.site_s) and run it again.",
    ),
}


def own(rule: RuleId, variant: str | None = None, **fields: str) -> Classification:
    """A decision the probe made itself (it sent nothing the server could refuse)."""
    category, finding, remedy = _OWN[rule]
    if not isinstance(remedy, str):
        remedy = remedy[variant or next(iter(remedy))]
    return Classification(category, finding.format_map(fields), remedy.format_map(fields), rule)


def not_retried(prior: Classification, where: str) -> Classification:
    """A login that already failed this sweep is not tried again (it could lock the mailbox)."""
    return Classification(
        prior.category,
        prior.finding,
        prior.remediation
        + f" (Not retried here: this login already failed this sweep at {where}.)",
        prior.rule,
    )


# What to do about a fault (no reply): by its rule where it has one, else by its category.
_FAULT_REMEDY_BY_RULE: dict[RuleId, Remedy] = {
    RuleId.tls_version: {
        "capped": "The copier speaks TLS {tls_max} at most, and {host} needs newer: update the "
        "copier's firmware, or relay through a local relay that accepts old TLS.",
        "uncapped": "{endpoint} speaks only TLS versions that fleet (like current copier "
        "firmware) refuses as insecure, TLS 1.0 or 1.1: upgrade the server to TLS 1.2 or newer, "
        "or point the copier at a server that has it.",
    },
    RuleId.tls_not_tls: {
        "implicit": "{endpoint} answered in plain text, not TLS: set the copier's security to "
        "STARTTLS on this port, or use the port that offers implicit TLS (usually 465).",
        "starttls": "{endpoint} accepted STARTTLS but did not speak TLS: a broken server, or a "
        "firewall that inspects SMTP (ESMTP inspection, 'SMTP fixup') and mangles STARTTLS on "
        "the way. Check the site's firewall first, then tell the server's administrator.",
    },
    RuleId.tls_certificate: "The certificate of {host} is not trusted ({detail}): fix the "
    "server's certificate, or give the device the CA it should trust (ca_file).",
}

_FAULT_REMEDY_BY_CATEGORY: dict[Category, str] = {
    Category.timeout: "{endpoint} did not answer in time: check that the site's firewall or ISP "
    "does not block port {port} (many ISPs block 25), and that the host is right.",
    Category.unreachable: "{endpoint} cannot be reached from the site: check the host name, the "
    "port, and the site's firewall.",
    Category.egress_unreachable: "fleet could not reach the site's egress: check the SOCKS5 "
    "proxy or tunnel, or the bind address. This says nothing about the mail server yet.",
    Category.resolver_failure: "fleet's resolver could not look up the mail host: check "
    "`defaults.dns.nameservers` and that they answer from here. This says nothing about "
    "{endpoint} yet.",
    Category.tls_failure: "The TLS handshake with {endpoint} failed: see the detail; update the "
    "copier's firmware or certificates, or fix the server's certificate.",
    Category.protocol_error: "{endpoint} broke the SMTP conversation: if it persists, tell the "
    "server's administrator or use another host.",
}


def fault_remedy(
    fault: Fault, *, host: str, port: int, tls_max: str | None, implicit_tls: bool
) -> str:
    """What a technician does about a fault the network (not the server's words) showed."""
    fields = {
        "host": host,
        "port": str(port),
        "endpoint": f"{host}:{port}",
        "tls_max": tls_max or "",
        "detail": fault.detail,
    }
    template: Remedy | None = (
        _FAULT_REMEDY_BY_RULE.get(fault.rule) if isinstance(fault.rule, RuleId) else None
    )
    if isinstance(template, Mapping):
        if fault.rule is RuleId.tls_version:
            template = template["capped" if tls_max is not None else "uncapped"]
        else:
            template = template["implicit" if implicit_tls else "starttls"]
    if template is None:
        template = _FAULT_REMEDY_BY_CATEGORY.get(
            fault.category, _FAULT_REMEDY_BY_CATEGORY[Category.protocol_error]
        )
    return template.format_map(fields)


# ---- exceptions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What a network exception means: how the stage ended, and in which category."""

    status: StageStatus
    category: Category
    detail: str
    reply: Reply | None = None
    rule: RuleId | None = None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        # `raise ... from None` means the context is not part of the story
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return seen


_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.EADDRNOTAVAIL: "the source address is not available on this machine",
}


def classify_exception(stage: Stage, exc: BaseException) -> Fault:
    """The one place that maps exceptions to categories. Timeouts are checked first:
    aiosmtplib's SMTPConnectTimeoutError is both a timeout and a connect error."""
    if isinstance(exc, EgressError):  # the egress already said what happened
        return Fault(StageStatus.error, exc.category, exc.detail)
    chain = _chain(exc)
    if any(isinstance(e, TimeoutError | asyncio.TimeoutError | ProbeTimeout) for e in chain):
        return Fault(StageStatus.error, Category.timeout, _timeout_detail(stage, exc))
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return Fault(
                StageStatus.error,
                Category.tls_failure,
                "certificate not trusted: "
                + clean_text(str(_ssl_attr(e, "verify_message") or _ssl_attr(e, "reason") or e)),
                rule=RuleId.tls_certificate,
            )
    for e in chain:
        if isinstance(e, ssl.SSLError):
            rule, detail = _ssl_detail(e)
            return Fault(StageStatus.error, Category.tls_failure, detail, rule=rule)
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code < 0:
        return Fault(
            StageStatus.error,
            Category.protocol_error,
            f"malformed reply: {clean_text(exc.message)[:300]}",
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reply = make_reply(exc.code, exc.message)
        return Fault(StageStatus.failed, Category.protocol_error, "", reply)
    for e in chain:
        if isinstance(e, socket.gaierror):
            if e.errno in (socket.EAI_AGAIN, socket.EAI_FAIL):  # the resolver, not the name
                return Fault(
                    StageStatus.error,
                    Category.resolver_failure,
                    f"name lookup failed: {e.strerror}",
                )
            return Fault(
                StageStatus.error, Category.unreachable, f"host name does not resolve: {e.strerror}"
            )
    for e in chain:
        if isinstance(e, OSError) and e.errno in _UNREACHABLE_ERRNOS:
            what = _UNREACHABLE_ERRNOS[e.errno]
            category = Category.unreachable
            if e.errno == errno.ECONNRESET and stage in (Stage.tls, Stage.starttls):
                return Fault(
                    StageStatus.error,
                    Category.tls_failure,
                    "connection reset during the TLS handshake",
                )
            if stage not in (Stage.connect, Stage.banner) and e.errno == errno.ECONNRESET:
                category = Category.protocol_error
            return Fault(StageStatus.error, category, what)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError | EOFError):
        if stage in (Stage.tls, Stage.starttls):
            return Fault(
                StageStatus.error,
                Category.tls_failure,
                "connection closed during the TLS handshake",
            )
        if stage is Stage.banner:
            return Fault(
                StageStatus.error, Category.unreachable, "connection closed before the greeting"
            )
        return Fault(
            StageStatus.error,
            Category.protocol_error,
            f"the server closed the connection at {stage.value}",
        )
    if isinstance(exc, aiosmtplib.SMTPException | UnicodeError | ValueError | OSError):
        return Fault(
            StageStatus.error,
            Category.protocol_error,
            clean_text(str(exc))[:300] or type(exc).__name__,
        )
    return Fault(
        StageStatus.error,
        Category.protocol_error,
        f"{type(exc).__name__}: {clean_text(str(exc))[:300]}",
    )


def _timeout_detail(stage: Stage, exc: BaseException) -> str:
    if isinstance(exc, ProbeTimeout) and str(exc):
        return str(exc)
    if stage is Stage.connect:
        return "no answer to the connection attempt (a firewall dropping port traffic?)"
    if stage is Stage.banner:
        return "connected, but the server sent no complete greeting in time"
    if stage in (Stage.tls, Stage.starttls):
        return "the TLS handshake did not finish in time"
    return f"no complete reply to {stage.value} in time"


def _ssl_detail(exc: ssl.SSLError) -> tuple[RuleId, str]:
    """(rule, detail) for a TLS failure that is not a certificate problem."""
    # OpenSSL names reasons in capitals with underscores ("WRONG_VERSION_NUMBER").
    why = _ssl_attr(exc, "reason")
    reason = f"{why or ''} {exc}".lower().replace("_", " ")
    said = clean_text(str(why or exc))[:300]
    if any(w in reason for w in ("wrong version number", "record layer failure", "packet length")):
        return RuleId.tls_not_tls, "the server did not answer with TLS (plaintext or garbage?)"
    if any(
        w in reason for w in ("unsupported protocol", "protocol version", "no protocols available")
    ):
        return RuleId.tls_version, f"no TLS version in common with the server ({said})"
    if "handshake failure" in reason or "no shared cipher" in reason:
        return RuleId.tls_cipher, f"TLS handshake failed: no cipher in common ({said})"
    return RuleId.tls_error, f"TLS error: {said}"


def _ssl_attr(exc: ssl.SSLError, name: str) -> object:
    """`reason` and `verify_message` are set by OpenSSL's errors, not by an SSLError that
    Python code raised itself."""
    return getattr(exc, name, None)
