"""`stylecast train`: LightningCLI over StyleTransferModule + PhotoDataModule.

Everything LightningCLI offers works: --config recipe.yaml (several allowed, later ones win),
--print_config, --trainer.*, --model.*, --data.*, --checkpoint.* (the ModelCheckpoint). On top:

  --style PAINTING     = --model.style_image PAINTING (--style-image: compare's name for it);
                         repeated, or a folder of paintings: one network for several styles
  --base MODEL         = --model.base MODEL: add the --style painting(s) to a trained network
                         (--model.base_train all: the shared weights too, the base's styles replayed)
  --data FOLDER        = --data.root FOLDER (a folder; `--data file.yaml` still loads a data config)
  --out RUN_DIR        = --trainer.default_root_dir RUN_DIR (default runs/<style name>)
  --steps N            = --trainer.max_steps N
  --recipe NAME        = --config <installed training/configs/NAME.yaml>; --config NAME works too
  -q, --quiet          = --trainer.enable_progress_bar false
  --ckpt_path last     resume from RUN_DIR/checkpoints/last.ckpt (step count, optimizer, data stream)
  --force              start over in a run folder that holds an earlier run's checkpoints

A run folder holds checkpoints/ (last.ckpt + step-NNNNNN.ckpt every --checkpoint.every_n_train_steps,
written atomically), images/ (a validation grid every --trainer.val_check_interval steps),
logs/version_N/ (TensorBoard if installed, else CSV, and config.yaml: what each launch ran).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from jsonargparse import DefaultHelpFormatter
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO

from stylecast.errors import UserError
from stylecast.io import atomic_path, make_folder, remove_stale_temp_files, write_error
from stylecast.training.checkpoints import load_checkpoint_file
from stylecast.training.data import PhotoDataModule
from stylecast.training.module import StyleTransferModule
from stylecast.training.progress import StepProgressBar
from stylecast.training.styles import expand_style_images
from stylecast.training.warm_start import load_warm_start

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# The Trainer's defaults for this task (each is a --trainer.* option and a key of the recipes).
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 40_000,
    "max_epochs": -1,
    "precision": "bf16-mixed",
    "val_check_interval": 500,
    "check_val_every_n_epoch": None,
    "log_every_n_steps": 10,
    "num_sanity_val_steps": 1,
}

CHECKPOINT_DEFAULTS: dict[str, Any] = {
    "checkpoint.every_n_train_steps": 1000,
    "checkpoint.save_last": True,
    "checkpoint.save_top_k": -1,
    "checkpoint.filename": "step-{step:06d}",
    "checkpoint.auto_insert_metric_name": False,
    # A resumed run that redoes a step (killed after step-N.ckpt but before last.ckpt landed)
    # overwrites step-N.ckpt instead of writing step-N-v1.ckpt beside it (issue 15.8).
    "checkpoint.enable_version_counter": False,
}


def recipes() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _recipe_path(name: str, option: str = "--recipe") -> str:
    """A config file as given, else the installed recipe of that name; UserError for neither
    (jsonargparse would print its whole usage and a file path)."""
    if Path(name).exists() or name.lstrip().startswith("{"):  # a file, or inline YAML/JSON
        return name
    candidate = CONFIG_DIR / f"{name.removesuffix('.yaml')}.yaml"
    if candidate.exists():
        return str(candidate)
    if option == "--recipe" or not (name.lower().endswith(CONFIG_SUFFIXES) or "/" in name or os.sep in name):
        raise UserError(f"unknown recipe {name!r}; recipes: {', '.join(recipes())}")
    raise UserError(f"{name}: no such config file ({option}); recipes: {', '.join(recipes())}")


SHORTHANDS = {
    "--style": "--model.style_image",
    "--style-image": "--model.style_image",  # the painting's name in `stylecast compare`
    "--base": "--model.base",
    "--out": "--trainer.default_root_dir",
    "--steps": "--trainer.max_steps",
}
FLAGS = {"-q": ["--trainer.enable_progress_bar", "false"], "--quiet": ["--trainer.enable_progress_bar", "false"]}
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def expand_shorthands(argv: list[str]) -> list[str]:
    """Rewrite the short options into LightningCLI's dotted ones (see the module docstring)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg in FLAGS:
            out += FLAGS[arg]
        elif name in SHORTHANDS or name in ("--data", "--recipe", "--config", "-c"):
            if not eq:
                if i + 1 == len(argv):
                    out.append(arg)  # missing value: let the parser say so
                    break
                value, i = argv[i + 1], i + 1
            if name in SHORTHANDS:
                out += [SHORTHANDS[name], value]
            elif name == "--data":
                # `--data cfg.yaml` / `--data '{...}'` stay LightningCLI's group config; anything else is the folder.
                is_config = value.lower().endswith(CONFIG_SUFFIXES) or value.lstrip().startswith("{")
                out += ["--data", value] if is_config else ["--data.root", value]
            else:
                out += ["--config", _recipe_path(value, "--recipe" if name == "--recipe" else "--config")]
        else:
            out.append(arg)
        i += 1
    return _join_style_images(out)


