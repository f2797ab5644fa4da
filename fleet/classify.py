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
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import aiosmtplib

from fleet.credentials import REDACTED
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
    if re.search(r"spamhaus", text, re.IGNORECASE):
        return "Spamhaus"
    return None


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

    def fields(self, reply_text: str) -> dict[str, str]:
        listed_by = blocklist_named(reply_text)
        return {
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
    host = host.lower()
    joined = "\n".join(texts)
    if host.endswith(("outlook.com", "office365.com", ".mx.microsoft", "outlook.cn")) or (
        "Microsoft ESMTP" in joined or "protection.outlook.com" in joined
    ):
        return "microsoft"
    if host.endswith(("gmail.com", "google.com", "googlemail.com")) or "gsmtp" in joined:
        return "google"
    return "other"


# ---- the rules --------------------------------------------------------------------------

Remedy = str | Mapping[str, str]  # one text, or by "unauthenticated" / "authenticated"


@dataclass(frozen=True)
class Rule:
    id: str
    category: Category
    finding: str
    remediation: Remedy
    enhanced: tuple[str, ...] = ()  # exact codes, or ranges "5.7.606-5.7.649"
    text: str | None = None  # a key phrase (regex, case-insensitive)
    code_class: str | None = None  # "4" or "5": only replies of that class
    stages: tuple[Stage, ...] = ()
    providers: tuple[str, ...] = ()  # only for these services (see `provider_of`)
    _text_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.text is not None:
            object.__setattr__(self, "_text_re", re.compile(self.text, re.IGNORECASE))

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
        return not (self._text_re is not None and not self._text_re.search(text))


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

_TENANT_BLOCK_LIST_FIX = (
    "Your own tenant blocks this recipient in its Tenant Allow/Block List (5.7.703): the "
    "Microsoft 365 admin removes the entry (Microsoft Defender portal, Tenant Allow/Block "
    "Lists), or the copier sends to another recipient."
)

_AUTH_ALTERNATIVES = (
    "OAuth (XOAUTH2) if the copier supports it, a connector relay from a clean static IP, "
    "Microsoft 365 High Volume Email, or an SMTP relay service"
)

RULES: tuple[Rule, ...] = (
    # -- IP reputation ------------------------------------------------------------------
    Rule(
        "m365.banned_sending_ip",
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
        "m365.banned_sender_ip",
        Category.ip_reputation,
        "Microsoft 365 refuses mail from {ip} as a banned sender",
        "Site IP {ip} is banned by Microsoft (5.7.511): e-mail delist@microsoft.com with the "
        "rejection text and the IP; until then relay through a clean static IP.",
        enhanced=("5.7.511",),
    ),
    Rule(
        "m365.customer_block_list",
        Category.ip_reputation,
        "the recipient's tenant blocks {ip} with its own block list",
        "The recipient organisation blocks {ip} on its own list (5.7.513): ask its admin to "
        "remove the IP from their Tenant Allow/Block List or connection filter.",
        enhanced=("5.7.513",),
    ),
    Rule(
        "m365.low_reputation_ip",
        Category.ip_reputation,
        "Microsoft 365 does not accept traffic from {ip} (low-reputation range)",
        "Microsoft refuses {ip} (5.7.708, typical of trial tenants on new IPs): contact "
        "Microsoft support for an exception, or send through a reputable relay.",
        enhanced=("5.7.708",),
    ),
    Rule(
        "outlook.network_block",
        Category.ip_reputation,
        "Outlook.com blocks the network {ip} belongs to",
        "Outlook.com blocks the ISP's range that {ip} is in: send through the ISP's relay or a "
        "reputable relay service instead of directly.",
        text=r"part of their network is on our block ?list",
    ),
    Rule(
        # Not reputation: the address is fine, its DNS is missing. (As ip_reputation it would
        # read as a dirty IP on Direct Send, with delisting advice that cannot help.)
        "ipv6.no_ptr",
        Category.sender_rejected,
        "the receiver requires a reverse DNS name for the sending IPv6 address",
        "Add a PTR record for the site's IPv6 address, or send over IPv4.",
        enhanced=("5.7.25",),
    ),
    Rule(
        "google.low_reputation_ip",
        Category.ip_reputation,
        "Google rates {ip} as a sender of very low reputation",
        "Google refuses mail from {ip} for its very low reputation: find what sends spam from "
        "that IP and stop it; meanwhile send through authenticated submission on {submission} "
        "or a relay with a clean IP.",
        text=r"low reputation of the sending IP",
    ),
    Rule(
        "google.unsolicited_rate",
        Category.ip_reputation,
        "Google sees an unusual rate of unsolicited mail from {ip}",
        "Google refuses mail from {ip} for its reputation (unsolicited mail): find the machine "
        "sending spam behind that IP and stop it; meanwhile send through authenticated "
        "submission on {submission} or a relay with a clean IP.",
        text=r"unusual rate of unsolicited mail|UnsolicitedRateLimitError",
    ),
    Rule(
        "google.not_authorized_direct",
        Category.ip_reputation,
        "Google does not accept mail sent directly from {ip} (a dynamic or residential range)",
        _IP_REPUTATION_FIX,
        text=r"not authorized to send email directly|NotAuthorizedError",
    ),
    # Before the DNSBL phrases: a "Tenant Allow Block List" blocks recipients, not the IP.
    Rule(
        "m365.tenant_block_list",
        Category.recipient_rejected,
        "the sending tenant's Tenant Allow/Block List blocks the recipient",
        _TENANT_BLOCK_LIST_FIX,
        enhanced=("5.7.703",),
    ),
    Rule(
        "m365.tenant_block_list_text",
        Category.recipient_rejected,
        "the sending tenant's Tenant Allow/Block List blocks the recipient",
        _TENANT_BLOCK_LIST_FIX,
        text=r"Tenant Allow ?/? ?Block List",
    ),
    Rule(
        "dnsbl.blocked_using",
        Category.ip_reputation,
        "the server rejects {ip} because it is listed on {list}",
        _IP_REPUTATION_FIX,
        text=r"blocked using|spamhaus|listed (at|on|in) |\bRBL\b|\bDNSBL\b|black ?list|"
        r"(?<!allow )(?<!allow/)block ?list",
        code_class="5",
    ),
    # -- TLS ------------------------------------------------------------------------------
    Rule(
        "m365.tls_legacy",
        Category.tls_failure,
        "Microsoft 365 refuses TLS 1.0 and 1.1",
        "The server needs TLS 1.2 or newer: update the copier's firmware; until then relay "
        "through a local relay that speaks old TLS (smtp-legacy.office365.com only while the "
        "tenant allows legacy TLS).",
        enhanced=("4.7.66",),
    ),
    Rule(
        "tls.must_starttls_first",
        Category.tls_required,
        "the server requires STARTTLS before this command",
        "Set the copier's security to STARTTLS (port {port}); the server refuses to go on "
        "without encryption.",
        text=r"STARTTLS (command )?first|Must issue a STARTTLS|TLS required|encryption required",
    ),
    Rule(
        "tls.not_available",
        Category.tls_failure,
        "the server offered STARTTLS but could not start TLS",
        "The server's TLS is broken (it advertised STARTTLS and then refused it): tell the "
        "mail server's administrator; the copier cannot send securely until it is fixed.",
        stages=(Stage.starttls,),
        code_class="4",
    ),
    # -- authentication -----------------------------------------------------------------
    Rule(
        "m365.smtp_auth_disabled_tenant",
        Category.auth_disabled,
        "SMTP AUTH is turned off for this Microsoft 365 tenant or mailbox",
        "SMTP AUTH is disabled (5.7.139): enable it for {mailbox} only "
        "(Set-CASMailbox -SmtpClientAuthenticationDisabled $false), knowing Basic AUTH is "
        "being retired; better: " + _AUTH_ALTERNATIVES + ".",
        enhanced=("5.7.139",),
        text=r"SmtpClientAuthentication is disabled|smtp_auth_disabled",
    ),
    Rule(
        "m365.security_defaults",
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
        "m365.conditional_access",
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
        "m365.federated_sts",
        Category.auth_failed,
        "the tenant's federated sign-in service could not be reached",
        "The domain signs in through a federation service (ADFS) that Microsoft could not "
        "reach over TLS 1.2: fix the federation endpoint, or use a cloud-only mailbox.",
        enhanced=("5.7.139",),
        text=r"federated STS",
    ),
    Rule(
        "m365.bad_credentials",
        Category.auth_failed,
        "Microsoft 365 rejected the password for {mailbox}",
        "The password for {mailbox} is wrong or expired: update it on the copier and in "
        "fleet's secret store (one attempt per sweep, so the mailbox is not locked out).",
        enhanced=("5.7.139",),
        text=r"credentials were incorrect",
    ),
    Rule(
        "m365.basic_auth_retired",
        Category.auth_disabled,
        "Microsoft 365 no longer accepts Basic (password) authentication for SMTP",
        "Basic AUTH for SMTP is retired for this tenant (5.7.30): move the copier to "
        + _AUTH_ALTERNATIVES
        + ".",
        enhanced=("5.7.30",),
    ),
    Rule(
        "m365.auth_unsuccessful",
        Category.auth_failed,
        "Microsoft 365 refused the login for {mailbox}",
        "Login refused (535 5.7.3): check the password, that SMTP AUTH is enabled for "
        "{mailbox} (Get-CASMailbox | fl SmtpClientAuthenticationDisabled), and that MFA or "
        "Conditional Access do not block it.",
        enhanced=("5.7.3",),
        code_class="5",
    ),
    Rule(
        "google.app_password_required",
        Category.auth_disabled,
        "Google requires an App Password or OAuth for this account",
        "Google refuses plain account passwords: create an App Password (needs 2-Step "
        "Verification) for {mailbox}, or use OAuth (XOAUTH2).",
        enhanced=("5.7.9",),
    ),
    Rule(
        "google.bad_credentials",
        Category.auth_failed,
        "Google rejected the username or password for {mailbox}",
        "Google rejected the login: use an App Password for {mailbox} (ordinary passwords "
        "are refused) or OAuth (XOAUTH2).",
        text=r"Username and Password not accepted|BadCredentials",
    ),
    Rule(
        "m365.client_not_authenticated",
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
        "smtp.auth_required",
        Category.auth_required,
        "the server only accepts mail after a login",
        "{endpoint} requires authentication: configure a mailbox and password (or OAuth) on "
        "the copier, or use a host that accepts unauthenticated mail for your domain.",
        text=r"authentication required|not authenticated|must authenticate|WantAuthError",
    ),
    Rule(
        "smtp.auth_failed",
        Category.auth_failed,
        "the server rejected the login for {mailbox}",
        "The server rejected the credentials of {mailbox}: check the username and password.",
        text=r"authentication (failed|unsuccessful|credentials invalid)|incorrect authentication|"
        r"invalid credentials(?! for relay)",
        stages=(Stage.auth,),
    ),
    Rule(
        "smtp.auth_not_enabled",
        Category.auth_disabled,
        "the server does not offer SMTP AUTH here",
        "{endpoint} does not offer a login: use the provider's submission host ({submission}) "
        "for authenticated mail, or remove the login from the copier.",
        text=r"authentication not enabled|not supported|unrecognized authentication|"
        r"mechanism",
        stages=(Stage.auth,),
    ),
    # -- sender -----------------------------------------------------------------------------
    Rule(
        "m365.send_as_denied",
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The login mailbox may not send as {sender}: set the copier's From to {mailbox}, or "
        "grant {mailbox} Send As on {sender}, or use a connector relay.",
        enhanced=("5.7.60", "5.2.252"),
    ),
    Rule(
        "m365.send_as_denied_text",
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The login mailbox may not send as {sender}: set the copier's From to {mailbox}, or "
        "grant {mailbox} Send As on {sender}, or use a connector relay.",
        text=r"SendAsDenied|permissions to send as this sender",
    ),
    Rule(
        "m365.restricted_sender",
        Category.sender_rejected,
        "the sending mailbox is blocked for sending spam",
        "{mailbox} is on Microsoft's restricted users list (5.1.8): secure the account (reset "
        "the password, check for compromise), then release it in the Defender portal.",
        enhanced=("5.1.8",),
    ),
    Rule(
        "m365.banned_account",
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
        "m365.banned_sender_domain",
        Category.sender_rejected,
        "Microsoft has banned a domain this sender uses",
        "Microsoft bans a domain of this conversation (5.7.800: the EHLO name, or the domain of "
        "{sender} in MAIL FROM or From): make sure the copier's EHLO name and sender are in "
        "your own domain, then contact Microsoft support.",
        enhanced=("5.7.800",),
    ),
    Rule(
        "m365.tenant_threshold",
        Category.sender_rejected,
        "the tenant is blocked from sending (it sent too much spam)",
        "The whole tenant is blocked (5.7.705): find the compromised account or connector, "
        "fix it, then contact Microsoft support.",
        enhanced=("5.7.705",),
    ),
    Rule(
        "m365.unregistered_domain",
        Category.sender_rejected,
        "the sender's domain is not an accepted domain of the tenant",
        "Add and verify the sender's domain in Microsoft 365 (5.7.750), or send from an "
        "address in an accepted domain.",
        enhanced=("5.7.750",),
    ),
    Rule(
        "ipv6.needs_spf_or_dkim",
        Category.sender_rejected,
        "mail sent over IPv6 must pass SPF or DKIM, and this did not",
        "Mail sent over IPv6 must pass SPF or DKIM (4.7.26) and a copier does not sign with "
        "DKIM: add the site's IPv6 address (ip6:) to the SPF record of {sender}'s domain, or "
        "send over IPv4.",
        enhanced=("4.7.26",),
    ),
    Rule(
        "sender.authentication",
        Category.sender_rejected,
        "the receiver rejects the sender for SPF, DKIM or DMARC",
        "The sender domain's SPF/DKIM/DMARC does not authorise this source: add ip4:{ip} to "
        "the SPF record of {sender}'s domain, or send through an authorised relay.",
        enhanced=("5.7.23", "5.7.509", "5.7.515", "5.7.26"),
    ),
    Rule(
        "smtp.sender_rejected",
        Category.sender_rejected,
        "the server rejects the sender address {sender}",
        "The server refuses {sender} as a sender: use an address in a domain the server "
        "accepts mail from (usually the login mailbox or an accepted domain).",
        text=r"sender address rejected|sender (is )?not allowed|sender verify failed",
    ),
    # -- relay and recipient ------------------------------------------------------------
    Rule(
        "m365.reject_direct_send",
        Category.relay_denied,
        "the tenant refuses Direct Send from unauthorised sources",
        "The tenant has RejectDirectSend on (5.7.68): create a partner (inbound) connector "
        "for the site's static IP {ip} or its certificate, or move the copier to "
        "authenticated submission on {submission}.",
        enhanced=("5.7.68",),
    ),
    Rule(
        "m365.reject_direct_send_text",
        Category.relay_denied,
        "the tenant refuses Direct Send from unauthorised sources",
        "The tenant has RejectDirectSend on (5.7.68): create a partner (inbound) connector "
        "for the site's static IP {ip} or its certificate, or move the copier to "
        "authenticated submission on {submission}.",
        text=r"TenantInboundAttribution|Direct Send not allowed",
    ),
    Rule(
        "m365.tenant_attribution",
        Category.relay_denied,
        "no inbound connector matches the site's IP any more",
        "The connector no longer matches (5.7.64 TenantAttribution): update the inbound "
        "connector (and SPF) to the IP the server saw, {ip}; a changed static IP is the usual "
        "cause.",
        enhanced=("5.7.64", "4.4.62"),
    ),
    Rule(
        "m365.tenant_attribution_text",
        Category.relay_denied,
        "no inbound connector matches the site's IP any more",
        "The connector no longer matches (TenantAttribution): update the inbound connector "
        "(and SPF) to the IP the server saw, {ip}.",
        text=r"TenantAttribution|wrong Office 365 region",
    ),
    Rule(
        "ipv6.not_accepted",
        Category.recipient_rejected,
        "the recipient's domain does not accept mail over IPv6",
        "The recipient's domain refuses mail over IPv6 (5.7.510): send over IPv4 (an IPv4 "
        "route from the site to {host}, or IPv6 turned off on the copier).",
        enhanced=("5.7.510",),
    ),
    Rule(
        "m365.dbeb_unknown_recipient",
        Category.recipient_rejected,
        "the recipient does not exist in the tenant",
        "The test recipient is not a known address in Microsoft 365 (Directory-Based Edge "
        "Blocking): fix the recipient address, or check the accepted domain type.",
        enhanced=("5.4.1", "5.7.504"),
        text=r"Recipient address rejected",
    ),
    Rule(
        "m365.relay_access_denied",
        Category.relay_denied,
        "this host does not accept mail for the recipient's domain",
        "{host} does not accept mail for the recipient's domain (5.4.1 Relay Access Denied): "
        "point the copier at the domain's current MX, and check the domain is accepted in "
        "the tenant.",
        enhanced=("5.4.1",),
    ),
    Rule(
        "m365.recipient_not_found",
        Category.recipient_rejected,
        "the recipient address does not exist",
        "The test recipient does not exist: fix the 'to' address in the inventory (and on the "
        "copier's address book).",
        enhanced=("5.1.10",),
    ),
    Rule(
        "google.relay_ip_not_registered",
        Category.relay_denied,
        "Google's SMTP relay does not know {ip} (or this login) as a sender for the domain",
        "Register the site's IP {ip} in the Google Admin console (Apps > Google Workspace > "
        "Gmail > Routing > SMTP relay service), or configure the relay to accept SMTP AUTH "
        "and give the copier a login.",
        text=r"IP not in whitelist|invalid credentials for relay",
    ),
    Rule(
        "m365.unable_to_relay",
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
        "smtp.relay_denied",
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
        text=r"unable to relay|relay(ing)? (access )?(denied|not permitted|not allowed)|"
        r"not permitted to relay",
    ),
    Rule(
        "smtp.unknown_recipient",
        Category.recipient_rejected,
        "the server does not know the recipient",
        "The test recipient is unknown to the server: fix the 'to' address.",
        text=r"user unknown|unknown user|no such user|mailbox unavailable|"
        r"recipient address rejected|does not exist|RecipientNotFound",
    ),
    Rule(
        "m365.message_format",
        Category.message_rejected,
        "the message's From header is not RFC 5322 compliant",
        "Fix the copier's From formatting (angle brackets, quoted display name) (5.7.512).",
        enhanced=("5.7.512",),
    ),
    Rule(
        "m365.mailbox_full",
        Category.message_rejected,
        "the sending mailbox is full",
        "The scanner mailbox's Sent Items filled it: add a retention policy to Sent Items.",
        enhanced=("5.2.2",),
    ),
    # -- throttling -----------------------------------------------------------------------
    Rule(
        "m365.ip_throttled",
        Category.throttled,
        "Microsoft 365 is temporarily limiting mail from {ip}",
        "Microsoft throttles {ip} (its volume changed or it is new): wait; for a relay, "
        "create an inbound connector so the traffic is attributed to the tenant.",
        enhanced=("4.7.500-4.7.699", "4.7.850-4.7.899"),
    ),
    Rule(
        "m365.sender_thread_limit",
        Category.throttled,
        "too many simultaneous connections for one mailbox",
        "More than 3 connections at once for {mailbox}: give each copier its own mailbox, or "
        "send one at a time.",
        enhanced=("4.3.2",),
        text=r"thread limit|concurrent",
    ),
    Rule(
        "m365.ipv6_range_limit",
        Category.throttled,
        "Microsoft 365 limits how much mail the site's IPv6 range may send",
        "The site's IPv6 range sent more than Microsoft permits (5.7.508): slow down (fewer "
        "devices or messages at once) and try again later, or send over IPv4.",
        text=r"exceeded permitted limits",
    ),
    Rule(
        "google.relay_peak_limit",
        Category.throttled,
        "the Workspace customer is over Google's SMTP relay peak limit",
        "Google's SMTP relay takes no more mail for this Workspace customer for now (4.2.1 "
        "peak limit): the copier should retry later; if it recurs, spread the sending over "
        "time and find what else sends through the relay.",
        text=r"Peak SMTP relay limit",
    ),
    Rule(
        "m365.submission_quota",
        Category.throttled,
        "the mailbox exceeded its daily sending limit",
        "{mailbox} exceeded SMTP AUTH limits (30 messages/min, 10,000 recipients/day): spread "
        "the load or use a relay.",
        text=r"SubmissionQuotaExceeded",
    ),
    Rule(
        "smtp.too_many_recipients",
        Category.throttled,
        "the message has more recipients than the server takes at once",
        "The server takes fewer recipients per message (4.5.3): send the scan to fewer "
        "recipients at once, or to a distribution group.",
        enhanced=("4.5.3",),
    ),
    Rule(
        "smtp.rate_limited",
        Category.throttled,
        "the server is limiting the rate or number of connections",
        "The server is rate-limiting this source: reduce how many devices send at once, or "
        "wait and try again later.",
        text=r"too many|rate limit|throttl|try again later|exceeded|slow down|too much mail",
        code_class="4",
    ),
    # -- protocol -------------------------------------------------------------------------
    Rule(
        "m365.bad_helo",
        Category.protocol_error,
        "the server rejected the EHLO name",
        "The server rejects the EHLO name (5.7.506): set ehlo_name to the copier's own host "
        "name, never the server's.",
        enhanced=("5.7.506",),
    ),
    Rule(
        "smtp.hello_first",
        Category.protocol_error,
        "the server wants EHLO before this command",
        "The server asked for EHLO although fleet sent one (and sends it again after STARTTLS, "
        "as RFC 3207 requires): an SMTP-inspecting firewall between the site and {host}, or "
        "the server, loses the session state; turn off the firewall's SMTP inspection, else "
        "tell the server's administrator.",
        text=r"send (hello|e?helo)( command)? first",
    ),
)


# ---- classification -----------------------------------------------------------------------

# A reply no rule knows: category from the code class and the stage it came at.
_FALLBACK_5XX: dict[Stage, Category] = {
    Stage.banner: Category.unreachable,
    Stage.starttls: Category.tls_failure,
    Stage.auth: Category.auth_failed,
    Stage.mail: Category.sender_rejected,
    Stage.rcpt: Category.recipient_rejected,
    Stage.data: Category.message_rejected,
}

_FALLBACK_FINDING: dict[Category, str] = {
    Category.unreachable: "the server refused service at the greeting",
    Category.tls_failure: "the server refused to start TLS",
    Category.auth_failed: "the server rejected the login",
    Category.sender_rejected: "the server rejected the sender",
    Category.recipient_rejected: "the server rejected the recipient",
    Category.message_rejected: "the server rejected the test message",
    Category.protocol_error: "the server gave an unexpected reply",
    Category.temporary_failure: "the server deferred with a temporary error",
}

_FALLBACK_REMEDY: dict[Category, str] = {
    Category.unreachable: "{endpoint} refuses this site at the greeting: read the reply text; "
    "this is often a block of the site's IP.",
    Category.tls_failure: "{endpoint} could not start TLS: tell the server's administrator.",
    Category.auth_failed: "Check the copier's username and password for {endpoint}.",
    Category.sender_rejected: "Use a sender address that {endpoint} accepts.",
    Category.recipient_rejected: "Check the recipient address and that {endpoint} accepts mail "
    "for its domain.",
    Category.message_rejected: "Read the reply text: the server refused the message itself.",
    Category.protocol_error: "Read the reply text; if it persists, tell the server's "
    "administrator.",
    Category.temporary_failure: "The server deferred (4xx): run the site again later; if it "
    "persists, read the reply text.",
}


@dataclass(frozen=True)
class Classification:
    category: Category
    finding: str
    remediation: str
    rule: str | None = None


def _render(template: Remedy, context: Context, fields: dict[str, str]) -> str:
    if not isinstance(template, str):
        key = "authenticated" if context.authenticated else "unauthenticated"
        template = template[key]
    return template.format_map(fields)


def classify_reply(stage: Stage, reply: Reply, context: Context) -> Classification:
    """Category, finding and remediation for a negative reply at a stage."""
    text = unwrapped(reply.text)
    for rule in RULES:
        if rule.matches(stage, reply, context.provider, text):
            fields = context.fields(reply.text)
            return Classification(
                rule.category,
                _render(rule.finding, context, fields),
                _render(rule.remediation, context, fields),
                rule.id,
            )
    code = reply.code or 0
    if 500 <= code <= 599:
        category = _FALLBACK_5XX.get(stage, Category.protocol_error)
    elif 400 <= code <= 499:
        category = Category.temporary_failure
    else:
        category = Category.protocol_error
    return Classification(
        category,
        _FALLBACK_FINDING[category] + f" ({stage.value}: {code or 'no valid code'})",
        _render(_FALLBACK_REMEDY[category], context, context.fields(reply.text)),
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
            "oauth.smtp_auth_disabled",
        )
    if context.provider == "google" or reply.enhanced == "5.7.8":
        return Classification(
            Category.auth_failed,
            f"Google refused the OAuth token for {mailbox}",
            "Check the service account's domain-wide delegation (Admin console > Security > "
            "API controls > Domain-wide delegation): its client ID needs the scope "
            "https://mail.google.com/, and the username must be a mailbox of the domain.",
            "oauth.google_refused",
        )
    if reply.code != 535 and reply.enhanced not in ("5.7.3", "5.7.139"):
        return None
    if roles is not None and SEND_AS_APP not in roles:
        return Classification(
            Category.auth_failed,
            f"the token carries no {SEND_AS_APP} permission, so Exchange refuses it for {mailbox}",
            f"In the app registration {client_id}: API permissions > Add a permission > APIs my "
            "organization uses > Office 365 Exchange Online > Application permissions > "
            f"{SEND_AS_APP}, then 'Grant admin consent' for tenant {tenant_id}.",
            "oauth.send_as_app_missing",
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
        "oauth.service_principal",
    )


# ---- exceptions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What a network exception means: how the stage ended, and in which category."""

    status: StageStatus
    category: Category
    detail: str
    reply: Reply | None = None
    rule: str | None = None


class EgressError(Exception):
    """The site's egress (SOCKS5 proxy, bind address) failed, or reported the target unreachable."""

    def __init__(self, category: Category, detail: str) -> None:
        super().__init__(detail)
        self.category = category
        self.detail = detail


class ProbeTimeout(Exception):
    """A stage or the site ran out of its time budget."""


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
                rule="tls.certificate",
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


def _ssl_detail(exc: ssl.SSLError) -> tuple[str, str]:
    """(rule, detail) for a TLS failure that is not a certificate problem."""
    # OpenSSL names reasons in capitals with underscores ("WRONG_VERSION_NUMBER").
    why = _ssl_attr(exc, "reason")
    reason = f"{why or ''} {exc}".lower().replace("_", " ")
    said = clean_text(str(why or exc))[:300]
    if any(w in reason for w in ("wrong version number", "record layer failure", "packet length")):
        return "tls.not_tls", "the server did not answer with TLS (plaintext or garbage?)"
    if any(
        w in reason for w in ("unsupported protocol", "protocol version", "no protocols available")
    ):
        return "tls.version", f"no TLS version in common with the server ({said})"
    if "handshake failure" in reason or "no shared cipher" in reason:
        return "tls.cipher", f"TLS handshake failed: no cipher in common ({said})"
    return "tls.error", f"TLS error: {said}"


def _ssl_attr(exc: ssl.SSLError, name: str) -> object:
    """`reason` and `verify_message` are set by OpenSSL's errors, not by an SSLError that
    Python code raised itself."""
    return getattr(exc, name, None)
