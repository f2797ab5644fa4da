"""The reply classifier: real reply texts (from ../shared/docs/domain.md and real servers)
-> category, rule and a remediation a technician can act on; the fallback by code class and
stage; the client IP a server echoes; and the one mapping of exceptions to categories."""

from __future__ import annotations

import errno
import io
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass

import aiosmtplib
import pytest

from fleet.classify import (
    RULES,
    Context,
    RuleId,
    classify_exception,
    classify_reply,
    echoed_client_ip,
    make_reply,
    parse_enhanced,
    unwrapped,
)
from fleet.credentials import ScrubFilter, Secrets
from fleet.errors import EgressError, EgressFailure, ProbeTimeout
from fleet.judgement.replies import _by_one_family, read_text
from fleet.results import Category, Mode, Stage, StageStatus

# ---- who is asking: the contexts a remediation is written for ---------------------------

SITE_IP = "203.0.113.5"

M365_MX = Context(
    mode=Mode.direct_send,
    host="contoso-test.mail.protection.outlook.com",
    port=25,
    authenticated=False,
    ip=SITE_IP,
    sender="scanner@contoso.test",
    provider="microsoft",
)
M365_SUBMISSION = Context(
    mode=Mode.submission,
    host="smtp.office365.com",
    port=587,
    authenticated=True,
    ip=SITE_IP,
    username="scanner@contoso.test",
    sender="frontdesk@contoso.test",
    provider="microsoft",
)
GOOGLE = Context(
    mode=Mode.submission,
    host="smtp.gmail.com",
    port=587,
    authenticated=True,
    ip=SITE_IP,
    username="scanner@northwind.test",
    provider="google",
)
GOOGLE_MX = Context(
    mode=Mode.direct_send,
    host="gmail-smtp-in.l.google.com",
    port=25,
    authenticated=False,
    ip=SITE_IP,
    provider="google",
)
GOOGLE_RELAY = Context(
    mode=Mode.relay, host="smtp-relay.gmail.com", port=25, authenticated=False, ip=SITE_IP
)
POSTFIX = Context(
    mode=Mode.direct_send, host="mx.fabrikam.test", port=25, authenticated=False, ip=SITE_IP
)
POSTFIX_SUBMISSION = Context(
    mode=Mode.submission,
    host="mail.fabrikam.test",
    port=587,
    authenticated=True,
    ip=SITE_IP,
    username="scanner@fabrikam.test",
)
EXIM = POSTFIX
M365_SUBMISSION_NO_LOGIN = Context(
    mode=Mode.submission,
    host="smtp.office365.com",
    port=587,
    authenticated=False,
    provider="microsoft",
)


@dataclass(frozen=True)
class Case:
    id: str
    stage: Stage
    code: int
    text: str  # as aiosmtplib hands it over: the code stripped from every line
    context: Context
    category: Category
    rule: str
    remedy: str  # a key part of the remediation (a regex)
    enhanced: str | None = None


MICROSOFT = [
    Case(
        "m365 5.7.606 banned sending IP",
        Stage.rcpt,
        550,
        "5.7.606 Access denied, banned sending IP [203.0.113.5]. To request removal from this "
        "list please visit https://sender.office.com/ and follow the directions. For more "
        "information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) "
        "[BY2NAM01FT030.eop-nam01.prod.protection.outlook.com]",
        M365_MX,
        Category.ip_reputation,
        "m365.banned_sending_ip",
        r"Site IP 203\.0\.113\.5 is banned by Microsoft .*smtp\.office365\.com:587.*"
        r"https://sender\.office\.com/",
        "5.7.606",
    ),
    Case(
        "m365 5.7.649 end of the banned range",
        Stage.mail,
        550,
        "5.7.649 Access denied, banned sending IP [203.0.113.5].",
        M365_MX,
        Category.ip_reputation,
        "m365.banned_sending_ip",
        r"sender\.office\.com",
        "5.7.649",
    ),
    Case(
        "m365 5.7.511 banned sender",
        Stage.rcpt,
        550,
        "5.7.511 Access denied, banned sender[203.0.113.5]. To request removal from this list "
        "please forward this message to delist@microsoft.com.",
        M365_MX,
        Category.ip_reputation,
        "m365.banned_sender_ip",
        r"delist@microsoft\.com",
        "5.7.511",
    ),
    Case(
        "m365 5.7.513 customer block list",
        Stage.rcpt,
        550,
        "5.7.513 Service unavailable, Client host [203.0.113.5] blocked by fabrikam.com using "
        "Customer Block list (AS16012607)",
        M365_MX,
        Category.ip_reputation,
        "m365.customer_block_list",
        r"recipient organisation blocks 203\.0\.113\.5",
        "5.7.513",
    ),
    Case(
        "m365 5.7.708 traffic not accepted from this IP",
        Stage.rcpt,
        550,
        "5.7.708 Access denied, traffic not accepted from this IP. For more information please "
        "go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230)",
        M365_MX,
        Category.ip_reputation,
        "m365.low_reputation_ip",
        r"Microsoft support",
        "5.7.708",
    ),
    Case(
        "outlook.com consumer network block list",
        Stage.mail,
        550,
        "5.7.1 Unfortunately, messages from [204.11.58.44] weren't sent. Please contact your "
        "Internet service provider since part of their network is on our block list (AS3150). "
        "You can also refer your provider to "
        "http://mail.live.com/mail/troubleshooting.aspx#errors.",
        M365_MX,
        Category.ip_reputation,
        "outlook.network_block",
        r"relay",
        "5.7.1",
    ),
    Case(
        "m365 451 4.7.500 throttling",
        Stage.rcpt,
        451,
        "4.7.500 Access denied, please try again later. (AS1111)",
        M365_MX,
        Category.throttled,
        "m365.ip_throttled",
        r"Microsoft throttles 203\.0\.113\.5.*wait",
        "4.7.500",
    ),
    Case(
        "m365 4.7.850 temporary restriction",
        Stage.rcpt,
        451,
        "4.7.850 Access denied, please try again later.",
        M365_MX,
        Category.throttled,
        "m365.ip_throttled",
        r"wait",
        "4.7.850",
    ),
    Case(
        "m365 432 4.3.2 sender thread limit",
        Stage.data,
        432,
        "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded "
        "[Hostname=AM6PR0502MB3655.eurprd05.prod.outlook.com]",
        M365_SUBMISSION,
        Category.throttled,
        "m365.sender_thread_limit",
        r"More than 3 connections at once for scanner@contoso\.test",
        "4.3.2",
    ),
    Case(
        "m365 5.7.139 disabled for the Tenant",
        Stage.auth,
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
        "[LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]",
        M365_SUBMISSION,
        Category.auth_disabled,
        "m365.smtp_auth_disabled_tenant",
        r"Set-CASMailbox -SmtpClientAuthenticationDisabled \$false.*XOAUTH2",
        "5.7.139",
    ),
    Case(
        "m365 5.7.139 disabled for the Tenant, older text without the URL",
        Stage.auth,
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Tenant. Visit  for more information.",
        M365_SUBMISSION,
        Category.auth_disabled,
        "m365.smtp_auth_disabled_tenant",
        r"scanner@contoso\.test",
        "5.7.139",
    ),
    Case(
        "m365 5.7.139 security defaults",
        Stage.auth,
        535,
        "5.7.139 Authentication unsuccessful, user is locked by your organization's security "
        "defaults policy. Contact your administrator. [LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]",
        M365_SUBMISSION,
        Category.auth_disabled,
        "m365.security_defaults",
        r"Conditional Access policy that excludes this account",
        "5.7.139",
    ),
    Case(
        "m365 5.7.139 did not meet the criteria",
        Stage.auth,
        535,
        "5.7.139 Authentication unsuccessful, the request did not meet the criteria to be "
        "authenticated successfully. Contact your administrator.",
        M365_SUBMISSION,
        Category.auth_disabled,
        "m365.conditional_access",
        r"legacy-auth block",
        "5.7.139",
    ),
    Case(
        "m365 5.7.139 credentials were incorrect",
        Stage.auth,
        535,
        "5.7.139 Authentication unsuccessful, the user credentials were incorrect. "
        "[SN4PR0201CA0065.namprd02.prod.outlook.com]",
        M365_SUBMISSION,
        Category.auth_failed,
        "m365.bad_credentials",
        r"password for scanner@contoso\.test is wrong",
        "5.7.139",
    ),
    Case(
        "m365 5.7.139 federated STS unreachable",
        Stage.auth,
        535,
        "5.7.139 Authentication unsuccessful, federated STS service was unreachable.",
        M365_SUBMISSION,
        Category.auth_failed,
        "m365.federated_sts",
        r"federation",
        "5.7.139",
    ),
    Case(
        "m365 5.7.139 federated STS without HTTPS",
        Stage.auth,
        535,
        "5.7.139 Authentication unsuccessful, the federated STS URL does not support HTTPS.",
        M365_SUBMISSION,
        Category.auth_failed,
        "m365.federated_sts",
        r"TLS 1\.2",
        "5.7.139",
    ),
    Case(
        "m365 535 5.7.3 authentication unsuccessful",
        Stage.auth,
        535,
        "5.7.3 Authentication unsuccessful [SN4PR0201CA0065.namprd02.prod.outlook.com]",
        M365_SUBMISSION,
        Category.auth_failed,
        "m365.auth_unsuccessful",
        r"check the password.*SmtpClientAuthenticationDisabled",
        "5.7.3",
    ),
    Case(
        "m365 550 5.7.30 basic auth not supported",
        Stage.auth,
        550,
        "5.7.30 Basic authentication is not supported for Client Submission.",
        M365_SUBMISSION,
        Category.auth_disabled,
        "m365.basic_auth_retired",
        r"OAuth \(XOAUTH2\)",
        "5.7.30",
    ),
    Case(
        "m365 530 5.7.57 not authenticated (device without a login)",
        Stage.mail,
        530,
        "5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM "
        "[AM6PR0502CA0057.eurprd05.prod.outlook.com]",
        M365_SUBMISSION_NO_LOGIN,
        Category.auth_required,
        "m365.client_not_authenticated",
        r"smtp\.office365\.com:587 requires a login .*tenant's MX for Direct Send",
        "5.7.57",
    ),
    Case(
        "m365 530 5.7.57 'SMTP;' variant, device with a login",
        Stage.mail,
        530,
        "5.7.57 SMTP; Client was not authenticated to send anonymous mail during MAIL FROM "
        "[AM6PR0502CA0057.eurprd05.prod.outlook.com]",
        M365_SUBMISSION,
        Category.auth_required,
        "m365.client_not_authenticated",
        r"STARTTLS succeeds first",
        "5.7.57",
    ),
    Case(
        "m365 5.7.60 send as denied",
        Stage.mail,
        550,
        "5.7.60 SMTP; Client does not have permissions to send as this sender",
        M365_SUBMISSION,
        Category.sender_rejected,
        "m365.send_as_denied",
        r"set the copier's From to scanner@contoso\.test.*Send As on frontdesk@contoso\.test",
        "5.7.60",
    ),
    Case(
        "m365 554 5.2.252 SendAsDenied",
        Stage.data,
        554,
        "5.2.252 SendAsDenied; platform@contoso.test not allowed to send as "
        "system@contoso.test; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
        M365_SUBMISSION,
        Category.sender_rejected,
        "m365.send_as_denied",
        r"Send As",
        "5.2.252",
    ),
    Case(
        "m365 550 5.1.8 bad outbound sender",
        Stage.mail,
        550,
        "5.1.8 Access denied, bad outbound sender",
        M365_SUBMISSION,
        Category.sender_rejected,
        "m365.restricted_sender",
        r"restricted users",
        "5.1.8",
    ),
    Case(
        "m365 5.7.64 TenantAttribution",
        Stage.rcpt,
        550,
        "5.7.64 TenantAttribution; Relay Access Denied "
        "[SN1NAM02FT052.eop-nam02.prod.protection.outlook.com]",
        M365_MX,
        Category.relay_denied,
        "m365.tenant_attribution",
        r"update the inbound connector .* 203\.0\.113\.5",
        "5.7.64",
    ),
    Case(
        "m365 5.7.68 TenantInboundAttribution (RejectDirectSend)",
        Stage.rcpt,
        550,
        "5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from "
        "unauthorized sources",
        M365_MX,
        Category.relay_denied,
        "m365.reject_direct_send",
        r"RejectDirectSend.*connector for the site's static IP 203\.0\.113\.5",
        "5.7.68",
    ),
    Case(
        "m365 550 5.4.1 DBEB recipient address rejected",
        Stage.rcpt,
        550,
        "5.4.1 [nobody@contoso.test]: Recipient address rejected: Access denied "
        "[CY1GCC01FT007.eop-gcc01.prod.protection.outlook.com]",
        M365_MX,
        Category.recipient_rejected,
        "m365.dbeb_unknown_recipient",
        r"Directory-Based Edge Blocking",
        "5.4.1",
    ),
    Case(
        "m365 550 5.4.1 Relay Access Denied (wrong MX / domain not accepted)",
        Stage.rcpt,
        550,
        "5.4.1 Relay Access Denied [BN1NAM02FT010.eop-nam02.prod.protection.outlook.com]",
        M365_MX,
        Category.relay_denied,
        "m365.relay_access_denied",
        r"current MX",
        "5.4.1",
    ),
    Case(
        "m365 550 5.1.10 RecipientNotFound",
        Stage.rcpt,
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.test not found by SMTP "
        "address lookup",
        M365_MX,
        Category.recipient_rejected,
        "m365.recipient_not_found",
        r"does not exist",
        "5.1.10",
    ),
    Case(
        "m365 550 5.7.1 Unable to relay (Direct Send to an outside recipient)",
        Stage.rcpt,
        550,
        "5.7.1 Unable to relay [BY2NAM01FT030.eop-nam01.prod.protection.outlook.com]",
        M365_MX,
        Category.relay_denied,
        "m365.unable_to_relay",
        r"Direct Send only reaches mailboxes hosted in the same tenant.*smtp\.office365\.com:587",
        "5.7.1",
    ),
    Case(
        "m365 421 4.7.66 TLS 1.0 and 1.1",
        Stage.starttls,
        421,
        "4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to "
        "support TLS 1.2. Visit https://aka.ms/smtp_auth_tls",
        M365_SUBMISSION,
        Category.tls_failure,
        "m365.tls_legacy",
        r"TLS 1\.2 or newer.*firmware",
        "4.7.66",
    ),
    Case(
        "m365 421 4.7.66 at AUTH",
        Stage.auth,
        421,
        "4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to "
        "support TLS 1.2. Visit https://aka.ms/smtp_auth_tls",
        M365_SUBMISSION,
        Category.tls_failure,
        "m365.tls_legacy",
        r"firmware",
        "4.7.66",
    ),
    Case(
        "m365 5.7.511 banned sender, the table's text",
        Stage.rcpt,
        550,
        "5.7.511 Access denied, banned sender",
        M365_MX,
        Category.ip_reputation,
        "m365.banned_sender_ip",
        r"delist@microsoft\.com",
        "5.7.511",
    ),
    Case(
        "m365 5.7.501 spam abuse detected (a banned account)",
        Stage.mail,
        550,
        "5.7.501 Access denied, spam abuse detected [AM6PR0502CA0057.eurprd05.prod.outlook.com]",
        M365_SUBMISSION,
        Category.sender_rejected,
        "m365.banned_account",
        r"banned scanner@contoso\.test for sending spam.*reset its password.*Microsoft support",
        "5.7.501",
    ),
    Case(
        "m365 5.7.502 banned sender (an account, not an IP)",
        Stage.mail,
        550,
        "5.7.502 Access denied, banned sender",
        M365_MX,
        Category.sender_rejected,
        "m365.banned_account",
        r"banned the sender scanner@contoso\.test for spam.*reset its credentials.*"
        r"Microsoft support",
        "5.7.502",
    ),
    Case(
        "m365 5.7.503 banned sender",
        Stage.mail,
        550,
        "5.7.503 Access denied, banned sender [SN4PR0201CA0065.namprd02.prod.outlook.com]",
        M365_SUBMISSION,
        Category.sender_rejected,
        "m365.banned_account",
        r"secure the account",
        "5.7.503",
    ),
    Case(
        "m365 5.7.800 banned sender (a banned domain)",
        Stage.mail,
        550,
        "5.7.800 Access denied, banned sender",
        M365_MX,
        Category.sender_rejected,
        "m365.banned_sender_domain",
        r"5\.7\.800: the EHLO name.*scanner@contoso\.test.*Microsoft support",
        "5.7.800",
    ),
    Case(
        "m365 5.7.506 bad HELO",
        Stage.ehlo,
        550,
        "5.7.506 Access Denied, Bad HELO",
        M365_MX,
        Category.helo_rejected,
        "m365.bad_helo",
        r"fully-qualified name, never the server's; then set the same ehlo_name",
        "5.7.506",
    ),
    Case(
        "m365 5.7.508 IPv6 range exceeded permitted limits",
        Stage.rcpt,
        550,
        "5.7.508 Access denied, [2001:db8:7ca6:22::45] has exceeded permitted limits within "
        "2001:db8:7ca6::/48 range",
        M365_MX,
        Category.throttled,
        "m365.ipv6_range_limit",
        r"IPv6 range .*5\.7\.508.*slow down.*IPv4",
        "5.7.508",
    ),
    Case(
        "m365 5.7.510 does not accept email over IPv6",
        Stage.rcpt,
        550,
        "5.7.510 Access denied, [contoso.com] does not accept email over IPv6",
        M365_MX,
        Category.recipient_rejected,
        "ipv6.not_accepted",
        r"send over IPv4",
        "5.7.510",
    ),
    Case(
        "m365 4.7.26 IPv6 must pass SPF or DKIM",
        Stage.data,
        450,
        "4.7.26 Access denied, a message sent over IPv6 [2001:db8:7ca6:22::45] must pass either "
        "SPF or DKIM validation, this message is not signed",
        M365_MX,
        Category.sender_rejected,
        "ipv6.needs_spf_or_dkim",
        r"ip6:.*SPF record of scanner@contoso\.test's domain.*IPv4",
        "4.7.26",
    ),
    Case(
        "m365 5.7.25 IPv6 needs a PTR",
        Stage.rcpt,
        550,
        "5.7.25 Access denied, the sending IPv6 address [2001:db8:7ca6:22::45] must have a "
        "reverse DNS record",
        M365_MX,
        Category.reverse_dns,
        "rdns.missing_ptr_code",
        r"PTR record.*nothing to delist",
        "5.7.25",
    ),
    Case(
        "m365 5.7.703 Tenant Allow Block List (a recipient block, not a DNSBL)",
        Stage.rcpt,
        550,
        "5.7.703 Your message can't be delivered because messages to nobody@fabrikam.test, "
        "other@fabrikam.test are blocked by your organization using Tenant Allow Block List.",
        M365_SUBMISSION,
        Category.recipient_rejected,
        "m365.tenant_block_list",
        r"Tenant Allow/Block List \(5\.7\.703\).*removes the entry",
        "5.7.703",
    ),
    Case(
        "m365 Tenant Allow Block List without an enhanced code",
        Stage.rcpt,
        550,
        "Your message can't be delivered because messages to nobody@fabrikam.test are blocked "
        "by your organization using Tenant Allow Block List.",
        M365_MX,
        Category.recipient_rejected,
        "m365.tenant_block_list_text",
        r"Tenant Allow/Block List",
        None,
    ),
    Case(
        "m365 5.7.705 tenant has exceeded threshold",
        Stage.mail,
        550,
        "5.7.705 Access denied, tenant has exceeded threshold",
        M365_MX,
        Category.sender_rejected,
        "m365.tenant_threshold",
        r"compromised account or connector.*Microsoft support",
        "5.7.705",
    ),
    Case(
        "m365 5.7.750 unregistered domains",
        Stage.mail,
        550,
        "5.7.750 Service unavailable. Client blocked from sending from unregistered domains",
        M365_MX,
        Category.sender_rejected,
        "m365.unregistered_domain",
        r"Add and verify the sender's domain",
        "5.7.750",
    ),
    Case(
        "m365 5.7.750 unregistered domain, the page-title text",
        Stage.mail,
        550,
        "5.7.750 Client blocked from sending from unregistered domain",
        M365_MX,
        Category.sender_rejected,
        "m365.unregistered_domain",
        r"accepted domain",
        "5.7.750",
    ),
    Case(
        "m365 5.7.23 SPF violation",
        Stage.data,
        550,
        "5.7.23 The message was rejected because of Sender Policy Framework violation",
        M365_MX,
        Category.sender_rejected,
        "sender.authentication",
        r"add ip4:203\.0\.113\.5 to the SPF record of scanner@contoso\.test's domain",
        "5.7.23",
    ),
    Case(
        "m365 5.7.509 DMARC reject",
        Stage.data,
        550,
        "5.7.509 Access denied, sending domain [contoso.test] does not pass DMARC verification "
        "and has a DMARC policy of reject.",
        M365_MX,
        Category.sender_rejected,
        "sender.authentication",
        r"SPF/DKIM/DMARC",
        "5.7.509",
    ),
    Case(
        "m365 5.7.515 required authentication level",
        Stage.data,
        550,
        "5.7.515 Access denied, sending domain contoso.test doesn't meet the required "
        "authentication level.",
        M365_MX,
        Category.sender_rejected,
        "sender.authentication",
        r"SPF/DKIM/DMARC",
        "5.7.515",
    ),
    Case(
        "m365 5.7.512 RFC 5322 section 3.6.2",
        Stage.data,
        550,
        "5.7.512 Access denied, message must be RFC 5322 section 3.6.2 compliant",
        M365_SUBMISSION,
        Category.message_rejected,
        "m365.message_format",
        r"From formatting",
        "5.7.512",
    ),
    Case(
        "m365 550 5.7.504 recipient address rejected",
        Stage.rcpt,
        550,
        "5.7.504 [nobody@contoso.test]: Recipient address rejected: Access denied",
        M365_MX,
        Category.recipient_rejected,
        "m365.dbeb_unknown_recipient",
        r"fix the recipient address",
        "5.7.504",
    ),
    Case(
        "m365 550 5.1.10 RecipientNotFound, the table's text",
        Stage.rcpt,
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        M365_MX,
        Category.recipient_rejected,
        "m365.recipient_not_found",
        r"fix the 'to' address",
        "5.1.10",
    ),
    Case(
        "outlook.com 550 5.5.0 mailbox unavailable",
        Stage.rcpt,
        550,
        "5.5.0 Requested action not taken: mailbox unavailable",
        M365_MX,
        Category.recipient_rejected,
        "smtp.unknown_recipient",
        r"fix the 'to' address",
        "5.5.0",
    ),
    Case(
        "m365 4.4.62 wrong Office 365 region",
        Stage.rcpt,
        451,
        "4.4.62 Mail sent to the wrong Office 365 region "
        "[SN1NAM02FT052.eop-nam02.prod.protection.outlook.com]",
        M365_MX,
        Category.relay_denied,
        "m365.tenant_attribution",
        r"update the inbound connector .* 203\.0\.113\.5",
        "4.4.62",
    ),
    Case(
        "m365 452 4.5.3 too many recipients",
        Stage.rcpt,
        452,
        "4.5.3 Too many recipients",
        M365_SUBMISSION,
        Category.throttled,
        "smtp.too_many_recipients",
        r"fewer recipients",
        "4.5.3",
    ),
    Case(
        "m365 554 5.2.0 SubmissionQuotaExceeded",
        Stage.data,
        554,
        "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException "
        "[Hostname=AM6PR0502MB3655.eurprd05.prod.outlook.com]",
        M365_SUBMISSION,
        Category.throttled,
        "m365.submission_quota",
        r"scanner@contoso\.test exceeded SMTP AUTH limits",
        "5.2.0",
    ),
    Case(
        "m365 554 5.2.2 mailbox full",
        Stage.data,
        554,
        "5.2.2 mailbox full; "
        "STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
        M365_SUBMISSION,
        Category.message_rejected,
        "m365.mailbox_full",
        r"retention policy to Sent Items",
        "5.2.2",
    ),
    Case(
        "m365 554 5.2.252 SendAsDenied, the short form",
        Stage.data,
        554,
        "5.2.252 SendAsDenied; platform@contoso.test not allowed to send as system@contoso.test",
        M365_SUBMISSION,
        Category.sender_rejected,
        "m365.send_as_denied",
        r"Send As",
        "5.2.252",
    ),
    Case(
        "m365 5.7.57 older text: client not authenticated to send mail",
        Stage.mail,
        530,
        "5.7.57 Client not authenticated to send mail",
        M365_SUBMISSION_NO_LOGIN,
        Category.auth_required,
        "m365.client_not_authenticated",
        r"requires a login \(5\.7\.57\)",
        "5.7.57",
    ),
    Case(
        "m365 5.7.1 client was not authenticated",
        Stage.mail,
        530,
        "5.7.1 Client was not authenticated",
        M365_MX,
        Category.auth_required,
        "smtp.auth_required",
        r"requires authentication",
        "5.7.1",
    ),
    Case(
        "exchange 503 5.5.2 send hello first",
        Stage.mail,
        503,
        "5.5.2 Send hello first [MN2PR01CA0065.prod.exchangelabs.com]",
        M365_SUBMISSION,
        Category.protocol_error,
        "smtp.hello_first",
        r"RFC 3207.*SMTP inspection",
        "5.5.2",
    ),
    Case(
        "eop 5.7.1 blocked using Spamhaus",
        Stage.rcpt,
        550,
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using Spamhaus. To request "
        "removal from this list see https://www.spamhaus.org/query/ip/203.0.113.5 (AS3130). "
        "[BN8NAM12FT045.eop-nam12.prod.protection.outlook.com]",
        M365_MX,
        Category.ip_reputation,
        "dnsbl.blocked_using",
        r"Site IP 203\.0\.113\.5 is rejected for reputation \(Spamhaus\)",
        "5.7.1",
    ),
]

