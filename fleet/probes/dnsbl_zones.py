"""What blocklists' answers mean: built-in return-code maps per kind of zone, and the zone
as the probe queries it (a DQS key goes into the query name only)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import NamedTuple

from fleet.credentials import SecretSource
from fleet.results import ListingSeverity

ABUSE, POLICY = ListingSeverity.abuse, ListingSeverity.policy


class CodeMeaning(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    list: str
    meaning: str
    severity: ListingSeverity


_ZEN: dict[str, CodeMeaning] = {
    "127.0.0.2": CodeMeaning(
        "SBL", "Spamhaus Block List: verified spam source or spam operation", ABUSE
    ),
    "127.0.0.3": CodeMeaning(
        "SBL CSS", "snowshoe or low-reputation spam source (automated)", ABUSE
    ),
    "127.0.0.4": CodeMeaning("XBL", "exploited or infected host (bot, open proxy)", ABUSE),
    "127.0.0.5": CodeMeaning("XBL", "exploited or infected host", ABUSE),
    "127.0.0.6": CodeMeaning("XBL", "exploited or infected host", ABUSE),
    "127.0.0.7": CodeMeaning("XBL", "exploited or infected host", ABUSE),
    "127.0.0.9": CodeMeaning("SBL DROP", "hijacked or rogue netblock", ABUSE),
    "127.0.0.10": CodeMeaning(
        "PBL (ISP)",
        "end-user IP range, listed by its ISP: should not send mail directly to MX",
        POLICY,
    ),
    "127.0.0.11": CodeMeaning(
        "PBL (Spamhaus)",
        "end-user or dynamic IP range, listed by Spamhaus: should not send mail directly to MX",
        POLICY,
    ),
    "127.0.0.20": CodeMeaning("AuthBL", "seen abusing SMTP AUTH (credential stuffing)", ABUSE),
    "127.0.0.30": CodeMeaning("BCL", "botnet controller", ABUSE),
}

# Spamhaus answers in 127.255.255.0/24 are errors, never listings ("must not be used to
# reject email").
SPAMHAUS_ERRORS = {
    "127.255.255.252": "Spamhaus says the query name is mistyped (wrong zone)",
    "127.255.255.254": (
        "Spamhaus refuses this resolver (a public or open resolver, or big cloud DNS): use a "
        "local recursive resolver or a DQS key"
    ),
    "127.255.255.255": "Spamhaus refuses: this resolver is over the free-use query limit",
    "127.0.1.255": "Spamhaus says an IP was looked up on a domain list (DBL): wrong zone",
}


class KindDefaults(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    name: str
    codes: dict[str, CodeMeaning]
    delist: str
    spamhaus: bool = False
    # Does the list cover IPv6 addresses (nibble-form queries, RFC 5782 2.4)? A list that
    # does not answers NXDOMAIN for every IPv6 name, which says nothing (not "clean").
    # Spamhaus documents IPv6 queries for its IP zones, ZEN included
    # (https://docs.spamhaus.com/datasets/docs/source/70-access-methods/data-query-service/040-dqs-queries.html,
    # https://www.spamhaus.org/organization/statement/012/spamhaus-ipv6-blocklists-strategy-statement).
    # SpamCop's and Barracuda's BRBL's public descriptions speak of lookups by reversed IPv4
    # octets only, and document no IPv6 listing (https://www.spamcop.net/bl.shtml,
    # https://www.dnsbl.info/dnsbl-details.php?dnsbl=b.barracudacentral.org); lists without
    # IPv6 "simply return NXDOMAIN" for it (https://github.com/hmailserver/hmailserver/pull/487).
    # So not covered, unless the inventory says `ipv6: true`; a generic list likewise.
    ipv6: bool = False


KINDS: dict[str, KindDefaults] = {
    "spamhaus-zen": KindDefaults(
        "Spamhaus ZEN",
        _ZEN,
        "https://check.spamhaus.org/ (look up {ip})",
        spamhaus=True,
        ipv6=True,
    ),
    "spamhaus-dqs": KindDefaults(
        "Spamhaus DQS",
        _ZEN,
        "https://check.spamhaus.org/ (look up {ip})",
        spamhaus=True,
        ipv6=True,
    ),
    "spamcop": KindDefaults(
        "SpamCop",
        {"127.0.0.2": CodeMeaning("SpamCop", "reported as a spam source by SpamCop users", ABUSE)},
        "https://www.spamcop.net/bl.shtml?{ip} (listings expire about 24 h after reports stop)",
    ),
    "barracuda": KindDefaults(
        "Barracuda BRBL",
        {"127.0.0.2": CodeMeaning("BRBL", "poor reputation with Barracuda", ABUSE)},
        "https://www.barracudacentral.org/rbl/removal-request ({ip})",
    ),
    "generic": KindDefaults("", {}, "the list's removal page for {ip}"),
}

DQS_ZONE = "zen.dq.spamhaus.net"

# Why an IPv6 address is unknown on a list without IPv6 (the matrix tells it by this text).
NOT_IPV6 = (
    "this list does not cover IPv6 addresses: nothing was asked (a list that does: "
    "`ipv6: true` on it in the inventory)"
)


@dataclass(frozen=True)
class Zone:
    """A zone as the probe uses it. `display` is what people see; `key` says where a DQS
    key is read from, and the key itself goes only into query names, never into results."""

    display: str
    name: str
    kind: str
    codes: dict[str, CodeMeaning] = field(default_factory=dict)
    delist: str = ""
    key: SecretSource | None = None
    spamhaus: bool = False
    ipv6: bool = False  # the list covers IPv6 addresses (see KindDefaults.ipv6)

    def meaning(self, code: str) -> CodeMeaning | None:
        """What a 127.0.0.x answer means on this zone (None: not a listing code)."""
        known = self.codes.get(code)
        if known is not None:
            return known
        if self.kind == "generic" or not self.codes:
            address = ipaddress.IPv4Address(code)
            if address in LISTING_RANGE and code != "127.0.0.1":
                return CodeMeaning(self.name, f"listed on {self.name} (code {code})", ABUSE)
        return None


LISTING_RANGE = ipaddress.IPv4Network("127.0.0.0/24")  # where IP listings answer


def reverse_name(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Reversed octets (IPv4) or nibbles (IPv6), as blocklists expect (an address already
    parsed is not parsed again)."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    pointer = address.reverse_pointer
    return pointer.removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa")