def _join_style_images(args: list[str]) -> list[str]:
    """Several --model.style_image (--style a.jpg --style b.jpg) -> one, with a JSON list:
    jsonargparse would keep only the last."""
    at = [i for i in range(len(args) - 1) if args[i] == "--model.style_image"]
    if len(at) < 2:
        return args
    values = [args[i + 1] for i in at]
    dropped = {j for i in at[1:] for j in (i, i + 1)}
    out = [a for j, a in enumerate(args) if j not in dropped]
    out[at[0] + 1] = json.dumps(values)
    return out


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temp file in the checkpoint's own folder, then rename over the target;
    loads (resume) with the restricted unpickler.

    Lightning's default save goes through fsspec, whose local "transaction" writes the temp file
    in /tmp and *copies* it across file systems (node-local /tmp -> shared cluster storage), which
    is not atomic at the destination. Remote URLs (s3://, ...) keep Lightning's path.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        make_folder(path.parent)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location: Optional[Any] = None, weights_only: Optional[bool] = None) -> dict:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return load_checkpoint_file(path, map_location=map_location or (lambda storage, loc: storage))


class FinalOutputs(Callback):
    """At the end of training: last.ckpt holds the final step and there is a grid of it.

    ModelCheckpoint only saves on its step interval, so a run whose max_steps is not a multiple of
    it would otherwise end with a last.ckpt from before its final steps.
    """

    def on_train_end(self, trainer: Trainer, pl_module: StyleTransferModule) -> None:
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, ModelCheckpoint) and ckpt.save_last and ckpt.dirpath and trainer.global_step > 0:
            path = Path(ckpt.dirpath) / f"{ckpt.CHECKPOINT_NAME_LAST}{ckpt.FILE_EXTENSION}"
            # every rank calls it: it synchronizes; rank 0 writes. The full checkpoint (optimizer,
            # loops, data position) so that --ckpt_path last resumes; saying so silences Lightning's notice.
            trainer.save_checkpoint(path, weights_only=False)
            ckpt.last_model_path = str(path)
        grid = Path(trainer.default_root_dir) / "images" / f"step_{trainer.global_step:06d}.png"
        datamodule = trainer.datamodule
        if trainer.global_rank == 0 and datamodule is not None and getattr(datamodule, "val_paths", None) and not grid.exists():
            pl_module.on_validation_epoch_end()


class StaleTempFiles(Callback):
    """A checkpoint save killed mid-write (kill -9, OOM killer, node lost) leaves its temp file;
    the next run in the folder removes those of processes that no longer run (issue 15.8)."""

    def on_fit_start(self, trainer: Trainer, pl_module: StyleTransferModule) -> None:
        ckpt = trainer.checkpoint_callback
        if trainer.is_global_zero and isinstance(ckpt, ModelCheckpoint) and ckpt.dirpath:
            for path in remove_stale_temp_files(ckpt.dirpath):
                log.info("removed %s, left by an interrupted checkpoint write", path)


def check_earlier_run(checkpoints: Path, root: Path, *, resume: bool, force: bool) -> None:
    """The overwrite rule of every stylecast command, for a run folder: a new (not resumed) run
    does not write over an earlier run's checkpoints unless --force, which removes them and the
    earlier validation grids first (step checkpoints are overwritten, not versioned, so the two
    runs' files would otherwise mix). Logs stay: each launch has its own logs/version_N."""
    earlier = sorted(checkpoints.glob("*.ckpt")) if checkpoints.is_dir() and not resume else []
    if not earlier:
        return
    if not force:
        raise UserError(
            f"{checkpoints}: holds {len(earlier)} checkpoint(s) of an earlier run; resume it with --ckpt_path last, or start over with --force (removes them)"
        )
    for path in [*earlier, *sorted((root / "images").glob("step_*.png"))]:
        path.unlink(missing_ok=True)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description's line breaks kept."""


class StyleTrainCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=Optional[str],
            default=None,
            help="resume training: a checkpoint file, or 'last' for the run folder's checkpoints/last.ckpt",
        )
        parser.add_argument("--force", action="store_true", help="start over in a run folder that holds an earlier run's checkpoints (removes them)")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        # The exporter reads image_size from the checkpoint's hyper_parameters.
        parser.link_arguments("data.image_size", "model.image_size")

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        if not cfg.model.style_image:
            self.parser.error("no style image: pass --style PAINTING.jpg (or --model.style_image)")
        paintings = expand_style_images(cfg.model.style_image)  # UserError naming a missing one
        if cfg.model.base:
            self._take_base_architecture(cfg)
        if not cfg.trainer.default_root_dir:
            cfg.trainer.default_root_dir = str(Path("runs") / default_run_name(cfg.model.style_image, paintings, cfg.model.base))
        root = Path(cfg.trainer.default_root_dir)
        if not cfg.checkpoint.dirpath:
            cfg.checkpoint.dirpath = str(root / "checkpoints")
        check_earlier_run(Path(cfg.checkpoint.dirpath), root, resume=bool(cfg.ckpt_path), force=bool(cfg.force))
        accelerator = str(cfg.trainer.accelerator)
        if torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda"):
            if cfg.trainer.precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
                log.warning("this GPU has no bf16: training with --trainer.precision 16-mixed instead")
                cfg.trainer.precision = "16-mixed"
        elif cfg.trainer.max_steps >= 20_000 and cfg.data.image_size >= 256:
            log.warning(
                "training the full %d-step recipe at %d² on the CPU takes days; --recipe cpu-quick gives a recognizable style in about half an hour",
                cfg.trainer.max_steps,
                cfg.data.image_size,
            )

    @staticmethod
    def _take_base_architecture(cfg) -> None:
        """--base fixes the network's width and depth: the base's, whatever the recipe says."""
        base = load_warm_start(cfg.model.base, "--base")
        if (float(cfg.model.width), int(cfg.model.residual_blocks)) != (base.width, base.residual_blocks):
            log.info("--base: width %g, %d residual blocks, as %s", base.width, base.residual_blocks, base.source)
            cfg.model.width, cfg.model.residual_blocks = base.width, base.residual_blocks
        cfg.model.variant = base.variant  # the base's layout too

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Trainer:
        root = Path(config["default_root_dir"])
        if config.get("logger") in (None, True):
            tensorboard = importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
            config["logger"] = (TensorBoardLogger if tensorboard else CSVLogger)(save_dir=str(root), name="logs")
        callbacks = [*callbacks, StaleTempFiles(), FinalOutputs()]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(StepProgressBar())
        trainer = super()._instantiate_trainer(config, callbacks)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def default_run_name(spec, paintings: list[Path], base: str) -> str:
    """runs/<painting> for one; runs/<folder> for a folder; runs/<first>+<N-1> for a list; with
    --base, runs/<base>+<new painting>."""
    if base:
        return f"{Path(base).stem}+{paintings[0].stem}" if len(paintings) == 1 else f"{Path(base).stem}+{len(paintings)}"
    if isinstance(spec, str) and Path(spec).is_dir():
        return Path(spec).resolve().name
    return paintings[0].stem if len(paintings) == 1 else f"{paintings[0].stem}+{len(paintings) - 1}"


def build_cli(argv: list[str]) -> StyleTrainCLI:
    """Parse `argv` and instantiate model, data and trainer (without training)."""
    return StyleTrainCLI(
        StyleTransferModule,
        PhotoDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": "stylecast train",
            "formatter_class": HelpFormatter,
            "description": __doc__ + "\nRecipes: " + ", ".join(recipes()),
        },
        args=expand_shorthands(argv),
        run=False,
        auto_configure_optimizers=False,
        load_from_checkpoint_support=False,
    )


class DropMessages(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


# Lightning's notices that tell a user of `stylecast train` nothing they can act on:
QUIET_WARNINGS = (
    # `stylecast train ...` passes its own argv; Lightning would warn that sys.argv differs
    r"LightningCLI's args parameter is intended",
    # the frozen VGG is in eval mode on purpose; the pytree notice is Lightning's, not ours
    r"Found \d+ module\(s\) in eval mode",
    r".*isinstance\(treespec, LeafSpec\)",
    # the summary's size estimate is for the fp32 weights we do store (bf16 is autocast only)
    r"Precision .* is not supported by the model summary",
    # a short epoch of the photo stream; we log per step, not per epoch
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)
QUIET_LOGS = {
    "pytorch_lightning.utilities.rank_zero": (
        "\N{ELECTRIC LIGHT BULB} Tip:",  # advertisements for litlogger/litmodels
        "`Trainer.fit` stopped: `max_steps=",  # the bar shows it; main() prints what was trained
    ),
}


def quiet_lightning() -> None:
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name, prefixes in QUIET_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(*prefixes))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_lightning()
    try:
        cli = build_cli(argv)
    except SystemExit as exc:  # --help, --print_config, or a parse error (already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    trainer = cli.trainer
    try:
        # weights_only: resuming reads the checkpoint with the restricted unpickler (issue 15.2;
        # AtomicCheckpointIO.load_checkpoint does so whatever Lightning passes).
        trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path, weights_only=True)
    except OSError as exc:
        # Lightning's own writes (logs, config.yaml) and the data's reads: one line, exit 2.
        # Checkpoint writes already fail as a UserError naming the file (stylecast.io).
        raise write_error(exc.filename or trainer.default_root_dir, exc, "I/O error during training") from None
    if trainer.global_rank == 0 and not trainer.interrupted:
        ckpt = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else None
        print(f"trained {trainer.global_step} steps; checkpoint: {ckpt or '(none)'}; images: {Path(trainer.default_root_dir) / 'images'}", file=sys.stderr)
    return 130 if trainer.interrupted else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
