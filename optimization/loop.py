"""The pixel-optimization loop: one loop for every method that optimizes an image on the frozen VGG.

Gatys style transfer, DeepDream, feature inversion (Mahendran & Vedaldi 2015) and activation
maximization differ only in their objective and their optimizer settings, so they all call
`optimize_pixels` with an objective: a callable that takes the pixel tensor (1, 3, H, W) and
returns a dict of scalar loss terms, one of them "total" (the value minimized; to maximize an
activation, return its negative). The loop owns what they share:

- the optimizer: L-BFGS (Gatys et al. 2015; here scipy's L-BFGS-B, box-constrained), Adam, or
  plain SGD (DeepDream), with an optional `grad_transform` (DeepDream's gradient normalization);
- optional box bounds on the pixels, optional bf16 autocast, a seeded RNG;
- best-so-far tracking: the result is the lowest-"total" image seen, not merely the last;
- per-iteration history (every term + wall time), callbacks, a tqdm progress bar on stderr;
- Ctrl-C: a KeyboardInterrupt during the loop ends it and returns the best image so far.

Iteration numbering: history row `i` scores x_i, the image after i optimizer steps (row 0 is the
initial image), and callbacks see (i, x_i) together, so a saved image and its losses match.
Adam/SGD evaluate the objective once per step at the current x (then update it) and score x_N
after the last step with one extra forward pass without a backward; L-BFGS-B scores each iterate
with the evaluation its line search ended on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
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
    stop_reason: str  # "done", "interrupted", "non-finite loss"; L-BFGS-B ending early: "converged" or "stopped: <why>"
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
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but torch sees {torch.cuda.device_count()} CUDA GPU(s): cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return dev


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None = None) -> torch.optim.Optimizer:
    """The first-order optimizers (L-BFGS is not a torch optimizer here: see `_lbfgsb`)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=DEFAULT_LR["adam"] if lr is None else lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=DEFAULT_LR["sgd"] if lr is None else lr)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


