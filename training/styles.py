"""Several styles in one network (Dumoulin et al. 2017): the style list, and adding styles to a base.

A multi-style run trains one `TransformerNet(n_styles=N)` on N paintings; its checkpoint records
the styles in `hyper_parameters["styles"]`, one record per row of the conditional norms' tables:

    {"name": "starry_night", "painting": "starry_night.jpg", "style_weight": 1.0}

(`style_weight`: that style's factor on the run's --model.style_weight). The exporter writes the
same list as JSON into the model's metadata, and the torch-free side names each style by it.

Adding a style to a trained base (`stylecast train --base MULTI.ckpt --style new.jpg`) builds a
net with the base's rows plus new ones, copies every base tensor in, starts each new row at the
mean of the base's styles (a blend of what it knows, rather than an arbitrary style), and trains
only the new rows: every other tensor is frozen (requires_grad False) and the base rows of the
tables get zero gradient (`mask_base_rows`), so Adam never moves them.

With `--model.base_train all` the shared weights train too (the new style gets the whole network's
capacity, not 3,200 numbers): the base rows still never move, and the base's styles are replayed
(their paintings are in --style too, `replay_paintings`; `replay_draw` gives them 1 - new_share of
the samples) so the shared weights keep serving them. Their outputs change a little; the run's
per-style validation losses say by how much.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import torch

from stylecast.errors import UserError
from stylecast.training.transformer import TransformerNet

PAINTING_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# A style name is also a word of `stylecast stylize -s FILE/NAME:0.7,...`: none of / : , or spaces.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


def expand_style_images(spec: str | Sequence[str] | None) -> list[Path]:
    """--model.style_image as paintings: one file, a list of files, or a folder (its paintings,
    sorted; not recursive). Missing files are UserErrors naming them; "" gives []."""
    items = [spec] if isinstance(spec, (str, Path)) or spec is None else list(spec)
    paths: list[Path] = []
    for item in items:
        if item is None or str(item) == "":
            continue
        path = Path(str(item))
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PAINTING_SUFFIXES and not p.name.startswith("."))
            if not found:
                raise UserError(f"{path}: folder has no paintings ({', '.join(PAINTING_SUFFIXES)}) (--style / --model.style_image)")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError(f"{path}: no such file (the style image, --style / --model.style_image)")
    return paths


def style_name(painting: str | Path) -> str:
    """The style's name: the painting's file stem, with characters the mix grammar uses replaced."""
    stem = Path(str(painting)).stem
    name = "".join(c if NAME_PATTERN.fullmatch(c) else "_" for c in stem)
    return name or "style"


def style_records(paintings: Sequence[Path], weights: Sequence[float] | None) -> list[dict[str, Any]]:
    """One record per painting; `weights` (--model.style_weights): a factor per painting, default 1."""
    if weights is None or len(weights) == 0:
        weights = [1.0] * len(paintings)
    if len(weights) != len(paintings):
        raise UserError(f"--model.style_weights has {len(weights)} value(s) for {len(paintings)} painting(s)")
    if any(not float(w) > 0 for w in weights):
        raise UserError(f"--model.style_weights must all be positive, got {list(weights)}")
    return [{"name": style_name(p), "painting": Path(p).name, "style_weight": float(w)} for p, w in zip(paintings, weights)]


def check_unique(records: Sequence[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for r in records:
        if r["name"] in seen:
            raise UserError(f"two styles would be named {r['name']!r} ({seen[r['name']]} and {r['painting']}): rename one painting")
        seen[r["name"]] = r["painting"]


def styles_of(hparams: dict[str, Any]) -> list[dict[str, Any]]:
    """The style records of a checkpoint's hyper-parameters; [] for a single-style run."""
    styles = hparams.get("styles") or []
    return [dict(s) for s in styles] if len(styles) > 1 else []


def grow_from_base(net: TransformerNet, base_state: dict[str, torch.Tensor], n_base: int) -> None:
    """Copy a base net's weights into `net` (same width and blocks, n_base + k styles): shared
    tensors as they are, the base's style rows into rows [:n_base] (a single-style base's (C,)
    γ, β become row 0), and the mean of the base's rows into each new row."""
    own = net.state_dict()
    missing = [k for k in own if k not in base_state]
    if missing:
        raise UserError(f"--model.base lacks {len(missing)} of the network's weights, e.g. {missing[0]!r}")
    style_keys = {id(p) for p in net.style_parameters()}
    params = dict(net.named_parameters())
    with torch.no_grad():
        for key, value in own.items():
            src = base_state[key].to(value.dtype)
            if key in params and id(params[key]) in style_keys:
                rows = src.reshape(n_base, -1) if src.dim() == 1 and n_base == 1 else src
                if rows.shape != (n_base, value.shape[1]):
                    raise UserError(f"--model.base: {key} has shape {tuple(src.shape)}, expected ({n_base}, {value.shape[1]})")
                value[:n_base] = rows
                value[n_base:] = rows.mean(0, keepdim=True)
            elif src.shape != value.shape:
                raise UserError(f"--model.base: {key} has shape {tuple(src.shape)}, expected {tuple(value.shape)}")
            else:
                value.copy_(src)


def replay_paintings(base_styles: Sequence[dict[str, Any]], paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Split --style of a replaying --base run (base_train "all") into the base's paintings, in
    the base's row order (matched by style name), and the new ones."""
    by_name = {style_name(p): Path(p) for p in paths}
    missing = [r.get("painting") or r["name"] for r in base_styles if r["name"] not in by_name]
    if missing:
        raise UserError(
            f"--model.base_train all replays the base's styles: --style lacks {', '.join(missing)} "
            "(pass the base's paintings besides the new ones, e.g. their folder)"
        )
    names = {r["name"] for r in base_styles}
    new = [Path(p) for p in paths if style_name(p) not in names]
    if not new:
        raise UserError("--base: every --style painting is already a style of the base: nothing to add")
    return [by_name[r["name"]] for r in base_styles], new


def replay_draw(draw: torch.Tensor, n_replayed: int, n_styles: int, new_share: float) -> torch.Tensor:
    """Each sample's style from its stream's uniform 62-bit draw: uniform over n_styles, or, with
    n_replayed > 0 (the first n_replayed styles are the base's), a new style with probability
    new_share. The draw's high 30 bits decide new vs replayed, its low 32 bits which one."""
    if n_replayed == 0:
        return draw % n_styles
    low = draw & 0xFFFFFFFF
    new = (draw >> 32).double() < new_share * 2**30
    return torch.where(new, n_replayed + low % (n_styles - n_replayed), low % n_replayed)


def freeze_all_but_styles(net: TransformerNet) -> None:
    """Only the conditional norms' tables keep requires_grad (their base rows: mask_base_rows)."""
    style = {id(p) for p in net.style_parameters()}
    for p in net.parameters():
        p.requires_grad_(id(p) in style)


def mask_base_rows(net: TransformerNet, n_base: int) -> None:
    """Zero the gradient of the base's rows: with Adam's moments starting at zero, a parameter
    entry whose gradient is always zero never moves (m = v = 0, update 0), so the base styles stay
    bit for bit what they were."""
    for p in net.style_parameters():
        if p.grad is not None:
            p.grad[:n_base] = 0
