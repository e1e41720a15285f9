"""The style grammar of `-s`/`--style`, `?style=` and the registry: one style, or a mix of the
styles of one multi-style model (Dumoulin et al. 2017: mixing styles = mixing their γ, β).

    STYLE  := TERM | TERM,TERM,...        several terms: a mix
    TERM   := [MODEL/]NAME[:WEIGHT]
    MODEL  := a model in the models folder (painters), or a path to a model file (my/painters.onnx)
    WEIGHT := a number >= 0, default 1; a mix's weights are divided by their sum, which must be > 0

    starry_night                           a single-style model, or the one multi-style model with that style
    painters/starry_night                  one style of painters.onnx
    starry_night:0.7,great_wave:0.3        70 % / 30 % (the model holding both is found)
    painters/starry_night:3,great_wave:1   75 % / 25 %; MODEL/ once applies to every term
    my/painters.onnx/udnie:0.5,great_wave  a model file given by path

This module only parses and normalizes (pure, no model files); registry.py resolves the names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from stylecast.errors import UserError


@dataclass(frozen=True)
class Term:
    model: str | None  # the MODEL/ prefix, if any
    name: str
    weight: float


def split_model(text: str) -> tuple[str | None, str]:
    """'painters/starry_night' -> ('painters', 'starry_night'); 'starry_night' -> (None, 'starry_night')."""
    model, slash, name = text.rpartition("/")
    return (model, name) if slash else (None, text)


def _weight(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"style weight of {name!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise UserError(f"style weight of {name!r} must be a finite number, got {text!r}")
    if value < 0:
        raise UserError(f"style weight of {name!r} must be >= 0, got {text}")
    return value


def parse(spec: str) -> list[Term]:
    """The terms of a style spec, weights as written (not normalized). One-line UserErrors for an
    empty term, a bad or negative weight, a style named twice, and weights summing to 0."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("empty style name")
    terms: list[Term] = []
    for raw in spec.split(","):
        raw = raw.strip()
        model, rest = split_model(raw)
        name, colon, weight = rest.partition(":")
        name = name.strip()
        if not name:
            raise UserError(f"empty style in {spec!r} (a mix is NAME:WEIGHT,NAME:WEIGHT)")
        terms.append(Term(model.strip() if model else None, name, _weight(name, weight.strip()) if colon else 1.0))
    names = [t.name for t in terms]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"style {twice[0]!r} appears twice in the mix {spec!r}")
    models = sorted({t.model for t in terms if t.model})
    if len(models) > 1:
        raise UserError(f"a mix blends the styles of one model, but {spec!r} names {' and '.join(models)}")
    if len(terms) > 1 and sum(t.weight for t in terms) <= 0:
        raise UserError(f"style weights must sum to more than 0 in {spec!r}")
    if len(terms) == 1 and terms[0].weight <= 0:
        raise UserError(f"style weight of {terms[0].name!r} must be more than 0 when it is the only one")
    return terms


def model_of(terms: list[Term]) -> str | None:
    return next((t.model for t in terms if t.model), None)


def normalized(terms: list[Term]) -> dict[str, float]:
    """name -> weight / sum of the weights."""
    total = sum(t.weight for t in terms)
    return {t.name: t.weight / total for t in terms}


def label(spec: str) -> str:
    """A file-name-safe name for what `spec` selects: the style's name, or for a mix its names
    with their percentages ('starry_night70+great_wave30'); a model path gives its file stem."""
    terms = parse(spec)
    if len(terms) == 1:
        name = terms[0].name
        return re.sub(r"\.onnx$", "", name, flags=re.IGNORECASE)
    return "+".join(f"{name}{round(100 * w):d}" for name, w in normalized(terms).items())


def describe(weights: dict[str, float]) -> str:
    """'starry_night:0.7,great_wave:0.3' (the grammar's own spelling of a normalized mix)."""
    return ",".join(f"{name}:{w:.4g}" for name, w in weights.items())