GOOGLE_CASES = [
    Case(
        "google 535-5.7.8 BadCredentials (multi-line, each line with the code)",
        Stage.auth,
        535,
        "5.7.8 Username and Password not accepted. For more information, go to\n"
        "5.7.8  https://support.google.com/mail/?p=BadCredentials "
        "d2e1a72fcca58-7a1b2c3d4e5f6sm1234567b3a.12 - gsmtp",
        GOOGLE,
        Category.auth_failed,
        "google.bad_credentials",
        r"App Password for scanner@northwind\.test",
        "5.7.8",
    ),
    Case(
        "google 530-5.7.0 Authentication Required",
        Stage.mail,
        530,
        "5.7.0 Authentication Required. For more information, go to\n"
        "5.7.0  https://support.google.com/mail/?p=WantAuthError "
        "a1b2c3d4e5f6-7a1b2c3d4e5f6sm7654321pgb.34 - gsmtp",
        Context(
            mode=Mode.submission,
            host="smtp.gmail.com",
            port=587,
            authenticated=False,
            provider="google",
        ),
        Category.auth_required,
        "smtp.auth_required",
        r"smtp\.gmail\.com:587 requires authentication",
        "5.7.0",
    ),
    Case(
        "google relay 421 4.7.0 IP not in whitelist",
        Stage.rcpt,
        421,
        "4.7.0 IP not in whitelist for RCPT domain, closing connection. "
        "a1b2c3d4e5f6-7a1b2c3d4e5f6sm7654321pgb.34 - gsmtp",
        GOOGLE_RELAY,
        Category.relay_denied,
        "google.relay_ip_not_registered",
        r"Register the site's IP 203\.0\.113\.5 in the Google Admin console",
        "4.7.0",
    ),
    Case(
        "google relay 550 5.7.1 Invalid credentials for relay",
        Stage.mail,
        550,
        "5.7.1 Invalid credentials for relay [203.0.113.5]. The IP address you've registered "
        "in your G Suite SMTP Relay service doesn't match domain of the account this email is "
        "being sent from. - gsmtp",
        GOOGLE_RELAY,
        Category.relay_denied,
        "google.relay_ip_not_registered",
        r"SMTP relay service",
        "5.7.1",
    ),
    Case(
        "google 421 4.7.0 unusual rate of unsolicited mail",
        Stage.mail,
        421,
        "4.7.0 Our system has detected an unusual rate of unsolicited mail originating from "
        "your IP address. To protect our users from spam, mail sent from your IP address has "
        "been temporarily blocked. - gsmtp",
        GOOGLE_MX,
        Category.ip_reputation,
        "google.unsolicited_rate",
        r"Google refuses mail from 203\.0\.113\.5 for its reputation",
        "4.7.0",
    ),
    Case(
        "google 534-5.7.9 Application-specific password required",
        Stage.auth,
        534,
        "5.7.9 Application-specific password required. Learn more at\n"
        "5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
        "d2e1a72fcca58-7a1b2c3d4e5f6sm1234567b3a.12 - gsmtp",
        GOOGLE,
        Category.auth_disabled,
        "google.app_password_required",
        r"App Password \(needs 2-Step Verification\) for scanner@northwind\.test",
        "5.7.9",
    ),
    Case(
        "google relay 421 4.7.0 TLS required for RCPT domain",
        Stage.rcpt,
        421,
        "4.7.0 TLS required for RCPT domain, closing connection. "
        "a1b2c3d4e5f6-7a1b2c3d4e5f6sm7654321pgb.34 - gsmtp",
        GOOGLE_RELAY,
        Category.tls_required,
        "tls.must_starttls_first",
        r"security to STARTTLS \(port 25\)",
        "4.7.0",
    ),
    Case(
        "google relay 450 4.2.1 Peak SMTP relay limit",
        Stage.rcpt,
        450,
        "4.2.1 Peak SMTP relay limit exceeded for customer. "
        "a1b2c3d4e5f6-7a1b2c3d4e5f6sm7654321pgb.34 - gsmtp",
        GOOGLE_RELAY,
        Category.throttled,
        "google.relay_peak_limit",
        r"Google's SMTP relay .*retry later",
        "4.2.1",
    ),
    Case(
        "google 421 4.7.28 unusual rate (the newer code), wrapped over lines",
        Stage.mail,
        421,
        "4.7.28 [203.0.113.5] Our system has detected an unusual rate of\n"
        "4.7.28 unsolicited mail originating from your IP address. To protect our\n"
        "4.7.28 users from spam, mail sent from your IP address has been temporarily\n"
        "4.7.28 rate limited. - gsmtp",
        GOOGLE_MX,
        Category.ip_reputation,
        "google.unsolicited_rate",
        r"Google refuses mail from 203\.0\.113\.5 for its reputation",
        "4.7.28",
    ),
    Case(
        "google 550 5.7.1 very low reputation of the sending IP address",
        Stage.data,
        550,
        "5.7.1 [203.0.113.5] Our system has detected that this message is likely suspicious "
        "due to the very low reputation of the sending IP address. To best protect our users "
        "from spam, the message has been blocked. - gsmtp",
        GOOGLE_MX,
        Category.ip_reputation,
        "google.low_reputation_ip",
        r"Google refuses mail from 203\.0\.113\.5 for its very low reputation.*"
        r"smtp\.gmail\.com:587",
        "5.7.1",
    ),
    Case(
        "google 550-5.7.1 not authorized to send email directly",
        Stage.rcpt,
        550,
        "5.7.1 [203.0.113.5] The IP you're using to send mail is not authorized to send email "
        "directly to our servers. Please use the SMTP relay at your service provider instead. "
        "- gsmtp",
        GOOGLE_MX,
        Category.ip_reputation,
        "google.not_authorized_direct",
        r"Site IP 203\.0\.113\.5 .*authenticated submission on smtp\.gmail\.com:587",
        "5.7.1",
    ),
    Case(
        "google 550-5.7.1 not authorized to send email directly, wrapped over lines",
        Stage.rcpt,
        550,
        "5.7.1 [203.0.113.5] The IP you're using to send mail is not authorized to\n"
        "5.7.1 send email directly to our servers. Please use the SMTP relay at your\n"
        "5.7.1 service provider instead. - gsmtp",
        GOOGLE_MX,
        Category.ip_reputation,
        "google.not_authorized_direct",
        r"relay through a clean static IP",
        "5.7.1",
    ),
    Case(
        "google 550-5.7.26 unauthenticated sender (SPF/DKIM)",
        Stage.data,
        550,
        "5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail\n"
        "5.7.26 requires all senders to authenticate with either SPF or DKIM. - gsmtp",
        GOOGLE_MX,
        Category.sender_rejected,
        "sender.authentication",
        r"add ip4:203\.0\.113\.5 to the SPF record",
        "5.7.26",
    ),
]

POSTFIX_AND_EXIM = [
    Case(
        "postfix 554 5.7.1 blocked using zen.spamhaus.org",
        Stage.rcpt,
        554,
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org; "
        "https://www.spamhaus.org/query/ip/203.0.113.5",
        POSTFIX,
        Category.ip_reputation,
        "dnsbl.blocked_using",
        r"Site IP 203\.0\.113\.5 is rejected for reputation \(zen\.spamhaus\.org\)",
        "5.7.1",
    ),
    Case(
        "postfix 554 5.7.1 blocked at the greeting",
        Stage.banner,
        554,
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org",
        POSTFIX,
        Category.ip_reputation,
        "dnsbl.blocked_using",
        r"zen\.spamhaus\.org",
        "5.7.1",
    ),
    Case(
        "postfix 554 5.7.1 Relay access denied",
        Stage.rcpt,
        554,
        "5.7.1 <someone@example.net>: Relay access denied",
        POSTFIX,
        Category.relay_denied,
        "smtp.relay_denied",
        r"mx\.fabrikam\.test only accepts mail for its own domains",
        "5.7.1",
    ),
    Case(
        "postfix 550 5.1.1 User unknown",
        Stage.rcpt,
        550,
        "5.1.1 <nobody@fabrikam.test>: Recipient address rejected: User unknown in virtual "
        "mailbox table",
        POSTFIX,
        Category.recipient_rejected,
        "smtp.unknown_recipient",
        r"fix the 'to' address",
        "5.1.1",
    ),
    Case(
        "postfix 530 5.7.0 Must issue a STARTTLS command first",
        Stage.mail,
        530,
        "5.7.0 Must issue a STARTTLS command first",
        POSTFIX_SUBMISSION,
        Category.tls_required,
        "tls.must_starttls_first",
        r"security to STARTTLS \(port 587\)",
        "5.7.0",
    ),
    Case(
        "postfix 535 5.7.8 authentication failed",
        Stage.auth,
        535,
        "5.7.8 Error: authentication failed: (reason unavailable)",
        POSTFIX_SUBMISSION,
        Category.auth_failed,
        "smtp.auth_failed",
        r"credentials of scanner@fabrikam\.test",
        "5.7.8",
    ),
    Case(
        "exim 550 relay not permitted",
        Stage.rcpt,
        550,
        "relay not permitted",
        EXIM,
        Category.relay_denied,
        "smtp.relay_denied",
        r"allow relaying from 203\.0\.113\.5",
        None,
    ),
    Case(
        "exim 535 Incorrect authentication data",
        Stage.auth,
        535,
        "Incorrect authentication data",
        POSTFIX_SUBMISSION,
        Category.auth_failed,
        "smtp.auth_failed",
        r"check the username and password",
        None,
    ),
]

CASES = MICROSOFT + GOOGLE_CASES + POSTFIX_AND_EXIM
PLACEHOLDER = re.compile(r"\{[a-z_]*\}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_real_replies_get_their_category_rule_and_remediation(case: Case) -> None:
    reply = make_reply(case.code, case.text)

    decision = classify_reply(case.stage, reply, case.context)

    assert reply.enhanced == case.enhanced
    assert reply.text == case.text
    assert (decision.category, decision.rule) == (case.category, case.rule)
    assert decision.finding
    assert decision.remediation
    assert not PLACEHOLDER.search(decision.finding), decision.finding
    assert not PLACEHOLDER.search(decision.remediation), decision.remediation
    assert re.search(case.remedy, decision.remediation), decision.remediation


def test_the_issue_example_remediation_for_a_spamhaus_listed_direct_send_site() -> None:
    # Given the seed ticket: Direct Send on port 25 rejected at RCPT TO for Spamhaus
    reply = make_reply(
        554,
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org",
    )
    context = Context(
        mode=Mode.direct_send,
        host="contoso-com.mail.protection.outlook.com",
        port=25,
        authenticated=False,
        ip=SITE_IP,
        provider="microsoft",
    )

    decision = classify_reply(Stage.rcpt, reply, context)

    assert decision.remediation.startswith(
        "Site IP 203.0.113.5 is rejected for reputation (zen.spamhaus.org): move this copier "
        "to authenticated submission on smtp.office365.com:587 with STARTTLS, or relay through "
        "a clean static IP"
    )


@pytest.mark.parametrize(
    "text",
    [
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org; "
        "https://www.spamhaus.org/query/ip/203.0.113.5",
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using "
        "b.barracudacentral.org; http://www.barracudanetworks.com/reputation/?pr=1&ip=203.0.113.5",
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using Barracuda "
        "Reputation; http://www.barracudanetworks.com/reputation/?pr=1&ip=203.0.113.5",
        "5.7.1 Client host [203.0.113.5] blocked using bl.spamcop.net; Blocked - see "
        "https://www.spamcop.net/bl.shtml?203.0.113.5",
        "5.7.1 Your IP 203.0.113.5 is listed in a block list",
        "5.7.1 Message rejected: the sending IP is on a Block List",
        "5.7.1 Rejected: 203.0.113.5 is on our blocklist",
        "Rejected because 203.0.113.5 is in a black list at zen.spamhaus.org",
        "5.7.1 Blocked by RBL",
    ],
)
def test_dnsbl_wordings_stay_ip_reputation(text: str) -> None:
    # The "Tenant Allow Block List" fix must not lose any real blocklist rejection
    decision = classify_reply(Stage.rcpt, make_reply(554, text), POSTFIX)

    assert (decision.category, decision.rule) == (Category.ip_reputation, "dnsbl.blocked_using")


@pytest.mark.parametrize(
    "text",
    [
        "5.7.703 Your message can't be delivered because messages to a@fabrikam.test are "
        "blocked by your organization using Tenant Allow/Block List.",
        "Your message can't be delivered because messages to a@fabrikam.test are blocked by "
        "your organization using Tenant Allow/Block Lists.",
        "Your message can't be delivered because messages to a@fabrikam.test are blocked by "
        "your organization using Tenant Allow Block List.",
    ],
)
def test_a_tenant_allow_block_list_is_no_ip_blocklist(text: str) -> None:
    # An admin's block of a recipient: calling it IP reputation would raise a false
    # DIRECT_SEND_DIRTY_IP for a site whose IP is fine
    decision = classify_reply(Stage.rcpt, make_reply(550, text), M365_MX)

    assert decision.category is Category.recipient_rejected
    assert decision.rule in {"m365.tenant_block_list", "m365.tenant_block_list_text"}
    assert "Tenant Allow/Block List" in decision.remediation


def test_ip_reputation_with_a_login_does_not_suggest_logging_in() -> None:
    reply = make_reply(554, "5.7.1 Client host [203.0.113.5] blocked using bl.spamcop.net")

    decision = classify_reply(Stage.rcpt, reply, POSTFIX_SUBMISSION)

    assert decision.category is Category.ip_reputation
    assert "even with a login" in decision.remediation
    assert "bl.spamcop.net" in decision.remediation


def test_unable_to_relay_from_another_server_does_not_talk_about_direct_send() -> None:
    decision = classify_reply(Stage.rcpt, make_reply(550, "5.7.1 Unable to relay"), POSTFIX)

    assert decision.rule == "smtp.relay_denied"
    assert "Direct Send" not in decision.remediation


@pytest.mark.parametrize(
    "context",
    [M365_MX, M365_SUBMISSION, GOOGLE, GOOGLE_RELAY, POSTFIX, Context(Mode.relay, "h", 25, True)],
    ids=["m365-mx", "m365-submission", "google", "google-relay", "postfix", "bare"],
)
def test_every_rule_renders_without_leftover_placeholders(context: Context) -> None:
    # Given every template of every rule (both the with-login and the without-login text)
    for rule in RULES:
        remedies = (
            [rule.remediation] if isinstance(rule.remediation, str) else rule.remediation.values()
        )
        for template in [rule.finding, *remedies]:
            # When it is filled in with the fewest facts known (no IP, no username)
            text = template.format_map(context.fields("5.7.1 no list named here"))

            # Then nothing is left for a technician to puzzle over
            assert text, rule.id
            assert not PLACEHOLDER.search(text), rule.id


def test_rule_ids_are_unique() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))


# ---- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.7.606 Access denied, banned sending IP [40.107.5.7].", "5.7.606"),
        ("Access denied, banned sending IP [40.107.5.7]", None),
        ("[40.107.5.7] 5.7.1 is not at the start", None),
        ("Hello [2.5.7.9]", None),
        ("5.7.5.7 is listed at bl.example", None),  # an IP at the line start is no code
        ("2.0.0 SMTP server ready", "2.0.0"),
        ("5.7.57 SMTP; Client was not authenticated", "5.7.57"),
        ("4.7.500 Access denied, please try again later. (AS1111)", "4.7.500"),
        ("5.7.139 Authentication unsuccessful", "5.7.139"),
        ("5.2.252 SendAsDenied; a not allowed to send as b", "5.2.252"),
        ("5.7.8 Username and Password not accepted.\n5.7.8  https://x", "5.7.8"),
        ("first line without\n5.7.1 second line with", "5.7.1"),
        ("5.7.1: colon after the code", "5.7.1"),
        ("5.7.1", "5.7.1"),
        ("3.7.1 not a valid class", None),
        ("250 5.7.1 reply code left in the text", None),
        ("", None),
    ],
)
def test_parse_enhanced(text: str, expected: str | None) -> None:
    assert parse_enhanced(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "5.7.1 not authorized to\n5.7.1 send email directly",
            "5.7.1 not authorized to send email directly",
        ),
        ("one\r\n  two", "one two"),
        ("listed:\n5.7.5.7 is an IP, not a code", "listed: 5.7.5.7 is an IP, not a code"),
        ("single line", "single line"),
    ],
)
def test_key_phrases_are_searched_in_the_lines_joined_back(text: str, expected: str) -> None:
    assert unwrapped(text) == expected


def test_a_bracketed_ip_never_reads_as_an_enhanced_code() -> None:
    reply = make_reply(550, "Access denied, banned sending IP [40.107.5.7]")

    assert reply.enhanced is None


def test_reply_text_is_made_valid_unicode() -> None:
    reply = make_reply(550, "bad \udcff byte\x00")

    assert reply.text == "bad \ufffd byte\ufffd"
    reply.model_dump_json()


def test_a_secret_the_conversation_sent_is_blanked_from_reply_text() -> None:
    reply = make_reply(
        535,
        "5.7.8 bad password s3cret-canary-classify for scanner",
        secrets=("s3cret-canary-classify",),
    )

    assert "s3cret-canary-classify" not in reply.text
    assert "****" in reply.text


def test_every_secret_the_sweep_read_is_blanked_from_log_text() -> None:
    secrets = Secrets()
    secrets.add("s3cret-canary-logline")
    secrets.add("another-canary-secret")

    assert secrets.scrub("x s3cret-canary-logline y another-canary-secret") == "x **** y ****"


def test_a_logged_traceback_is_scrubbed_too() -> None:
    secrets = Secrets()
    secrets.add("s3cret-canary-traceback")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubFilter(secrets))
    logger = logging.getLogger("fleet.test.scrub")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("login failed for s3cret-canary-traceback")
        except ValueError:
            logger.exception("while sweeping %s", "site-1")
        logger.error("stack", stack_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "while sweeping site-1" in text
    assert "ValueError: login failed for ****" in text  # the traceback is still there
    assert "s3cret-canary-traceback" not in text


# ---- the fallback: code class and stage ----------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "code", "category"),
    [
        # a 5xx with words fleet does not know claims nothing it cannot prove (#16)
        (Stage.rcpt, 550, Category.unrecognised_refusal),
        (Stage.mail, 553, Category.unrecognised_refusal),
        (Stage.auth, 535, Category.auth_failed),
        (Stage.auth, 554, Category.unrecognised_refusal),
        (Stage.starttls, 554, Category.tls_failure),
        (Stage.data, 554, Category.unrecognised_refusal),
        (Stage.banner, 554, Category.unrecognised_refusal),
        (Stage.ehlo, 550, Category.unrecognised_refusal),
        (Stage.banner, 421, Category.temporary_failure),
        (Stage.rcpt, 452, Category.temporary_failure),
        (Stage.auth, 454, Category.temporary_failure),
        (Stage.mail, 421, Category.temporary_failure),
        (Stage.rcpt, 299, Category.protocol_error),
        (Stage.rcpt, 999, Category.protocol_error),
        (Stage.mail, None, Category.protocol_error),
    ],
)
def test_unknown_replies_fall_back_by_code_class_and_stage(
    stage: Stage, code: int | None, category: Category
) -> None:
    text = "9.9.9 Kumquat policy says no (xyzzy) [mx7.example]"
    reply = make_reply(code, text)

    decision = classify_reply(stage, reply, POSTFIX)

    assert decision.category is category
    assert decision.rule is None
    assert reply.text == text  # the raw text is kept for the technician
    assert stage.value in decision.finding
    assert decision.remediation
    assert not PLACEHOLDER.search(decision.remediation)


# ---- the client IP a server echoes --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ip"),
    [
        (
            "MN2PR01CA0065.outlook.office365.com Hello [203.0.113.5]\nSIZE 157286400\nSTARTTLS",
            "203.0.113.5",
        ),
        ("BL2NAM06FT004.mail.protection.outlook.com Hello [121.74.10.20]", "121.74.10.20"),
        (
            "VE1EUR01FT034.mail.protection.outlook.com Hello [2401:4900:a052:31f0::5]",
            "2401:4900:a052:31f0::5",
        ),
        ("smtp.gmail.com at your service, [45.124.48.90]\nSIZE 35882577", "45.124.48.90"),
        ("mx.example.net Hello copier.local [198.51.100.7]\nSIZE 52428800", "198.51.100.7"),
        (
            "5.7.1 Service unavailable; Client host [192.0.2.44] blocked using zen.spamhaus.org",
            "192.0.2.44",
        ),
        ("5.7.606 Access denied, banned sending IP [185.234.72.45].", "185.234.72.45"),
        ("lab-mx.test\nPIPELINING\nSTARTTLS", None),  # Postfix's EHLO never shows it
        ("mx.example.net Hello [not-an-ip]", None),
        ("2.1.0 Sender OK", None),
    ],
)
def test_echoed_client_ip(text: str, ip: str | None) -> None:
    assert echoed_client_ip(text) == ip


