"""Remediation texts more than one rule gives."""

from __future__ import annotations

from fleet import m365
from fleet.judgement.rule import Remedy

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
