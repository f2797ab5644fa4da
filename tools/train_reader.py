"""Train fleet's learned reader (fleet/judgement/learned.py) on the labelled reply corpus.

A multinomial naive Bayes over the features of `fleet.judgement.learned_features` (word
unigrams and bigrams, character 3-5-grams within words, stage, code, enhanced-code class),
each feature counted once per reply, trained on the files named in TRAINING_FILES (a fixed
list, not a glob: a set registered later does not change the model until it is added here
and the model written again). Deterministic: the same files give the same bytes.

Writes fleet/judgement/learned_reader.json (shipped with the package; no pickle).
Usage: python tools/train_reader.py [--check]   (--check: fail if the shipped model differs)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.judgement.evidence import make_reply
from fleet.judgement.learned_features import features

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
MODEL = ROOT / "fleet" / "judgement" / "learned_reader.json"

# Every labelled set in the repository when the reader was frozen (judge9, #16), in the order
# they were gathered. Fixed on purpose: see the module docstring.
TRAINING_FILES = (
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
)

# Laplace smoothing of the counts, and the fewest replies a feature must occur in to be kept
# (a feature of one reply names that reply, not a wording).
ALPHA = 0.1
MIN_REPLIES = 2


@dataclass(frozen=True)
class Example:
    id: str
    stage: str
    code: int
    text: str
    category: str
    system: str = ""

    def features(self) -> set[str]:
        reply = make_reply(self.code, self.text)
        return features(self.stage, self.code, reply.enhanced, reply.text)


def load(name: str) -> list[Example]:
    raw: list[dict[str, Any]] = yaml.safe_load((CORPUS / f"{name}.yaml").read_text("utf-8"))
    return [
        Example(
            str(e["id"]),
            str(e["stage"]),
            int(e["code"]),
            str(e["text"]),
            str(e["category"]),
            str(e.get("system", "")),
        )
        for e in raw or []
    ]


def train(examples: Iterable[Example]) -> dict[str, Any]:
    """The model as plain data: per class its number of replies and of feature occurrences,
    and per kept feature its count in each class that has it ([class, count, ...])."""
    rows = [(e.category, e.features()) for e in examples]
    classes = sorted({category for category, _ in rows})
    index = {c: i for i, c in enumerate(classes)}
    seen_in = Counter(f for _, found in rows for f in found)
    kept = {f for f, n in seen_in.items() if n >= MIN_REPLIES}
    counts: dict[str, Counter[int]] = {}
    replies = [0] * len(classes)
    totals = [0] * len(classes)
    for category, found in rows:
        i = index[category]
        replies[i] += 1
        for f in found & kept:
            counts.setdefault(f, Counter())[i] += 1
            totals[i] += 1
    return {
        "format": 1,
        "alpha": ALPHA,
        "classes": classes,
        "replies": replies,
        "totals": totals,
        "features": {
            f: [x for i in sorted(by_class) for x in (i, by_class[i])]
            for f, by_class in sorted(counts.items())
        },
    }


def dumps(model: dict[str, Any]) -> str:
    return json.dumps(model, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    text = dumps(train(e for name in TRAINING_FILES for e in load(name)))
    if args.check:
        if MODEL.read_text("utf-8") != text:
            print(f"{MODEL} is not what {' '.join(TRAINING_FILES)} train", file=sys.stderr)
            return 1
        return 0
    MODEL.write_text(text, "utf-8")
    print(f"wrote {MODEL} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