def test_echoed_ipv6_is_normalised() -> None:
    assert echoed_client_ip("host Hello [2001:DB8:0:0::1]") == "2001:db8::1"


# ---- exceptions: the one place they become categories --------------------------------------


def test_smtp_connect_timeout_is_a_timeout_not_a_connect_error() -> None:
    exc = aiosmtplib.SMTPConnectTimeoutError("Timed out connecting to mx.example on port 25")
    assert isinstance(exc, aiosmtplib.SMTPConnectError)  # why the order matters

    fault = classify_exception(Stage.connect, exc)

    assert (fault.status, fault.category) == (StageStatus.error, Category.timeout)


@pytest.mark.parametrize(
    ("stage", "exc"),
    [
        (Stage.connect, TimeoutError()),
        (Stage.banner, aiosmtplib.SMTPTimeoutError("Timed out")),
        (Stage.rcpt, aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response")),
        (Stage.auth, ProbeTimeout("the site's time budget (site_s) ran out")),
        (
            Stage.connect,
            EgressError(
                EgressFailure.no_connection_from_site, "SOCKS5 proxy did not connect in time"
            ),
        ),
    ],
)
def test_timeouts(stage: Stage, exc: BaseException) -> None:
    fault = classify_exception(stage, exc)

    assert fault.category is Category.timeout
    assert fault.detail


def test_a_timeout_wrapped_in_another_error_is_still_a_timeout() -> None:
    try:
        try:
            raise TimeoutError
        except TimeoutError as inner:
            raise aiosmtplib.SMTPServerDisconnected("gone") from inner
    except aiosmtplib.SMTPServerDisconnected as outer:
        fault = classify_exception(Stage.mail, outer)

    assert fault.category is Category.timeout


@pytest.mark.parametrize(
    ("exc", "category", "words"),
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            Category.unreachable,
            "connection refused",
        ),
        (OSError(errno.EHOSTUNREACH, "No route to host"), Category.unreachable, "no route"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), Category.unreachable, "network"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            Category.unreachable,
            "does not resolve",
        ),
        (
            socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
            Category.resolver_failure,
            "name lookup failed",
        ),
        (
            EgressError(EgressFailure.proxy_unreachable, "SOCKS5 proxy down"),
            Category.egress_unreachable,
            "SOCKS5",
        ),
    ],
)
def test_unreachable(exc: BaseException, category: Category, words: str) -> None:
    fault = classify_exception(Stage.connect, exc)

    assert fault.category is category
    assert words in fault.detail


def _verify_error(message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_message = message
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    return exc


@pytest.mark.parametrize(
    "message", ["certificate has expired", "self-signed certificate", "Hostname mismatch"]
)
def test_certificate_verification_errors(message: str) -> None:
    wrapped = aiosmtplib.SMTPConnectError("TLS failed")
    wrapped.__cause__ = _verify_error(message)

    for exc in (_verify_error(message), wrapped):
        fault = classify_exception(Stage.tls, exc)

        assert (fault.category, fault.rule) == (Category.tls_failure, "tls.certificate")
        assert message in fault.detail


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        ("WRONG_VERSION_NUMBER", "tls.not_tls"),  # a plaintext (or garbage) answer to TLS
        ("RECORD_LAYER_FAILURE", "tls.not_tls"),
        ("UNSUPPORTED_PROTOCOL", "tls.version"),
        ("TLSV1_ALERT_PROTOCOL_VERSION", "tls.version"),
        ("SSLV3_ALERT_HANDSHAKE_FAILURE", "tls.cipher"),
        ("SOMETHING_ELSE", "tls.error"),
    ],
)
def test_tls_errors(reason: str, rule: str) -> None:
    exc = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower().replace('_', ' ')} (_ssl.c:1006)")
    exc.reason = reason

    fault = classify_exception(Stage.tls, exc)

    assert (fault.category, fault.rule) == (Category.tls_failure, rule)


def test_a_negative_smtp_reply_becomes_a_reply_to_classify() -> None:
    exc = aiosmtplib.SMTPResponseException(550, "5.7.606 Access denied, banned sending IP [x]")

    fault = classify_exception(Stage.rcpt, exc)

    assert fault.status is StageStatus.failed
    assert fault.reply is not None
    assert (fault.reply.code, fault.reply.enhanced) == (550, "5.7.606")


def test_a_malformed_reply_is_a_protocol_error() -> None:
    exc = aiosmtplib.SMTPResponseException(-1, "Malformed SMTP response line: hello there")

    fault = classify_exception(Stage.ehlo, exc)

    assert (fault.status, fault.category) == (StageStatus.error, Category.protocol_error)
    assert "hello there" in fault.detail


@pytest.mark.parametrize(
    ("stage", "category"),
    [
        (Stage.banner, Category.unreachable),
        (Stage.tls, Category.tls_failure),
        (Stage.starttls, Category.tls_failure),
        (Stage.rcpt, Category.protocol_error),
    ],
)
def test_a_disconnect_means_what_its_stage_says(stage: Stage, category: Category) -> None:
    fault = classify_exception(stage, aiosmtplib.SMTPServerDisconnected("Connection lost"))

    assert fault.category is category


def test_a_reset_after_the_greeting_is_a_protocol_error() -> None:
    reset = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    assert classify_exception(Stage.connect, reset).category is Category.unreachable
    assert classify_exception(Stage.mail, reset).category is Category.protocol_error


# ---- #16: the patterns behind the misses on real servers' words ----------------------------

ISSUE_16 = Context(
    mode=Mode.direct_send,
    host="mx.fabrikam.test",
    port=25,
    authenticated=False,
    ip=SITE_IP,
    sender="scanner@contoso.test",
    ehlo_name="MFP-3F",
)


def _assert_reads(stage: str, code: int, text: str, category: str) -> None:
    """The reply `code text` at `stage` lands in `category` (the rule that decided is shown)."""
    decision = classify_reply(Stage(stage), make_reply(code, text), ISSUE_16)

    assert decision.category is Category(category), decision.rule


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # 1. a domain is listed, not the IP
        (
            Stage.rcpt,
            554,
            "5.7.1 Service unavailable; MailFrom domain is listed in Spamhaus. "
            "To request removal from this list see https://www.spamhaus.org/query/lookup/ (S8002)",
            Category.domain_reputation,
        ),
        (
            Stage.rcpt,
            554,
            "5.7.1 Service unavailable; Helo domain is listed in Spamhaus. To "
            "request removal from this list see https://www.spamhaus.org/query/lookup/ (S8001)",
            Category.domain_reputation,
        ),
        (
            Stage.data,
            554,
            "5.7.1 Rejected: domain example.com present in the Spamhaus DBL",
            Category.domain_reputation,
        ),
        (
            Stage.data,
            550,
            "5.7.1 Message rejected because it contains a URL listed at multi.uribl.com",
            Category.domain_reputation,
        ),
        (Stage.data, 554, "Message contains a link listed in SURBL", Category.domain_reputation),
        # 2. the receiver's own broken blocklist setup
        (
            Stage.rcpt,
            554,
            "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using "
            "zen.spamhaus.org; Error: open resolver; https://www.spamhaus.org/returnc/pub/1.2.3.4",
            Category.receiver_fault,
        ),
        (
            Stage.rcpt,
            554,
            "5.7.1 Client host [203.0.113.5] blocked using zen.spamhaus.org=127.255.255.254",
            Category.receiver_fault,
        ),
        # 3. reverse DNS, at any stage
        (
            Stage.rcpt,
            450,
            "4.7.1 Client host rejected: cannot find your hostname, [203.0.113.5]",
            Category.reverse_dns,
        ),
        (
            Stage.banner,
            554,
            "mx.gmx.net Nemesis ESMTP Service not available No SMTP service "
            "Bad DNS PTR resource record.",
            Category.reverse_dns,
        ),
        (Stage.banner, 550, "Fix reverse DNS for 203.0.113.5", Category.reverse_dns),
        (Stage.mail, 550, "5.7.1 no PTR record found for 203.0.113.5", Category.reverse_dns),
        # 4. the EHLO name
        (
            Stage.rcpt,
            504,
            "5.5.2 <MFP-3F>: Helo command rejected: need fully-qualified hostname",
            Category.helo_rejected,
        ),
        (Stage.ehlo, 550, "Invalid HELO name (See RFC5321 4.1.1.1)", Category.helo_rejected),
        (Stage.ehlo, 501, "HELO/EHLO name not FQDN", Category.helo_rejected),
        # 5. refused at the greeting: by its words
        (
            Stage.banner,
            554,
            "Client host blocked for spamming issues. OU-001 Mail refused",
            Category.ip_reputation,
        ),
        # 6. relay and RCPT without recipient evidence
        (
            Stage.rcpt,
            553,
            "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
            Category.relay_denied,
        ),
        (Stage.rcpt, 550, "Oops, you are trying to use me as a relay!", Category.relay_denied),
        (Stage.rcpt, 550, "relay not permitted", Category.relay_denied),
        (Stage.rcpt, 550, "5.7.1 Access denied", Category.unrecognised_refusal),
        (
            Stage.rcpt,
            550,
            "5.7.1 Recipient rejected, reason unknown",
            Category.unrecognised_refusal,
        ),
        # 7. wording variants of known categories
        (
            Stage.rcpt,
            550,
            "You are not permitted to relay through this server without authentication.",
            Category.auth_required,
        ),
        (Stage.mail, 550, "Unauthenticated senders not allowed", Category.auth_required),
        (Stage.mail, 530, "SMTP authentication is required.", Category.auth_required),
        (Stage.rcpt, 550, "5.7.1 Authentication required for relay", Category.auth_required),
        (Stage.mail, 530, "5.7.0 STARTTLS is required to send mail", Category.tls_required),
        (Stage.mail, 530, "5.7.0 encryption required", Category.tls_required),
        (
            Stage.auth,
            535,
            "5.7.139 Authentication unsuccessful, basic authentication is disabled.",
            Category.auth_disabled,
        ),
        (
            Stage.data,
            451,
            "4.3.0 Temporary server error. Please try again later ATTR5",
            Category.temporary_failure,
        ),
        (Stage.data, 550, "5.4.5 Daily user sending limit exceeded.", Category.throttled),
        # 8. vendor reputation that never says DNSBL, and vendor sender policy
        (
            Stage.rcpt,
            554,
            "Blocked - see https://ipcheck.proofpoint.com/?ip=203.0.113.5",
            Category.ip_reputation,
        ),
        (
            Stage.rcpt,
            554,
            "#5.7.1 Your access to this mail system has been rejected due to "
            "the sending MTA's poor reputation.",
            Category.ip_reputation,
        ),
        (
            Stage.rcpt,
            550,
            "Administrative prohibition - envelope blocked - "
            "https://community.mimecast.com/docs/DOC-1369#550",
            Category.sender_rejected,
        ),
    ],
)
def test_the_patterns_of_issue_16(stage: Stage, code: int, text: str, category: Category) -> None:
    decision = classify_reply(stage, make_reply(code, text), ISSUE_16)

    assert decision.category is category, decision.rule
    assert not PLACEHOLDER.search(decision.finding + decision.remediation)


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        (
            "5.7.1 Service unavailable; Sender address [bob@example.com] blocked using "
            "dbl.spamhaus.org; https://www.spamhaus.org/query/dbl?domain=example.com",
            "example.com",
        ),
        ("5.7.1 Service unavailable; Helo domain is listed in Spamhaus", "MFP-3F"),
        ("5.7.1 MailFrom domain is listed in Spamhaus", "contoso.test"),
        ("5.7.1 Rejected: domain spammy.example present in the Spamhaus DBL", "spammy.example"),
    ],
)
def test_a_domain_listing_names_the_domain_and_no_ip_to_delist(text: str, domain: str) -> None:
    decision = classify_reply(Stage.rcpt, make_reply(554, text), ISSUE_16)

    assert decision.category is Category.domain_reputation
    assert domain in decision.finding + decision.remediation
    assert "no IP to delist" in decision.remediation


def test_a_bare_mention_of_spamhaus_is_no_evidence_about_the_ip() -> None:
    decision = classify_reply(
        Stage.rcpt, make_reply(554, "5.7.1 Rejected due to Spamhaus listing"), ISSUE_16
    )

    assert decision.category is not Category.ip_reputation
    assert "203.0.113.5" in decision.remediation
    assert "contoso.test" in decision.remediation


def test_an_unrecognised_refusal_shows_its_words_and_its_stage() -> None:
    decision = classify_reply(
        Stage.rcpt, make_reply(550, "5.7.1 Kumquat policy KX-77 says no"), ISSUE_16
    )

    assert decision.category is Category.unrecognised_refusal
    assert decision.rule is None
    assert "Kumquat policy KX-77 says no" in decision.finding
    assert "rcpt" in decision.finding
    assert "550" in decision.finding
    assert "claims no cause" in decision.remediation


# Wordings of further receiving systems (Yahoo, Comcast, AT&T, Outlook.com, Mimecast, Cisco,
# qmail, sendmail, Exim, Mail.ru, Yandex, Amazon SES, SendGrid, Barracuda, SpamCop, Spamhaus).
OTHER_SYSTEMS = [
    (
        "rcpt",
        553,
        "5.7.1 [BL21] Connections will not be accepted from 1.2.3.4, because the ip is in Spamhaus's list; see http://postmaster.yahoo.com/errors/550-bl23.html",
        "ip_reputation",
    ),
    (
        "mail",
        553,
        "5.7.2 [TSS09] All messages from 1.2.3.4 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
        "ip_reputation",
    ),
    (
        "banner",
        554,
        "resimta-ch2-18v.sys.comcast.net resimta-ch2-18v.sys.comcast.net 1.2.3.4 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
        "ip_reputation",
    ),
    (
        "banner",
        554,
        "resimta-po-09v.sys.comcast.net Comcast block for spam. Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
        "ip_reputation",
    ),
    (
        "banner",
        553,
        "5.3.0 flpd575 DNSBL:RBL 521< 1.2.3.4 >_is_blocked.For assistance forward this error to abuse_rbl@abuse-att.net",
        "ip_reputation",
    ),
    (
        "rcpt",
        550,
        "SC-001 (SNT004-MC1F43) Unfortunately, messages from 1.2.3.4 weren't sent. Please contact your Internet service provider. You can tell your provider that your IP is on Hotmail's block list",
        "ip_reputation",
    ),
    (
        "rcpt",
        421,
        "RP-001 (BAY0-MC1-F21) Unfortunately, some messages from 1.2.3.4 weren't sent. Please try again. We have limits for how many messages can be sent per hour and per day from a single IP address.",
        "throttled",
    ),
    (
        "rcpt",
        550,
        "DY-001 (SNT004-MC4F21) Unfortunately, messages from 1.2.3.4 weren't sent. Please contact your Internet service provider. You can tell them that Hotmail does not relay dynamically-assigned IP ranges.",
        "ip_reputation",
    ),
    (
        "rcpt",
        451,
        "4.7.650 The mail server [1.2.3.4] has been temporarily rate limited due to IP reputation.",
        "ip_reputation",
    ),
    ("mail", 550, "Rejected by header based Anti-Spoofing policy", "sender_rejected"),
    ("rcpt", 550, "Local CT IP Reputation - (reject)", "ip_reputation"),
    ("rcpt", 550, "5.7.1 Message blocked due to spam content in the message", "message_rejected"),
    ("rcpt", 452, "Too many recipients received this hour", "throttled"),
    (
        "banner",
        421,
        "Too many concurrent SMTP connections from this IP address; please try again later",
        "throttled",
    ),
    (
        "mail",
        553,
        "sorry, mail from your location [1.2.3.4] is administratively denied (#5.7.1)",
        "ip_reputation",
    ),
    ("rcpt", 450, "4.1.8 <x@y>: Sender address rejected: Domain not found", "sender_rejected"),
    (
        "rcpt",
        550,
        "5.1.1 <x@y>: Recipient address rejected: User unknown in local recipient table",
        "recipient_rejected",
    ),
    (
        "rcpt",
        450,
        "4.7.1 Client host rejected: cannot find your reverse hostname, [1.2.3.4]",
        "reverse_dns",
    ),
    ("mail", 452, "4.3.1 Insufficient system storage", "temporary_failure"),
    ("mail", 503, "5.5.1 Error: need MAIL command", "protocol_error"),
    (
        "rcpt",
        550,
        "5.7.1 <x@y>... Relaying denied. IP name possibly forged [1.2.3.4]",
        "reverse_dns",
    ),
    ("rcpt", 554, "5.7.1 Rejected 1.2.3.4 found in dnsbl.sorbs.net", "ip_reputation"),
    (
        "rcpt",
        550,
        "Verification failed for <x@y> Unrouteable address Sender verify failed",
        "sender_rejected",
    ),
    ("mail", 451, "Temporary local problem - please try later", "temporary_failure"),
    ("ehlo", 550, "HELO argument does not match calling host", "helo_rejected"),
    ("data", 451, "qq temporary problem (#4.3.0)", "temporary_failure"),
    ("rcpt", 550, "sorry, no mailbox here by that name. (#5.1.1)", "recipient_rejected"),
    (
        "data",
        550,
        "spam message rejected. Please visit https://help.mail.ru/notspam-support/id?c=xyz",
        "message_rejected",
    ),
    (
        "data",
        554,
        "5.7.1 [2] Message rejected under suspicion of SPAM; https://ya.cc/1IrBc",
        "message_rejected",
    ),
    (
        "rcpt",
        550,
        "5.7.1 Service unavailable, Client host [1.2.3.4] blocked using Spamhaus. To request removal from this list see https://www.spamhaus.org/query/lookup/ (AS3130)",
        "ip_reputation",
    ),
    ("data", 554, "5.6.211 Invalid MIME content", "message_rejected"),
    ("auth", 535, "Authentication Credentials Invalid", "auth_failed"),
    ("mail", 454, "Throttling failure: Maximum sending rate exceeded.", "throttled"),
    (
        "mail",
        550,
        "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved.",
        "sender_rejected",
    ),
    (
        "data",
        421,
        "4.7.0 This message is suspicious due to the nature of the content or the links within. To best protect our users from spam, the message has been blocked.",
        "message_rejected",
    ),
    (
        "data",
        550,
        "5.7.1 Gmail has detected that this message is likely suspicious due to the very low reputation of the sending domain.",
        "domain_reputation",
    ),
    (
        "rcpt",
        550,
        "JunkMail rejected - mx.example [1.2.3.4]:1234 is in an RBL: http://www.barracudanetworks.com/reputation/?pr=1&ip=1.2.3.4",
        "ip_reputation",
    ),
    (
        "rcpt",
        554,
        "5.7.1 Service unavailable; Client host [1.2.3.4] blocked using bl.spamcop.net; Blocked - see https://www.spamcop.net/bl.shtml?1.2.3.4",
        "ip_reputation",
    ),
    (
        "rcpt",
        550,
        "5.7.1 Mail from 1.2.3.4 refused, see http://www.spamhaus.org/query/bl?ip=1.2.3.4",
        "ip_reputation",
    ),
    ("banner", 554, "5.7.1 Your IP address 1.2.3.4 is listed on dnsbl.example", "ip_reputation"),
    (
        "rcpt",
        554,
        "5.7.1 Service unavailable; Sender address [x@spam.example] blocked using dbl.spamhaus.org; https://www.spamhaus.org/query/domain/spam.example",
        "domain_reputation",
    ),
    ("data", 554, "5.7.1 Service unavailable; blocked using dbl.spamhaus.org", "domain_reputation"),
    (
        "rcpt",
        554,
        "5.7.1 Service unavailable; Client host [1.2.3.4] blocked using sbl-xbl.spamhaus.org; Error: open resolver; https://www.spamhaus.org/returnc/pub/172.64.0.1/",
        "receiver_fault",
    ),
    (
        "rcpt",
        550,
        "5.7.1 Client host [1.2.3.4] blocked using zen.spamhaus.org=127.255.255.254",
        "receiver_fault",
    ),
    (
        "data",
        550,
        "5.7.1 Message contains a URL (spam.example) listed on multi.surbl.org",
        "domain_reputation",
    ),
    ("data", 554, "5.7.1 Rejected: URI in message body is listed in URIBL", "domain_reputation"),
]


@pytest.mark.parametrize(("stage", "code", "text", "category"), OTHER_SYSTEMS)
def test_wordings_of_other_systems(stage: str, code: int, text: str, category: str) -> None:
    _assert_reads(stage, code, text, category)


_EVERY_STAGE = (Stage.banner, Stage.ehlo, Stage.auth, Stage.mail, Stage.rcpt, Stage.data)
_ENVELOPE = (Stage.mail, Stage.rcpt, Stage.data)

# Replies a hostile server could send to stall the sweep's event loop, one per family of
# patterns that once needed care (nested repetitions over domain-like text once took minutes
# on 40,000 characters). Each case keeps the stages and the bound it was written with.
_HOSTILE = [
    pytest.param((Stage.rcpt,), "a." * 200_000, 2.0, id="dots"),
    pytest.param((Stage.rcpt,), ("x" * 60 + ".") * 6_600 + " is listed", 2.0, id="long-labels"),
    pytest.param((Stage.rcpt,), "domain " + "a." * 200_000, 2.0, id="domain-dots"),
    # the new vocabularies (judge3)
    pytest.param(
        _ENVELOPE, ("mail from " + "a" * 5_000 + "@" + "b" * 5_000) * 4, 2.0, id="mail-from"
    ),
    pytest.param(_ENVELOPE, ("<" + "x" * 3_000 + "@" + "y" * 3_000) * 4, 2.0, id="rcpt-address"),
    pytest.param(_ENVELOPE, ("a URL " + ". " * 20_000 + " is listed") * 4, 2.0, id="url-dots"),
    pytest.param(
        _ENVELOPE, ("domain " + "d" * 4_000 + " does not match sending IP") * 4, 2.0, id="mismatch"
    ),
    # holdout3's families
    pytest.param((Stage.ehlo,), "invalid " + "w " * 20_000 + "in HELO", 2.0, id="helo-format"),
    pytest.param((Stage.auth,), "account " + "a" * 20_000 + " disabled", 2.0, id="account"),
    pytest.param((Stage.data,), "header " + "h " * 20_000 + "not CRLF terminated", 2.0, id="crlf"),
    pytest.param(
        (Stage.mail,),
        "authentication for " + "the " * 20_000 + "email address",
        2.0,
        id="sender-auth",
    ),
    # the subject rules
    pytest.param(
        (Stage.rcpt,), ("recipient " + "r " * 20_000 + "unknown") * 4, 2.0, id="recipient"
    ),
    pytest.param((Stage.mail,), ("sender " + "s " * 20_000 + "rejected") * 4, 2.0, id="sender"),
    pytest.param((Stage.data,), ("message " + "m " * 20_000 + "rejected") * 4, 2.0, id="message"),
    pytest.param((Stage.rcpt,), ("your ip " + "i " * 20_000 + "blocked") * 4, 2.0, id="client-ip"),
    pytest.param((Stage.rcpt,), ("host " + "h " * 20_000 + "not found") * 4, 2.0, id="domain"),
    # holdout4's families
    pytest.param(_EVERY_STAGE, "recipient " * 40_000, 5.0, id="recipient-words"),
    pytest.param(_EVERY_STAGE, "user " * 40_000 + "and sender", 5.0, id="user"),
    pytest.param(_EVERY_STAGE, "daily message " * 30_000, 5.0, id="daily"),
    pytest.param(_EVERY_STAGE, "number of sessions " * 20_000, 5.0, id="sessions"),
    pytest.param(_EVERY_STAGE, "sender 1.2.3.4 " * 20_000, 5.0, id="sender-ip"),
    pytest.param(_EVERY_STAGE, "domain " * 40_000, 5.0, id="domain-words"),
    pytest.param(_EVERY_STAGE, "exhausted " * 40_000, 5.0, id="exhausted"),
    pytest.param(_EVERY_STAGE, "a:" * 100_000, 5.0, id="colons"),
    # holdout5's families
    pytest.param(_EVERY_STAGE, "max concurrent " * 30_000, 5.0, id="concurrent"),
    pytest.param(_EVERY_STAGE, "too many invalid " * 30_000, 5.0, id="invalid"),
    pytest.param(_EVERY_STAGE, "poor reputation of a " * 20_000, 5.0, id="poor-reputation"),
    pytest.param(_EVERY_STAGE, "not allowed from this " * 20_000, 5.0, id="range"),
    pytest.param(
        _EVERY_STAGE, "Sender ip address rejected: in the last " * 10_000, 5.0, id="sender-ip-limit"
    ),
    # judge7's families: the word families, MAIL FROM as a noun, windows across dots, a
    # library's wrapper, addresses and links masked, other languages
    pytest.param(_EVERY_STAGE, "recipient user mailbox sender " * 10_000, 5.0, id="word-families"),
    pytest.param(_EVERY_STAGE, "mail from " * 20_000, 5.0, id="mail-from-noun"),
    pytest.param(_EVERY_STAGE, "IP " + "a." * 100_000 + " listed", 5.0, id="ip-window-dots"),
    pytest.param(_EVERY_STAGE, "The server response was: " * 10_000, 5.0, id="wrapper"),
    pytest.param(_EVERY_STAGE, "a@" * 100_000, 5.0, id="addresses"),
    pytest.param(_EVERY_STAGE, "http://" + "a" * 200_000, 5.0, id="link"),
    pytest.param(_EVERY_STAGE, "пользователь не " * 20_000, 5.0, id="russian"),
    pytest.param(_EVERY_STAGE, "client host rejected: " * 10_000 + "abuse", 5.0, id="client-host"),
]


