"""The learned reader: a reply no rule knows, read by resemblance to the ~1,500 labelled real
replies of tests/corpus/ (#16).

A multinomial logistic regression over `learned_features` (trained by tools/train_reader.py into
`learned_reader.json`, shipped with the package), loaded on first use only: a sweep whose
replies the rules read never pays for it. It answers a category and how sure it is; the
caller (`replies`) decides whether it speaks (see LEARNED_THRESHOLD there).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from fleet.judgement.learned_features import features, is_word

MODEL_FILE = "learned_reader.json"


@dataclass(frozen=True)
class Model:
    classes: tuple[str, ...]
    bias: tuple[float, ...]
    weights: dict[str, dict[int, float]]  # feature -> class -> weight


@dataclass(frozen=True)
class Guess:
    category: str
    probability: float
    # the category the words alone point at (without the stage and the codes): a reading
    # the words do not support is no reading (#16)
    by_words: str


@cache
def _model() -> Model:
    # beside this module, read as a plain file: importlib.resources costs a sweep 2-4 ms of
    # imports (tempfile, shutil, bz2, lzma) for one read
    with open(os.path.join(os.path.dirname(__file__), MODEL_FILE), encoding="utf-8") as file:
        return build(json.load(file))


def build(raw: dict[str, Any]) -> Model:
    """The reader of a trained model (tools/train_reader.py's plain data)."""
    table: dict[str, list[float]] = raw["weights"]
    weights = {
        f: {int(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}
        for f, pairs in table.items()
    }
    return Model(tuple(raw["classes"]), tuple(raw["bias"]), weights)


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
    scores = list(model.bias)
    words = list(model.bias)
    for f in features(stage, code, enhanced, text):
        for i, w in model.weights.get(f, {}).items():
            scores[i] += w
            if is_word(f):
                words[i] += w
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    best = max(range(len(scores)), key=scores.__getitem__)
    by_words = max(range(len(words)), key=words.__getitem__)
    return Guess(model.classes[best], weights[best] / sum(weights), model.classes[by_words])
