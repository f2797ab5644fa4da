"""Remediation texts more than one rule gives."""

from __future__ import annotations

from fleet import m365
from fleet.judgement.rule import Remedy
from fleet.results import Category

IP_REPUTATION_FIX: Remedy = {
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

TENANT_BLOCK_LIST_FIX = (
    "Your own tenant blocks this recipient in its Tenant Allow/Block List (5.7.703): the "
    "Microsoft 365 admin removes the entry (Microsoft Defender portal, Tenant Allow/Block "
    "Lists), or the copier sends to another recipient."
)

AUTH_ALTERNATIVES = m365.ALTERNATIVES  # one sentence, kept with Microsoft's facts

RECEIVER_FAULT_FIX = (
    "{host} refuses mail because its own blocklist lookups are broken: it asks {list} "
    "through a public or open resolver, which the list refuses (Spamhaus answers "
    "127.255.255.x), and the server reads the refusal as a listing. Nothing is listed and "
    "nothing can be delisted on your side: tell the receiving organisation's mail "
    "administrator to query the list through their own resolver (or a Spamhaus DQS key). "
    "Until they fix it, mail from any sender to them fails."
)

RECEIVER_DEFUNCT_LIST_FIX = (
    "{host} refuses mail because it still queries a blocklist that has shut down ({list}); "
    "such lists answer 'listed' for every address, or say that the receiving server is "
    "misconfigured. Nothing is listed and nothing can be delisted on your side: tell the "
    "receiving organisation's mail administrator to remove the list from their server."
)

DOMAIN_LISTED_FIX = (
    "The server refuses the mail because a domain is listed ({listed_domain} on {list}), "
    "not the site's IP: make sure the copier's sender ({sender}) and EHLO name "
    "({ehlo_name}) are in a domain you control; look the domain up at the list "
    "(https://check.spamhaus.org/ for the Spamhaus DBL, https://admin.uribl.com/, "
    "https://www.surbl.org/surbl-analysis), remove what got it listed (a compromised "
    "mailbox, spam that links to it), then request removal. There is no IP to delist."
)

REVERSE_DNS_FIX = (
    "The receiver wants a reverse DNS (PTR) name for the site's IP {ip} that points back to "
    "it: ask the ISP that owns {ip} for a PTR record naming a host whose A record is {ip} "
    "(for example mail.yourdomain), or send through a relay that has one. This is a missing "
    "DNS record, not a blocklist listing: there is nothing to delist."
)

HELO_FIX = (
    "The copier introduced itself as {ehlo_name} and {endpoint} refuses that name (copiers "
    "often send a bare device name): set the copier's host name, or its SMTP HELO/EHLO name "
    "setting, to a fully-qualified name that resolves in DNS (for example "
    "scanner1.yourdomain), never the server's own name; then set the same ehlo_name in the "
    "inventory so fleet tests what the copier sends."
)

# What the learned reader (learned.py) suggests after "Likely: ", by the category its words
# resemble: the usual first step, worded as a guess (nothing here claims a listing or an IP's
# reputation or PTR; the reader never says ip_reputation or reverse_dns). Fields as in
# context.fields.
LIKELY_REMEDY: dict[Category, str] = {
    Category.auth_required: "the server wants a login before it takes this mail: set the "
    "copier to authenticate (SMTP AUTH) with a mailbox, on {submission} with STARTTLS.",
    Category.auth_failed: "the server refused the login: check the copier's username and "
    "password for {endpoint} (and whether the mailbox is locked or needs an app password).",
    Category.auth_disabled: "the server has switched this kind of login off (Basic AUTH or "
    "SMTP AUTH for the mailbox): enable it for the mailbox or move the copier to another "
    "way of sending.",
    Category.tls_required: "the server wants an encrypted session: set the copier's security "
    "to STARTTLS (port {port}) or implicit TLS.",
    Category.tls_failure: "TLS could not be set up with {endpoint}: check the copier's TLS "
    "version and certificate settings, and tell the server's administrator.",
    Category.relay_denied: "the server will not relay for this copier: send with a login on "
    "{submission}, or have the server's administrator allow the site's relay.",
    Category.sender_rejected: "the server refuses the sender {sender}: use a sender address in "
    "a domain you control, with SPF/DKIM that allow this site, or one the login may send as.",
    Category.recipient_rejected: "the server refuses the recipient: check the address (it may "
    "not exist, be disabled or full) and try another.",
    Category.message_rejected: "the server refuses the message itself (its content, headers, "
    "size or a filter's verdict): try a plain, small test message and read the reply.",
    Category.throttled: "the server is limiting this sender (rate, count or size of sending): "
    "send less often or in smaller batches, then retry later.",
    Category.temporary_failure: "the server has a passing problem: run the site again later; "
    "if it persists, tell the server's administrator.",
    Category.protocol_error: "the server did not accept the conversation as sent: read the "
    "reply; if it persists, check the copier's SMTP settings and tell the administrator.",
    Category.domain_reputation: "a domain of this mail may be listed ({listed_domain}): look "
    "the sender's and the EHLO name's domains up at the list the server uses; there is no IP "
    "to delist.",
    Category.helo_rejected: "the server may refuse the name the copier gives in EHLO "
    "({ehlo_name}): set the copier's SMTP host name to a fully-qualified name that resolves.",
    Category.receiver_fault: "the receiving server seems to have a problem of its own: tell "
    "the receiving organisation's mail administrator; nothing on your side is proven wrong.",
}

LEARNED_CAVEAT = (
    "fleet inferred this from the words' resemblance to real replies it knows, not from a "
    "rule: read the server's reply above before acting on it."
)