@pytest.mark.parametrize(("stages", "text", "limit"), _HOSTILE)
def test_the_rules_stay_linear_on_hostile_replies(
    stages: tuple[Stage, ...], text: str, limit: float
) -> None:
    # (Minutes once; a bound with room for a loaded machine now.)
    began = time.perf_counter()

    for stage in stages:
        decision = classify_reply(stage, make_reply(550, text), ISSUE_16)
        assert decision.category is not None

    assert time.perf_counter() - began < limit


# A reply whose words say nothing: only its status code can speak.
_NO_WORDS = "Requested action not taken"


@pytest.mark.parametrize(
    ("stage", "code", "enhanced", "category", "rule"),
    [
        # X.1.x addressing: the recipient's at DATA, the sender's for X.1.7/X.1.8 anywhere
        ("data", 550, "5.1.1", Category.recipient_rejected, RuleId.status_recipient_address),
        ("data", 550, "5.1.2", Category.recipient_rejected, RuleId.status_recipient_address),
        ("rcpt", 553, "5.1.7", Category.sender_rejected, RuleId.status_sender_address),
        ("data", 501, "5.1.7", Category.sender_rejected, RuleId.status_sender_address),
        # X.2.x mailbox status: disabled or full is the recipient's mailbox
        ("data", 550, "5.2.1", Category.recipient_rejected, RuleId.status_recipient_mailbox),
        ("data", 552, "5.2.2", Category.recipient_rejected, RuleId.status_recipient_mailbox),
        # X.5.x protocol; X.5.3 too many recipients is a limit
        ("rcpt", 550, "5.5.1", Category.protocol_error, RuleId.status_protocol),
        ("data", 554, "5.5.4", Category.protocol_error, RuleId.status_protocol),
        ("rcpt", 550, "5.5.3", Category.throttled, RuleId.status_too_many_recipients),
        # X.6.x media and content
        ("data", 554, "5.6.1", Category.message_rejected, RuleId.status_content),
        ("data", 550, "5.6.11", Category.message_rejected, RuleId.status_content),
        # X.7.x where IANA's registered meaning points at one party
        ("data", 550, "5.7.7", Category.message_rejected, RuleId.status_message_integrity),
        ("data", 550, "5.7.20", Category.sender_rejected, RuleId.status_sender_authentication),
        ("rcpt", 550, "5.7.27", Category.sender_rejected, RuleId.status_sender_authentication),
        ("data", 550, "5.7.17", Category.recipient_rejected, RuleId.status_recipient_owner_changed),
        ("auth", 525, "5.7.13", Category.auth_failed, RuleId.status_login_refused),
        ("banner", 554, "5.3.2", Category.temporary_failure, RuleId.status_receiver_not_accepting),
    ],
)
def test_a_reply_without_words_is_read_by_its_enhanced_status_code(
    stage: str, code: int, enhanced: str, category: Category, rule: RuleId
) -> None:
    decision = classify_reply(Stage(stage), make_reply(code, f"{enhanced} {_NO_WORDS}"), ISSUE_16)

    assert (decision.category, decision.rule) == (category, rule)


@pytest.mark.parametrize(
    ("stage", "code", "enhanced"),
    [
        ("rcpt", 550, "5.7.1"),  # "delivery not authorized": names no cause
        ("data", 554, "5.7.0"),
        ("rcpt", 550, "5.4.4"),  # routing: not the site's fault, not the recipient's either
        ("data", 554, "5.4.6"),
        ("rcpt", 550, "5.5.0"),  # "other protocol status", which servers use for anything
        ("data", 550, "5.3.0"),
        ("rcpt", 550, "5.7.30"),  # Microsoft's Basic AUTH, Google's DKIM: no one meaning
    ],
)
def test_a_status_code_without_one_registered_meaning_claims_no_cause(
    stage: str, code: int, enhanced: str
) -> None:
    decision = classify_reply(Stage(stage), make_reply(code, f"{enhanced} {_NO_WORDS}"), ISSUE_16)

    assert decision.category is Category.unrecognised_refusal, decision.rule
    assert decision.rule is None


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # RFC 5321 500-504 at MAIL/RCPT/DATA: syntax, not implemented, bad sequence
        ("mail", 500, "Command unrecognised", Category.protocol_error),
        ("rcpt", 501, "Bad argument", Category.protocol_error),
        ("data", 503, "Improper use of commands", Category.protocol_error),
        ("rcpt", 504, "Argument not supported", Category.protocol_error),
        # ... but at EHLO a 501 refuses the name, and at STARTTLS no TLS could start
        ("ehlo", 501, "Bad argument", Category.helo_rejected),
        ("starttls", 502, "Not here", Category.tls_failure),
        # 421 is the server closing, whatever its words
        ("rcpt", 421, "Service not available, closing channel", Category.temporary_failure),
        # a 5xx that only says the service is unavailable is the server's state, not a verdict
        ("rcpt", 554, "Service temporarily unavailable", Category.temporary_failure),
        ("banner", 554, "No SMTP service here", Category.unrecognised_refusal),
    ],
)
def test_a_basic_code_decides_only_where_rfc_5321_gives_it_one_meaning(
    stage: str, code: int, text: str, category: Category
) -> None:
    decision = classify_reply(Stage(stage), make_reply(code, text), ISSUE_16)

    assert decision.category is category, decision.rule


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # the missing login is the cause, though the sender address is what was refused
        ("rcpt", 553, "5.7.1 <a@b.test>: Sender address rejected: not logged in", "auth_required"),
        ("mail", 530, "5.7.0 Please authenticate first", "auth_required"),
        # a STARTTLS demand, though it is sent as a bad sequence
        ("mail", 503, "5.5.1 Bad sequence of commands - STARTTLS required", "tls_required"),
        # sender authentication (SPF/DKIM/DMARC) in other words, though the message is blocked
        (
            "data",
            550,
            "5.7.1 Message failed authentication checks and was blocked",
            "sender_rejected",
        ),
        # a header that is DKIM-Signature is still the message's header
        ("data", 554, "Transaction failed: Duplicate header 'DKIM-Signature'", "message_rejected"),
        ("data", 554, "Duplicate Message-ID header", "message_rejected"),
        # the recipient's mailbox size, not the message's
        ("rcpt", 552, "5.2.2 Mailbox quota exceeded", "recipient_rejected"),
        (
            "data",
            552,
            "Requested mail action aborted: exceeded storage allocation",
            "recipient_rejected",
        ),
        ("rcpt", 450, "4.7.3 Organization queue quota exceeded", "throttled"),
        ("mail", 550, "5.4.5 Daily user sending quota exceeded", "throttled"),
        # "rejected by destination domain" names no cause: not a relay refusal
        ("rcpt", 550, "5.4.1 Mail rejected by destination domain", "unrecognised_refusal"),
        ("rcpt", 550, "5.4.1 Relay Access Denied", "relay_denied"),
    ],
)
def test_the_cause_beats_a_strong_generic_keyword(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # recipient states
        ("rcpt", 550, "Recipient mailbox is frozen", "recipient_rejected"),
        ("rcpt", 550, "Account inactive", "recipient_rejected"),
        ("data", 554, "This mailbox has been deactivated", "recipient_rejected"),
        ("rcpt", 550, "User is no longer valid", "recipient_rejected"),
        ("rcpt", 550, "<x@y.test>: address rejected", "recipient_rejected"),
        ("auth", 535, "Your account has been disabled", "auth_failed"),  # a login, not a recipient
        # content
        ("data", 550, "5.7.1 Message rejected due to content restrictions", "message_rejected"),
        ("data", 550, "Message was filtered", "message_rejected"),
        ("data", 554, "Content policy violation", "message_rejected"),
        ("data", 550, "8-bit characters in headers are not allowed", "message_rejected"),
        ("data", 550, "5.7.1 Delivery not authorized, message refused", "unrecognised_refusal"),
        ("ehlo", 550, "8BITMIME", "unrecognised_refusal"),  # an extension's name, not content
        # the sender's domain does not go with the IP
        ("rcpt", 550, "domain example.test does not match sending IP 192.0.2.9", "sender_rejected"),
        (
            "mail",
            553,
            "5.7.1 Mail from a@example.test rejected for policy reasons",
            "sender_rejected",
        ),
        # an IP called bad is about the IP; with no IP named, no IP is blamed
        ("mail", 550, "5.7.1 Rejected: bad IP", "ip_reputation"),
        ("rcpt", 550, "5.7.1 Bad recipient", "recipient_rejected"),
        # MTAs' own wordings (Postfix, Exim, qmail, OpenSMTPD, rspamd)
        (
            "rcpt",
            450,
            "4.7.1 Client host rejected: Improper use of SMTP command pipelining",
            "protocol_error",
        ),
        ("banner", 554, "SMTP synchronization error", "protocol_error"),
        # (a command out of place, like Exim's STARTTLS one: holdout5's label, #16)
        ("auth", 503, "AUTH command used when not advertised", "protocol_error"),
        ("mail", 530, "5.5.1 Invalid command: Must issue an AUTH command first", "auth_required"),
        ("rcpt", 550, "Recipient verification failed", "recipient_rejected"),
        ("mail", 553, "Sender address syntax error", "sender_rejected"),
        ("data", 550, "5.7.1 Rejected due to ratelimit", "throttled"),
        ("data", 554, "5.7.0 Reject, id=1-01 - INFECTED: Eicar-Test-Signature", "message_rejected"),
        ("data", 550, "5.7.1 Blocked by SpamAssassin", "message_rejected"),
        ("mail", 503, "5.5.1 EHLO is required first.", "protocol_error"),
        ("mail", 550, "HELO/EHLO required by SMTP RFC", "protocol_error"),
        ("ehlo", 550, "Invalid EHLO hostname", "helo_rejected"),  # "EHLO", not only "HELO"
        ("rcpt", 550, "Restricted characters in address", "recipient_rejected"),
        ("data", 554, "5.3.0 Error: message file too big", "message_rejected"),
        ("data", 421, "4.4.2 mx.example.test Error: timeout exceeded", "temporary_failure"),
    ],
)
def test_broader_vocabularies_by_what_was_refused(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


# The families #16's third blind set (tests/corpus/holdout3.yaml) showed missing, with the
# other messages of the same families in the MTAs' own source (cited per group), so that an
# unseen text of a known family lands right, not only the texts that were measured.
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # haraka/haraka-plugin-helo.checks index.js: every DENY of the plugin
        ("ehlo", 550, "HELO host name invalid", "helo_rejected"),
        ("ehlo", 550, "That HELO not allowed here", "helo_rejected"),
        ("ehlo", 550, "HELO host does not match rDNS", "helo_rejected"),
        ("ehlo", 550, "HELO IP literal not in the same /24 as your IP address", "helo_rejected"),
        ("ehlo", 550, "Invalid HELO host cannot achieve forward DNS match", "helo_rejected"),
        ("ehlo", 550, "HELO host host_mismatch(a.example.net / b.example.net)", "helo_rejected"),
        (
            "ehlo",
            501,
            "5.5.4 HELO/EHLO argument invalid - HELO hostname contains non-ASCII characters "
            "(RFC 5321 2.3.5), closing connection",
            "helo_rejected",
        ),
        ("mail", 550, "HELO host must be a FQDN or address literal", "helo_rejected"),
        # Postfix smtpd_check.c: a refused name vs the server's own fault behind the same words
        ("ehlo", 450, "4.7.1 <bogus>: Helo command rejected: Host not found", "helo_rejected"),
        (
            "ehlo",
            450,
            "4.3.5 <x>: Helo command rejected: Server configuration problem",
            "temporary_failure",
        ),
        ("rcpt", 451, "4.3.0 <u@example.com>: Temporary lookup failure", "temporary_failure"),
        (
            "ehlo",
            452,
            "4.3.1 Helo command rejected: Insufficient system storage",
            "temporary_failure",
        ),
        # forward-confirmed reverse DNS (Haraka fcrdns, RFC 8601 iprev)
        ("banner", 550, "No FCrDNS for 192.0.2.1", "reverse_dns"),
        ("rcpt", 550, "5.7.1 iprev check failed for 192.0.2.1", "reverse_dns"),
        # the account itself, at AUTH
        ("auth", 535, "5.7.8 Your account has been locked", "auth_failed"),
        ("auth", 535, "Account suspended", "auth_failed"),
        ("auth", 454, "4.7.0 Account is disabled", "auth_failed"),
        # loops and header syntax (Postfix "mail forwarding loop", Exim receive.c)
        ("rcpt", 554, "5.4.6 mail forwarding loop for user@example.com", "message_rejected"),
        ("data", 550, 'Too many "Received" headers - suspected mail loop', "message_rejected"),
        ("data", 554, "5.4.6 Hop count exceeded - possible mail loop", "message_rejected"),
        ("data", 552, "5.6.0 Header field too long", "message_rejected"),
        # TLS demanded in other words; STARTTLS refused as a command (Postfix smtpd.c)
        ("mail", 530, "5.7.0 Encryption needed", "tls_required"),
        ("auth", 538, "5.7.10 Encryption needed", "tls_required"),
        ("mail", 530, "TLS session required", "tls_required"),
        ("starttls", 554, "5.5.1 Error: TLS already active", "protocol_error"),
        ("starttls", 502, "5.5.1 STARTTLS not advertised", "protocol_error"),
        # the login may not use this sender address, whatever the 5.5.x code
        ("mail", 550, "5.5.4 You are not allowed to send as that address", "sender_rejected"),
        ("mail", 553, "5.7.1 Not authorized to send from this address", "sender_rejected"),
        ("rcpt", 553, "5.7.1 Unauthorized use of the From address", "sender_rejected"),
        # RFC 7505 section 4.2: the sender's domain has a null MX; a recipient's is the recipient's
        ("mail", 550, "5.7.27 Sender address has null MX", "sender_rejected"),
        ("rcpt", 556, "5.1.10 Recipient address has null MX", "recipient_rejected"),
    ],
)
def test_the_families_of_holdout3s_misses(stage: str, code: int, text: str, category: str) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("stage", "code", "text", "dirty"),
    [
        ("banner", 421, "Your IP is temporarily blocked, please try again later", True),
        ("banner", 554, "5.7.1 Your IP address has been temporarily blocked", True),
        ("banner", 421, "Temporarily blocked, try again later", False),  # no IP named
    ],
)
def test_a_temporary_block_is_the_ips_only_when_it_says_so(
    stage: str, code: int, text: str, dirty: bool
) -> None:
    decision = classify_reply(Stage(stage), make_reply(code, text), ISSUE_16)

    assert (decision.category is Category.ip_reputation) is dirty, decision.rule


def test_dkim_signing_at_the_receiver_is_its_own_fault_not_the_senders() -> None:
    signing = classify_reply(Stage.data, make_reply(451, "4.3.0 DKIM signing failed"), ISSUE_16)
    verifying = classify_reply(
        Stage.data, make_reply(550, "5.7.1 DKIM signature verification failed"), ISSUE_16
    )

    assert signing.category is Category.temporary_failure
    assert verifying.category is Category.sender_rejected


def test_a_554_greeting_without_a_reason_is_a_refusal_not_a_deferral() -> None:
    # RFC 5321 3.1: 554 instead of 220 means no SMTP service for this client; later in the
    # conversation the same words are the server's own state.
    greeting = classify_reply(Stage.banner, make_reply(554, "SMTP service not available"), ISSUE_16)
    later = classify_reply(Stage.rcpt, make_reply(554, "Service currently unavailable"), ISSUE_16)

    assert greeting.category is Category.unrecognised_refusal
    assert later.category is Category.temporary_failure


