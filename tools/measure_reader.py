"""Measure the learned reader honestly, two ways (#16; figures in tests/corpus/README.md).

(a) blind: the sets were measured blind, one round after another; each round's README
    section lists its misses with fleet's answer (an entry not listed was answered right).
    For each round, train the reader ONLY on the files that existed before that round's
    blind run, apply the policy to fleet's recorded answers, and count the misses fixed, the
    right answers broken and any reading that would have claimed the IP's reputation.
(b) leave one set out: the whole reader (today's rules, then the learner where they fall
    back) on each file, the learner trained on every other file of TRAINING_FILES. The
    rules have seen every file, so this measures the learner's part, not the rules'.

Usage: python tools/measure_reader.py [--thresholds 0.5,0.6,...] [--no-veto] [--only a|b] [-v]
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from train_reader import TRAINING_FILES, Example, load, train

from fleet.classify import Context, make_reply, provider_of
from fleet.judgement import learned
from fleet.judgement.replies import LEARNED_THRESHOLD, learned_reading, read_by_rules
from fleet.results import Category, Mode, Stage

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Round:
    """One blind run: the sets measured, the files that existed before it (tests/corpus/,
    by the commits that added them), and the headings of tests/corpus/README.md whose
    sections hold its miss tables."""

    sets: tuple[str, ...]
    before: tuple[str, ...]
    sections: tuple[str, ...]


ROUNDS = (
    # holdout.yaml's 17 misses are prose in README.md, read by _holdout_misses
    Round(("holdout",), ("replies",), ()),
    Round(("holdout2",), TRAINING_FILES[:2], ("### Blind result: 88 of 111",)),
    Round(("holdout3",), TRAINING_FILES[:3], ("### Blind result: 87 of 111",)),
    Round(
        ("dev_vendor", "holdout4_vendor"),
        TRAINING_FILES[:4],
        ("### First blind run: 37 of 47",),
    ),
    Round(
        ("dev_threads", "holdout4_threads"),
        TRAINING_FILES[:6],
        ("### First blind run at 44f5be7",),
    ),
    Round(("holdout5",), TRAINING_FILES[:8], ("### Blind result at 3d02e7f",)),
    Round(("holdout6",), TRAINING_FILES[:9], ("### Blind result on main at c4a6bdc",)),
    # dev_mined came in four batches, each measured before it was read; trained here on
    # the files before it (none of its batches), which is what the first batch had
    Round(("dev_mined",), TRAINING_FILES[:10], ("### Fleet's figures before the rules",)),
    Round(
        ("holdout7", "holdout8"),
        TRAINING_FILES[:11],
        (
            "### Blind result on main at b230f25 (rules frozen there, last rule commit ef00e99): 56",
            "### Blind result on main at b230f25 (rules frozen there, last rule commit ef00e99): 88",
        ),
    ),
)

_ROW_RE = re.compile(r"^\| `([^`]+)` \| (\w+) \| (\w+) \|")
_PROSE_RE = re.compile(r"`([^`]+)`(?: and `([^`]+)`)?\s+(\w+) ->\s+(\w+)")


class Unreadable(SystemExit):
    """The READMEs no longer say what this tool reads."""


def _section_misses(heading: str) -> dict[str, str]:
    """id -> fleet's answer, from every "| id | expected | fleet | text |" table of the
    section under `heading` (to the next heading of its level or above)."""
    lines = (ROOT / "tests" / "corpus" / "README.md").read_text("utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    if len(starts) != 1:
        raise Unreadable(f"no single section {heading!r} in tests/corpus/README.md")
    misses = {}
    for line in lines[starts[0] + 1 :]:
        if line.startswith(("## ", "### ")):
            break
        match = _ROW_RE.match(line)
        if match is not None:
            misses[match.group(1)] = match.group(3)
    return misses


def _holdout_misses() -> dict[str, str]:
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index("The 17 misses of the first, blind run")
    prose = " ".join(text[start : text.index("Most were wording", start)].split())
    misses = {}
    for first, second, _expected, got in _PROSE_RE.findall(prose):
        misses[first] = got
        if second:
            misses[second] = got
    if len(misses) != 17:
        raise Unreadable(f"README.md's 17 misses of holdout.yaml read as {len(misses)}")
    return misses


@dataclass(frozen=True)
class Policy:
    threshold: float
    veto: bool


def _learned_says(e: Example, model: learned.Model, policy: Policy) -> str | None:
    reply = make_reply(e.code, e.text)
    found = learned_reading(Stage(e.stage), reply, model, policy.threshold, policy.veto)
    return None if found is None else found.category


def blind(policy: Policy, verbose: bool) -> None:
    print(f"(a) blind rounds, threshold {policy.threshold}, policy veto {policy.veto}")
    total = {"n": 0, "right": 0, "fixed": 0, "broken": 0, "wrong": 0, "spoke": 0}
    for r in ROUNDS:
        model = learned.build(train(e for name in r.before for e in load(name)))
        misses = _holdout_misses() if not r.sections else {}
        for heading in r.sections:
            misses.update(_section_misses(heading))
        entries = [e for name in r.sets for e in load(name)]
        if r.sets == ("holdout",):
            seen = ROOT / "tests" / "corpus_holdout_seen.txt"
            measured = {x.strip() for x in seen.read_text().splitlines() if x.strip()}
            entries = [e for e in entries if e.id in measured]
        ids = {e.id for e in entries}
        if not set(misses) <= ids:
            raise Unreadable(f"misses of no entry: {sorted(set(misses) - ids)}")
        n = right = fixed = broken = wrong = spoke = 0
        for e in entries:
            fleet = misses.get(e.id, e.category)
            n += 1
            right += fleet == e.category
            if fleet != Category.unrecognised_refusal.value:
                continue
            said = _learned_says(e, model, policy)
            if said is None:
                continue
            spoke += 1
            if said == e.category and fleet != e.category:
                fixed += 1
                if verbose:
                    print(f"    fixed  {e.id}: {said}")
            elif fleet == e.category:
                broken += 1
                if verbose:
                    print(f"    BROKEN {e.id}: {said} (label {e.category})")
            else:
                wrong += 1
                if verbose:
                    print(f"    wrong  {e.id}: {said} (label {e.category})")
        after = right + fixed - broken
        print(
            f"  {'+'.join(r.sets):32} trained on {len(r.before):2} files: blind {right}/{n}"
            f" -> {after}/{n} ({100 * after / n:.1f} %), spoke {spoke}: fixed {fixed},"
            f" broke {broken}, a miss read wrong {wrong}"
        )
        for k, v in (("n", n), ("right", right), ("fixed", fixed), ("broken", broken)):
            total[k] += v
        total["spoke"] += spoke
        total["wrong"] += wrong
    after = total["right"] + total["fixed"] - total["broken"]
    print(
        f"  all rounds: {total['right']}/{total['n']} ({100 * total['right'] / total['n']:.1f} %)"
        f" -> {after}/{total['n']} ({100 * after / total['n']:.1f} %), spoke {total['spoke']}:"
        f" fixed {total['fixed']}, broke {total['broken']}, a miss read wrong {total['wrong']}"
    )


def _context(e: Example) -> Context:
    stage = Stage(e.stage)
    # the greeting the corpus replay's server gives (tests/corpus_replay.py: Entry.banner)
    system = e.system.lower()
    if system in ("microsoft365", "microsoft", "outlook", "exchange"):
        banner = "BN8NAM11FT012.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready"
    elif system in ("google", "gmail"):
        banner = "mx.google.com ESMTP a1-20020a05 - gsmtp"
    else:
        banner = f"mx.{system or 'unknown'}.test ESMTP"
    said = [e.text] if stage is Stage.banner else [banner, e.text]
    return Context(
        mode=Mode.submission if stage in (Stage.auth, Stage.starttls) else Mode.direct_send,
        host="localhost",
        port=25,
        authenticated=stage is Stage.auth,
        ip="127.0.0.1",
        username="replay@contoso.test" if stage is Stage.auth else None,
        sender="scanner@contoso.test",
        provider=provider_of("localhost", said),
        ehlo_name="mfp-3f",
    )


def leave_one_out(policy: Policy, names: Iterable[str], verbose: bool) -> None:
    print(f"(b) leave one set out, threshold {policy.threshold}, policy veto {policy.veto}")
    sets = {name: load(name) for name in names}
    n_all = rules_all = whole_all = 0
    for name, entries in sets.items():
        model = learned.build(train(e for other, es in sets.items() if other != name for e in es))
        rules = whole = spoke = 0
        for e in entries:
            found = read_by_rules(Stage(e.stage), make_reply(e.code, e.text), _context(e))
            got = found.category.value
            rules += got == e.category
            if found.rule is None and found.category is Category.unrecognised_refusal:
                said = _learned_says(e, model, policy)
                if said is not None:
                    spoke += 1
                    if verbose and said != e.category:
                        print(f"    {name} {e.id}: learned {said}, label {e.category}")
                    got = said
            whole += got == e.category
        print(
            f"  {name:18} rules {rules}/{len(entries)}, rules+learner {whole}/{len(entries)}"
            f" (learner spoke {spoke})"
        )
        n_all += len(entries)
        rules_all += rules
        whole_all += whole
    print(f"  all: rules {rules_all}/{n_all}, rules+learner {whole_all}/{n_all}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default=str(LEARNED_THRESHOLD))
    parser.add_argument("--no-veto", action="store_true", help="let it read policy refusals")
    parser.add_argument("--only", choices=("a", "b"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    for threshold in (float(t) for t in args.thresholds.split(",")):
        policy = Policy(threshold, not args.no_veto)
        if args.only != "b":
            blind(policy, args.verbose)
        if args.only != "a":
            leave_one_out(policy, TRAINING_FILES, args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
