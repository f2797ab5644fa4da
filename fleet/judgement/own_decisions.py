"""Fleet's own decisions (the probe decided, no server reply) and what to do about a network
fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fleet.judgement.replies import Classification
from fleet.judgement.rule import Remedy
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

if TYPE_CHECKING:
    from fleet.judgement.faults import Fault


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


# A timeout once the server accepted the connection: the port is open (no firewall advice);
# the server stopped answering at a stage.
_TIMEOUT_AFTER_CONNECT = {
    "greeting_465": "{endpoint} accepted the connection but sent no greeting: port 465 expects "
    "implicit TLS, a TLS handshake before any SMTP. Set the copier's security to SSL/TLS "
    "(`security: tls`), not STARTTLS or none.",
    "greeting": "{endpoint} accepted the connection but did not answer in time with a "
    "greeting: the server is overloaded or broken, or it expects implicit TLS first (then set "
    "the copier's security to SSL/TLS, `security: tls`). Try again later; if it persists, "
    "tell the server's administrator.",
    "stage": "{endpoint} accepted the connection but did not answer in time at {stage}: an "
    "overloaded or deliberately slow (tarpitting) server. Try again later (or give the site "
    "more time: timeouts.site_s); if it persists, tell the server's administrator.",
}


def _timeout_after_connect(stage: Stage, port: int, implicit_tls: bool) -> str:
    if stage is Stage.banner and not implicit_tls:
        return _TIMEOUT_AFTER_CONNECT["greeting_465" if port == 465 else "greeting"]
    return _TIMEOUT_AFTER_CONNECT["stage"]


def fault_remedy(
    fault: Fault,
    *,
    host: str,
    port: int,
    tls_max: str | None,
    implicit_tls: bool,
    stage: Stage | None = None,
) -> str:
    """What a technician does about a fault the network (not the server's words) showed
    (at `stage`, when the caller knows it: a timeout after the connect is no firewall)."""
    fields = {
        "host": host,
        "port": str(port),
        "endpoint": f"{host}:{port}",
        "tls_max": tls_max or "",
        "detail": fault.detail,
        "stage": stage.value if stage is not None else "",
    }
    if fault.category is Category.timeout and stage not in (None, Stage.connect):
        return _timeout_after_connect(stage, port, implicit_tls).format_map(fields)
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