# The subject of a refusal (#16, judge4): when the words name no cause fleet knows, the thing
# refused decides: a recipient in a state only a recipient has, a sender, a message at DATA,
# the client's IP. Wordings real servers send, as collected per bounce reason by the sisimai
# project (github.com/sisimai/rb-sisimai at 9c4a1847, lib/sisimai/reason/<file>.rb, cited per
# line); fleet has no rule quoting any of them.
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # userunknown.rb, suspend.rb: the recipient's state
        ("rcpt", 550, "user not known", "recipient_rejected"),
        ("rcpt", 550, "there is no one at this address", "recipient_rejected"),
        ("rcpt", 550, "this address no longer accepts mail", "recipient_rejected"),
        ("rcpt", 550, "this recipient is in my badrecipientto list", "recipient_rejected"),
        ("rcpt", 550, "has been suspended", "recipient_rejected"),
        ("rcpt", 550, "is not a known user", "recipient_rejected"),
        ("rcpt", 550, "no account by that name here", "recipient_rejected"),
        ("rcpt", 550, "email address could not be found", "recipient_rejected"),
        ("rcpt", 550, "resolver.adr.recipient notfound", "recipient_rejected"),
        # userunknown.rb: the same in the languages European providers answer in
        ("rcpt", 550, "utilisateur inconnu !", "recipient_rejected"),
        ("rcpt", 550, "nessun utente simile in questo indirizzo", "recipient_rejected"),
        ("rcpt", 550, "no existe dicha persona", "recipient_rejected"),
        (
            "rcpt",
            550,
            "weil die adresse nicht gefunden wurde oder keine e-mails empfangen kann",
            "recipient_rejected",
        ),
        # hostunknown.rb: the recipient's domain at RCPT, the sender's at MAIL
        ("rcpt", 550, "host or domain name not found", "recipient_rejected"),
        ("rcpt", 550, "recipient domain must exist", "recipient_rejected"),
        ("mail", 550, "domain must exist", "sender_rejected"),
        # mailboxfull.rb: the recipient's storage
        ("rcpt", 552, "user is over the quota", "recipient_rejected"),
        ("rcpt", 552, "full mailbox", "recipient_rejected"),
        ("rcpt", 552, "boite du destinataire pleine", "recipient_rejected"),
        # rejected.rb: the sender (qmail, IMail), and a sender on the receiver's own list
        ("mail", 553, "sender was rejected", "sender_rejected"),
        ("mail", 553, "sender not pre-approved", "sender_rejected"),
        ("mail", 550, "bogus mail from", "sender_rejected"),
        ("mail", 550, "sender is in my black list", "sender_rejected"),
        # norelaying.rb: a domain the host does not serve
        ("rcpt", 550, "we don't handle mail for", "relay_denied"),
        ("rcpt", 550, "not local host", "relay_denied"),
        # spamdetected.rb, mesgtoobig.rb, contenterror.rb: the message, at DATA
        ("data", 550, "mail appears to be unsolicited", "message_rejected"),
        ("data", 552, "message length exceeds administrative limit", "message_rejected"),
        (
            "data",
            550,
            "this message contain improperly-formatted binary content",
            "message_rejected",
        ),
        # blocked.rb: an IP not authorised for the sender's domain is SPF in other words
        ("rcpt", 550, "invalid ip for sending mail of domain", "sender_rejected"),
        # blocked.rb: the client's IP named as refused (Office365, Microsoft, free.fr)
        ("rcpt", 550, "banned sending ip", "ip_reputation"),
        ("banner", 554, "not currently accepting mail from your ip", "ip_reputation"),
        ("rcpt", 550, "too many spams from your ip", "ip_reputation"),
        ("rcpt", 550, "currently sending spam see: ", "ip_reputation"),  # SORBS
        # securityerror.rb: the login, at AUTH
        ("auth", 535, "authentication failure", "auth_failed"),
        # RFC 5321 4.2.3's own 553 text: the address of the command it answers
        ("rcpt", 553, "Requested action not taken: mailbox name not allowed", "recipient_rejected"),
        ("mail", 553, "Requested action not taken: mailbox name not allowed", "sender_rejected"),
        # RFC 5321 4.2.3's 551: the server does not serve this user, so it will not relay
        ("rcpt", 551, "User not local; please try <forward-path>", "relay_denied"),
        # spamdetected.rb: a listed URL is a domain listing, not the IP
        ("data", 550, "blacklisted url in message", "domain_reputation"),
        # RFC 1846's 521: the recipient's domain takes no mail
        ("rcpt", 521, "example.com does not accept mail", "recipient_rejected"),
        # notqmail qmail-smtpd.c err_hmf: at MAIL FROM the domain that must exist is the sender's
        ("mail", 553, "sorry, your envelope sender domain must exist (#5.7.1)", "sender_rejected"),
        # notqmail qmail-smtpd.c err_brt (badrcptto)
        (
            "rcpt",
            553,
            "sorry, your envelope recipient has been denied (#5.7.1)",
            "recipient_rejected",
        ),
        # Outlook.com's AS900 block, as pasted in public threads: the IP's messages "weren't sent"
        (
            "rcpt",
            550,
            "5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. For more information, "
            "please go to http://go.microsoft.com/fwlink/?LinkID=526655 (AS900)",
            "ip_reputation",
        ),
        # qmail-smtpd patches' smtp_badip: the client's IP named
        (
            "banner",
            421,
            "sorry, your IP (192.0.2.7) is temporarily denied (#4.7.1)",
            "ip_reputation",
        ),
    ],
)
def test_the_subject_of_a_refusal_decides_when_its_cause_is_unknown(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # #16 pattern 6: a bare refusal at RCPT is no evidence about the recipient
        ("rcpt", 550, "5.7.1 Recipient rejected, reason unknown", "unrecognised_refusal"),
        # a 4xx that "temporarily rejected this message" is a deferral, not a verdict on it
        (
            "data",
            451,
            "4.3.0 Mail server temporarily rejected message. - gsmtp",
            "temporary_failure",
        ),
        # chasquid: the server's own trouble at AUTH, not the credentials
        ("auth", 454, "4.7.0 Temporary authentication failure", "temporary_failure"),
        # Exchange Online NDRs (learn.microsoft.com, 5.7.350): "remote server" is the server
        # Microsoft asked, not the client: the message, not the IP
        (
            "data",
            550,
            "5.7.350 Remote server returned message detected as spam",
            "message_rejected",
        ),
        # an e-mail address on a list is not the IP: no DIRECT_SEND_DIRTY_IP (rejected.rb)
        ("mail", 550, "your email address has been blacklisted", "sender_rejected"),
    ],
)
def test_a_subject_without_evidence_claims_nothing_more(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


# Families the vendor development set (tests/corpus/dev_vendor.yaml) showed missing, tested
# with other members of each family from their own sources (cited per line).
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # RFC 4954 section 6: a response AUTH cannot parse is a protocol error; X.7.12 at AUTH
        # (432 or 5xx) is the login's
        ("auth", 501, "5.5.2 Cannot Base64-decode Client responses", "protocol_error"),
        ("auth", 500, "5.5.6 Authentication Exchange line is too long", "protocol_error"),
        ("auth", 432, "4.7.12 A password transition is needed", "auth_failed"),
        # Google's SMTP error list: an unauthenticated domain is the sender's SPF/DKIM, not a login
        (
            "rcpt",
            550,
            "5.7.1 Unauthenticated email is not accepted from this domain.",
            "sender_rejected",
        ),
        # Google's SMTP error list: a 4xx that only echoes the command is a deferral, not a
        # refused name
        ("ehlo", 421, "4.7.0 Try again later, closing connection. (EHLO)", "temporary_failure"),
        # sendmail srvrsmtp.c's reply to a command it does not know: a protocol matter at EHLO,
        # not a refused name
        ("ehlo", 500, '5.5.1 Command unrecognized: "EHLO mfp-3f"', "protocol_error"),
        # the receiver's own resources (Mimecast's SMTP error codes page; Exchange Online's 4.3.1)
        ("data", 451, "Internal resources are temporarily unavailable", "temporary_failure"),
        ("banner", 452, "4.3.1 Insufficient system resources", "temporary_failure"),
        # Mimecast's TLS policy refusals (as sisimai's rhost/mimecast.rb quotes them): TLS was
        # there but not good enough
        ("mail", 553, "this route requires tls version 1.2 or greater", "tls_failure"),
        ("mail", 553, "this route requires high-strength ciphers", "tls_failure"),
        # Postfix smtpd_check.c's reject_rhsbl_sender text (its "Sender address [%s] blocked
        # using %s", filled in): a domain list, whichever list it names; never the IP
        (
            "rcpt",
            554,
            "5.7.1 Service unavailable; Sender address [x@example.com] blocked using rhsbl.example.org",
            "domain_reputation",
        ),
        # Postfix access(5) REJECT: "Client host rejected" names the client, not a cause
        (
            "rcpt",
            554,
            "5.7.1 <mail.example.com[192.0.2.10]>: Client host rejected: Access denied",
            "unrecognised_refusal",
        ),
    ],
)
def test_the_families_of_the_vendor_development_set(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("code", "text", "category"),
    [
        # Postfix log lines kept as parser fixtures (github.com: a receive-email package's
        # RejectionLineParser tests): the cause after "Recipient address rejected:" decides
        (
            450,
            "4.7.1 <inbox@receiver.test>: Recipient address rejected: rate limit exceeded",
            "throttled",
        ),
        (
            550,
            "5.7.23 <inbox@receiver.test>: Recipient address rejected: Message rejected due to: "
            "SPF fail - not authorized",
            "sender_rejected",
        ),
        # ... and the subject when no cause follows (Postfix access(5) REJECT)
        (
            554,
            "5.7.1 <x@example.com>: Recipient address rejected: Access denied",
            "recipient_rejected",
        ),
        # an e-mail verifier's test fixtures (GitHub): greylisting behind "Sender address rejected"
        (450, "4.2.0 Sender address rejected: Greylisted", "temporary_failure"),
        # a sendmail anti-spam ruleset's domain blacklist reply (GitHub, cf ruleset): the
        # sender's domain named after the refusal
        (
            554,
            'SDOMAIN Contact "$&{ELContactPhone}" if this is in error, but we do not accept '
            "mail from your domain.",
            "sender_rejected",
        ),
        # pypolicyd-spf's reject text (its "Please see http://www.openspf.net/Why?s=..;id=..;
        # ip=..;r=.." template, placeholders filled): an SPF verdict behind the prefix
        (
            554,
            "5.7.1 <x@example.com>: Recipient address rejected: Please see "
            "http://www.openspf.net/Why?s=mfrom;id=scanner@contoso.test;ip=192.0.2.1;r=mx.example.org",
            "sender_rejected",
        ),
        # SendGrid: a login refused for a credit limit is the limit
        (451, "Authentication failed: Maximum credits exceeded", "throttled"),
    ],
)
def test_the_cause_after_a_subject_wins_over_the_subject(
    code: int, text: str, category: str
) -> None:
    stage = Stage.auth if text.startswith("Authentication") else Stage.rcpt
    decision = classify_reply(stage, make_reply(code, text), ISSUE_16)

    assert decision.category is Category(category), decision.rule


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # Exchange Online, as System.Net.Mail reports it (quoted in public repositories' tests
        # and notes): the 5.7.57 wrapper quotes the login's own refusal, which is the cause
        (
            "mail",
            530,
            "5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 Authentication "
            "unsuccessful, account locked. Contact your administrator.",
            "auth_failed",
        ),
        ("auth", 535, "5.7.139 Authentication unsuccessful, account locked.", "auth_failed"),
        # a wrapper with no quoted reply keeps its own meaning
        ("mail", 530, "5.7.57 Client not authenticated to send mail.", "auth_required"),
    ],
)
def test_a_quoted_inner_reply_is_the_cause_to_fix(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


# ---- holdout4's families (judge5, #16): each closed with general vocabulary ---------------
# The corpus texts are cited by their entries' sources (tests/corpus/holdout4_*.yaml); the
# other wordings of each family come from sisimai's reason lists (github.com/sisimai/
# rb-sisimai lib/sisimai/reason/toomanyconn.rb and spamdetected.rb, read as reference) and
# MTA source (Exim smtp_in.c).
SISIMAI_TOOMANYCONN = "github.com/sisimai/rb-sisimai lib/sisimai/reason/toomanyconn.rb"
SISIMAI_SPAMDETECTED = "github.com/sisimai/rb-sisimai lib/sisimai/reason/spamdetected.rb"


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- limits in any words: whatever is counted, reached/exceeded/too frequent --------
        # SparkPost (Momentum) responses-by-message: beats 4.4.5, 4.5.3 and "Service unavailable"
        ("banner", 421, "4.4.5 Service unavailable, concurrency limit reached", "throttled"),
        (
            "rcpt",
            452,
            "4.5.3 Service unavailable, recipients per message limit reached",
            "throttled",
        ),
        # emailit.com SMTP troubleshooting: not a message's size
        ("mail", 452, "4.5.3 Daily message limit exceeded", "throttled"),
        # Huawei Cloud KooMessage: a 500 that is a limit, not a syntax error
        ("banner", 500, "The number of sessions exceeds the maximum", "throttled"),
        # SendGrid's SMTP errors page: a 450 greeting that says why
        (
            "banner",
            450,
            "too frequent connects from 198.37.147.135, please try again later.",
            "throttled",
        ),
        # GoDaddy IB510 (sisimai rhost/godaddy.rb)
        (
            "mail",
            550,
            "This message has exceeded the max number of messages per session. Open a new "
            "session and try again. IB510",
            "throttled",
        ),
        # other wordings of the family (sisimai toomanyconn.rb; Exim smtp_in.c), as 5xx too
        ("mail", 550, "all available ips are at maximum connection limit", "throttled"),
        ("mail", 550, "exceeds per-domain connection limit for example.com", "throttled"),
        ("mail", 550, "has exceeded the max emails per hour", "throttled"),
        ("mail", 554, "Throttling failure: Maximum sending rate exceeded.", "throttled"),
        ("mail", 550, "too many smtp sessions for this host", "throttled"),
        (
            "banner",
            421,
            "mx.example.net: Too many concurrent SMTP connections; please try again later",
            "throttled",
        ),
        # ... but a size, a mailbox's storage or a line's length is not a limit on the sender
        ("data", 552, "5.3.4 Message size limit exceeded", "message_rejected"),
        # ... nor a mailbox's quota (constructed wordings): a quota is the sender's only
        # when sending is counted
        ("rcpt", 552, "Mail quota exceeded", "recipient_rejected"),
        ("rcpt", 552, "5.2.2 Recipient quota exceeded", "recipient_rejected"),
        ("mail", 550, "Outgoing mail quota exceeded", "throttled"),
        ("rcpt", 552, "5.2.2 Mailbox size limit exceeded", "recipient_rejected"),
        # -- spam verdicts on the message at DATA, in other words ---------------------------
        # Mail::DeliveryStatus::BounceParser t/corpus spam-rejection31/9/14.msg
        ("data", 550, "Spamming not allowed", "message_rejected"),
        (
            "data",
            553,
            "Blocked using spam pattern, your message may contain the spam contents",
            "message_rejected",
        ),
        (
            "data",
            554,
            "5.7.1 Your message failed several antispam checks (SCORING) and it was rejected "
            "or collected on example.net spambox. Please be sure your mailserver is configured "
            "correctly (spf , HELO, PTR) or try using an alternative email or smtp.",
            "message_rejected",
        ),
        # NetEase's DT:SPM (github.com/zabbix-book/zabbix_mail_with_graph issue 1)
        (
            "data",
            554,
            "DT:SPM 163 smtp12,EMCowACnzwc_BjhcKMZmAQ--.20404S2 1547175487,please see "
            "http://mail.163.com/help/help_spam_16.htm?ip=218.94.104.2&hostid=smtp12",
            "message_rejected",
        ),
        # Exchange Online's NDR table (AS345)
        (
            "data",
            550,
            "5.0.350 Requested action not taken: policy violation detected (AS345)",
            "message_rejected",
        ),
        # other wordings (sisimai spamdetected.rb)
        ("data", 550, "this message has been identified as spam", "message_rejected"),
        ("data", 550, "this message scored 12.5 spam points", "message_rejected"),
        ("data", 554, "spam content matched", "message_rejected"),
        # ... a listing of the IP is still the IP's, not a verdict on the message (a
        # constructed wording, not from a corpus)
        (
            "data",
            554,
            "5.7.1 Spam message rejected; 192.0.2.1 is listed on zen.spamhaus.org",
            "ip_reputation",
        ),
        # -- banned: the IP or the domain named (Baruwa's reply list, bastion.umanix.net) ---
        ("banner", 554, "The sender xxx.xxx.xxx.xxx is banned", "ip_reputation"),
        # ... the same with the placeholder filled, and other constructed wordings
        ("banner", 554, "The sender 192.0.2.7 is banned", "ip_reputation"),
        ("rcpt", 550, "Your IP address 192.0.2.7 has been banned", "ip_reputation"),
        ("mail", 550, "The domain example.com is banned", "domain_reputation"),
        ("mail", 550, "Sender domain example.com has been blacklisted", "domain_reputation"),
        # -- the sender's identity ----------------------------------------------------------
        # GoDaddy IB501/IB502 (sisimai rhost/godaddy.rb): an IP written as the From address
        # is about the address, never the site's IP
        (
            "data",
            550,
            "jane@coolexample.com Blank From: addresses are not allowed. Provide a valid From. "
            "IB501",
            "sender_rejected",
        ),
        (
            "data",
            550,
            "jane@coolexample.com IP addresses are not allowed as a From: Address. Provide a "
            "valid From. IB502",
            "sender_rejected",
        ),
        # emailit.com: the domain's sending paused
        ("data", 550, "Sending from this domain is paused", "sender_rejected"),
        # Amazon SES SMTP response codes: the identity is not authorised
        (
            "data",
            554,
            "Access denied: User <User ARN> is not authorized to perform ses:SendRawEmail on "
            "resource <Identity ARN>",
            "sender_rejected",
        ),
        # github.com/mybb/mybb issue 2578: the login and the sender differ (not the recipient)
        (
            "rcpt",
            554,
            "5.7.1 Recipient address rejected: Username admin@example.com and sender doesn't match",
            "sender_rejected",
        ),
        # BounceParser spam-rejection20.msg: the address is the subject, at MAIL
        ("mail", 554, "Sending address not accepted due to spam filter", "sender_rejected"),
        # sendmail's "Domain name required for sender address" (github.com/metomi/rose #946),
        # beating its 5.5.4
        (
            "mail",
            553,
            "5.5.4 ... Domain name required for sender address oliverh",
            "sender_rejected",
        ),
        # -- a recipient's state ------------------------------------------------------------
        # LogReporter's Postfix service (github.com/mhalenza/LogReporter)
        (
            "rcpt",
            550,
            '"The recipient cannot be verified.  Please check all recipients of this message '
            'to verify they are valid."',
            "recipient_rejected",
        ),
        # BounceParser user-unknown-bad.msg
        (
            "rcpt",
            550,
            "BAD_RECIPIENT - see http://www.mail.sample.ac.uk/undelivered.php?r=BAD_RECIPIENT",
            "recipient_rejected",
        ),
        # web.de (sitepackage.de's list of typical bounces), in German and English
        (
            "rcpt",
            550,
            "Benutzer hat das Speichervolumen ueberschritten. / User has exhausted allowed "
            "storage space.",
            "recipient_rejected",
        ),
        # Microsoft's "remote server returned mailbox busy" article
        (
            "data",
            554,
            "4.3.2 mailbox busy; STOREDRV.Deliver.Exception:StoragePermanentException."
            "MapiExceptionMaxObjsExceeded; Failed to process message due to a permanent "
            "exception with message Cannot complete delivery-time processing.",
            "recipient_rejected",
        ),
        # -- protocol misuse and relaying (hMailServer's SMTP error reference) ---------------
        ("ehlo", 500, "Line too long", "protocol_error"),
        ("data", 421, "Excessive amounts of data sent to server.", "protocol_error"),
        ("rcpt", 550, "Delivery is not allowed to this address.", "relay_denied"),
        # ... a body or header line too long is the message's (Momentum's 5.6.0)
        ("data", 550, "5.6.0 Body line too long (see RFC2822 section 3.5)", "message_rejected"),
        # -- AUTH switched off --------------------------------------------------------------
        # GoDaddy IB401 (sisimai rhost/godaddy.rb)
        ("auth", 535, "Authentication not allowed on IBSMTP Servers. IB401", "auth_disabled"),
        # Microsoft's 5.7.139 sentence without its code (Dynamics 365's email configuration)
        (
            "auth",
            535,
            "Authentication unsuccessful, the request did not meet the criteria to be "
            "authenticated successfully",
            "auth_disabled",
        ),
        # ... while AUTH refused until TLS is the TLS demand
        (
            "auth",
            538,
            "5.7.11 Encryption required for requested authentication mechanism",
            "tls_required",
        ),
    ],
)
def test_the_families_of_holdout4s_misses(stage: str, code: int, text: str, category: str) -> None:
    _assert_reads(stage, code, text, category)


def test_an_ip_written_as_the_from_address_is_not_about_the_sites_ip() -> None:
    text = "jane@example.com IP addresses are not allowed as a From: Address. Provide a valid From."

    decision = classify_reply(Stage.data, make_reply(550, text), ISSUE_16)

    assert decision.category is Category.sender_rejected
    assert decision.rule == RuleId.sender_identity_refused


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # github.com/nextcloud/server issue 5566: a 501 with 5.7.1 is a policy's refusal whose
        # words name no cause, not a syntax error
        ("mail", 501, "5.7.1 <username>... Permission denied", "unrecognised_refusal"),
        # ... while a 501 with a 5.5.x or no enhanced code stays the protocol's
        ("mail", 501, "5.5.4 Syntax: MAIL FROM:<address>", "protocol_error"),
        # Postfix smtpd's smtpd_forbid_bare_newline reply (smtpd.c, Postfix 3.9)
        ("data", 521, "5.5.2 mx.example.net Error: bare <LF> received", "protocol_error"),
        # GoDaddy's bounce list (sisimai rhost/godaddy.rb, from godaddy.com/help 3568)
        ("rcpt", 550, "Account storage limit", "recipient_rejected"),
        (
            "banner",
            421,
            "Connection refused, too many sessions from This IP. Lower the number of "
            "concurrent sessions. IB007",
            "throttled",
        ),
        ("mail", 550, "This IP has sent too many messages this hour. IB504", "throttled"),
        # Haraka's limit plugin (haraka-plugin-limit index.js), as 5xx replies
        ("rcpt", 550, "Too many recipient attempts", "throttled"),
        ("rcpt", 550, "Too many errors", "throttled"),
        ("banner", 550, "connection rate limit exceeded", "throttled"),
        ("rcpt", 550, "rcpt rate limit exceeded", "throttled"),
        # Amazon SES's SMTP response codes (awsdocs amazon-ses-developer-guide)
        ("data", 454, "Throttling failure: Daily message quota exceeded", "throttled"),
        # constructed wordings of the same families (not from a corpus): each family's nouns
        ("rcpt", 550, "Maximum number of recipients exceeded", "throttled"),
        ("rcpt", 550, "Number of recipients exceeds the allowed maximum", "throttled"),
        ("mail", 550, "You are sending too fast", "throttled"),
        ("mail", 550, "Sending rate too high", "throttled"),
        ("mail", 550, "Message rate-limited", "throttled"),
        ("rcpt", 550, "Too many RCPT commands", "throttled"),
        ("data", 550, "UCE rejected", "message_rejected"),
        ("data", 554, "From header address is invalid", "sender_rejected"),
        ("rcpt", 552, "Mailbox storage space exhausted", "recipient_rejected"),
        ("banner", 554, "Access denied: your IP address is banned", "ip_reputation"),
        ("mail", 550, "The sending domain is banned", "domain_reputation"),
        ("auth", 535, "Authentication disabled", "auth_disabled"),
        # ... a limit imposed for a cause is the cause (Gmail's 4.7.40, in replies.yaml)
        (
            "data",
            421,
            "4.7.40 Your email has been rate limited because the sending domain doesn't have a "
            "DMARC record, or the DMARC record doesn't specify a DMARC policy.",
            "sender_rejected",
        ),
        ("rcpt", 550, "Recipient cannot receive mail", "recipient_rejected"),
        ("rcpt", 550, "This mail server does not accept relay", "relay_denied"),
        ("rcpt", 550, "Delivery to this address is not allowed", "relay_denied"),
        ("data", 554, "HL:IHU 192.0.2.1 has been blocked", "ip_reputation"),
        # ... in other languages
        ("banner", 554, "Ihre IP-Adresse 192.0.2.1 ist gesperrt", "ip_reputation"),
        ("banner", 554, "Votre adresse IP 192.0.2.1 est bloquée", "ip_reputation"),
        ("mail", 550, "Zu viele Nachrichten, bitte später erneut versuchen", "throttled"),
        ("data", 550, "Message blocked: message contains blacklisted words", "message_rejected"),
        # ... a URL or a list is still a listing, not words of the message
        ("data", 554, "5.7.1 Message contains a blacklisted URL", "domain_reputation"),
        ("mail", 550, "User x is not authorized to send from address y", "sender_rejected"),
        ("mail", 553, "Authenticated user does not match sender", "sender_rejected"),
        (
            "rcpt",
            554,
            "Recipient address rejected: Sender and login do not match",
            "sender_rejected",
        ),
        ("mail", 421, "Max connections per IP reached", "throttled"),
        ("data", 554, "Junk mail rejected", "message_rejected"),
        ("mail", 550, "Your domain has been suspended from sending", "sender_rejected"),
        # (a busy mailbox deferred with 4xx is temporary: holdout6's technician label for
        # "4.2.1 Mailbox busy, try again later", which this wording was a variant of)
        ("rcpt", 450, "4.2.1 Mailbox temporarily busy, try again later", "temporary_failure"),
        ("rcpt", 550, "Recipient address has insufficient storage", "recipient_rejected"),
        ("rcpt", 552, "Recipient's mailbox is over its storage limit", "recipient_rejected"),
        ("auth", 535, "SMTP authentication is disabled", "auth_disabled"),
        ("auth", 535, "Password authentication is disabled for this account", "auth_disabled"),
        ("auth", 535, "Application-specific password required", "auth_disabled"),
        # ... but a password refused in the clear is the TLS demand (Dovecot's wording)
        (
            "auth",
            535,
            "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            "tls_required",
        ),
        # ... and Gmail's bulk-sender requirements are not a spam verdict (its "bulk email
        # senders" names who must authenticate)
        (
            "data",
            550,
            "5.7.27 This message was blocked because it didn't pass SPF authentication. Gmail "
            "requires bulk email senders to authenticate their email with SPF.",
            "sender_rejected",
        ),
    ],
)
def test_other_wordings_of_holdout4s_families(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


def test_several_from_addresses_are_the_headers_syntax_not_the_senders_identity() -> None:
    # maddy's check for a From header with several addresses (github.com/foxcpp/maddy)
    text = "Multiple From addresses are not allowed"

    decision = classify_reply(Stage.data, make_reply(550, text), ISSUE_16)

    assert decision.category is not Category.sender_rejected, decision.rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Your IP 192.0.2.1 is blacklisted by Spamhaus", RuleId.dnsbl_blocked_using),
        ("Sender domain example.com blacklisted in dbl.spamhaus.org", RuleId.dnsbl_domain_listed),
    ],
)
def test_a_ban_that_names_a_public_list_is_that_lists_listing(text: str, rule: RuleId) -> None:
    # constructed wordings: the list's own rule names the list to delist from
    decision = classify_reply(Stage.mail, make_reply(550, text), ISSUE_16)

    assert decision.rule == rule


