"""The pixel-optimization loop: one loop for every method that optimizes an image on the frozen VGG.

Gatys style transfer, DeepDream, feature inversion (Mahendran & Vedaldi 2015) and activation
maximization differ only in their objective and their optimizer settings, so they all call
`optimize_pixels` with an objective: a callable that takes the pixel tensor (1, 3, H, W) and
returns a dict of scalar loss terms, one of them "total" (the value minimized; to maximize an
activation, return its negative). The loop owns what they share:

- the optimizer: L-BFGS (Gatys et al. 2015; jcjohnson/neural-style), Adam, or plain SGD
  (DeepDream), with an optional `grad_transform` (DeepDream's gradient normalization);
- optional projection onto box bounds after each step, optional bf16 autocast, a seeded RNG;
- best-so-far tracking: the result is the lowest-"total" image seen, not merely the last;
- per-iteration history (every term + wall time), callbacks, a tqdm progress bar on stderr;
- Ctrl-C: a KeyboardInterrupt during the loop ends it and returns the best image so far.

Iteration numbering: history row `i` scores x_i, the image after i optimizer steps (row 0 is the
initial image), and callbacks see (i, x_i) together, so a saved image and its losses match.
Each step evaluates the objective once at the current x (then updates it); x_N after the last
step is scored by one extra forward pass without a backward.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

Objective = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
OPTIMIZERS = ("lbfgs", "adam", "sgd")
# Adam/SGD step sizes for pixels in [0, 1] (~5/255 per step at the start).
DEFAULT_LR = {"adam": 0.02, "sgd": 0.02}


@dataclass
class Step:
    """What a callback sees after each evaluation: x_i and its loss terms."""

    iteration: int  # i: optimizer steps done before this image (0 = the initial image)
    losses: dict[str, float]  # every term the objective returned, as floats
    image: torch.Tensor  # x_i itself (read-only view: clone it to keep it)
    elapsed: float  # seconds since the loop started
    best_loss: float  # lowest total so far, this one included
    best_iteration: int


Callback = Callable[[Step], None]


@dataclass
class LoopResult:
    image: torch.Tensor  # the best image seen (detached copy; clamped to `bounds` if given)
    losses: dict[str, float]  # its loss terms
    best_iteration: int
    iterations: int  # optimizer steps completed
    interrupted: bool  # Ctrl-C ended the loop early
    stop_reason: str  # "done", "interrupted", "non-finite loss"
    history: list[dict[str, float]] = field(default_factory=list)  # {"iteration", terms..., "time"}
    seconds: float = 0.0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; an unavailable cuda is a ValueError (callers say why)."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA GPU (use --device cpu or auto)")
    return dev


def make_optimizer(
    name: str, params: list[torch.Tensor], lr: float | None = None, history_size: int = 50
) -> torch.optim.Optimizer:
    """L-BFGS takes one iteration per step() (so the loop sees every iterate) and keeps its
    curvature history across steps; its tolerances are 0 because our losses are means and their
    gradients can be far below torch's default 1e-7 early-exit threshold."""
    if name == "lbfgs":
        return torch.optim.LBFGS(
            params, lr=1.0 if lr is None else lr, max_iter=1, history_size=history_size,
            tolerance_grad=0.0, tolerance_change=0.0,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=DEFAULT_LR["adam"] if lr is None else lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=DEFAULT_LR["sgd"] if lr is None else lr)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def _floats(terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in terms.items()}


def _postfix(losses: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.3g}" for k, v in losses.items())


