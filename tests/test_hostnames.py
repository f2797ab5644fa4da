"""Host names are no words of a reply (hostnames.py): a label of one ("rbl.", "spam.", "mx.",
"relay.") must not decide a reading, except where the name is itself the evidence."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.classify import classify_reply, make_reply
from fleet.judgement.context import Context
from fleet.judgement.hostnames import NEUTRAL, masked
from fleet.judgement.replies import read_text
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.results import Category, Mode, Stage

from .conftest import fleet_env, run_fleet_async
from .corpus_replay import PASSWORD_ENV, Entry, ReplayServer, inventory

SITE_IP = "203.0.113.5"
DIRECT_SEND = Context(
    mode=Mode.direct_send,
    host="contoso-com.mail.protection.outlook.com",
    port=25,
    authenticated=False,
    ip=SITE_IP,
    provider="microsoft",
)
SUBMISSION = Context(
    mode=Mode.submission, host="mail.example.net", port=587, authenticated=True, ip=SITE_IP
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a banner's own name, an Exchange queue tag, a relay named in brackets
        ("rbl.example.net ESMTP not accepting", f"{NEUTRAL} ESMTP not accepting"),
        ("[BN8P223MB0123.namprd02.prod.outlook.com]", f"[{NEUTRAL}]"),
        ("(relay.mailchannels.net)", f"({NEUTRAL})"),
        # an address's domain is a host name; its local part stays
        ("<user@smtp-auth.example.com>", f"<user@{NEUTRAL}>"),
        # upper case, a trailing dot, IDN and its punycode
        ("MX01.SPAMFILTER.EXAMPLE.NET said", f"{NEUTRAL} said"),
        ("by mx.example.com.", f"by {NEUTRAL}."),
        ("virus.münchen.de", NEUTRAL),
        ("virus.xn--mnchen-3ya.de", NEUTRAL),
        # a sentence run into the host name after it
        ("relay.example.net.Please retry", f"{NEUTRAL}.Please retry"),
        # a link's host, its scheme, "www." and path kept
        ("see https://spam.example.net/help", f"see https://{NEUTRAL}/help"),
        ("visit www.rbl.example.com/delist", f"visit www.{NEUTRAL}/delist"),
        ("blocked. see relay.example.net/blocks", f"blocked. see {NEUTRAL}/blocks"),
        # a list word in a link before it does not make the name a list's zone
        (
            "see https://mxtoolbox.com/lookup#blacklists (ptr.example.net)",
            f"see https://{NEUTRAL}/lookup#blacklists ({NEUTRAL})",
        ),
        # the listed domain too: the finding names it from the reply as written
        (
            "Sender address [bob@spam.example.com] blocked using dbl.spamhaus.org",
            f"Sender address [bob@{NEUTRAL}] blocked using dbl.spamhaus.org",
        ),
    ],
)
def test_a_host_name_reads_as_a_neutral_name(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # words run together after a full stop: not host names
        "Message rejected.Please contact your administrator",
        "Access denied.No relaying",
        "Your IP is blacklisted.to remove it, write to us",
        "Relaying denied.in case of doubt call us",
        # enhanced codes, IPs, an IP written with placeholders ("xxx" is a top-level domain)
        "5.7.1 Client host [192.0.2.1] rejected",
        "The sender xxx.xxx.xxx.xxx is banned",
        # the lists' and vendors' own zones and check hosts
        "blocked using zen.spamhaus.org",
        "blocked using b.barracudacentral.org",
        "listed at dnsbl-1.uceprotect.net and bl.mailspike.net and psbl.surriel.com",
        "see ipcheck.proofpoint.com",
        # a zone named as the list that blocked, whatever it is called
        "blocked using rbl.example.net",
        "listed in work.drbl.imedia.ru",
        # links to the lists' pages, and a case link a rule reads by its host
        "see https://www.spamhaus.org/query/ip/203.0.113.5",
        "see https://www.spamcop.net/bl.shtml?203.0.113.5",
        "see https://postmaster.gmx.net/en/case?c=bl&i=ip",
        "see https://203.0.113.5/delist",
    ],
)
def test_what_is_evidence_or_no_host_name_stays(text: str) -> None:
    assert masked(text) == text


def _phrase_words() -> set[str]:
    words: set[str] = set()
    path = Path(__file__).parent.parent / "fleet" / "judgement" / "phrase_words.tsv"
    for line in path.read_text(encoding="utf-8").splitlines():
        known = json.loads(line.partition("\t")[2])
        if known:
            words.update(known[0])
    return words


def test_every_host_name_a_rule_reads_is_kept() -> None:
    # The keep-list is derived, not guessed: every host name (or link) the rules' phrases
    # need, as tools/phrase_words.py found them, reads as itself.
    hosts = [w for w in _phrase_words() if re.search(r"[a-z]\.[a-z]{2,}", w)]
    assert "ipcheck.proofpoint.com" in hosts
    for host in hosts:
        text = f"see {host.rstrip('./')}/x and mx.{host.strip('./')}"
        assert masked(text) == text, host


def test_a_listing_on_an_ip_list_stays_evidence_behind_a_host_name() -> None:
    # Given a spam filter's own name before a real Spamhaus listing of the site's IP
    reply = make_reply(
        554,
        "mx01.spamfilter.example.net 5.7.1 Service unavailable; Client host [203.0.113.5] "
        "blocked using zen.spamhaus.org",
    )

    decision = classify_reply(Stage.rcpt, reply, DIRECT_SEND)

    # Then it is still the IP's reputation on that list (DIRECT_SEND_DIRTY_IP's evidence)
    assert decision.category is Category.ip_reputation
    assert "zen.spamhaus.org" in decision.remediation
    assert "zen.spamhaus.org" in read_text(reply)


def test_a_domain_listing_stays_a_domain_listing_among_host_names() -> None:
    reply = make_reply(
        554,
        "relay.example.net 5.7.1 Service unavailable; Sender address [bob@spam.example.com] "
        "blocked using dbl.spamhaus.org",
    )

    decision = classify_reply(Stage.rcpt, reply, DIRECT_SEND)

    assert decision.category is Category.domain_reputation
    # (the finding names the listed domain as the server wrote it, not the masked name)
    assert "spam.example.com" in decision.finding + decision.remediation


# Host names whose labels are cue words of one category or another
CUE_HOSTS = (
    "rbl.example.net",
    "dnsbl.example.net",
    "spam.example.net",
    "antispam.example.net",
    "mx01.spamfilter.example.net",
    "virus.example.net",
    "relay.example.net",
    "mail-relay.example.net",
    "auth.example.net",
    "smtp-auth.example.net",
    "tls.example.net",
    "starttls.example.net",
    "dns.example.net",
    "mx.example.net",
    "ptr.example.net",
    "rdns.example.net",
    "helo.example.net",
    "limit.example.net",
    "ratelimit.example.net",
    "quota.example.net",
    "policy.example.net",
    "blocked.example.net",
    "blacklist.example.net",
    "reputation.example.net",
    "spf.example.net",
    "dkim.example.net",
    "dmarc.example.net",
    "mailbox.example.net",
    "content-filter.example.net",
    "size.example.net",
)
# Replies whose words alone decide (or decide nothing), at each stage
NEUTRAL_REPLIES = (
    (Stage.banner, 554, "not accepting connections"),
    (Stage.banner, 421, "Service not available, closing transmission channel"),
    (Stage.ehlo, 550, "5.7.1 Transaction failed"),
    (Stage.mail, 451, "4.3.0 Transaction failed"),
    (Stage.rcpt, 550, "5.7.1 Delivery not authorized"),
    (Stage.rcpt, 450, "4.4.5 Rate limit exceeded, try again later."),
    (Stage.data, 554, "5.7.0 Local Policy Violation"),
    (Stage.data, 451, "4.3.0 transaction failed"),
)


@pytest.mark.parametrize(("stage", "code", "text"), NEUTRAL_REPLIES)
def test_a_host_name_is_never_the_only_evidence_for_a_category(
    stage: Stage, code: int, text: str
) -> None:
    for context in (DIRECT_SEND, SUBMISSION):
        alone = classify_reply(stage, make_reply(code, text), context).category
        changed = []
        for host in CUE_HOSTS:
            for form in (
                f"{host} {text}",
                f"{text} ({host})",
                f"{text} <postmaster@{host}>",
                f"{text} [{host.upper()}.]",
                f"{text} see https://{host}/info",
            ):
                category = classify_reply(stage, make_reply(code, form), context).category
                if category is not alone:
                    changed.append(f"{form}: {category.value}, alone {alone.value}")
        assert not changed, "\n".join(changed)


# Through the command line against a loopback server: the flag follows the evidence, not the
# host names around it (id, stage, code, text, category, DIRECT_SEND_DIRTY_IP expected)
_REPLAYED = (
    (
        "spamfilter-host-then-zen-listing",
        "rcpt",
        554,
        "mx01.spamfilter.example.net 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
        "using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1",
        "ip_reputation",
        True,
    ),
    (
        "rbl-host-banner-not-accepting",
        "banner",
        554,
        "rbl.example.net ESMTP not accepting connections",
        "unrecognised_refusal",
        False,
    ),
    (
        "mx-host-timeout",
        "data",
        421,
        "4.4.2 mx.example.com Error: timeout exceeded",
        "temporary_failure",
        False,
    ),
    (
        "relay-host-dbl-listing",
        "rcpt",
        554,
        "5.7.1 Service unavailable; Sender address [bob@spam.example.com] blocked using "
        "dbl.spamhaus.org (relay.example.net)",
        "domain_reputation",
        False,
    ),
)


async def test_direct_send_dirty_ip_follows_the_evidence_not_the_host_names(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    entries = [
        Entry(i, "unknown", stage, code, text, cat) for i, stage, code, text, cat, _ in _REPLAYED
    ]
    server = ReplayServer(entries, certs)
    port = await server.start()
    try:
        path = write_inventory(inventory(entries, lab_dns, port, str(certs.ca_file)))
        env = fleet_env(**{PASSWORD_ENV: "replay-test-password"})
        run = await run_fleet_async(
            "sweep", "-i", str(path), "--format", "json", "--no-store", "--send-test", env=env
        )
    finally:
        await server.stop()
    assert run.code in (0, 1, 2), run.stderr
    sites = {s["site"]: s for s in json.loads(run.stdout)["sites"]}
    got = []
    for index, (entry_id, *_) in enumerate(_REPLAYED):
        site = sites[f"e{index:03d}"]
        (device,) = site["devices"]
        flagged = any(f["code"] == "DIRECT_SEND_DIRTY_IP" for f in site["flags"])
        got.append((entry_id, device["category"], flagged))
    assert got == [(i, category, dirty) for i, *_, category, dirty in _REPLAYED]
