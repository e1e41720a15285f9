"""PerceptualLoss: the Gatys content + style losses and the TV prior on a frozen VGG, as a module.

It holds the layer choices and weights and caches the style Gram targets (computed once, fp32,
from one or several style images with blend weights). The formulas come from `functional`; this
module only wires them together. Shapes: images (B, 3, H, W) RGB in [0, 1].
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import torch
import torch.nn as nn

from stylecast.losses.objectives import OBJECTIVES
from stylecast.losses.functional import blend_grams, content_loss, gram_matrix, style_loss, total_variation
from stylecast.losses.vgg import VGG, load_vgg

LayerSpec = Union[Sequence[str], Mapping[str, float], str]

# Defaults: the `gatys` objective (losses/objectives.py), the slow optimizer's.
DEFAULT = OBJECTIVES["gatys"]


def parse_layers(spec: LayerSpec) -> dict[str, float]:
    """'relu1_1,relu2_1:0.5' or ['relu1_1'] or {'relu1_1': 1.0} -> {name: weight} (default weight 1)."""
    if isinstance(spec, Mapping):
        return {str(k): float(v) for k, v in spec.items()}
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: dict[str, float] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"layer weight for {name!r} is not a number: {weight!r}") from None
    if not out:
        raise ValueError("no layers given")
    return out


class PerceptualLoss(nn.Module):
    """total = content_weight·L_content + style_weight·L_style + tv_weight·L_tv.

    forward(image, content=None) returns {"total", "content", "style", "tv"} (the three terms
    unweighted, for logging). Content targets come from `content` (an image batch, features
    computed without grad) or from `set_content` (cached: the slow optimizer's fixed target).
    Style targets must be set once with `set_style` (one target, or a blend of several images),
    or with `set_styles` (one target per style, for a multi-style network: each image of a batch
    is scored against its own style, forward(..., style_index=)).
    """

    def __init__(
        self,
        content_layers: LayerSpec = DEFAULT.content_layers,
        style_layers: LayerSpec = DEFAULT.style_layers,
        content_weight: float = 1.0,
        style_weight: float = 1e4,
        tv_weight: float = 0.0,
        vgg: VGG | None = None,
        vgg_weights: str = "caffe",
        pooling: str = "max",
    ):
        super().__init__()
        self.content_layers = parse_layers(content_layers)
        self.style_layers = parse_layers(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = float(content_weight), float(style_weight), float(tv_weight)
        self.vgg = vgg if vgg is not None else load_vgg(vgg_weights, pooling=pooling)
        self.vgg.check_layers([*self.content_layers, *self.style_layers])
        self._style_names: list[str] = []
        self._content_names: list[str] = []

    # Targets live in non-persistent buffers: they follow .to(device) but stay out of checkpoints.
    def _set_buffers(self, prefix: str, tensors: Mapping[str, torch.Tensor]) -> list[str]:
        names = []
        for layer, t in tensors.items():
            key = f"{prefix}_{layer}"
            self.register_buffer(key, t.detach(), persistent=False)
            names.append(layer)
        return names

    @torch.no_grad()
    def style_grams(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gram matrices (1, C, C) of one style image (1, 3, H, W) at the style layers."""
        feats = self.vgg(style, self.style_layers)
        return {name: gram_matrix(f) for name, f in feats.items()}

    @torch.no_grad()
    def set_style(self, styles: torch.Tensor | Sequence[torch.Tensor], blend: Sequence[float] | None = None) -> None:
        """Cache the style targets from one image or several (blended with weights, normalized)."""
        if isinstance(styles, torch.Tensor):
            styles = [styles]
        grams = [self.style_grams(s) for s in styles]
        self._style_names = self._set_buffers("style_target", blend_grams(grams, list(blend) if blend is not None else None))

    @torch.no_grad()
    def set_styles(self, styles: Sequence[torch.Tensor]) -> None:
        """Cache one target per style image: (N, C, C) per layer, picked per image by forward's
        `style_index` (Dumoulin et al. 2017: each training image gets one of the N styles)."""
        grams = [self.style_grams(s) for s in styles]
        self._style_names = self._set_buffers("style_target", {n: torch.cat([g[n] for g in grams]) for n in self.style_layers})

    @torch.no_grad()
    def set_content(self, content: torch.Tensor) -> None:
        """Cache content targets for a fixed content image (the slow optimizer's case)."""
        self._content_names = self._set_buffers("content_target", self.vgg(content, self.content_layers))

    @property
    def style_targets(self) -> dict[str, torch.Tensor]:
        if not self._style_names:
            raise RuntimeError("PerceptualLoss: call set_style(...) before computing the loss")
        return {n: getattr(self, f"style_target_{n}") for n in self._style_names}

    def forward(
        self,
        image: torch.Tensor,
        content: torch.Tensor | None = None,
        style_index: torch.Tensor | None = None,
        style_scale: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """style_index (B,) long: image i is scored against style target style_index[i] (set_styles);
        the result then also holds "style_per_sample" (B,), unweighted. style_scale (B,): a factor
        on each image's style term in "total" (per-style style weights); "style" stays unweighted."""
        feats = self.vgg(image, [*self.content_layers, *self.style_layers])
        if content is not None:
            with torch.no_grad():
                targets = self.vgg(content, self.content_layers)
        elif self._content_names:
            targets = {n: getattr(self, f"content_target_{n}") for n in self._content_names}
        else:
            raise RuntimeError("PerceptualLoss: pass `content` or call set_content(...) first")
        c_loss = sum(w * content_loss(feats[n], targets[n]) for n, w in self.content_layers.items())
        grams = {n: gram_matrix(feats[n]) for n in self.style_layers}
        extra: dict[str, torch.Tensor] = {}
        if style_index is None:
            s_loss = weighted = style_loss(grams, self.style_targets, self.style_layers)
        else:
            targets = {n: t[style_index] for n, t in self.style_targets.items()}
            per_sample = style_loss(grams, targets, self.style_layers, per_sample=True)
            s_loss = per_sample.mean()
            weighted = s_loss if style_scale is None else (style_scale * per_sample).mean()
            extra["style_per_sample"] = per_sample
        tv = total_variation(image.float())
        total = self.content_weight * c_loss + self.style_weight * weighted + self.tv_weight * tv
        return {"total": total, "content": c_loss, "style": s_loss, "tv": tv, **extra}
