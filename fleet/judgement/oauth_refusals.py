"""A refused XOAUTH2 login with a token fleet fetched itself, or no token to log in with."""

from __future__ import annotations

import re

from fleet.judgement.context import Context
from fleet.judgement.evidence import unwrapped
from fleet.judgement.replies import Classification
from fleet.judgement.rule_ids import OAUTH_TOKEN_RULES, RuleId
from fleet.oauth import TokenFailure
from fleet.results import Category, Reply

SEND_AS_APP = "SMTP.SendAsApp"


def classify_token_failure(failure: TokenFailure, source: str) -> Classification:
    """No XOAUTH2 token could be had from `source` (the provider, described): nothing was
    sent to the SMTP server; the provider's reason decides the rule."""
    return Classification(
        Category.auth_failed,
        f"no OAuth token from {source}: {failure.finding}",
        failure.remediation,
        OAUTH_TOKEN_RULES[failure.reason],
    )


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
    disabled = _smtp_auth_disabled(reply, context)
    if disabled is not None:
        return disabled
    mailbox = context.username or "the mailbox"
    # Gmail refuses in 5.7.8; so may other servers: an Entra app's token (it names a
    # tenant) refused in 5.7.8 is read below, with its roles, not blamed on Google.
    if context.provider == "google" or (reply.enhanced == "5.7.8" and tenant_id is None):
        return Classification(
            Category.auth_failed,
            f"Google refused the OAuth token for {mailbox}",
            "Check the service account's domain-wide delegation (Admin console > Security > "
            "API controls > Domain-wide delegation): its client ID needs the scope "
            "https://mail.google.com/, and the username must be a mailbox of the domain.",
            RuleId.oauth_google_refused,
        )
    if reply.code != 535 or reply.enhanced not in ("5.7.3", "5.7.8", None):
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


def classify_given_token_refusal(
    reply: Reply, context: Context, source: str
) -> Classification | None:
    """A refused XOAUTH2 login with a token given to fleet (provider: token, from `source`):
    the server refused that token, whatever its 535 says about passwords. None: the
    general rules say it better (a temporary failure, a policy)."""
    disabled = _smtp_auth_disabled(reply, context)
    if disabled is not None:
        return disabled
    if reply.code != 535:
        return None
    mailbox = context.username or "the mailbox"
    return Classification(
        Category.auth_failed,
        f"the server refused the OAuth token from {source} for {mailbox}",
        f"fleet sends the token in {source} as it is: check that it was issued for {mailbox} "
        "and for SMTP (Microsoft: audience https://outlook.office365.com with SMTP.SendAsApp "
        "or SMTP.Send; Google: scope https://mail.google.com/), and that it has not expired "
        "or been revoked; or let fleet fetch its own: oauth2 provider microsoft or google.",
        RuleId.oauth_given_refused,
    )


def _smtp_auth_disabled(reply: Reply, context: Context) -> Classification | None:
    """Exchange's 5.7.139: SMTP AUTH is off for the mailbox or tenant, OAuth logins too."""
    text = unwrapped(reply.text)
    if reply.enhanced != "5.7.139" or not re.search(r"SmtpClientAuthentication is disabled", text):
        return None
    mailbox = context.username or "the mailbox"
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
