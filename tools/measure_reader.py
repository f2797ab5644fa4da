"""Measure the learned reader honestly, two ways (#16; figures in tests/corpus/README.md).

(a) blind: the sets were measured blind, one round after another; each round's README
    section lists its misses with fleet's answer (an entry not listed was answered right).
    For each round, train the reader ONLY on the files that existed before that round's
    blind run, apply the policy to fleet's recorded answers, and count the misses fixed, the
    right answers broken and any reading that would have claimed the IP's reputation.
(b) leave one set out: the whole reader (today's rules, then the learner where they fall
    back) on each file, the learner trained on every other file of TRAINING_FILES. The
    rules have seen every file, so this measures the learner's part, not the rules'.
(c) the contest of weak rule readings (replies.is_weak, judge11): left one set out as in (b),
    and replayed on the last blind rounds with THEIR frozen rules (each commit's fleet/ taken
    with `git archive`, read there, with the rule that decided and whether that rule is weak
    by that commit's own tables), the learner trained on the files before each round.

Usage: python tools/measure_reader.py [--thresholds 0.5,0.6,...] [--no-veto] [--only a|b|c] [-v]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from train_reader import TRAINING_FILES, Example, load, train

from fleet.classify import Context, make_reply, provider_of
from fleet.judgement import learned
from fleet.judgement.replies import (
    CONTEST_THRESHOLD,
    LEARNED_THRESHOLD,
    NEVER_CONTESTED,
    WEAK_ENVELOPE_RULES,
    contested,
    learned_reading,
    read_by_rules,
)
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
    # the commit the rules were read from, when its replies name the rule that decided (c)
    frozen: str | None = None


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
        "44f5be7",
    ),
    Round(("holdout5",), TRAINING_FILES[:8], ("### Blind result at 3d02e7f",), "3d02e7f"),
    Round(("holdout6",), TRAINING_FILES[:9], ("### Blind result on main at c4a6bdc",), "c4a6bdc"),
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
        "b230f25",
    ),
    # the first round with the learned fallback reader (trained on the 13 files before it)
    Round(
        ("holdout9", "holdout10"),
        TRAINING_FILES[:13],
        (
            "### Blind result on the frozen rules (RULES_FINAL: main at 3e56548): 40",
            "### Blind result in the same run: 94",
        ),
        "3e56548",
    ),
    # the first round with the contest of weak readings (judge11; learner on all 15 files)
    Round(
        ("holdout11", "holdout12"),
        TRAINING_FILES[:15],
        (
            "### Blind result on the frozen reader (RULES_FINAL2: main at 7e93f67): 13",
            "### Blind result on the frozen reader (RULES_FINAL2: main at 7e93f67): 75",
        ),
        "7e93f67",
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


def _recorded(r: Round) -> dict[str, str]:
    """id -> fleet's blind answer, for the entries it missed."""
    misses = _holdout_misses() if not r.sections else {}
    for heading in r.sections:
        misses.update(_section_misses(heading))
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
        misses = _recorded(r)
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


def _banner(e: Example) -> str:
    """The greeting the corpus replay's server gives (tests/corpus_replay.py: Entry.banner)."""
    system = e.system.lower()
    if system in ("microsoft365", "microsoft", "outlook", "exchange"):
        return "BN8NAM11FT012.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready"
    if system in ("google", "gmail"):
        return "mx.google.com ESMTP a1-20020a05 - gsmtp"
    return f"mx.{system or 'unknown'}.test ESMTP"


def _context(e: Example) -> Context:
    stage = Stage(e.stage)
    said = [e.text] if stage is Stage.banner else [_banner(e), e.text]
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


# Run by a frozen commit's own fleet/: each entry's rules reading (the learner's fallback
# left out) and whether it is weak by that commit's tables (replies.is_weak's definition).
_FROZEN_READER = """
import json, sys
import yaml
from fleet.classify import Context, make_reply, provider_of
from fleet.judgement import replies
from fleet.judgement.rules.status_codes import STATUS_CODES
from fleet.judgement.rules.subjects import SUBJECTS
from fleet.results import Mode, Stage
try:  # (the word families came after the first rounds)
    from fleet.judgement.rules.word_families import WORD_FAMILIES
except ImportError:
    WORD_FAMILIES = ()
weak = {r.id.value for r in STATUS_CODES + SUBJECTS + WORD_FAMILIES} | set(json.loads(sys.argv[2]))
read = getattr(replies, "read_by_rules", replies.classify_reply)
out = {}
for path, banner in json.loads(sys.argv[1]):
    for e in yaml.safe_load(open(path, encoding="utf-8")):
        stage = Stage(e["stage"])
        said = [e["text"]] if stage is Stage.banner else [banner[e["id"]], e["text"]]
        ctx = Context(
            mode=Mode.submission if stage in (Stage.auth, Stage.starttls) else Mode.direct_send,
            host="localhost", port=25, authenticated=stage is Stage.auth, ip="127.0.0.1",
            username="replay@contoso.test" if stage is Stage.auth else None,
            sender="scanner@contoso.test", provider=provider_of("localhost", said),
            ehlo_name="mfp-3f")
        found = read(stage, make_reply(int(e["code"]), str(e["text"])), ctx)
        # (the fallback's stage-and-code readings are weak too; its "unrecognised" is no reading)
        fallback = found.rule is None and found.category.value != "unrecognised_refusal"
        out[e["id"]] = [found.category.value, fallback or (found.rule or "") in weak]
json.dump(out, sys.stdout)
"""