# ---- holdout5 (#16): the cause after "Sender ip address rejected:" wins, and domain lists
# are about domains. Texts from tests/corpus/holdout5.yaml (sources cited there).
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # spam-mail-blocker.de/greylisted.html: an operator's own replies, a rate per 10 minutes
        (
            "rcpt",
            450,
            "4.2.1 Sender ip address rejected: You sent to many mails from different domains "
            "in the last 10 minutes",
            "throttled",
        ),
        (
            "rcpt",
            450,
            "4.2.2 Sender domain rejected: You sent to many mails from different ip address "
            "in the last 10 minutes",
            "throttled",
        ),
        # ... mail over IPv6 must be encrypted: TLS demanded
        (
            "rcpt",
            550,
            "5.6.3 Sender ip adress rejected: Your IPv6 address must be send with an encryption",
            "tls_required",
        ),
        # ... no PTR for the IPv6 address
        (
            "rcpt",
            550,
            "5.6.2 Sender ip adress rejected: Your IPv6 address do not have a reverse look name",
            "reverse_dns",
        ),
        # pastebin.com/6MbJDs6i: rfc-ignorant.org's postmaster/abuse zones list domains
        (
            "rcpt",
            550,
            "5.7.1 <user@example.com>: Recipient address rejected: Mail appeared to be SPAM or "
            "forged. Ask your Mail/DNS-Administrator to correct HELO and DNS MX settings or to "
            "get removed from DNSBLs; in postmaster.rfc-ignorant.org; in abuse.rfc-ignorant.org",
            "domain_reputation",
        ),
        # support.arubacloud.pl (Forpsi): refused at connection without a PTR
        (
            "banner",
            554,
            "cmg1.fe.forpsi.com bizsmtp 0bcW1i00G0jifNx01bcmHa no DNS reverse for x.x.x.x",
            "reverse_dns",
        ),
    ],
)
def test_the_cause_after_the_sender_ip_subject_wins(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


def test_a_sender_ip_refused_for_its_listing_is_still_the_ips_reputation() -> None:
    # the subject alone still names the IP when no other cause follows (constructed control)
    text = "Sender ip address rejected: 192.0.2.1 is listed in zen.spamhaus.org"

    decision = classify_reply(Stage.rcpt, make_reply(550, text), ISSUE_16)

    assert decision.category is Category.ip_reputation, decision.rule


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- limits: FTGate's concurrency cap (docs.ftgate.com service error messages), Libero's
        # cap on invalid recipients at the greeting (pastebin.com/d5zFErcd)
        ("banner", 451, "4.5.1 [%s] Max concurrent sessions (#1.04)", "throttled"),
        (
            "banner",
            550,
            "Too many invalid recipients. For further information contact your provider.",
            "throttled",
        ),
        # ... but the IP blocked for it is the IP's standing (GoDaddy IB112, holdout4_vendor)
        (
            "banner",
            554,
            "This IP has been temporarily blocked for attempting to mail too many invalid "
            "recipients. IB112",
            "ip_reputation",
        ),
        # -- recipients unknown in other words (sisimai set-of-emails lhost-sendmail-17,
        # rfc3464-35)
        ("rcpt", 551, "not our user", "recipient_rejected"),
        (
            "rcpt",
            550,
            "'kijitora@nyaan.example.com' is not a registered gateway user",
            "recipient_rejected",
        ),
        # -- relaying refused, qmail's words (OVH, pastebin.com/1qRkUWBq)
        (
            "mail",
            553,
            "sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)",
            "relay_denied",
        ),
        # -- a domain's reputation (MailEnable, quoted in Plesk's KB 12377216408855)
        (
            "mail",
            554,
            "Your access to this mail system has been rejected due to poor reputation of a "
            "domain used in message transfer",
            "domain_reputation",
        ),
        # -- the message's: a macro attachment (Broadcom KB 162445), a missing subject
        # (ZeptoMail's SMTP error codes: 5.2.1 here is not a recipient's mailbox)
        (
            "data",
            552,
            "MS-Office file containing VBA macros found inside of the email",
            "message_rejected",
        ),
        ("data", 550, "5.2.1 Subject is Mandatory.", "message_rejected"),
        # -- AUTH sent though not offered: out of place (nodemailer issue 1081)
        ("auth", 503, "AUTH command used when not advertised", "protocol_error"),
        # -- a login demanded (Mail.ru, pastebin.com/xDPN2fTF)
        (
            "data",
            503,
            "Administrative prohibition -- authorization required. Users in your domain are "
            "not allowed to send email without authorization. See "
            "http://help.mail.ru/mail-help/mailer/popsmtp for details.",
            "auth_required",
        ),
        # -- a range that may not send unauthenticated is the IP's network (NixOS/infra#668)
        ("rcpt", 550, "Unauthenticated mail not allowed from this range", "ip_reputation"),
    ],
)
def test_the_families_of_holdout5s_misses(stage: str, code: int, text: str, category: str) -> None:
    _assert_reads(stage, code, text, category)


def test_auth_sent_though_not_offered_is_out_of_place_not_switched_off() -> None:
    # nodemailer issue 1081: after STARTTLS the EHLO offered no AUTH, and Exim answered this
    decision = classify_reply(
        Stage.auth, make_reply(503, "AUTH command used when not advertised"), ISSUE_16
    )

    assert decision.rule == RuleId.smtp_auth_not_advertised
    assert decision.category is Category.protocol_error
    assert not PLACEHOLDER.search(decision.remediation), decision.remediation
    assert "STARTTLS" in decision.remediation


@pytest.mark.parametrize(
    ("stage", "code", "text", "category", "rule"),
    [
        # IceWarp's 5xx table: "Sender has no domain specified (usually in MAIL FROM)"; the
        # words beat 5.5.2's syntax error
        (
            "mail",
            501,
            "5.5.2 Domain name required",
            "sender_rejected",
            RuleId.smtp_sender_domain_required,
        ),
        # Network Solutions (pastebin.com/TuQgvjzq), answered to MAIL FROM: no content yet,
        # the IP named and its provider sent to a delisting page
        (
            "mail",
            553,
            "5.3.0 192.64.117.97 Your message was rejected for possible spam/virus content."
            "Please ask your email provider to visit http://emailadmin.registeredsite.com for "
            "resolution.",
            "ip_reputation",
            RuleId.ip_spam_before_content,
        ),
        # Exim bounce (pastebin.com/mab2zkNE): "for policy reasons" names no cause
        (
            "rcpt",
            554,
            "5.7.1 <user@example.com>: Recipient address rejected: Recipient address rejected "
            "for policy reasons",
            "unrecognised_refusal",
            None,
        ),
    ],
)
def test_the_words_beat_the_code_and_the_word_content_before_any_content(
    stage: str, code: int, text: str, category: str, rule: RuleId | None
) -> None:
    decision = classify_reply(Stage(stage), make_reply(code, text), ISSUE_16)

    assert (decision.category, decision.rule) == (Category(category), rule)
    assert not PLACEHOLDER.search(decision.remediation), decision.remediation


def test_a_spam_verdict_after_the_data_is_still_the_messages() -> None:
    # the same words at DATA are about what was sent (constructed control)
    text = "Your message was rejected for possible spam/virus content. Please visit http://x.test"

    decision = classify_reply(Stage.data, make_reply(550, text), ISSUE_16)

    assert decision.category is Category.message_rejected, decision.rule


# holdout6's misses, by family (judge7): each family's rule is written from the structure of the
# reply (a subject, a cause, the code class), with other members of the family from sisimai's
# reason lexicon (github.com/sisimai/p5-sisimai, lib/Sisimai/Reason/*.pm at 21cfb932: phrases
# sisimai matches in real bounces), which the rules were checked against while written.
# H6_ZONEMTA: github.com/zone-eu/zone-mta/blob/0009aafa/config/bounces.txt (holdout6's source)


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # greylisting is a deferral, whatever list it names (H6_ZONEMTA)
        (
            "rcpt",
            421,
            "4.7.1 Service unavailable; Client host [1.2.3.4] blocked using grey.rbl - Rechazo "
            "temporal, intentelo mas tarde por favor...Greylisting in action, please try again "
            "later",
            "temporary_failure",
        ),
        # URIBL refusing the receiver's resolver is the receiver's own fault (H6_ZONEMTA)
        (
            "rcpt",
            554,
            "5.7.1 Service unavailable; Client host [mail.example.com] blocked using "
            "multi.uribl.com; 127.0.0.1 -> Query Refused. See http://uribl.com/refused.shtml for "
            "more information [Your DNS IP: 1.2.3.4]",
            "receiver_fault",
        ),
        # a list of IP addresses that blocked the client, no domain word (H6_ZONEMTA) ...
        ("rcpt", 550, "Email blocked by SPAMHAUS", "ip_reputation"),
        # ... and the same family in sisimai's Blocked.pm
        ("rcpt", 550, "blacklisted by", "ip_reputation"),
        ("rcpt", 550, "is in a black list", "ip_reputation"),
        ("rcpt", 550, "rejected - multi-blacklist", "ip_reputation"),
        # reputation words beat the relay subject (H6_ZONEMTA)
        (
            "rcpt",
            553,
            "5.7.1 <hostname[1.2.3.4]>: Client host rejected: Relaying denied - Your IP "
            "identified as spammer. Please contact 123",
            "ip_reputation",
        ),
        # the login wanted, in a 5.5.4 (github.com/muquit/mailsend/issues/159)
        ("mail", 503, "5.5.4 Error: send AUTH command first.", "auth_required"),
        # ... and sisimai's SecurityError.pm
        ("mail", 530, "authentication turned on in your email client", "auth_required"),
        # TLS demanded in other words (github.com/lx1169732264/zdm/issues/3,
        # github.com/PHPMailer/PHPMailer/issues/283)
        (
            "auth",
            530,
            "Login fail. A secure connection is requiered(such as ssl). More information at "
            "http://service.mail.qq.com/cgi-bin/help?id=28",
            "tls_required",
        ),
        (
            "auth",
            530,
            "5.7.7 Email sending without SSL/TLS encryption is not allowed. Please see: "
            "http://help.yandex.ru/mail/mail-clients/ssl.xml",
            "tls_required",
        ),
        # only local recipients, in other words (icoremail.vip support page; Trend Micro
        # solution 1106332) ...
        ("rcpt", 550, "Requested action not taken: Local user only", "relay_denied"),
        ("rcpt", 550, "domain of forward path is not allowed", "relay_denied"),
        # ... and sisimai's NoRelaying.pm
        ("rcpt", 550, "specified domain is not allowed", "relay_denied"),
        # a busy mailbox deferred is temporary (github.com/roundcube/roundcubemail/issues/7448)
        ("rcpt", 451, "4.2.1 Mailbox busy, try again later", "temporary_failure"),
        # a full folder is the recipient's (github.com/voku/PHPMailer-BMH/issues/23)
        ("data", 550, "5.2.5 Folder full", "recipient_rejected"),
        # the recipient missing from the server's table (hmailserver/hmailserver/issues/21)
        ("rcpt", 421, "Recipient not in route list", "recipient_rejected"),
        # sender verification (a callout) failed is the sender's
        # (github.com/postalserver/postal/issues/342 and /546)
        (
            "rcpt",
            550,
            "Verification failed for <user@example.com> The mail server could not deliver mail "
            "to user@example.com. The account or domain may not exist, they may be blacklisted, "
            "or missing the proper dns entries. Sender verify failed",
            "sender_rejected",
        ),
        ("rcpt", 451, "<ok4mpa@psrp.domain.com> unable to verify address", "sender_rejected"),
        # the From domain tied to the login (aspnethosting.co.uk knowledge base, SmarterMail)
        ("mail", 550, "From domain must match authenticated domain", "sender_rejected"),
        # a command in the wrong state is a protocol matter, even HELO
        # (github.com/patsanch/email_veracity_checker/pull/2)
        ("ehlo", 503, "wrong state for HELO command", "protocol_error"),
    ],
)
def test_holdout6s_families_and_their_other_wordings(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


# The word families (fleet/judgement/rules/word_families.py): a refusal no rule knows, read by
# the one family its words belong to. Checked on the blind fallbacks of holdout5 and holdout6
# with the rules switched off (only `_by_one_family`): 11 of their 16 land where the
# technician put them, and none of the seen sets' honest fallbacks moves.
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # knowledge.broadcom.com article 162445 (holdout5)
        (
            "data",
            552,
            "MS-Office file containing VBA macros found inside of the email",
            "message_rejected",
        ),
        # support.plesk.com article 12377216408855, MailEnable (holdout5)
        (
            "mail",
            554,
            "Your access to this mail system has been rejected due to poor reputation of a "
            "domain used in message transfer",
            "domain_reputation",
        ),
        # sisimai/set-of-emails lhost-sendmail-17.eml and rfc3464-35.eml (holdout5)
        ("rcpt", 551, "not our user", "recipient_rejected"),
        (
            "rcpt",
            550,
            "'kijitora@nyaan.example.com' is not a registered gateway user",
            "recipient_rejected",
        ),
        # support.arubacloud.pl kb a2837, Forpsi's greeting (holdout5)
        (
            "banner",
            554,
            "cmg1.fe.forpsi.com bizsmtp 0bcW1i00G0jifNx01bcmHa no DNS reverse for x.x.x.x",
            "reverse_dns",
        ),
        # pastebin.com/1qRkUWBq, qmail (holdout5)
        (
            "mail",
            553,
            "sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)",
            "relay_denied",
        ),
        # pastebin.com/d5zFErcd, Libero (holdout5): a limit beats the recipients it counts
        (
            "banner",
            550,
            "Too many invalid recipients. For further information contact your provider.",
            "throttled",
        ),
        # a cause (TLS) beats the subject (the login): holdout6's QQ reply
        (
            "auth",
            530,
            "Login fail. A secure connection is requiered(such as ssl). More information at "
            "http://service.mail.qq.com/cgi-bin/help?id=28",
            "tls_required",
        ),
    ],
)
def test_a_reply_no_rule_knows_is_read_by_its_one_word_family(
    stage: str, code: int, text: str, category: str
) -> None:
    reply = make_reply(code, text)
    decision = _by_one_family(Stage(stage), reply, ISSUE_16, read_text(reply))

    assert decision is not None
    assert decision.category is Category(category), decision.rule
    assert not PLACEHOLDER.search(decision.finding + decision.remediation)


@pytest.mark.parametrize(
    ("stage", "code", "text"),
    [
        # a subject with a bare refusal is no evidence (#16; tests above)
        ("rcpt", 550, "5.7.1 Recipient rejected, reason unknown"),
        # a policy named, not explained (holdout5: Bell; holdout: Postfix)
        ("rcpt", 550, "you are not allowed to send mail to <user@example.com>"),
        ("rcpt", 554, "<sample.net[10.0.0.1]>: Client host rejected: Access denied"),
        # the transaction's recipients, not one recipient (holdout6: Barracuda via ZoneMTA)
        ("rcpt", 550, "permanent failure for one or more recipients (user@example.com:blocked)"),
        # two families and no cause between them: sisimai's Rejected.pm
        ("rcpt", 550, "you are sending to/from an address that has been blacklisted"),
    ],
)
def test_a_reply_of_no_family_or_of_a_policy_stays_unrecognised(
    stage: str, code: int, text: str
) -> None:
    decision = classify_reply(Stage(stage), make_reply(code, text), ISSUE_16)

    assert decision.category is Category.unrecognised_refusal, decision.rule


# dev_mined's families (tests/corpus/dev_mined.yaml, corpusG): one text per family, as cited
# there (SOE: github.com/sisimai/set-of-emails maildir/bsd at 18e585c2; BMH:
# github.com/voku/PHPMailer-BMH phpmailer-bmh_rules.php at 679dbf7c).
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # "not our <kind of user>" (SOE lhost-sendmail-22.eml)
        ("rcpt", 551, "not our customer", "recipient_rejected"),
        # IPs the sender's domain does not vouch for (SOE lhost-exim-38.eml)
        (
            "mail",
            450,
            "service permits 2 unverifyable sending IPs - neko.example.com is not 203.0.113.222",
            "sender_rejected",
        ),
        # a quota reached, the words the other way round (SOE lhost-exim-56.eml)
        (
            "banner",
            554,
            "neko-22.nyaan.r.example.net : CAT : neko22 : CAT : You've reached your daily relay "
            "quota - 203.0.113.0",
            "throttled",
        ),
        # a line limit is the message's (SOE lhost-exim-58.eml)
        ("data", 500, "Line limit exceeded", "message_rejected"),
        # relaying refused after its object (BMH L753, L1107)
        (
            "rcpt",
            550,
            "relaying to <xxxxx@yourdomain.com> prohibited by administrator",
            "relay_denied",
        ),
        ("rcpt", 500, "Unauthorized relay msg rejected", "relay_denied"),
        # a login failure named at MAIL FROM (BMH L1084)
        ("mail", 553, "AUTH FAILED - xxxxx@yourdomain.com", "auth_failed"),
        # a delisting link that names the IP (BMH L1252)
        (
            "rcpt",
            554,
            "Please visit http:// antispam.domain.com/denyip.php?IP=111.111.111.000 (#5.7.1)",
            "ip_reputation",
        ),
        # the envelope sender against the header From (BMH L1301)
        (
            "data",
            550,
            "Error: MAIL FROM is mismatched with message header from address!",
            "sender_rejected",
        ),
        # a client that should use its provider's relay (BMH L1315)
        (
            "rcpt",
            554,
            "5.7.1 reject: Client host bypassing service provider's mail relay: ds176.domain.com",
            "ip_reputation",
        ),
        # the message's data, not a command's syntax, whatever 5.5.2 says (BMH L1121)
        ("data", 554, "5.5.2 Invalid data in message", "message_rejected"),
        # "no exist" (BMH L742), and a member of a domain is a user, not a list's member (L933)
        ("rcpt", 450, "user path no exist", "recipient_rejected"),
        ("rcpt", 550, "User not a member of domain: <xxxxx@yourdomain.com>", "recipient_rejected"),
        # X.3.5 and its words: the receiver's own setup (BMH L1350)
        ("rcpt", 553, "5.3.5 system config error", "temporary_failure"),
        # AOL's "(RTR:BL)" (github.com/twisted1919/bounce-handler rules.php L897)
        (
            "banner",
            554,
            "(RTR:BL) http://postmaster.info.aol.com/errors/554rtrbl.html Connecting IP: "
            "111.111.111.111",
            "ip_reputation",
        ),
        # a header named as missing (github.com/wRAR/flufl.bounce tests/data/postfix_05.txt)
        ("data", 554, "No Resent-From field given", "message_rejected"),
    ],
)
def test_dev_mineds_families(stage: str, code: int, text: str, category: str) -> None:
    _assert_reads(stage, code, text, category)


