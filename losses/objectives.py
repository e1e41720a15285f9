"""The objectives: which VGG19 layers carry content and style, and each layer's weight — named once.

The slow optimizer (`stylecast optimize`, `compare`) and the trainer (`stylecast train`, its recipes)
both take an objective by name; `--content-layers/--style-layers` (optimizer) and
`--model.content_layers/--model.style_layers` (trainer) override it for experiments. The balance
between content and style (`style_weight`) is not part of an objective: it is calibrated per network
and per painting (README, "Training a style"), so it stays with the recipe or the command line.

- ``johnson2016``: Johnson et al. 2016's layers (VGG-16 names, present in VGG19 with the same
  receptive fields up to block 3): content relu2_2, style relu1_2..relu4_3 with equal weights. With
  our normalization relu3_3's and relu4_3's Gram terms dominate, so colour (relu1_2) counts little
  and there is no block-5 term: the nets paint fine hatching, not large strokes.
- ``gatys``: Gatys et al. 2015's layers, content relu4_2, style relu1_1..relu5_1, weighted so that
  each layer's term is of the same order at the start (with equal weights relu4_1 is ~95 % of the
  style loss: its Gram entries are ~1e3 larger in square than relu1_1's and ~1e4 larger than
  relu5_1's; mean A² over the nine paintings in shared/data at 256 px: relu1_1 ~3e2, relu2_1 ~4e4,
  relu3_1 ~2e4, relu4_1 ~1e6, relu5_1 ~8e1). These weights bring every layer's term at init within
  ~6x of the others (Starry Night on Chelsea: 0.7-4.3e5 each).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    """Layers as `losses.perceptual.parse_layers` reads them: 'name[:weight],...'."""

    content_layers: str
    style_layers: str


OBJECTIVES: dict[str, Objective] = {
    "johnson2016": Objective(content_layers="relu2_2", style_layers="relu1_2,relu2_2,relu3_3,relu4_3"),
    "gatys": Objective(content_layers="relu4_2", style_layers="relu1_1:200,relu2_1:10,relu3_1:20,relu4_1:1,relu5_1:1000"),
}


def objective(name: str) -> Objective:
    """The named objective; ValueError listing the names for an unknown one (callers add the option)."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; objectives: {', '.join(sorted(OBJECTIVES))}") from None