def _frozen_readings(commit: str, names: Iterable[str]) -> dict[str, tuple[str, bool]]:
    git = shutil.which("git") or "git"
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(  # noqa: S603 (this repository's own commits, named above)
            [git, "-C", str(ROOT), "archive", commit, "fleet"], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as files:
            files.extractall(tree, filter="data")
        banners = {}
        paths = []
        for name in names:
            for e in load(name):
                banners[e.id] = _banner(e)
            paths.append((str(ROOT / "tests" / "corpus" / f"{name}.yaml"), banners))
        done = subprocess.run(  # noqa: S603 (this interpreter, the reader above)
            [
                sys.executable,
                "-c",
                _FROZEN_READER,
                json.dumps(paths),
                json.dumps([r.value for r in WEAK_ENVELOPE_RULES]),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": tree, "PATH": "/usr/bin:/bin"},
        )
    raw: dict[str, list[object]] = json.loads(done.stdout)
    return {k: (str(v[0]), bool(v[1])) for k, v in raw.items()}


def _contest(e: Example, category: str, weak: bool, model: learned.Model, threshold: float) -> str:
    """The whole reader's answer given the rules' reading: the fallback learner where they
    fall back, the contest where their reading is weak."""
    reply = make_reply(e.code, e.text)
    stage = Stage(e.stage)
    if category == Category.unrecognised_refusal.value and not weak:
        found = learned_reading(stage, reply, model)
        return category if found is None else found.category
    if not weak or Category(category) in NEVER_CONTESTED:
        return category
    other = learned_reading(stage, reply, model, threshold)
    return category if other is None else other.category


def contest(thresholds: Iterable[float], verbose: bool) -> None:
    sets = {name: load(name) for name in TRAINING_FILES}
    for threshold in thresholds:
        print(f"(c) the contest of weak readings at {threshold}")
        n = before = after = fixed = broken = 0
        for name, entries in sets.items():
            model = learned.build(train(e for o, es in sets.items() if o != name for e in es))
            for e in entries:
                found = read_by_rules(Stage(e.stage), make_reply(e.code, e.text), _context(e))
                if found.rule is None and found.category is Category.unrecognised_refusal:
                    continue  # (b)'s part: the fallback reader
                other = contested(
                    Stage(e.stage), make_reply(e.code, e.text), found, model, threshold
                )
                got = found.category.value if other is None else other.category
                n += 1
                before += found.category.value == e.category
                after += got == e.category
                fixed += got == e.category != found.category.value
                broken += found.category.value == e.category != got
                if verbose and other is not None:
                    print(f"    {name} {e.id}: {found.category.value} -> {got}, label {e.category}")
        print(
            f"  left one set out, the {n} replies the rules read: {before} -> {after}"
            f" (fixed {fixed}, broke {broken})"
        )
        for r in ROUNDS:
            if r.frozen is None:
                continue
            frozen = _frozen_readings(r.frozen, r.sets)
            recorded = _recorded(r)
            model = learned.build(train(e for name in r.before for e in load(name)))
            total = base = whole = fixed = broken = same = 0
            for name in r.sets:
                for e in load(name):
                    category, weak = frozen[e.id]
                    with_fallback = _contest(e, category, False, model, threshold)
                    got = _contest(e, category, weak, model, threshold)
                    total += 1
                    same += with_fallback == recorded.get(e.id, e.category)
                    base += with_fallback == e.category
                    whole += got == e.category
                    fixed += got == e.category != with_fallback
                    broken += with_fallback == e.category != got
                    if verbose and got != with_fallback:
                        print(f"    {e.id}: {with_fallback} -> {got}, label {e.category}")
            print(
                f"  {'+'.join(r.sets):32} on its frozen rules ({r.frozen}), learner on"
                f" {len(r.before):2} files: {base}/{total} -> {whole}/{total}"
                f" (fixed {fixed}, broke {broken}; {same} of {total} as recorded blind)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default=str(LEARNED_THRESHOLD))
    parser.add_argument("--no-veto", action="store_true", help="let it read policy refusals")
    parser.add_argument("--only", choices=("a", "b", "c"))
    parser.add_argument("--contest", default=str(CONTEST_THRESHOLD), help="(c)'s thresholds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    for threshold in (float(t) for t in args.thresholds.split(",")):
        policy = Policy(threshold, not args.no_veto)
        if args.only in (None, "a"):
            blind(policy, args.verbose)
        if args.only in (None, "b"):
            leave_one_out(policy, TRAINING_FILES, args.verbose)
    if args.only in (None, "c"):
        contest((float(t) for t in args.contest.split(",")), args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
