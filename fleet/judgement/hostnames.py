"""Host names in a reply, made neutral for the rules: a name is no word of the reply.

Servers put host names everywhere (a banner's own name, Exchange's "[BN8P...prod.outlook.com]",
"(relay.mailchannels.net)", an address's domain), and a label of one reads as a cue word to a
rule: "rbl.example.net" as a blocklist, "mx.example.net" as a DNS lookup, "spamfilter.isp.net"
as spam, "relay." as relaying. `masked` writes each such name as NEUTRAL, except where a name is
itself the evidence a rule or evidence.py reads:
- the blocklists' and reputation services' own zones and check hosts (KEPT: "blocked using
  zen.spamhaus.org", "ipcheck.proofpoint.com", "dbl.spamhaus.org");
- any zone named as the list that blocked ("blocked using bl.example.org", "listed in
  work.drbl.imedia.ru", "found on dnsbl.example.net": `_AS_A_LIST`);
- in a link, its scheme, "www." and path: rules read them ("visit https://", "query/ip",
  "spamcop.net/bl"); its host is masked like any other name unless it is one above (GMX's and
  WEB.DE's "postmaster.gmx.net/...?c=bl" case links are read by a rule).
A name is a host name only when its last label is a top-level domain written as host names are
(lower or upper case): "rejected.Please" is two words run together, "5.7.1" a status code.
"""

from __future__ import annotations

import functools
import re

# What a masked name reads as: a name no rule reads a word in (".example" is reserved, RFC 2606).
NEUTRAL = "x.example"

# The lists' and reputation vendors' names the rules and evidence.py read (their phrases,
# `blocklist_named`, `_IP_EVIDENCE_RE`, `_LIST_ZONE_RE`): a host name that holds one is evidence.
KEPT = (
    "spamhaus",
    "spamcop",
    "barracuda",  # barracudacentral.org, BRBL
    "uribl",
    "surbl",
    "sorbs",
    "abuseat",  # cbl.abuseat.org
    "mailspike",
    "psbl",  # psbl.surriel.com
    "surriel",
    "uceprotect",
    "proofpoint",  # ipcheck.proofpoint.com, proofpoint.com/dnsbl
    "cloudmark",
    "senderbase",
    "talosintelligence",
    "mail-abuse",  # mail-abuse.com (Trend Micro's QIL/RBL+)
    "trendmicro",
    "rfc-ignorant",
    "openspf",  # openspf.net/why: an SPF verdict
    "manitu",
    "spamrats",
    "dronebl",
    "blocklist.de",
    "backscatterer",
    "junkemailfilter",
    "senderscore",
    "nixspam",
    "0spam",
    "s5h.net",
    "interserver",
    "gbudb",
    "lashback",
    "njabl",
    "postmaster.gmx.",  # GMX's and WEB.DE's case links ("postmaster.gmx.net/...?c=bl")
    "postmaster.web.",
)
_KEPT = "|".join(re.escape(name) for name in KEPT)

# A label: letters (any script, punycode too), digits and inner hyphens. Bounded throughout: a
# hostile server's 40,000 dots must not cost more than one pass.
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_NAME = (
    # a link: its host is a name like any other, its scheme, "www." and path are kept (rules
    # read "visit https://", "query/ip", "spamcop.net/bl")
    r"(?P<scheme>\b[a-z][a-z0-9+.-]{1,15}://(?:www\.)?|\bwww\.)"
    rf"(?P<host>(?:{_LABEL}\.){{0,12}}{_LABEL})?(?P<path>[^\s<>\"'\])]{{0,2000}})|"
    # a name followed by a path: a link without its scheme ("att.net/blocks")
    rf"(?<![\w.-])(?P<bare>(?:{_LABEL}\.){{1,12}}{_LABEL})(?P<after>/[^\s<>\"'\])]{{0,2000}})|"
    # a name: two labels or more, not inside a longer run of them
    rf"(?<![\w-])(?P<name>(?:{_LABEL}\.){{1,12}}{_LABEL})(?![\w-])"
)

# A zone named as the list that blocked: the name then is the evidence, whatever it is called.
_AS_A_LIST = (
    r"(?:\busing|\blisted (?:at|on|in|by)|\b(?:is|are|appears?|was|were) (?:in|on)|\bsee|\bfound (?:in|on)(?: one or more| a)?|"
    r"(?<![/#?=&.])\b(?:rbl|dnsbl|rhsbl|black[- ]?list|block[- ]?list)s?:?)\s{1,3}[\[(<'\"]?$"
)


# Compiled on the first reply read, and the top-level domains read then too: a process that
# reads no refusal (`fleet --version`, a healthy sweep) pays neither (issue 20).
@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], frozenset[str]]:
    from fleet.judgement.top_level_domains import TOP_LEVEL_DOMAINS

    return (
        re.compile(_NAME, re.IGNORECASE),
        re.compile(_KEPT, re.IGNORECASE),
        re.compile(_AS_A_LIST, re.IGNORECASE),
        TOP_LEVEL_DOMAINS,
    )


# An IP address written with placeholders ("The sender xxx.xxx.xxx.xxx is banned"): ".xxx" is a
# top-level domain, but this is the client's address, evidence about the IP.
_IP_PLACEHOLDER_RE = re.compile(r"(?:[0-9x*]{1,3}\.){3}[0-9x*]{1,3}", re.IGNORECASE)


# Top-level domains that are also short English words: "word.to" of two labels is more
# likely two sentences run together ("is blacklisted.to remove it") than a host in Tonga.
_SENTENCE_WORDS = frozenset(
    "to in no is at me it do so us be by my or on we go an as am if".split()
)


def _is_top_level(label: str) -> bool:
    # a capital then small letters is a sentence's next word ("rejected.Please", "denied.No")
    if not (label.islower() or label.isupper()) or label.isdigit():
        return False
    label = label.lower()
    if not label.isascii():
        try:
            label = "xn--" + label.encode("punycode").decode("ascii")
        except UnicodeError:
            return False
    return label in _patterns()[3]


def _masked_name(match: re.Match[str]) -> str:
    # (a link is a page, not a zone named as a list: "see https://spam.example.net/help")
    if match.group("scheme") is not None:
        host = match.group("host") or ""
        return match.group("scheme") + _masked_host(host, None) + match.group("path")
    if match.group("bare") is not None:
        return _masked_host(match.group("bare"), None) + match.group("after")
    return _masked_host(match.group("name"), match)


def _masked_host(whole: str, match: re.Match[str] | None) -> str:
    """`match`: the plain name's, to read what comes before it (a zone named as the list)."""
    _, kept, as_a_list, _ = _patterns()
    if "." not in whole or kept.search(whole) or _IP_PLACEHOLDER_RE.fullmatch(whole):
        return whole
    labels = whole.split(".")
    # the last label that is a top-level domain ends the host name; what follows it is the
    # next sentence run in ("mx.example.net.Please"). None: words and codes, not a name.
    end = next((i for i in range(len(labels) - 1, 0, -1) if _is_top_level(labels[i])), 0)
    if end == 0 or (len(labels) == 2 and labels[1].lower() in _SENTENCE_WORDS):
        return whole
    if match is not None:
        before = match.string[max(0, match.start() - 40) : match.start()]
        if as_a_list.search(before):
            return whole
    rest = labels[end + 1 :]
    return NEUTRAL + "".join("." + label for label in rest)


def masked(text: str) -> str:
    """The text with its host names (an address's domain too) written as NEUTRAL, except
    those that are evidence (see the module's docstring)."""
    if "." not in text:
        return text
    return _patterns()[0].sub(_masked_name, text)