def optimize_pixels(
    objective: Objective,
    init: torch.Tensor,
    *,
    iterations: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    history_size: int = 50,
    first_step: float | None = None,
    bounds: tuple[float, float] | None = None,
    grad_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    bf16: bool = False,
    seed: int | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    desc: str = "optimize",
    catch_interrupt: bool = True,
) -> LoopResult:
    """Minimize `objective(x)["total"]` over the pixels x, starting from `init` (not modified).

    objective: x (1, 3, H, W) float32 on init's device -> {"total": scalar, other terms...};
        called once per iteration under grad (and bf16 autocast when `bf16`).
    iterations: optimizer steps (>= 0); 0 scores `init` and returns it.
    optimizer: "lbfgs" (lr 1, `history_size` curvature pairs: memory is 2·history·numel floats),
        "adam" or "sgd" (lr default 0.02 for pixels in [0, 1]).
    first_step: L-BFGS only: mean |Δx| per pixel of the first (steepest-descent) step (when
        |g|_1 >= 1), e.g. 1e-2 (Gatys uses it); None keeps torch's -g/|g|_1, which is ~1e-5 per
        pixel on an image and can make the second step blow up (comment below).
    bounds: (lo, hi) projects x onto the box after every step; None leaves x free (the result
        is then clamped only when saved).
    grad_transform: maps x.grad before the step (e.g. DeepDream's g / mean|g|).
    seed: seeds torch's RNG for the objective's randomness (jitter) inside a forked RNG state,
        so the caller's global RNG is untouched.
    callbacks: called with a `Step` after every evaluation (progress, save-every, reports).
    catch_interrupt: Ctrl-C returns the best image so far with interrupted=True instead of raising.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    x = init.detach().clone().float().requires_grad_(True)
    opt = make_optimizer(optimizer, [x], lr=lr, history_size=history_size)
    step_lr = opt.param_groups[0]["lr"]
    if optimizer == "lbfgs" and first_step is not None:
        # torch's first L-BFGS step is -g/|g|_1 (times lr): an L1 displacement of 1 over the whole
        # image, ~1e-5 per pixel. The curvature pair taken from so tiny a step is mostly noise, and
        # the next step blew up (loss x60 with bounds, to 8e24 without, Gatys at 224 px). Scaling only that
        # first steepest-descent step to a mean |dx| of `first_step` per pixel gives a usable pair.
        opt.param_groups[0]["lr"] = first_step * x.numel()
    device_type = x.device.type
    autocast = (lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    history: list[dict[str, float]] = []
    best = {"loss": math.inf, "iteration": 0, "image": x.detach().clone(), "losses": {}}
    start = time.perf_counter()
    state = {"steps": 0, "bad": False}

    def record(losses: dict[str, float], image: torch.Tensor) -> None:
        i = state["steps"]
        total = losses["total"]
        elapsed = time.perf_counter() - start
        history.append({"iteration": i, **losses, "time": elapsed})
        if not math.isfinite(total):
            state["bad"] = True
        elif total < best["loss"]:
            best.update(loss=total, iteration=i, image=image.detach().clone(), losses=dict(losses))
        step = Step(i, losses, image.detach(), elapsed, best["loss"], best["iteration"])
        for cb in callbacks:
            cb(step)

    def evaluate() -> dict[str, torch.Tensor]:
        with autocast():
            terms = dict(objective(x))
        if "total" not in terms:
            raise KeyError("the objective must return a dict with a 'total' term")
        terms["total"] = terms["total"].float()
        return terms

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = evaluate()
        terms["total"].backward()
        if grad_transform is not None and x.grad is not None:
            x.grad = grad_transform(x.grad)
        record(_floats(terms), x)
        return terms["total"].detach()

    interrupted, reason = False, "done"
    rng = torch.random.fork_rng(devices=[x.device] if device_type == "cuda" else []) if seed is not None else contextlib.nullcontext()
    bar = tqdm(total=iterations, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        with rng:
            if seed is not None:
                torch.manual_seed(seed)
            try:
                while state["steps"] < iterations:
                    opt.step(closure)
                    opt.param_groups[0]["lr"] = step_lr
                    if state["bad"]:
                        reason = "non-finite loss"
                        log.warning("%s: the loss became non-finite at iteration %d; keeping the best image so far", desc, state["steps"])
                        break
                    state["steps"] += 1
                    if bounds is not None:
                        with torch.no_grad():
                            x.clamp_(*bounds)
                    bar.update(1)
                    bar.set_postfix_str(_postfix({k: v for k, v in history[-1].items() if k not in ("iteration", "time")}), refresh=False)
                if not state["bad"]:
                    # score x_N (the last step's result) without a backward pass
                    with torch.no_grad():
                        record(_floats(evaluate()), x)
            except KeyboardInterrupt:
                if not catch_interrupt:
                    raise
                interrupted, reason = True, "interrupted"
    finally:
        bar.close()
    image = best["image"]
    if bounds is not None:
        image = image.clamp(*bounds)
    return LoopResult(
        image=image,
        losses=best["losses"],
        best_iteration=best["iteration"],
        iterations=state["steps"],
        interrupted=interrupted,
        stop_reason=reason,
        history=history,
        seconds=time.perf_counter() - start,
    )