class _NonFinite(Exception):
    """Raised from inside scipy's L-BFGS-B to stop it at a NaN/inf loss."""


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
        called under grad (and bf16 autocast when `bf16`): once per iteration for Adam/SGD, about
        1.1-1.3 times per iteration for L-BFGS (its line search).
    iterations: optimizer steps (>= 0); 0 scores `init` and returns it. L-BFGS may stop earlier
        when it has converged (stop_reason "converged").
    optimizer: "lbfgs" (scipy's L-BFGS-B with `history_size` curvature pairs, float64 on the CPU:
        2·history·numel·8 bytes), "adam" or "sgd" (lr default 0.02 for pixels in [0, 1]).
    bounds: (lo, hi) keeps x in the box: L-BFGS-B treats it as a constraint of the problem,
        Adam/SGD project onto it after every step; None leaves x free (the result is then
        clamped only when saved).
    grad_transform: Adam/SGD only: maps x.grad before the step (e.g. DeepDream's g / mean|g|).
    seed: seeds torch's RNG for the objective's randomness (jitter) inside a forked RNG state,
        so the caller's global RNG is untouched.
    callbacks: called with a `Step` for x_0 and after every iteration (progress, save-every, reports).
    catch_interrupt: Ctrl-C returns the best image so far with interrupted=True instead of raising.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if optimizer == "lbfgs" and grad_transform is not None:
        raise ValueError("grad_transform changes the gradient L-BFGS needs to be exact; use adam or sgd")
    x = init.detach().clone().float().requires_grad_(True)
    device_type = x.device.type
    autocast = (lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    history: list[dict[str, float]] = []
    best = {"loss": math.inf, "iteration": 0, "image": x.detach().clone(), "losses": {}}
    start = time.perf_counter()
    state = {"steps": 0, "bad": False}
    bar = tqdm(total=iterations, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)

    def record(losses: dict[str, float]) -> None:
        """Score x_i (i = state["steps"]) with its already computed terms."""
        i = state["steps"]
        total = losses["total"]
        elapsed = time.perf_counter() - start
        history.append({"iteration": i, **losses, "time": elapsed})
        if not math.isfinite(total):
            state["bad"] = True
        elif total < best["loss"]:
            best.update(loss=total, iteration=i, image=x.detach().clone(), losses=dict(losses))
        if i > 0:
            bar.update(1)
            bar.set_postfix_str(_postfix(losses), refresh=False)
        step = Step(i, losses, x.detach(), elapsed, best["loss"], best["iteration"])
        for cb in callbacks:
            cb(step)

    def evaluate(grad: bool) -> dict[str, float]:
        """The objective at the current x; with grad, x.grad holds d total / dx afterwards."""
        x.grad = None
        with torch.enable_grad() if grad else torch.no_grad(), autocast():
            terms = dict(objective(x))
        if "total" not in terms:
            raise KeyError("the objective must return a dict with a 'total' term")
        if grad:
            terms["total"].float().backward()
        return _floats(terms)

    interrupted, reason = False, "done"
    rng = torch.random.fork_rng(devices=[x.device] if device_type == "cuda" else []) if seed is not None else contextlib.nullcontext()
    try:
        with rng:
            if seed is not None:
                torch.manual_seed(seed)
            try:
                if optimizer == "lbfgs":
                    reason = _lbfgsb(x, evaluate, record, state, iterations, history_size, bounds)
                else:
                    reason = _first_order(x, evaluate, record, state, iterations, optimizer, lr, bounds, grad_transform)
            except KeyboardInterrupt:
                if not catch_interrupt:
                    raise
                interrupted, reason = True, "interrupted"
    finally:
        bar.close()
    if reason == "non-finite loss":
        log.warning("%s: the loss became non-finite at iteration %d; keeping the best image so far", desc, state["steps"])
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


def _first_order(x, evaluate, record, state, iterations, optimizer, lr, bounds, grad_transform) -> str:
    """Adam / SGD: evaluate x_i with its gradient, record it, step; x_N is scored without a backward."""
    opt = make_optimizer(optimizer, [x], lr=lr)
    for _ in range(iterations):
        record(evaluate(grad=True))
        if state["bad"]:
            return "non-finite loss"
        if grad_transform is not None:
            x.grad = grad_transform(x.grad)
        opt.step()
        state["steps"] += 1
        if bounds is not None:
            with torch.no_grad():
                x.clamp_(*bounds)
    record(evaluate(grad=False))
    return "non-finite loss" if state["bad"] else "done"


def _lbfgsb(x, evaluate, record, state, iterations, history_size, bounds) -> str:
    """L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995; scipy) on the pixels, with the box as a constraint.

    Why not torch.optim.LBFGS: its fixed unit step (no line search) followed by clamping to [0, 1]
    diverged from a noise start (Gatys loss 7.9e9 -> 1.1e10 in 30 iterations on a 96x64 pair), and
    its strong-Wolfe line search stalled at the first iterate on the same problem; clamping after
    a step also corrupts the curvature pairs. L-BFGS-B projects inside its line search and
    lowered the same loss 39x in 30 iterations from noise (33x from the content image): it is what Gatys-style
    implementations built on scipy use. Cost: the image and gradient cross to the CPU in float64
    once per evaluation (~1.2 evaluations per iteration measured).
    """
    from scipy.optimize import Bounds, minimize

    shape = x.shape
    last: dict = {}  # the latest evaluation: its point and terms

    def fun(v: np.ndarray):
        with torch.no_grad():
            x.copy_(torch.from_numpy(v).view(shape))
        losses = evaluate(grad=True)
        if not last:  # scipy's first evaluation is x_0 itself
            record(losses)
        if not math.isfinite(losses["total"]):
            raise _NonFinite
        last.update(v=v.copy(), losses=losses)
        return losses["total"], x.grad.detach().double().cpu().numpy().ravel()

    def callback(xk: np.ndarray) -> None:
        state["steps"] += 1
        with torch.no_grad():
            x.copy_(torch.from_numpy(xk).view(shape))
        # x_k is normally the line search's last evaluation; if not, score it once more
        record(last["losses"] if np.array_equal(xk, last["v"]) else evaluate(grad=False))

    if iterations == 0:
        record(evaluate(grad=False))
        return "done"
    v0 = x.detach().double().cpu().numpy().ravel()
    box = None
    if bounds is not None:
        v0 = v0.clip(*bounds)
        box = Bounds(np.full(v0.size, bounds[0], np.float64), np.full(v0.size, bounds[1], np.float64))
    try:
        result = minimize(
            fun,
            v0,
            jac=True,
            method="L-BFGS-B",
            bounds=box,
            callback=callback,
            # ftol/gtol 0: stop on the iteration count, not on scipy's tolerances (our losses are
            # means; their gradients are tiny in absolute terms and would end the run early).
            options={"maxiter": iterations, "maxcor": history_size, "ftol": 0.0, "gtol": 0.0, "maxfun": 20 * iterations + 20},
        )
    except _NonFinite:
        return "non-finite loss"
    if state["steps"] < iterations:
        # status 0: the projected gradient is exactly 0 (solved); else scipy's evaluation limit or a
        # line search that found no decrease (e.g. at the floating-point floor of the loss)
        log.info("L-BFGS-B stopped after %d of %d iterations: %s", state["steps"], iterations, result.message)
        return "converged" if result.status == 0 else f"stopped: {result.message}"
    return "done"
