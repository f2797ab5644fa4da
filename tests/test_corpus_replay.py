"""Real servers' words, replayed through the command line (#16).

Every entry of the corpus (tests/corpus/, real reply texts from public sources) is answered by
a loopback server at the stage where it was seen, to a copier of a site of its own, and
`fleet sweep` in a child process decides. The test asserts the category a technician chose,
and that no reply about a domain (or the receiver's own fault) raises DIRECT_SEND_DIRTY_IP.

`replies.yaml` is the development set the rules were written against; `holdout.yaml` is kept
back from whoever writes the rules and measures whether they generalise; `holdout2.yaml` is a
second held-back set, gathered after the rules had seen the first, measured once blind and seen
since; `holdout3.yaml` is a third, gathered from MTA and filter source while the rules were being
finished, measured once, blind (87 of 111), and seen since, like the second. `dev_vendor.yaml`
and `holdout4_vendor.yaml` are replies from vendor and provider documentation, split by a hash of
the id: the first for the rule writer, the second held back and measured blind; `dev_threads.yaml`
and `holdout4_threads.yaml` are the same for replies pasted into issue threads or kept in bounce
corpora and mail-log test data.
`holdout5.yaml` was gathered and labelled outside the repository while the rules were being
finished and committed only after the rule writer's last rule commit: measured once, blind
(100 of 120), and seen since.
`holdout6.yaml` was gathered and labelled outside the repository after the last rule commit and
committed only before its one measurement: measured once, blind (65 of 81), and seen since.
`holdout7.yaml` (GitHub issue and pull-request threads) and `holdout8.yaml` (vendor documentation)
were gathered and labelled outside the repository while the rules were being finished and
committed only after they were frozen: each measured once, blind (56 of 68; 88 of 119), and
seen since.
`holdout9.yaml` (issue threads) and `holdout10.yaml` (documentation) were gathered and
labelled outside the repository while the rules and the learned fallback reader were being
finished and committed only after they were frozen: each measured once, blind (40 of 51;
94 of 117).
`holdout11.yaml` (issue threads) and `holdout12.yaml` (documentation and source) were
gathered and labelled outside the repository while the reader was being changed and
committed only after it was frozen (RULES_FINAL2): each measured once, blind (13 of 21;
75 of 94).
`holdout13.yaml` (mainstream providers' published reply catalogues) and `holdout14.yaml`
(regional providers and non-English texts) were gathered and labelled outside the repository
while the reader was being changed and committed only after it was frozen (RULES_FINAL3):
each measured once, blind (44 of 57; 68 of 102).
The accuracy on each is recorded in the README ("How well the diagnosis holds on real
servers' words") and in tests/corpus/README.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.classify import classify_reply, make_reply
from fleet.inventory import load_inventory
from fleet.judgement.rule_ids import RuleId
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.results import Category, Stage

from .conftest import fleet_env, run_fleet_async
from .corpus_replay import (
    CORPUS,
    EHLO_NAME,
    PASSWORD_ENV,
    Entry,
    ReplayServer,
    inventory,
    load,
    replay_context,
)

# The goal of #16: at least 97 of 100 on replies the rules were not written for.
GOAL = 0.97
# What each set must keep. The held-back set was measured once before any rule saw it (89 of
# 106, README); its misses were then seen and the general ones fixed, so it now guards
# against regressions, and only its entries not listed in corpus_holdout_seen.txt are unseen.
# holdout2.yaml was measured once, blind (88 of 111, README); the rule writer then read it and
# made the rules generalise by mechanism (status codes, precedence, vocabularies), so it is seen
# now and guards against regressions at the goal, like the development set.
# holdout3.yaml was measured once, blind (87 of 111, README); its misses were then read and the
# families behind them fixed by mechanism, so it is seen now and guards at the goal too.
FLOOR = {
    "replies": GOAL,
    "holdout": 0.95,
    "holdout2": GOAL,
    "holdout3": GOAL,
    # The vendor-documentation sets (tests/corpus/README.md): measured once, blind, at 3bf423c
    # (37 of 47 and 78 of 104); below the goal is reported, not failed. The development half
    # was then read by the rule writer and the families behind its misses fixed: it is seen
    # now; replayed on the final rules at df0c2f5: 47 of 47; it guards at the goal like every
    # seen set (one future miss must not fail a set that is above the goal).
    "dev_vendor": GOAL,
    # holdout4 was read by the rule writer (judge5) after its misses were published: seen now;
    # replayed on the final rules at df0c2f5: 103 of 104; it guards at the goal; its blind
    # figures stay in the README.
    "holdout4_vendor": GOAL,
    # The issue-thread and mail-log sets (tests/corpus/README.md): measured once, blind, at
    # 44f5be7 (57 of 63 and 97 of 118); below the goal is reported, not failed. The
    # development half is seen now, like the vendor one.
    "dev_threads": GOAL,
    # Replayed again on the final rules at faa42f8 (seen by then): 118 of 118; guards at the goal.
    "holdout4_threads": GOAL,
    # The fifth held-back set (tests/corpus/README.md): sealed outside the repository until the
    # rules were final, measured once, blind, at 3d02e7f (100 of 120, 3 false
    # DIRECT_SEND_DIRTY_IP: the honest figure, in the README). Its misses were then read by the
    # rule writer (judge6) and the families behind them fixed: seen now, guards at the goal
    # like every seen set.
    "holdout5": GOAL,
    # The sixth held-back set (tests/corpus/README.md): sealed outside the repository until the
    # last rule commit, measured once, blind, on main at c4a6bdc (65 of 81, 1 false
    # DIRECT_SEND_DIRTY_IP: the honest figure, in the README). Its misses were then read by
    # the rule writer (judge7) and the families behind them fixed: seen now, guards at the
    # goal like every seen set.
    "holdout6": GOAL,
    # corpusG's mined development set (tests/corpus/README.md, "dev_mined.yaml"): seen by the
    # rule writer (judge7), who tuned the rules on its four batches (each batch measured on the
    # rules of the moment before it was read: README, "Leave one set out"); 163 of 167 on the
    # final rules (RULES_FINAL): guards at the goal like every seen set.
    "dev_mined": GOAL,
    # The seventh and eighth held-back sets (tests/corpus/README.md): sealed outside the
    # repository until the rules were frozen, measured once, blind, on main at b230f25
    # (holdout7 56 of 68, issue and pull-request threads; holdout8 88 of 119, vendor
    # documentation, and one false DIRECT_SEND_DIRTY_IP each: the honest figures, in the
    # README). Their misses were then read by the rule writer (judge8) and the families behind
    # them fixed: seen now. holdout7 reaches the goal (67 of 68) and guards at it; holdout8
    # does not (114 of 119), so it is held at the figure reached (rounded down), said plainly.
    "holdout7": GOAL,
    "holdout8": 0.9579,
    # The ninth and tenth held-back sets (tests/corpus/README.md): sealed outside the
    # repository until the rules (with the learned fallback reader) were frozen, measured
    # once, blind, on the frozen rules (RULES_FINAL, main at 3e56548; holdout9 40 of 51, issue
    # threads; holdout10 94 of 117, documentation, one false DIRECT_SEND_DIRTY_IP: the honest
    # figures, in the README). Their misses were then read by the rule writer (judge10) and the
    # families behind them fixed: seen now (holdout9 51 of 51, holdout10 116 of 117), both
    # above the goal, so they guard at it like every seen set.
    "holdout9": GOAL,
    "holdout10": GOAL,
    # The eleventh and twelfth held-back sets (tests/corpus/README.md): sealed outside the
    # repository until the reader was frozen (RULES_FINAL2), measured once, blind, on main
    # at 7e93f67 (holdout11 13 of 21, issue threads; holdout12 75 of 94, documentation
    # and source). Their misses were then read by the rule writer (judge11) and the families
    # behind them fixed: seen now (holdout11 19 of 21, holdout12 89 of 94), both still below
    # the goal, so each is held at the figure reached (rounded down), said plainly.
    "holdout11": 0.9047,
    "holdout12": 0.9468,
    # judge12's development set of the refusals MTAs and filters send themselves, enumerated
    # from their source (tests/corpus/README.md, "dev_source.yaml"): seen by the rule writer,
    # who tuned the rules on it; measured before that at 96 of 121 (three batches); 116 of 121
    # since: held there.
    "dev_source": 116 / 121,
    # The thirteenth and fourteenth held-back sets (tests/corpus/README.md): sealed outside
    # the repository until the reader was frozen (RULES_FINAL3), measured once, blind, on
    # main at af1362f (holdout13 44 of 57, mainstream providers' published reply
    # catalogues; holdout14 68 of 102, regional providers and non-English texts: the honest
    # figures, in the README). Their misses were then read by the rule writer (judge12) and
    # the families behind them closed: seen now (holdout13 51 of 57, holdout14 91 of 102),
    # both still below the goal, so each is held at the figure reached (rounded down), said
    # plainly.
    "holdout13": 0.8947,
    "holdout14": 0.8921,
}
# False DIRECT_SEND_DIRTY_IP found by those first blind runs: reported (README) until the rules
# fix them, not failed; any other one fails.
# Both (GoDaddy's IP written as a From address, ORBZ's defunct list) are fixed now.
# holdout5's three (a HELO/MX verdict from domain lists, a rate limit and a TLS demand worded
# "Sender ip address rejected") are fixed too: none is expected any more.
# holdout6's one (a greylisting reply "blocked using grey.rbl") is fixed too.
# holdout7's and holdout8's (a blacklisted user; a PTR name "containing your IP address and a
# banned keyword") are fixed too (judge8).
# holdout10's one (mailfront's "4.3.0 DNS error doing RBL lookup": the receiver's own failed
# blocklist lookup) is fixed too (judge10): none is expected any more, so any false flag on
# holdout9 or holdout10 fails, as on every other set.
MEASURED_FALSE_DIRTY: dict[str, set[str]] = {}
# sets whose every entry is unseen by the rule writer
# (holdout4 to holdout12 were read after their blind runs; holdout9 and holdout10 by judge10,
# holdout11 and holdout12 by judge11, holdout13 and holdout14 by judge12)
BLIND: set[str] = set()
SEEN = {
    line.strip()
    for line in (Path(__file__).parent / "corpus_holdout_seen.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}


@dataclass(frozen=True)
class Outcome:
    id: str
    stage: str
    expected: str
    got: str
    failed_stage: str | None
    dirty_ip: bool
    text: str
    # the learned reader gave the answer (its finding says "a learned reading", README)
    learned: bool = False
    # the JSON's `rule`: the id of the rule that decided the category (None: none did)
    rule: str | None = None


async def replay(
    name: str, lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> tuple[list[Outcome], ReplayServer]:
    entries = load(name)
    server = ReplayServer(entries, certs)
    port = await server.start()
    try:
        path = write_inventory(inventory(entries, lab_dns, port, str(certs.ca_file)))
        env = fleet_env(**{PASSWORD_ENV: "replay-test-password"})
        run = await run_fleet_async(
            "sweep",
            "-i",
            str(path),
            "--format",
            "json",
            "--no-store",
            "--send-test",
            env=env,
            limit_s=600,
        )
    finally:
        await server.stop()
    assert run.code in (0, 1, 2), run.stderr
    try:
        result = json.loads(run.stdout)
    except json.JSONDecodeError as exc:  # seen once, not reproduced: keep what was around it
        around = run.stdout[max(0, exc.pos - 300) : exc.pos + 300]
        pytest.fail(f"{exc} in {len(run.stdout)} chars: {around!r}; stderr: {run.stderr[-800:]}")
    sites = {s["site"]: s for s in result["sites"]}
    outcomes = []
    for index, entry in enumerate(entries):
        site = sites[f"e{index:03d}"]
        (device,) = site["devices"]
        outcomes.append(
            Outcome(
                entry.id,
                entry.stage,
                entry.category,
                device["category"],
                device["failed_stage"],
                any(f["code"] == "DIRECT_SEND_DIRTY_IP" for f in site["flags"]),
                entry.text,
                "a learned reading" in (device.get("finding") or ""),
                device["rule"],
            )
        )
    return outcomes, server


def summary(name: str, outcomes: list[Outcome]) -> str:
    right = sum(o.got == o.expected for o in outcomes)
    lines = [f"{name}: {right} of {len(outcomes)} ({right / len(outcomes):.1%})"]
    unseen = [o for o in outcomes if o.id not in SEEN]
    if name == "holdout" and unseen:
        fresh = sum(o.got == o.expected for o in unseen)
        lines.append(f"  never seen by the rule writer: {fresh} of {len(unseen)}")
    if name in BLIND:
        verdict = "meets" if right >= GOAL * len(outcomes) else "is below"
        lines.append(f"  every entry unseen by the rule writer; {verdict} the goal of {GOAL:.0%}")
    learned = [o for o in outcomes if o.learned]
    if learned:
        fine = sum(o.got == o.expected for o in learned)
        lines.append(f"  the learned reader answered {len(learned)} ({fine} right)")
    lines += [
        f"  miss {o.id} ({o.stage}): expected {o.expected}, got {o.got}"
        + (" (learned reader)" if o.learned else "")
        + f": {o.text[:120]}"
        for o in outcomes
        if o.got != o.expected
    ]
    return "\n".join(lines)


@pytest.mark.parametrize(
    "name",
    [
        "replies",
        "holdout",
        "holdout2",
        "holdout3",
        "dev_vendor",
        "holdout4_vendor",
        "dev_threads",
        "holdout4_threads",
        "holdout5",
        "holdout6",
        "dev_mined",
        "holdout7",
        "holdout8",
        "holdout9",
        "holdout10",
        "holdout11",
        "holdout12",
        "dev_source",
        "holdout13",
        "holdout14",
    ],
)
async def test_every_corpus_reply_replayed_through_the_cli_lands_in_its_category(
    name: str,
    lab_dns: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given every entry answered at its stage, one site each, when `fleet sweep` runs
    outcomes, server = await replay(name, lab_dns, certs, write_inventory)
    with capsys.disabled():
        print("\n" + summary(name, outcomes))

    # Then a reply about a domain, or about the receiver's own setup, never reads as a
    # dirty site IP
    entries = {e.id: e for e in load(name)}
    false_dirty = [
        o.id
        for o in outcomes
        if o.dirty_ip and (entries[o.id].about_site_ip is False or o.expected != "ip_reputation")
    ]
    if false_dirty:
        with capsys.disabled():
            print(f"  DIRECT_SEND_DIRTY_IP without evidence about the IP: {false_dirty}")
    # ... each device's JSON names the rule that decided its category: a rule fleet has, the
    # learned reader exactly where its hedged finding says so, none only on a fallback
    assert {o.rule for o in outcomes} <= {r.value for r in RuleId} | {None}
    assert all((o.rule == RuleId.learned_reader) == o.learned for o in outcomes)
    unexpected = set(false_dirty) - MEASURED_FALSE_DIRTY.get(name, set())
    assert not unexpected, f"DIRECT_SEND_DIRTY_IP without evidence about the IP: {unexpected}"
    # ... a 5xx greeting got its polite QUIT
    refused_greetings = {o.id for o in outcomes if o.stage == "banner"} & {
        e.id for e in entries.values() if 500 <= e.code <= 599
    }
    assert refused_greetings <= server.quits_after_greeting
    # ... every reply was met where it was seen
    met_elsewhere = [(o.id, o.stage, o.failed_stage) for o in outcomes if o.stage != o.failed_stage]
    assert not met_elsewhere
    # ... and the categories are what a technician would choose
    right = sum(o.got == o.expected for o in outcomes)
    assert right >= FLOOR[name] * len(outcomes), summary(name, outcomes)


async def test_a_refused_greeting_is_classified_by_its_words_and_gets_a_polite_quit(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given servers that refuse in their greeting (554, then 421) and one that refuses EHLO
    entries = [
        Entry(
            "ptr",
            "gmx",
            "banner",
            554,
            "gmx.net Service not available Bad DNS PTR resource record",
            "reverse_dns",
        ),
        Entry(
            "busy",
            "unknown",
            "banner",
            421,
            "4.3.2 Service not available, closing transmission channel",
            "temporary_failure",
        ),
        Entry(
            "helo",
            "postfix",
            "ehlo",
            550,
            "Invalid HELO name (See RFC5321 4.1.1.1)",
            "helo_rejected",
        ),
    ]
    server = ReplayServer(entries, certs)
    port = await server.start()
    try:
        path = write_inventory(inventory(entries, lab_dns, port, str(certs.ca_file)))
        result = await run_sweep(plan_sweep(load_inventory(str(path))))
    finally:
        await server.stop()
    ptr, busy, helo = (site.devices[0] for site in result.sites)
    ptr_said, busy_said, helo_said = (
        site.conversation_of(site.devices[0]).transcript for site in result.sites
    )

    # Then a server that answered and refused is not "unreachable": its words decide
    assert (ptr.category, ptr.failed_stage) == (Category.reverse_dns, Stage.banner)
    assert busy.category is Category.temporary_failure
    # ... the 554 got the QUIT RFC 5321 asks for, recorded in the transcript; the 421 did not
    quit_stage = [s for s in ptr_said if s.stage is Stage.quit]
    assert [(s.command, s.reply.code if s.reply else None) for s in quit_stage] == [("QUIT", 221)]
    assert server.quits_after_greeting == {"ptr"}
    assert not [s for s in busy_said if s.stage is Stage.quit and s.command == "QUIT"]
    # ... and a refused EHLO names the name that was sent
    assert helo.category is Category.helo_rejected
    assert EHLO_NAME in helo.finding
    assert any(s.command == f"EHLO {EHLO_NAME}" for s in helo_said)
    assert EHLO_NAME in helo.remediation


# What surrounds a reply, and the word a server picks for "refused", vary from one server to
# the next without changing what a technician would choose. Every seen entry the rules get
# right must keep its category under these (judge7, #16: a check of how the rules generalise
# that needs no new text; the perturbations that do change a reading, such as dropping the
# enhanced code or the link that carries the evidence, are left out).
_SAME_READING: dict[str, Callable[[str], str]] = {
    "address-prefix": lambda t: "<user@example.net>: " + t,
    "host-prefix": lambda t: "mx1.example.net " + t,
    "postfix-bounce": lambda t: "host mx1.example.net[192.0.2.9] said: 550 " + t,
    "in-reply-to": lambda t: t + " (in reply to RCPT TO command)",
    "queue-tag": lambda t: t + " [AM0PR04MB1234.eurprd04.prod.outlook.com 2024-01-01T00:00:00Z]",
    "error-prefix": lambda t: "Error: " + t,
    # spamdyke's stamp on every answer (judge8)
    "refused-stamp": lambda t: "Refused. " + t,
    "rejected-refused": lambda t: re.sub(r"\brejected\b", "refused", t),
    "rejected-denied": lambda t: re.sub(r"\brejected\b", "denied", t),
    "denied-rejected": lambda t: re.sub(r"\bdenied\b", "rejected", t),
    "allowed-permitted": lambda t: re.sub(r"\bnot allowed\b", "not permitted", t),
    "ip-address-ip": lambda t: re.sub(r"\bIP address\b", "IP", t, flags=re.IGNORECASE),
    "blacklist-blocklist": lambda t: re.sub(r"black ?list", "blocklist", t, flags=re.IGNORECASE),
    "too-many-excessive": lambda t: re.sub(r"\b[Tt]oo many\b", "excessive", t),
    "is-not-isnt": lambda t: re.sub(r"\bis not\b", "isn't", t),
    "does-not-doesnt": lambda t: re.sub(r"\bdoes not\b", "doesn't", t),
    "hyphened": lambda t: re.sub(
        r"\b(mail)(box)|\b([Bb]lack|[Bb]lock)( ?)(list)", "\\1\\3-\\2\\5", t
    ),
    # host names whose labels are cue words: a name is no word of the reply (hostmask, #16)
    "cue-host-before": lambda t: "rbl.spam.relay.example.net " + t,
    "cue-host-after": lambda t: t + " (MX01.SPAMFILTER.TLS-AUTH.EXAMPLE.NET.)",
    "cue-host-address": lambda t: "<user@dns.blocked.limit.policy.example.com>: " + t,
    "cue-host-bounce": lambda t: "host mx.smtp-auth.virus.example.net[192.0.2.9] said: 550 " + t,
}
# the blind sets (BLIND) are measured by the replay above, not held to this: no rule has read them
_SEEN_SETS = [name for name in FLOOR if name not in BLIND and (CORPUS / f"{name}.yaml").exists()]


def _reading(entry: Entry, text: str) -> Category:
    context = replay_context(entry, text)
    return classify_reply(Stage(entry.stage), make_reply(entry.code, text), context).category


def test_a_reply_keeps_its_reading_whatever_surrounds_it() -> None:
    changed = []
    for name in _SEEN_SETS:
        for entry in load(name):
            reading = _reading(entry, entry.text)
            if reading.value != entry.category:
                continue  # a known miss, reported by the replay above
            for kind, perturb in _SAME_READING.items():
                text = perturb(entry.text)
                if text != entry.text and _reading(entry, text) is not reading:
                    changed.append(f"{kind}: {entry.id}: {text[:100]}")

    assert not changed, "\n".join(changed)
