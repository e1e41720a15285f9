"""The training progress bar: step N of M over the whole run, losses, images/s and time left.

Lightning's own bar counts the batches of an epoch. PhotoDataModule streams photos, and a run is
measured in steps (--steps = --trainer.max_steps), so that bar said "Epoch 37: 1/1" and nothing
about how far the run was or how long it had left. This one follows trainer.global_step up to
trainer.max_steps (resumed runs start where they stopped) on stderr, rank 0 only.
"""

from __future__ import annotations

import math
import sys

import pytorch_lightning as pl
from pytorch_lightning.callbacks.progress import ProgressBar
from tqdm import tqdm

# What the LightningModule logs with prog_bar=True, in this order; anything else follows.
SHOWN_FIRST = ("loss", "content", "style", "img/s")


def _total_steps(trainer: pl.Trainer) -> int | None:
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return int(trainer.max_steps)
    estimated = trainer.estimated_stepping_batches  # from max_epochs; inf for an endless run
    return int(estimated) if math.isfinite(estimated) else None


def format_metrics(metrics: dict) -> str:
    """'loss 3.11e+06, content 1.48e+05, style 5.92e+05, img/s 14.4' (3 significant digits)."""
    names = [k for k in SHOWN_FIRST if k in metrics] + sorted(k for k in metrics if k not in SHOWN_FIRST and k != "v_num")
    parts = []
    for name in names:
        value = metrics[name]
        parts.append(f"{name} {value:.3g}" if isinstance(value, (int, float)) else f"{name} {value}")
    return ", ".join(parts)


class StepProgressBar(ProgressBar):
    def __init__(self, file=None) -> None:
        super().__init__()
        self._enabled = True
        self._file = file
        self.bar: tqdm | None = None

    def disable(self) -> None:  # Lightning calls it on ranks other than 0
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._enabled:
            return
        self.bar = tqdm(
            total=_total_steps(trainer),
            initial=trainer.global_step,
            desc="train",
            unit="step",
            file=self._file or sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix_str(format_metrics(self.get_metrics(trainer, pl_module)), refresh=False)
        self.bar.update(trainer.global_step - self.bar.n)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a validation pass can take as long as many steps: say why the bar stands still
        if self.bar is not None:
            self.bar.set_postfix_str("validating", refresh=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(format_metrics(self.get_metrics(trainer, pl_module)), refresh=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def print(self, *args, **kwargs) -> None:
        if self.bar is not None:
            self.bar.write(" ".join(map(str, args)), file=self._file or sys.stderr)
        else:
            print(*args, **kwargs)