# Other members of judge7's families, as sisimai matches them in real bounces (lexicon phrases,
# github.com/sisimai/p5-sisimai at 21cfb932: lib/Sisimai/Reason/<file>.pm and
# lib/Sisimai/Rhost/<file>.pm, named per line). sisimai's lists were a lexicon source for these
# families (the rules were checked against them while being written), so these hold the
# families, they do not measure how the rules generalise.
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # Reason/Blocked.pm: a client host refused for abuse (SFR)
        ("rcpt", 550, "client host rejected: abus detecte gu_eib_02", "ip_reputation"),
        # Reason/BadReputation.pm
        ("rcpt", 550, "a poor email reputation score", "ip_reputation"),
        # Reason/Filtered.pm: the recipient refusing
        ("rcpt", 550, "user refuses to receive this mail", "recipient_rejected"),
        ("rcpt", 550, "you have been blocked by the recipient", "recipient_rejected"),
        # Reason/UserUnknown.pm: the recipient refused as such
        ("rcpt", 550, "recipient is not accepted", "recipient_rejected"),
        ("rcpt", 550, "recipient not ok", "recipient_rejected"),
        ("rcpt", 550, "can't accept user", "recipient_rejected"),
        # Reason/Suspend.pm (French) and Reason/MesgTooBig.pm (French)
        ("rcpt", 550, "boite du destinataire archivee", "recipient_rejected"),
        ("data", 552, "taille limite du message atteinte", "message_rejected"),
        # Reason/PolicyViolation.pm: a list that takes posts from its members only
        ("data", 550, "by non-member to a members-only list", "sender_rejected"),
        ("data", 550, "closed mailing list", "sender_rejected"),
        # Rhost/Apple.pm: a domain present in a list is the domain's
        (
            "rcpt",
            550,
            "rejected due to having a domain present in the spamhaus",
            "domain_reputation",
        ),
        # Rhost/Google.pm (its comment quotes Google's table): the recipient's address
        (
            "rcpt",
            553,
            "5.1.3 The recipient address <address> is not a valid RFC 5321 address.",
            "recipient_rejected",
        ),
    ],
)
def test_sisimai_wordings_of_judge7s_families(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


# holdout7/holdout8's two false DIRECT_SEND_DIRTY_IP (tests/corpus/README.md, their blind runs),
# fixed by family: a listed user, sender or address is not the IP, and a verdict on the PTR name
# is reverse DNS, even when it says "IP address" and "banned".
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # holdout7 h7-unknown-rcpt-client-host-rejected-blacklisted-user
        # (github.com/roundcube/roundcubemail/issues/8103)
        (
            "rcpt",
            550,
            "5.7.1 <webmail18.sd4.0x35.net[10.200.201.18]>: Client host rejected: "
            "Blacklisted user: user@example.com",
            "sender_rejected",
        ),
        # other members of the family
        ("mail", 550, "5.7.1 Blacklisted sender: user@example.com", "sender_rejected"),
        (
            "rcpt",
            550,
            "Client host rejected: blocklisted address <a@example.com>",
            "sender_rejected",
        ),
        # holdout8 h8-spamdyke-rcpt-rdns-contains-ip-and-banned-keyword (github.com/chrisboulton/
        # spamdyke spamdyke/spamdyke.h)
        (
            "rcpt",
            554,
            "Refused. Your reverse DNS entry contains your IP address and a banned keyword.",
            "reverse_dns",
        ),
        (
            "rcpt",
            550,
            "Your PTR record is banned: it looks dynamic (contains your IP)",
            "reverse_dns",
        ),
        # and an IP ban itself still is the IP's
        ("rcpt", 550, "Your IP address 192.0.2.1 has been banned", "ip_reputation"),
    ],
)
def test_a_listed_user_or_a_ptr_verdict_is_not_the_ips_standing(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


# holdout7/holdout8's misses, read after their blind runs (tests/corpus/README.md) and fixed
# by family (judge8): each corpus text (its source on the line above) and other wordings of
# the same family. These hold the families; they no longer measure how the rules generalise.
@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- a limit in other words ---------------------------------------------------------
        # telserco.com/hosting-notices/throttling-sending/
        ("mail", 550, "Your IP address has been restricted due to heavy usage.", "throttled"),
        ("mail", 451, "Account limited because of high volume", "throttled"),
        # blog.sina.com.cn/s/blog_8dc13ec50101fxxr.html
        ("rcpt", 451, "out of allow RCPT numbers.", "throttled"),
        ("rcpt", 451, "out of allowed message count", "throttled"),
        # smtp.codes/rackspace (G30)
        (
            "rcpt",
            450,
            "4.2.1 <email@example.com>: Mailbox received too much email in a short period of "
            "time (G30)",
            "throttled",
        ),
        # github.com/mjl-/mox smtpserver/server.go
        (
            "data",
            451,
            "4.7.1 max number of messages (1000) over past 24h reached, try increasing "
            "per-account setting MaxOutgoingMessagesPerDay",
            "throttled",
        ),
        # github.com/deltachat/deltachat-core/issues/647
        (
            "data",
            554,
            "5.7.1 <DATA>: Data command rejected: limit of 400 rcpts per 24 hours for client "
            "deltachat@***.me reached",
            "throttled",
        ),
        ("rcpt", 550, "limit of 100 messages per hour for this account", "throttled"),
        # Google's SMTP error table (support.google.com/a/answer/3726730, as archived)
        (
            "data",
            421,
            "4.7.28 Gmail has detected this sender exceeded the quota for sending messages that "
            "have the same Message-ID:. To best protect our users, the message has been "
            "temporarily rejected.",
            "throttled",
        ),
        # ... and a full mailbox is still the recipient's
        ("rcpt", 552, "Mailbox quota exceeded", "recipient_rejected"),
        # -- the client's mistakes counted: the mistakes' family ----------------------------
        # Cisco ESA's documentation (214630-esmtp-commands-supported-by-the-esa-ces)
        ("mail", 421, "Exceeded bad SMTP command limit, disconnecting.", "protocol_error"),
        ("rcpt", 421, "Too many invalid commands, closing connection", "protocol_error"),
        # mox smtpserver/server.go
        ("banner", 421, "4.7.0 too many auth failures", "auth_failed"),
        ("ehlo", 421, "Too many failed login attempts, try later", "auth_failed"),
        # ... but an IP listed for them is the IP's (holdout7's Exim entry)
        (
            "mail",
            550,
            "Message rejected because [69.89.31.218]:10503 is blacklisted see Blocked - Too "
            "many failed logins",
            "ip_reputation",
        ),
        # -- a DNS lookup deferred is temporary --------------------------------------------
        # smtp.codes/rackspace (G1E)
        (
            "data",
            450,
            "4.4.0 <email@example.com> Temporary DMARC DNS lookup failure (G1E)",
            "temporary_failure",
        ),
        # mox smtpserver/server.go
        ("mail", 451, "4.4.0 cannot verify mx records for mailfrom domain", "temporary_failure"),
        # ... but the client IP's PTR is reverse DNS, and a 5xx SPF verdict is the sender's
        (
            "rcpt",
            450,
            "4.4.0 <user@example.com>... Relaying temporarily denied. Cannot resolve PTR record "
            "for 45.125.66.67",
            "reverse_dns",
        ),
        ("mail", 550, "5.7.23 SPF validation failed", "sender_rejected"),
        # -- the sender's -----------------------------------------------------------------
        # mox smtpserver/server.go
        ("mail", 550, "5.7.1 must match authenticated user", "sender_rejected"),
        # github.com/iredmail/iRedAPD libs/__init__.py
        (
            "rcpt",
            554,
            "5.7.1 <user@example.com>: Recipient address rejected: Sender is not same as SMTP "
            "authenticate username",
            "sender_rejected",
        ),
        # github.com/iredmail/docs en_US/faq/1-errors.md
        (
            "rcpt",
            554,
            "5.7.1 <user@domain.com>: Recipient address rejected: Policy rejection due to null "
            "sender",
            "sender_rejected",
        ),
        ("mail", 550, "Empty sender not allowed", "sender_rejected"),
        # Microsoft's troubleshooting page (as archived by azumakuniyuki/feb-2024-no-auth-no-entry)
        ("mail", 550, "command rejected due to Sender ID validation failure.", "sender_rejected"),
        # spamdyke spamdyke/spamdyke.h
        (
            "rcpt",
            421,
            "Refused. The domain of your sender address has no mail exchanger (MX).",
            "sender_rejected",
        ),
        ("mail", 550, "Sender domain has no MX record", "sender_rejected"),
        # -- the login account ------------------------------------------------------------
        # mailout.ru/2015/09 (Mail.ru)
        ("mail", 550, "message sending for this account is disabled", "auth_failed"),
        # github.com/iredmail/docs en_US/howto/force.user.to.change.password.md
        (
            "rcpt",
            554,
            "5.7.1 <user@example.com>: Recipient address rejected: Password expired or never "
            "changed, please change your password in webmail before sending email",
            "auth_failed",
        ),
        # -- AUTH not here ----------------------------------------------------------------
        # mox smtpserver/server.go
        ("auth", 503, "5.5.1 authentication only allowed on submission ports", "auth_disabled"),
        ("auth", 503, "AUTH is only available on port 587", "auth_disabled"),
        # spamdyke spamdyke/spamdyke.h
        ("auth", 504, "Refused. Unknown authentication method.", "auth_disabled"),
        ("auth", 504, "Unsupported authentication mechanism", "auth_disabled"),
        # -- protocol ---------------------------------------------------------------------
        # spamdyke spamdyke/spamdyke.h
        ("ehlo", 554, "Refused. You are not following the SMTP protocol.", "protocol_error"),
        # qmail's bare-LF answer (spamdyke documentation/README.html)
        ("data", 451, "See http://pobox.com/~djb/docs/smtplf.html.", "protocol_error"),
        # github.com/customeros/mailsherpa/issues/11 (an early talker)
        ("ehlo", 550, "5.5.1 Command received before SMTP greeting", "protocol_error"),
        ("mail", 554, "SMTP protocol violation: input sent before banner", "protocol_error"),
        # github.com/nodemailer/nodemailer/issues/694 (a firewall masking STARTTLS)
        ("starttls", 500, "5.0.0 'XXXXXXXX': command not understood.", "protocol_error"),
        ("ehlo", 500, "XXXXXXXXXXXX: command unrecognized", "protocol_error"),
        # -- TLS too old ------------------------------------------------------------------
        # github.com/alramlechner/CommonLogicNodes/issues/6
        (
            "data",
            554,
            "Access denied: Amazon SES no longer supports TLS 1.0 and TLS 1.1 connections. You "
            "must update your client to use TLS version 1.2 or above.",
            "tls_failure",
        ),
        ("mail", 554, "This server does not support TLSv1.0", "tls_failure"),
        # -- HELO -------------------------------------------------------------------------
        # blog.sina.com.cn/s/blog_8dc13ec50101fxxr.html
        ("ehlo", 555, "helohost error.", "helo_rejected"),
        ("ehlo", 550, "heloname refused", "helo_rejected"),
        # -- an attachment's file type ----------------------------------------------------
        # portal.iridis.uk knowledge base article 254
        (
            "data",
            550,
            "MSG-EXT: Blacklisted high risk file extension detected",
            "message_rejected",
        ),
        # github.com/NethServer/dev/issues/5811 (Rspamd)
        ("data", 554, "5.7.1 Matched map: FORBIDDEN_FILE_EXTENSION", "message_rejected"),
        ("data", 550, "Attachment type is not allowed", "message_rejected"),
        # -- the recipient, the relay -----------------------------------------------------
        # spamdyke spamdyke/spamdyke.h
        (
            "rcpt",
            554,
            "Refused. Mail is not being accepted at this address.",
            "recipient_rejected",
        ),
        # github.com/haraka/Haraka/issues/2824
        ("rcpt", 550, "I cannot deliver mail for <user@example.com>", "relay_denied"),
        ("rcpt", 550, "We do not deliver mail for this domain", "relay_denied"),
        # -- the IP, in other words -------------------------------------------------------
        # blog.sina.com.cn/s/blog_8dc13ec50101fxxr.html
        ("mail", 550, "black ip.", "ip_reputation"),
        # github.com/ActiveCampaign/smtp-field-manual/issues/11
        ("rcpt", 550, "ip in prison", "ip_reputation"),
        ("rcpt", 550, "Your IP is jailed for abuse", "ip_reputation"),
        # the two readings that changed under rewording when the sets were registered
        # (tests/corpus/README.md, holdout8): SocketLabs' documentation, "too many" as "excessive"
        (
            "banner",
            421,
            "4.5.1 excessive errors, you have been temporarily blacklisted",
            "throttled",
        ),
        # ThisWebHost's documentation, wrapped in a Postfix bounce line
        (
            "mail",
            550,
            "host mx1.example.net[192.0.2.9] said: 550 5.7.1 [CSR] Our system has detected an "
            "unusual amount of unsolicited email originating from your address",
            "sender_rejected",
        ),
        # Yahoo's help page SLN3436 ([TS03])
        (
            "banner",
            421,
            "4.7.1 [TS03] All messages from x.x.x.x permanently deferred",
            "ip_reputation",
        ),
        ("banner", 554, "Connections from 192.0.2.1 permanently refused", "ip_reputation"),
        # github.com/QuantumNous/new-api/issues/1347 (Tencent Cloud SES)
        (
            "data",
            554,
            "5.0.0 Error: transaction failed, blame it on the weather: ##SES-response-json:"
            '{"Response":{"QcloudError":{"Error":{"Code":"FailedOperation.NotAuthenticatedSender"}}}}',
            "sender_rejected",
        ),
        ("mail", 550, "Sender address is not verified in the console", "sender_rejected"),
        # github.com/postalserver/postal/issues/1245 (a base64 line taken for a command)
        ("auth", 502, "Invalid/unsupported command", "protocol_error"),
        ("auth", 500, "5.5.1 Command unrecognized", "protocol_error"),
        # spamdyke's "Refused. " stamp is not a reason: the words after it are read
        ("banner", 421, "Refused. Service not available, closing channel", "temporary_failure"),
        ("rcpt", 550, "Refused. User account not activated", "recipient_rejected"),
        # (every stamp at once, however many: one more reading, no recursion)
        (
            "rcpt",
            550,
            "Refused. Rejected. " * 2000 + "User not a member of domain",
            "recipient_rejected",
        ),
        # ... but a mechanism the server does not know is AUTH switched off
        ("auth", 504, "5.7.4 Unrecognized authentication type", "auth_disabled"),
        # ... and unsolicited mail from the IP is still the IP's
        (
            "mail",
            550,
            "unsolicited mail originating from your IP address 192.0.2.1",
            "ip_reputation",
        ),
        # github.com/zytzagoo/smtp-validate-email/issues/9
        (
            "banner",
            421,
            "4.7.1 Intrusion prevention active for [my ip address][R]",
            "ip_reputation",
        ),
    ],
)
def test_holdout7_and_8s_families_and_their_other_wordings(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


def test_no_rule_spells_a_contraction_the_normalisation_spells_out() -> None:
    """Rules read the reply after `spelt_out` ("doesn't" -> "does not"): a contraction in a
    rule's phrase could never match, so it is dead weight (judge9 removed 42 of them)."""
    from fleet.judgement.evidence import _CONTRACTIONS
    from fleet.judgement.rules.word_families import WORD_FAMILIES

    dead = re.compile(
        r"\b(?:" + "|".join(w.replace("'", "['\u2019]") for w in _CONTRACTIONS) + r")"
        # and a contraction's apostrophe made optional ("doesn'?t"): that half is dead too
        r"|n['\u2019]\?t\b",
        re.IGNORECASE,
    )
    found = [
        f"{rule.id}: {match.group(0)}"
        for rule in (*RULES, *WORD_FAMILIES)
        for phrase in (rule.text, rule.unless)
        if phrase
        for match in dead.finditer(phrase)
    ]
    assert not found, found


# holdout9/holdout10's misses, read after their blind runs (tests/corpus/README.md) and fixed
# by family (judge10): each corpus text (its source on the line above) and other servers'
# wordings of the same family, cited per line. These hold the families; they no longer measure
# how the rules generalise.


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- the receiver's own blocklist lookup failed: nothing is known about the IP -------
        # mailfront (holdout10's source): the false DIRECT_SEND_DIRTY_IP of the blind run
        ("mail", 451, "4.3.0 DNS error doing RBL lookup", "temporary_failure"),
        # ucspi-tcp's rblsmtpd with -c (github.com/comotion/ucspi-tcp rblsmtpd.c, "451 " + text)
        ("rcpt", 451, "temporary RBL lookup error", "temporary_failure"),
        # sendmail's FEATURE(dnsbl) tempfail message (cf/feature/dnsbl.m4, _DNSBL_MSG_TMP_)
        (
            "rcpt",
            451,
            "4.4.3 Temporary lookup failure of 192.0.2.10 at zen.spamhaus.org",
            "temporary_failure",
        ),
        # ... the list first, the failure first, in other words
        ("rcpt", 451, "4.7.1 DNSBL lookup timed out, try again later", "temporary_failure"),
        ("rcpt", 450, "Error checking DNSBL zen.spamhaus.org", "temporary_failure"),
        ("rcpt", 451, "4.7.1 Temporary failure in blocklist query", "temporary_failure"),
        ("rcpt", 554, "5.7.1 Unable to query the RBL, try again later", "temporary_failure"),
        ("rcpt", 451, "Temporary DNSBL failure", "temporary_failure"),
        # ... the receiver's resolver refused by the list stays the receiver's fault (holdout6's
        # URIBL "Query Refused"; replies.yaml's "Error: open resolver")
        (
            "rcpt",
            554,
            "5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; "
            "Error: open resolver; https://www.spamhaus.org/returnc/pub/198.51.100.1",
            "receiver_fault",
        ),
        # ... but a listing is still a listing, whatever the zone is called
        ("rcpt", 550, "5.7.1 Rejected: 192.0.2.10 listed at errors.example.net", "ip_reputation"),
        (
            "rcpt",
            550,
            "Mail from 192.0.2.10 refused, listed in RBL errors.example",
            "ip_reputation",
        ),
        # -- AUTH of that type or mode not offered: AUTH switched off, not a protocol error ---
        # indimail-mta qmail-smtpd smtpd.c (holdout10's source)
        ("auth", 504, "auth type unimplemented (#5.5.1)", "auth_disabled"),
        # a Chinese provider's reply list (holdout10's source)
        ("auth", 504, "auth mode unsupported.", "auth_disabled"),
        # Stalwart (holdout10's source), reworded by the replay test's "allowed-permitted"
        ("auth", 503, "5.5.1 AUTH not permitted.", "auth_disabled"),
        # SubEthaSMTP's tests ("504 Auth type unimplemented - weren't you listening?") and
        # the qmail-smtpd patches' "530 auth type prohibited (#5.7.0)" (found by the `search`
        # tool's code corpus, "auth type unimplemented")
        ("auth", 504, "Auth type unimplemented - weren't you listening?", "auth_disabled"),
        ("auth", 530, "auth type prohibited (#5.7.0)", "auth_disabled"),
        ("auth", 504, "5.5.4 unknown authentication mode", "auth_disabled"),
        # -- a sender check's temporary DNS error (RFC 7208 8.6 "temperror", 451 4.4.3): the
        # receiver defers, not a verdict on the sender ----------------------------------------
        # Stalwart (holdout10's source)
        ("mail", 451, "4.7.24 Temporary SPF validation error.", "temporary_failure"),
        # haraka-plugin-spf (holdout10's source)
        ("mail", 451, "sender <user@example.com> SPF Temporary Error", "temporary_failure"),
        # forwardemail.net (holdout9's source): a DNS SERVFAIL, even in a 550
        ("rcpt", 550, "queryTxt ESERVFAIL", "temporary_failure"),
        # easydns/chapps (its PostfixSPFActions "temperror" reply)
        (
            "rcpt",
            451,
            "4.4.3 SPF record(s) temporarily unavailable: DNS timeout",
            "temporary_failure",
        ),
        # Debian's exim4-config SPF ACL ("defer message = ..."), as copied in a public
        # repository found with the `search` tool
        (
            "rcpt",
            451,
            "Temporary DNS error while checking SPF record.  Try again later.",
            "temporary_failure",
        ),
        ("mail", 451, "4.4.3 SPF temperror", "temporary_failure"),
        ("data", 451, "4.7.5 DKIM temporary failure", "temporary_failure"),
        # -- the login account refused: suspended, its credentials void, its failures counted -
        # Amazon SES (holdout9's source, a Mozilla accounts thread)
        (
            "data",
            554,
            "Message rejected: Sending suspended for this account. For more information, please "
            "check the inbox of the email address associated with your AWS account.",
            "auth_failed",
        ),
        # Amazon SES's account-level pause, as pasted in public repositories (a gomail test's
        # comment: "554 Message rejected: Sending paused for this account. ...")
        (
            "data",
            554,
            "Message rejected: Sending paused for this account. For more information, please "
            "check the inbox of the email address associated with your AWS account.",
            "auth_failed",
        ),
        # Postal (holdout10's source): Postal's "mail server" is the sending organisation's
        ("rcpt", 550, "Mail server has been suspended", "auth_failed"),
        # hMailServer (holdout10's source)
        ("mail", 530, "Login credentials no longer valid. Please re-authenticate.", "auth_failed"),
        ("auth", 535, "5.7.8 Your credentials are no longer valid", "auth_failed"),
        ("auth", 535, "5.7.8 App password revoked", "auth_failed"),
        # NetEase (holdout10's source) and other wordings of counted failures
        (
            "auth",
            550,
            "Requested mail action not taken: too much fail authentication",
            "auth_failed",
        ),
        ("auth", 535, "Too many failed authentication attempts", "auth_failed"),
        # ... but Gmail's relay refusal of a suspended sending account stays the sender's
        # (replies.yaml), and a suspended mailbox at RCPT is the recipient's (holdout6)
        (
            "mail",
            550,
            "5.7.0 Email relay denied ip-address. The sending email account has been temporarily "
            "suspended due to abuse.",
            "sender_rejected",
        ),
        ("rcpt", 550, "User suspended", "recipient_rejected"),
        # -- a limit on this client in other words: throttled --------------------------------
        # cPanel's shipped Exim connect ACL (holdout10's source)
        (
            "banner",
            421,
            "The server has reached its limit for processing requests from your host. Please "
            "try again later.",
            "throttled",
        ),
        # Stalwart (holdout10's source)
        ("data", 421, "4.3.2 mx.example.com Session open for too long.", "throttled"),
        # iRedAPD's throttle plugin through Postfix (holdout10's source)
        (
            "rcpt",
            452,
            "5.7.1 <user@example.com>: Recipient address rejected: Throttling quota exceeded",
            "throttled",
        ),
        # Zoho (holdout9's source)
        ("data", 550, "5.4.6 Unusual sending activity detected. Learn more.", "throttled"),
        ("rcpt", 450, "4.7.1 Connection open too long, try again later", "throttled"),
        # ... while a full mailbox stays the recipient's
        ("rcpt", 552, "5.2.2 Mailbox quota exceeded", "recipient_rejected"),
        # -- the session's own timer ran out: temporary, even in a 5xx ---------------------
        # go-guerrilla (holdout9's source)
        ("data", 554, "5.5.0 Error: transaction timeout", "temporary_failure"),
        # Exim's smtp_in.c ("421 %s SMTP incoming data timeout - closing connection.") and
        # Jane Street's async_smtp ("SMTP command timeout, closing transmission channel")
        (
            "data",
            421,
            "mx.example.com SMTP incoming data timeout - closing connection.",
            "temporary_failure",
        ),
        (
            "mail",
            554,
            "5.4.7 SMTP command timeout, closing transmission channel",
            "temporary_failure",
        ),
        # ... but a DNS timeout on the HELO name is the HELO name's (dev sets)
        ("ehlo", 450, "DNS timeout resolving your HELO hostname", "helo_rejected"),
        # -- a domain the server does not receive for: relaying, whatever its code -----------
        # mox smtpserver/server.go (holdout10's source), despite its 5.1.1
        ("rcpt", 550, "5.1.1 not accepting email for domain", "relay_denied"),
        ("rcpt", 550, "5.7.1 We are not accepting mail for this domain", "relay_denied"),
        # -- an address the server cannot parse, at MAIL or RCPT: whose address, by the stage -
        # Exim's parse.c through its smtp_in.c (holdout9's source: a Nextcloud installer)
        (
            "mail",
            501,
            '<Nextcloud HPB Setup <noreply.nextcloud-hpb.setup>>: "@" or "." expected after '
            '"Nextcloud"',
            "sender_rejected",
        ),
        # Exim's smtp_in.c ("501 %s: recipient address must contain a domain"; holdout9's
        # source) and its sender twin ("501 %s: sender address must contain a domain")
        ("rcpt", 501, "<root>: recipient address must contain a domain", "recipient_rejected"),
        ("mail", 501, "<root>: sender address must contain a domain", "sender_rejected"),
        # chasquid's smtpsrv/conn.go ("501 5.1.7 Sender address malformed")
        ("mail", 501, "5.1.7 Sender address malformed", "sender_rejected"),
        ("rcpt", 501, "malformed address", "recipient_rejected"),
        # sendmail's parseaddr.c prescan ("553 Unbalanced '<'")
        (
            "mail",
            553,
            "5.1.3 <Scanner <scanner@example.com>... Unbalanced '<'",
            "sender_rejected",
        ),
        # ... while a reply that names the command's syntax stays a protocol error
        ("mail", 501, "5.5.4 Syntax: MAIL FROM:<address>", "protocol_error"),
        ("mail", 501, "Syntax error in parameters or arguments", "protocol_error"),
        # -- a command at the wrong point: an early talker, pipelining after STARTTLS, STARTTLS
        # once TLS is up -------------------------------------------------------------------
        # qpsmtpd's check_earlytalker (holdout10's source)
        (
            "banner",
            554,
            "Connecting host started transmitting before SMTP greeting",
            "protocol_error",
        ),
        # Haraka's early_talker plugin ("You talk too soon")
        ("ehlo", 554, "You talk too soon", "protocol_error"),
        # mailfront (holdout10's source)
        (
            "starttls",
            554,
            "5.5.1 Unexpected pipelined commands following STARTTLS",
            "protocol_error",
        ),
        # NetEase (holdout9's source) and Postfix smtpd.c ("554 5.5.1 Error: TLS already active")
        ("starttls", 454, "Command not permitted when TLS active", "protocol_error"),
        ("starttls", 554, "5.5.1 Error: TLS already active", "protocol_error"),
        # -- the EHLO name's state or kind, in other words ------------------------------------
        # Courier's courieresmtpd (holdout10's source), at MAIL FROM
        ("mail", 550, "HELO mail.example.com does not exist.", "helo_rejected"),
        # indimail-mta's qmail-smtpd (holdout10's source)
        ("ehlo", 451, "unable to accept non-FQDN HELO (#4.3.0)", "helo_rejected"),
        # Postfix reject_unknown_helo_hostname ("Helo command rejected: Host not found")
        ("rcpt", 450, "4.7.1 <MFP-3F>: Helo command rejected: Host not found", "helo_rejected"),
        ("mail", 550, "EHLO [192.0.2.1] not found", "helo_rejected"),
        # -- the sender not the login's or the client's own: the sender's ---------------------
        # Haraka's auth plugins (holdout10's source)
        (
            "mail",
            550,
            "Envelope domain 'example.org' doesn't match AUTH domain 'example.com'",
            "sender_rejected",
        ),
        ("mail", 553, "5.7.1 Sender domain does not match your login domain", "sender_rejected"),
        # indimail-mta's qmail-smtpd (holdout10's source)
        (
            "mail",
            553,
            "sorry, this MTA does not accept masquerading/forging #5.7.1",
            "sender_rejected",
        ),
        # -- TLS that could not be set up, in other words ------------------------------------
        # qpsmtpd's tls plugin (holdout10's source)
        ("banner", 554, "Cannot establish SSL session", "tls_failure"),
        ("starttls", 454, "4.7.0 Unable to initialize TLS session", "tls_failure"),
        # -- the client named as an open relay: its IP's standing ---------------------------
        # indimail-mta's qmail-smtpd (holdout10's source)
        (
            "ehlo",
            553,
            "No mail accepted from an open relay (192.0.2.10); check your server configs (#5.7.1)",
            "ip_reputation",
        ),
        # ... but a server refusing to be used as one is refusing to relay
        ("rcpt", 550, "5.7.1 You may not use this server as an open relay", "relay_denied"),
        # -- "local user only": the sender at MAIL, relaying at RCPT (by the stage) ----------
        # NetEase 163 (holdout9's source, at MAIL FROM)
        (
            "mail",
            553,
            "Local user only,163 smtp5,HdxpCgA3f+63sTNhtiNZDA--.2001S2 1630777785",
            "sender_rejected",
        ),
        # Coremail (tests/corpus, at RCPT TO)
        ("rcpt", 553, "Requested action not taken: Local user only", "relay_denied"),
        # -- the line itself garbled: a protocol error, not the sender ------------------------
        # QQ Mail (holdout9's source)
        (
            "mail",
            502,
            "Invalid input from xxxIPxxx to newxmesmtplogicsvrszb20-1.qq.com.",
            "protocol_error",
        ),
        # -- what the message was sent with or gives away ------------------------------------
        # holdout9's "[ACD14]" refusal of mailing-list software
        ("data", 550, '"[ACD14] List software not permitted', "message_rejected"),
        # Haraka's data.headers / credential-leak check (holdout10's source)
        (
            "data",
            550,
            "Credential leak detected: never give out your username/password to anyone!",
            "message_rejected",
        ),
        # -- a policy server's bare verdict behind Postfix's prefix names no cause ------------
        # iRedAPD (holdout10's source): unrecognised, with or without a queue tag after it
        (
            "rcpt",
            554,
            "5.7.1 <user@example.com>: Recipient address rejected: Not authorized",
            "unrecognised_refusal",
        ),
        (
            "rcpt",
            554,
            "5.7.1 <user@example.com>: Recipient address rejected: Not authorized (in reply to "
            "RCPT TO command)",
            "unrecognised_refusal",
        ),
        # ... while Postfix access(5)'s "Access denied" (a map keyed by the recipient) and a
        # recipient's state after it stay the recipient's
        (
            "rcpt",
            554,
            "5.7.1 <user@example.com>: Recipient address rejected: Access denied",
            "recipient_rejected",
        ),
        (
            "rcpt",
            550,
            "5.1.1 <user@example.com>: Recipient address rejected: User unknown in local "
            "recipient table",
            "recipient_rejected",
        ),
        # -- the server's own error while handling the message names no reason ---------------
        # Yahoo (holdout9's source): labelled unrecognised, like "unknown error"
        ("data", 554, "6.6.0 Error sending message for delivery.", "unrecognised_refusal"),
        ("data", 554, "Error processing message", "unrecognised_refusal"),
        # ... but a permanent SPF verdict stays the sender's, and Gmail's 4.7.26 asks the
        # sender domain to fix its DMARC (holdout8)
        ("mail", 550, "5.7.1 SPF permanent error", "sender_rejected"),
        (
            "data",
            451,
            "4.7.26 Unauthenticated email from domain-name is not accepted due to domain's DMARC "
            "policy, but temporary DNS failures prevent authentication.",
            "sender_rejected",
        ),
    ],
)
def test_holdout9_and_10s_families_and_their_other_wordings(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- a limit in other words (holdout13/14's misses, judge12)
        # AliMail (holdout14), Sophos (holdout13) and the IANA enhanced-status registry's
        # X.7.28 "Mail flood detection"; Bluehost's and Stalwart's messages per session
        ("rcpt", 504, "the number of RCPT attempts is achieved the maximum threshold", "throttled"),
        ("rcpt", 505, "the total of RCPTs is achieved the maximum threshold", "throttled"),
        ("data", 554, "5.7.28 Mail flood detected;", "throttled"),
        ("data", 554, "5.7.28 Mail flood detection", "throttled"),
        ("data", 552, "too many same size mails.", "throttled"),
        ("mail", 550, '"fromemail" max messages per session', "throttled"),
        ("mail", 452, "4.4.5 Maximum number of messages per session exceeded.", "throttled"),
        # ... while a message's size stays the message's
        ("data", 552, "5.3.4 Message size exceeds fixed maximum message size", "message_rejected"),
        # -- the receiver's own transient failure, whatever its code (Microsoft 365); a
        # "Dialup/transient IP" is the site's IP (T-Online, seen)
        (
            "rcpt",
            550,
            "Transient Failure during recipients lookup AmbiguousRecipientTransientException",
            "temporary_failure",
        ),
        ("rcpt", 550, "Dialup/transient IP not allowed. Use a mailgateway", "ip_reputation"),
        # -- a recipient that is not one of the server's own: relaying (MailEnable, AliMail, BT)
        (
            "rcpt",
            550,
            "Requested action not taken: mailbox unavailable or is not local",
            "relay_denied",
        ),
        ("rcpt", 550, "Rcptto account isn't a local account", "relay_denied"),
        (
            "rcpt",
            550,
            "Recipient Not Authorised [recipient rejected due to no authorised destination groups]",
            "relay_denied",
        ),
        ("rcpt", 553, "5.1.2 Recipient address not local. relaying denied", "relay_denied"),
        # -- the sender's domain without MX, the sender account local or not (eYou, AliMail;
        # spamdyke's wording, seen)
        ("mail", 550, "Your domain has not DNS/MX entries", "sender_rejected"),
        (
            "mail",
            550,
            "Refused. The domain of your sender address has no mail exchanger (MX).",
            "sender_rejected",
        ),
        ("mail", 550, '"MAIL FROM" is non-local account', "sender_rejected"),
        ("mail", 550, "Mailfrom account is a local account", "sender_rejected"),
        # -- a sender check that could not run (Cisco; maddy's DKIM, dev_source)
        ("data", 451, "#4.7.1 Unable to perform DMARC verification.", "temporary_failure"),
        ("data", 421, "4.7.20 Temporary error during DKIM verification", "temporary_failure"),
        # -- failed logins counted, the IP hung up for them (eYou)
        ("banner", 554, "IP is Hangup, too much auth error,........", "auth_failed"),
        ("mail", 550, "This account isn't allowed to send email", "auth_failed"),
        # -- POP-before-SMTP (Nifty)
        ("rcpt", 550, "sorry, you must get POP/APOP authorization.", "auth_required"),
        # -- the recipient in other words (Yandex; an unresolvable address)
        ("data", 550, "No correct recipients", "recipient_rejected"),
        (
            "rcpt",
            452,
            "<user@example.net> Mailbox delivery restricted by policy error",
            "recipient_rejected",
        ),
        ("rcpt", 552, "Mailbox size exceeded", "recipient_rejected"),
        (
            "rcpt",
            550,
            "Hi [192.0.2.1], unresolvable address: <user@example.net>",
            "recipient_rejected",
        ),
        ("data", 554, "5.5.1 Error: no valid recipients", "recipient_rejected"),
        # -- the end of data or a line the server could not parse (SparkPost; holdout14)
        ("data", 550, "5.6.0 Missing CR LF . CR LF", "protocol_error"),
        ("data", 550, "line parse error", "protocol_error"),
        # -- several From addresses without a Sender is the header's (Microsoft's 5.1.20);
        # a phishing verdict is the message's
        (
            "data",
            550,
            "5.1.20 Multiple From addresses are not allowed without Sender address",
            "message_rejected",
        ),
        (
            "data",
            550,
            "Message contained unsafe content (Heuristics.Phishing.Email.SpoofedDomain)",
            "message_rejected",
        ),
        # -- the site's IP blocked or filtered in other words (Aruba in Italian, Hanafos), an
        # open-relay test refusing at the greeting; a busy server is its own state (Daum)
        (
            "banner",
            554,
            "Indirizzo IP bloccato temporaneamente per sospetto abuso",
            "ip_reputation",
        ),
        (
            "banner",
            421,
            "4.3.2 Your IP(192.0.2.104) is filtered and this connection will be closed. You must "
            "register your IP",
            "ip_reputation",
        ),
        ("banner", 554, "openrelay check.", "ip_reputation"),
        (
            "banner",
            421,
            "4.4.5 CCRT IP ADDRESS: Connection refused. Server is busy(RT)",
            "temporary_failure",
        ),
    ],
)
def test_holdout13_and_14s_families_and_their_other_wordings(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- a verification the receiver could not complete (a 4xx) is its deferral, at any
        # stage; a failed one (a 5xx) stays the sender's or recipient's verdict
        # Exim src/src/acl.c and verify.c (at 13835a3): "Could not complete %s verify callout"
        ("rcpt", 451, "Could not complete sender verify", "temporary_failure"),
        ("rcpt", 451, "Could not complete sender verify callout", "temporary_failure"),
        ("rcpt", 451, "Could not complete recipient verify callout", "temporary_failure"),
        # qmail's rcptcheck patch (sagredo-dev/qmail qmail-smtpd.c)
        ("rcpt", 421, "unable to verify recipient (#4.3.0)", "temporary_failure"),
        ("rcpt", 550, "Sender verify failed", "sender_rejected"),
        # -- a deferral the receiver's policy asked for (Postfix smtpd_check.c's actions)
        (
            "rcpt",
            450,
            "4.7.1 <user@example.net>: Recipient address rejected: defer_if_permit requested",
            "temporary_failure",
        ),
        (
            "rcpt",
            450,
            "4.7.1 <copier.example.com[192.0.2.10]>: Client host rejected: defer_if_reject "
            "requested",
            "temporary_failure",
        ),
        # -- a command without its argument, or with bytes the server does not take: protocol
        # Exim smtp_in.c (interactive and batch SMTP wordings)
        ("mail", 501, "MAIL must have an address operand", "protocol_error"),
        ("mail", 501, "MAIL FROM must have an address operand", "protocol_error"),
        ("rcpt", 501, "RCPT must have an address operand", "protocol_error"),
        # Postfix smtpd.c
        ("ehlo", 500, "5.5.2 Error: bad UTF-8 syntax", "protocol_error"),
        ("mail", 553, "5.6.7 Must declare SMTPUTF8 to send unicode address", "protocol_error"),
        # -- AUTH inside a mail transaction; postscreen's answer to a client that talked first
        ("auth", 503, "no auth during mail transaction (#5.5.0)", "protocol_error"),
        ("auth", 503, "5.5.1 Error: MAIL transaction in progress", "protocol_error"),
        ("banner", 521, "5.7.0 Error: I can break rules, too. Goodbye.", "protocol_error"),
        # -- the sender against the login, the empty sender (qmail's patches)
        ("mail", 503, "from and auth not the same (#5.5.1)", "sender_rejected"),
        ("mail", 421, "null senders temporarily denied (#4.3.0)", "sender_rejected"),
        # -- Haraka's refusal of a recipient or sender by a plugin that gave no text
        # (connection.js at 0bf10cb)
        ("rcpt", 550, "recipient <user@example.net> denied", "recipient_rejected"),
        ("rcpt", 450, "recipient <user@example.net> denied", "recipient_rejected"),
        ("mail", 550, "sender <user@example.com> denied", "sender_rejected"),
        # -- TLS or AUTH again, or an extension not declared: out of place in the session
        # mox smtpserver/server.go (at 1c95876), chasquid internal/smtpsrv/conn.go (at ca2538b)
        ("starttls", 503, "5.5.1 already speaking tls", "protocol_error"),
        ("starttls", 503, "5.5.1 cannot starttls after authentication", "protocol_error"),
        ("starttls", 503, "5.5.1 You are already wearing that!", "protocol_error"),
        ("auth", 503, "5.5.1 You are already wearing that!", "protocol_error"),
        ("auth", 503, "5.5.1 authentication not allowed during mail transaction", "protocol_error"),
        (
            "data",
            500,
            "5.6.0 message with non-us-ascii requires 8bitmime extension",
            "protocol_error",
        ),
        ("banner", 502, "5.7.0 You hear someone cursing shoplifters", "protocol_error"),
        # Stalwart crates/smtp/src/inbound (at 55e62a6): the command it waited for, named
        ("ehlo", 502, "5.5.1 Invalid command: EHLO expected.", "protocol_error"),
        ("mail", 503, "RCPT command expected", "protocol_error"),
        # spamdyke's "Refused. " stamp, also after the server's own name
        (
            "data",
            554,
            "Refused. You must specify at least one valid recipient.",
            "recipient_rejected",
        ),
        (
            "data",
            554,
            "mx1.example.net Refused. You must specify at least one valid recipient.",
            "recipient_rejected",
        ),
        # -- chasquid's TLS downgrade check is a TLS demand
        ("mail", 550, "5.7.3 Security level check failed", "tls_required"),
        # -- maddy: a bad From address is the sender's; a temporary DKIM error is temporary
        # (internal/endpoint/smtp/submission.go, internal/check/dkim/dkim.go at 837b1b8)
        ("data", 554, "5.6.0 Invalid address in From", "sender_rejected"),
        ("data", 421, "4.7.20 Temporary error during DKIM verification", "temporary_failure"),
        (
            "data",
            451,
            "4.7.23 SPF authentication failed with a temporary error",
            "temporary_failure",
        ),
    ],
)
def test_dev_sources_families_and_their_other_wordings(
    stage: str, code: int, text: str, category: str
) -> None:
    # judge12: the families dev_source.yaml (the MTAs' own refusals, from their source) showed
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    "text",
    [
        "4.3.0 DNS error doing RBL lookup",
        "temporary RBL lookup error",
        "4.4.3 Temporary lookup failure of 192.0.2.10 at zen.spamhaus.org",
    ],
)
def test_a_failed_blocklist_lookup_never_says_the_ip_is_dirty(text: str) -> None:
    decision = classify_reply(Stage.rcpt, make_reply(451, text), ISSUE_16)

    assert decision.category is not Category.ip_reputation
    assert "delist" not in decision.remediation.lower()


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- the client's IP that does not resolve, or resolves to a forged name: its PTR -----
        # sendmail's cf/m4/proto.m4, FEATURE(require_rdns) (holdout12's source)
        ("mail", 451, "4.1.8 Client IP address 192.0.2.10 does not resolve", "reverse_dns"),
        ("mail", 451, "4.1.8 Possibly forged hostname for 192.0.2.10", "reverse_dns"),
        ("mail", 550, "5.7.1 Fix reverse DNS for 192.0.2.10", "reverse_dns"),
        # ... while the sender address's domain that does not resolve stays the sender's
        # (sendmail's "Domain of sender address ... does not resolve")
        (
            "mail",
            451,
            "4.1.8 Domain of sender address scanner@example.com does not resolve",
            "sender_rejected",
        ),
        # -- a session or connection without a login: the login is wanted -------------------
        # Apache James's SenderAuthIdentifyVerificationHook and its relay check (holdout12)
        (
            "mail",
            550,
            "5.7.1 Sender <user@example.com> is not allowed for unauthenticated connection "
            "from 192.0.2.10",
            "auth_required",
        ),
        (
            "rcpt",
            550,
            "5.7.1 Rejected: unauthenticated e-mail from 192.0.2.10 is restricted.  Contact the "
            "postmaster for details.",
            "auth_required",
        ),
        # MailCleaner (holdout12's source)
        ("rcpt", 550, "unauthenticated session on submission port", "auth_required"),
        # -- a 4xx that says the receiver's own check could not run now: a deferral ----------
        # amavisd-new's "Error in processing ... virus_scan FAILED" (as quoted in Postfix logs)
        (
            "data",
            451,
            "4.5.0 Error in processing, id=16348-01, virus_scan FAILED: virus_scan: ALL VIRUS "
            "SCANNERS FAILED",
            "temporary_failure",
        ),
        # Mailu's Rspamd, OpenSMTPD's filter, Stalwart (holdout12's sources)
        (
            "data",
            451,
            "4.7.1 Please retry later (anti-virus/oletools not ready)",
            "temporary_failure",
        ),
        ("data", 451, "4.7.1 Virus filter failed", "temporary_failure"),
        ("rcpt", 451, "4.4.3 Unable to verify address at this time.", "temporary_failure"),
        # ... while a virus found, or a sender verification that failed, stays a verdict
        ("data", 554, "5.7.1 Virus found: Eicar-Test-Signature", "message_rejected"),
        ("mail", 550, "Verification failed for <scanner@example.com>", "sender_rejected"),
        # -- a count of new TLS sessions is a limit -------------------------------------------
        # Postfix smtpd_client_new_tls_session_rate_limit (its smtpd.c; holdout12's source)
        (
            "starttls",
            454,
            "4.7.0 Error: too many new TLS sessions from unknown[192.0.2.10]",
            "throttled",
        ),
        ("starttls", 421, "4.7.0 Error: too many new TLS sessions from <detail>", "throttled"),
        # ... while TLS that cannot start stays a TLS failure
        ("starttls", 454, "4.7.0 TLS not available due to local problem", "tls_failure"),
        # -- a wait counted in seconds or minutes is a rate; a limit in Portuguese ------------
        ("mail", 422, "try again in 15 seconds", "throttled"),  # holdout11's source
        ("mail", 421, "4.7.0 Try again in 10 minutes", "throttled"),
        # ... while greylisting's wait stays a deferral (Postgrey, "Greylisted, see ...")
        ("rcpt", 451, "4.7.1 Greylisted, please try again in 300 seconds", "temporary_failure"),
        # Zimbra's policy daemon (holdout12's source)
        (
            "rcpt",
            554,
            "5.7.1 <user@gmail.com>: Recipient address rejected: Limite de envio para o gmail "
            "foi excedido",
            "throttled",
        ),
        # -- the provider's app password by another name (QQ Mail, NetEase: 授权码) -----------
        (
            "auth",
            535,
            "Error: 请使用授权码登录。详情请看: http://service.mail.qq.com/cgi-bin/help?subtype=1",
            "auth_disabled",
        ),
        (
            "auth",
            535,
            "Error: authentication failed, please use the authorization code",
            "auth_disabled",
        ),
        # NetEase at AUTH (holdout11's source; java mail users' "AuthenticationFailedException:
        # 550 User has no permission ... 设置客户端授权码")
        ("auth", 550, "User has no permission", "auth_disabled"),
        # -- a sending domain the provider has not set up: the sender's -----------------------
        # SparkPost and Mailgun (holdout11's sources)
        ("data", 550, "5.7.1 Unconfigured Sending Domain <example.com>", "sender_rejected"),
        (
            "data",
            554,
            "Sandbox subdomains are for test purposes only. Please add your own domain or add "
            "the address to authorized recipients in Account Settings.",
            "sender_rejected",
        ),
        # -- a domain with no reputation yet is a domain's reputation -------------------------
        # Spamhaus's DQS milter (holdout12's source)
        (
            "mail",
            550,
            "5.7.1 Policy rejection: sender domain has no established reputation.",
            "domain_reputation",
        ),
        # -- the sender's address or domain on the receiver's own list: the domain's ---------
        # Symbiosis (holdout12's source); the IP on that list stays the IP's
        ("rcpt", 550, "Your email address or domain is locally blacklisted.", "domain_reputation"),
        ("rcpt", 554, "Your IP address is locally blacklisted", "ip_reputation"),
        # -- an address outside the server's domains: relaying (Twisted's SMTPBadRcpt) --------
        ("rcpt", 550, "Cannot receive for specified address", "relay_denied"),
        # -- a bounce without the receiver's BATV tag: the sender's ---------------------------
        # MailCleaner (holdout12's source), and the BATV wording of other filters
        ("rcpt", 550, "This domain does not accept unsigned bounces.", "sender_rejected"),
        ("rcpt", 553, "5.7.1 Bounce address tag validation failed", "sender_rejected"),
        # -- the message refused in AOL's words -----------------------------------------------
        ("data", 521, "5.2.1 :  AOL will not accept delivery of this message.", "message_rejected"),
    ],
)
def test_holdout11_and_12s_families_and_their_other_wordings(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # Guards written by the review of holdout11/12's families (constructed, not cited): a
        # family's words beside a cause the words name must leave the cause to decide.
        # "try again in N minutes" with the IP's listing, a login wanted, a server's problem
        (
            "rcpt",
            421,
            "4.7.0 Try again in 10 minutes, your IP is listed on our blocklist",
            "ip_reputation",
        ),
        (
            "rcpt",
            450,
            "4.7.1 Your IP is on our blacklist, try again in 30 minutes",
            "ip_reputation",
        ),
        ("mail", 451, "4.7.1 Please use SMTP AUTH; try again in 5 minutes", "auth_required"),
        (
            "data",
            451,
            "4.3.0 Temporary system problem. Try again in 10 minutes",
            "temporary_failure",
        ),
        (
            "mail",
            421,
            "4.3.2 System not accepting network messages, try again in 5 minutes",
            "temporary_failure",
        ),
        ("mail", 422, "try again in 15 seconds", "throttled"),
        # a filter's verdict is no check that could not run
        ("data", 451, "4.7.1 Rejected by spam filter: SPF check failed", "sender_rejected"),
        ("data", 451, "4.7.1 Spam filter detected spam, delivery failed", "message_rejected"),
        # an account with no permission to use SMTP is a refused login, not an app password
        (
            "auth",
            535,
            "Authentication failed. Your account has no permission to use SMTP",
            "auth_failed",
        ),
        # too many unauthenticated connections is a limit
        ("banner", 421, "4.7.0 Too many unauthenticated connections from your IP", "throttled"),
        # a message's size and a mailbox's storage are no sending limit (Portuguese)
        ("data", 552, "5.3.4 Limite de tamanho da mensagem excedido", "message_rejected"),
        ("rcpt", 552, "Caixa postal cheia: cota excedida", "recipient_rejected"),
    ],
)
def test_the_new_families_leave_a_named_cause_to_decide(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)


