"""The learned reader: a reply no rule knows, read by resemblance to the ~1,500 labelled real
replies of tests/corpus/ (#16).

A multinomial naive Bayes over `learned_features` (trained by tools/train_reader.py into
`learned_reader.json`, shipped with the package), loaded on first use only: a sweep whose
replies the rules read never pays for it. It answers a category and how sure it is; the
caller (`replies`) decides whether it speaks (see LEARNED_THRESHOLD there).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from fleet.judgement.learned_features import features

MODEL_FILE = "learned_reader.json"


@dataclass(frozen=True)
class Model:
    classes: tuple[str, ...]
    base: tuple[float, ...]  # log prior of each class
    unseen: tuple[float, ...]  # log P(feature | class) of a known feature the class never had
    seen: dict[str, dict[int, float]]  # feature -> class -> log P(feature | class) - unseen


@dataclass(frozen=True)
class Guess:
    category: str
    probability: float


@cache
def _model() -> Model:
    return build(json.loads(resources.files(__package__).joinpath(MODEL_FILE).read_text("utf-8")))


def build(raw: dict[str, Any]) -> Model:
    """The reader of a trained model (tools/train_reader.py's plain data)."""
    alpha: float = raw["alpha"]
    classes = tuple(raw["classes"])
    table: dict[str, list[int]] = raw["features"]
    vocabulary = len(table)
    all_replies = sum(raw["replies"])
    denominators = [total + alpha * vocabulary for total in raw["totals"]]
    unseen = tuple(math.log(alpha / d) for d in denominators)
    seen = {
        f: {
            pairs[i]: math.log((pairs[i + 1] + alpha) / denominators[pairs[i]]) - unseen[pairs[i]]
            for i in range(0, len(pairs), 2)
        }
        for f, pairs in table.items()
    }
    base = tuple(math.log(n / all_replies) for n in raw["replies"])
    return Model(classes, base, unseen, seen)


# The naive Bayes' joint log-likelihoods are summed over hundreds of dependent features and
# so are far too sure of themselves; dividing by this before the softmax makes its
# probability a usable confidence (chosen with the threshold by leave-one-set-out runs).
TEMPERATURE = 3.0


def guess(
    stage: str,
    code: int | None,
    enhanced: str | None,
    text: str,
    model: Model | None = None,
) -> Guess:
    """The most likely category of a reply and the reader's probability for it (by the
    shipped model unless another is given: tools/measure_reader.py's simulations)."""
    model = model or _model()
    known = [model.seen[f] for f in features(stage, code, enhanced, text) if f in model.seen]
    scores = [b + len(known) * u for b, u in zip(model.base, model.unseen, strict=True)]
    for by_class in known:
        for i, delta in by_class.items():
            scores[i] += delta
    top = max(scores)
    weights = [math.exp((s - top) / TEMPERATURE) for s in scores]
    best = max(range(len(scores)), key=scores.__getitem__)
    return Guess(model.classes[best], weights[best] / sum(weights))