@pytest.mark.parametrize(
    ("stage", "code", "text", "category"),
    [
        # -- review I: a family's phrase must not hide the cause a reply goes on to name
        # Haraka's bare "recipient <a> denied" is the recipient's; a reason after it decides
        ("rcpt", 550, "Recipient <bob@contoso.test> denied", "recipient_rejected"),
        (
            "rcpt",
            550,
            "5.7.1 Recipient <bob@contoso.test> rejected: your IP 192.0.2.1 is listed on "
            "zen.spamhaus.org",
            "ip_reputation",
        ),
        ("rcpt", 550, "Recipient <bob@contoso.test> denied: relay access denied", "relay_denied"),
        # a sender address that is not local is the sender's (or a login wanted), not relaying
        ("mail", 553, "5.7.1 Sender address is not local", "sender_rejected"),
        (
            "mail",
            550,
            "5.7.1 Your sender address is not local; please authenticate",
            "auth_required",
        ),
        # a spam score over its threshold is the message's, not a sending limit
        ("data", 554, "5.7.1 Spam score 12.3 exceeded the maximum threshold", "message_rejected"),
        # a sender check that could not run is a deferral only in a 4xx
        ("data", 451, "#4.7.1 Unable to perform DMARC verification.", "temporary_failure"),
        (
            "data",
            550,
            "5.7.1 Unable to perform DMARC verification: message fails DMARC policy of "
            "contoso.test",
            "sender_rejected",
        ),
        # the open relay test named in a relay refusal is the relay's; alone, the IP's
        ("rcpt", 550, "5.7.1 Relaying denied. Sender failed the open relay check", "relay_denied"),
        ("banner", 554, "openrelay check.", "ip_reputation"),
        # a list named after "is in", "appears in", "see" is evidence, host name or not
        ("rcpt", 550, "5.7.1 Rejected because 192.0.2.1 is in dnsbl.njabl.org", "ip_reputation"),
        ("rcpt", 554, "Rejected: 192.0.2.1 appears in ix.dnsbl.manitu.net", "ip_reputation"),
        # sentences run together keep their words ("blacklisted.to" is no host in Tonga)
        (
            "rcpt",
            550,
            "5.7.1 Your IP address 192.0.2.1 is blacklisted.to remove it contact postmaster",
            "ip_reputation",
        ),
        # an address verification that found its answer is that answer
        ("rcpt", 450, "4.1.1 Unable to verify recipient: user unknown", "recipient_rejected"),
    ],
)
def test_a_familys_phrase_does_not_hide_the_cause_a_reply_names(
    stage: str, code: int, text: str, category: str
) -> None:
    _assert_reads(stage, code, text, category)
