"""The Lightning trainer: data module, LightningModule, CLI, checkpoints, resume, DDP on gloo.

Everything runs on tiny generated images (32-48 px) and a quarter-width net, so a fit is a few
seconds; the real VGG19 is used throughout.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml

from stylecast.errors import UserError
from stylecast.images import save_image
from stylecast.training.cli import main as train_main, recipes
from stylecast.training.data import PhotoDataModule, PhotoStream, StreamSampler
from stylecast.training.module import NonFiniteLossError, StyleTransferModule, image_grid, transformer_state_dict
from stylecast.training.transformer import TransformerNet

ROOT = Path(__file__).resolve().parent.parent
TINY_NET = ["--model.width", "0.25", "--model.residual_blocks", "1"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from conftest import smooth_image

    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    for i in range(10):
        ext = (".jpg", ".png", ".webp")[i % 3]
        where = folder / "sub" if i % 2 else folder
        save_image(smooth_image(40 + 4 * (i % 3), 48, seed=i), where / f"photo{i}{ext}")
    (folder / "notes.txt").write_text("not an image suffix: ignored")
    return folder


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> Path:
    from conftest import stripes_image

    path = tmp_path_factory.mktemp("style") / "stripes.png"
    save_image(stripes_image(64, 64), path)
    return path


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors gain nothing from threads, and on a busy shared CPU OpenMP's spin-waiting
    # makes two threads up to 10x slower than one.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_module(style: Path, **kw) -> StyleTransferModule:
    args = dict(style_image=str(style), style_size=64, image_size=32, width=0.25, residual_blocks=1, tv_weight=10.0)
    args.update(kw)
    return StyleTransferModule(**args)


def tiny_data(photos: Path, **kw) -> PhotoDataModule:
    args = dict(root=str(photos), image_size=32, batch_size=2, val_images=2, num_workers=0)
    args.update(kw)
    return PhotoDataModule(**args)


def tiny_trainer(tmp_path: Path, **kw) -> pl.Trainer:
    args = dict(
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        default_root_dir=str(tmp_path),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        max_epochs=-1,
    )
    args.update(kw)
    return pl.Trainer(**args)


def cli_args(photos: Path, style: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--style", str(style), "--data", str(photos), "--out", str(out),
        "--data.image_size", "32", "--data.batch_size", "2", "--data.val_images", "2", "--data.num_workers", "0",
        "--model.style_size", "64", *TINY_NET, "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", *extra,
    ]  # fmt: skip


# ---- data -------------------------------------------------------------------------------------


def test_data_finds_images_recursively_and_holds_out_a_fixed_validation_set(photos):
    dm = tiny_data(photos, val_images=3)
    dm.setup("fit")
    assert len(dm.train_paths) == 7 and len(dm.val_paths) == 3
    assert not set(dm.train_paths) & set(dm.val_paths)
    assert any("sub" in p.parts for p in dm.train_paths + dm.val_paths)
    again = tiny_data(photos, val_images=3)
    again.setup("fit")
    assert again.val_paths == dm.val_paths  # fixed by the seed
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (2, 3, 32, 32)


def test_corrupt_files_are_skipped_with_one_warning_and_counted(photos, tmp_path, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in sorted(photos.rglob("photo*"))[:6]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "garbage.jpg").write_bytes(b"this is not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    big = folder / "big.jpg"
    save_image(np.random.default_rng(0).uniform(0, 1, (160, 160, 3)).astype(np.float32), big)
    data = big.read_bytes()
    big.unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])  # the header parses, the pixels do not
    dm = tiny_data(folder, val_images=1)
    with caplog.at_level(logging.WARNING, logger="stylecast.training.data"):
        dm.setup("fit")
    assert sorted(p.name for p in dm.skipped) == ["empty.png", "garbage.jpg"]
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "garbage.jpg" in warnings[0] and "empty.png" in warnings[0]
    # The truncated file gets past the header check; decoding it later must not crash the run.
    stream = PhotoStream(dm.train_paths + dm.val_paths, 32, (0.5, 1.0))
    bad = [i for i, p in enumerate(stream.paths) if p.name == "truncated.jpg"]
    assert len(bad) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stylecast.training.data"):
        first = stream[(bad[0], 1)]
        second = stream[(bad[0], 2)]
        fine = stream[((bad[0] + 1) % len(stream), 3)]
    assert first["image"].shape == (3, 32, 32) and torch.isfinite(first["image"]).all()
    assert (int(first["skipped"]), int(second["skipped"]), int(fine["skipped"])) == (1, 1, 0)
    decode_warnings = [r for r in caplog.records if "truncated.jpg" in r.getMessage()]
    assert len(decode_warnings) == 1  # warned once, counted every time


def test_empty_or_too_small_folder_is_a_clear_error_before_training(tmp_path, photos):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"found 0 readable image\(s\).*at least 6"):
        tiny_data(empty, val_images=4).setup("fit")
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(photos.glob("*.jpg"))[:2]:
        (few / p.name).write_bytes(p.read_bytes())
    with pytest.raises(UserError, match="found 2 readable"):
        tiny_data(few).setup("fit")
    with pytest.raises(UserError, match="no such folder"):
        tiny_data(tmp_path / "missing").setup("fit")


def test_cli_reports_empty_folder_as_one_line_exit_2(tmp_path, style, capsys):
    from stylecast.cli import main as stylecast_main

    (tmp_path / "empty").mkdir()
    code = stylecast_main(["train", *cli_args(tmp_path / "empty", style, tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "stylecast train: error:" in err and "found 0 readable image(s)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_stream_is_deterministic_disjoint_between_ranks_and_resumable():
    dataset = PhotoStream([Path(f"{i}.jpg") for i in range(10)], 8, (0.5, 1.0))

    def take(sampler, batches):
        it, out = iter(sampler), []
        for _ in range(batches * sampler.batch_size):
            out.append(next(it))
        return out

    straight = take(StreamSampler(dataset, 2, seed=3), 5)  # one epoch: 5 batches of 2
    assert sorted(i for i, _ in straight) == list(range(10))  # each photo once per pass
    resumed = StreamSampler(dataset, 2, seed=3, start_batch=2)
    assert list(resumed) == straight[4:]  # the rest of the epoch, then the next epoch continues
    assert take(resumed, 5) == take(StreamSampler(dataset, 2, seed=3, start_batch=5), 5)
    r0 = take(StreamSampler(dataset, 2, num_replicas=2, rank=0, seed=3), 2)
    r1 = take(StreamSampler(dataset, 2, num_replicas=2, rank=1, seed=3), 2)
    assert sorted(i for i, _ in r0 + r1) == sorted(i for i, _ in straight[:8])
    assert not {i for i, _ in r0} & {i for i, _ in r1}
    assert len(StreamSampler(dataset, 2, num_replicas=2)) == 2 * 2  # 10 // (2 x 2) batches per rank


# ---- module -----------------------------------------------------------------------------------


def test_image_grid_places_photos_above_stylized():
    a = torch.zeros(2, 3, 4, 5)
    b = torch.ones(2, 3, 4, 5) * 0.5
    grid = image_grid(a, b, pad=1)
    assert grid.shape == (3, 2 * 4 + 3, 2 * 5 + 3)
    assert grid[:, 1:5, 1:6].eq(0).all() and grid[:, 6:10, 7:12].eq(0.5).all()
    assert grid[:, 0, :].eq(1).all()  # white padding


def test_fast_dev_run_full_loop(photos, style, tmp_path):
    module = tiny_module(style)
    trainer = tiny_trainer(tmp_path, fast_dev_run=2)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer.fit(module, tiny_data(photos))
    assert trainer.state.finished and trainer.global_step == 2
    assert any(not torch.equal(before[k], v) for k, v in module.net.state_dict().items())
    assert (tmp_path / "images" / "step_000002.png").exists()  # the validation grid


def test_a_few_dozen_steps_reduce_the_loss(photos, style, tmp_path):
    torch.manual_seed(0)
    module = tiny_module(style, lr=5e-3)
    losses: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = tiny_trainer(tmp_path, max_steps=40, limit_val_batches=0, callbacks=[Record()])
    trainer.fit(module, tiny_data(photos, val_images=0))
    assert len(losses) == 40 and all(np.isfinite(losses))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < first / 3, (first, last)


def test_nan_loss_stops_before_a_poisoned_checkpoint(photos, style, tmp_path):
    module = tiny_module(style)

    class Poison(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 3:
                with torch.no_grad():
                    next(pl_module.net.parameters()).fill_(float("nan"))

    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_last=True, save_top_k=-1)
    trainer = tiny_trainer(tmp_path, max_steps=10, enable_checkpointing=True, callbacks=[Poison(), ckpt], limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 3"):
        trainer.fit(module, tiny_data(photos, val_images=0))
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert "epoch=0-step=3.ckpt" in saved and not any("step=4" in n for n in saved)
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


# ---- CLI, checkpoints, resume -----------------------------------------------------------------


def test_checkpoint_holds_only_the_transformer_and_the_exporter_hparams(photos, style, tmp_path):
    out = tmp_path / "run"
    code = train_main(cli_args(photos, style, out, "--steps", "2", "--trainer.val_check_interval", "2", "--model.recipe", "tiny"))
    assert code == 0
    ckpt_path = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    keys = list(ckpt["state_dict"])
    assert keys and all(k.startswith("net.") for k in keys)
    assert not any("vgg" in k or "style_target" in k or "loss." in k for k in keys)
    net = TransformerNet(width=0.25, residual_blocks=1)
    net.load_state_dict(transformer_state_dict(ckpt))  # strict: exactly the transformer's tensors
    net_bytes = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    # weights + Adam's two moments + Lightning's bookkeeping; the VGG alone would be 80 MB
    assert ckpt_path.stat().st_size < 3 * net_bytes + 200_000
    hp = ckpt["hyper_parameters"]
    required = {"width", "residual_blocks", "style_image", "style_size", "image_size", "content_weight", "style_weight",
                "tv_weight", "content_layers", "style_layers", "vgg_weights", "pooling", "recipe"}  # fmt: skip
    assert required <= set(hp)
    assert (hp["width"], hp["residual_blocks"], hp["image_size"], hp["recipe"]) == (0.25, 1, 32, "tiny")
    assert hp["style_image"] == str(style)
    assert (out / "images" / "step_000002.png").exists()
    assert yaml.safe_load((out / "logs" / "version_0" / "config.yaml").read_text())["model"]["recipe"] == "tiny"


def test_resume_continues_the_step_count_and_matches_a_straight_run(photos, style, tmp_path):
    # 8 training photos, batch 2: 4 batches per epoch; stopping at 3 stops mid-epoch.
    common = ["--checkpoint.every_n_train_steps", "3", "--trainer.val_check_interval", "100", "--trainer.num_sanity_val_steps", "0",
              "--trainer.log_every_n_steps", "1"]  # fmt: skip
    assert train_main(cli_args(photos, style, tmp_path / "straight", "--steps", "7", *common)) == 0
    assert train_main(cli_args(photos, style, tmp_path / "resumed", "--steps", "3", *common)) == 0
    assert train_main(cli_args(photos, style, tmp_path / "resumed", "--steps", "7", "--ckpt_path", "last", *common)) == 0
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert straight["global_step"] == resumed["global_step"] == 7
    assert (tmp_path / "resumed" / "checkpoints" / "step-000003.ckpt").exists()
    assert (tmp_path / "resumed" / "checkpoints" / "step-000006.ckpt").exists()
    for key, value in straight["state_dict"].items():
        # Same data stream, same optimizer state: equal up to float rounding of re-created kernels.
        torch.testing.assert_close(resumed["state_dict"][key], value, atol=1e-6, rtol=1e-5, msg=key)
    # the second launch logged steps 3..6 only: the count continued instead of restarting at 0
    logs = sorted((tmp_path / "resumed" / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 2
    steps = {int(r["step"]) for r in csv.DictReader(logs[1].open()) if r.get("train/total")}
    assert steps and min(steps) >= 3 and max(steps) <= 6


def test_recipes_parse_and_print_config(capsys):
    assert {"johnson2016", "cpu-quick", "realtime-slim"} <= set(recipes())
    configs = {}
    for name in ("johnson2016", "cpu-quick", "realtime-slim", "realtime-tiny-fullres"):
        assert train_main(["--recipe", name, "--style", "x.jpg", "--print_config"]) == 0
        configs[name] = yaml.safe_load(capsys.readouterr().out)
    j = configs["johnson2016"]
    assert (j["data"]["image_size"], j["data"]["batch_size"], j["trainer"]["max_steps"], j["model"]["lr"]) == (256, 4, 40000, 1e-3)
    # the layers by name (losses/objectives.py); explicit --model.*_layers stay empty unless set
    assert (j["model"]["objective"], j["model"]["style_layers"], j["model"]["content_layers"]) == ("johnson2016", "", "")
    slim = configs["realtime-slim"]
    assert (slim["model"]["width"], slim["model"]["residual_blocks"]) == (0.5, 3)
    full = configs["realtime-tiny-fullres"]["model"]  # grown on a trained tiny net (--model.init_from)
    assert (full["variant"], full["stability_weight"], full["stability_noise_weight"], full["lr"]) == ("tiny_fullres", 3e7, 1e9, 5e-4)
    quick = configs["cpu-quick"]
    assert quick["trainer"]["precision"] == "bf16-mixed" and quick["data"]["image_size"] < 256
    for name, cfg in configs.items():
        assert cfg["model"]["recipe"] == name and cfg["model"]["style_image"] == "x.jpg"
    # command-line options override the recipe
    assert train_main(["--recipe", "cpu-quick", "--style", "x.jpg", "--model.style_weight", "7", "--print_config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["style_weight"] == 7
    assert train_main(["--help"]) == 0
    assert "--style PAINTING" in capsys.readouterr().out


def test_cli_errors_are_user_errors(tmp_path, photos, capsys):
    from stylecast.cli import main as stylecast_main

    code = stylecast_main(["train", *cli_args(photos, tmp_path / "nope.jpg", tmp_path / "run", "--steps", "1")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.jpg: no such file" in err and "Traceback" not in err
    assert train_main(["--data", str(photos)]) == 2  # no style image: a parse error
    assert "no style image" in capsys.readouterr().err


def test_unknown_recipe_is_one_line_listing_the_recipes(capsys):
    from stylecast.cli import main as stylecast_main

    assert stylecast_main(["train", "--recipe", "cpu-quik", "--style", "x.jpg"]) == 2
    assert capsys.readouterr().err == (
        "stylecast train: error: unknown recipe 'cpu-quik'; recipes: cpu-full, cpu-quick, johnson2016, realtime-slim, realtime-tiny, realtime-tiny-fullres\n"
    )
    assert stylecast_main(["train", "--config", "nope/run.yaml", "--style", "x.jpg"]) == 2
    assert capsys.readouterr().err == (
        "stylecast train: error: nope/run.yaml: no such config file (--config); recipes: cpu-full, cpu-quick, johnson2016, realtime-slim, realtime-tiny, realtime-tiny-fullres\n"
    )


def test_progress_is_steps_of_the_run_without_lightnings_notices(photos, style, tmp_path):
    # As a user sees it (a subprocess: Lightning's log handler and warnings as they are). The run
    # triggers each notice: 4 batches per epoch < log_every_n_steps 10, a bf16 model summary, no
    # LitLogger, and the final save of last.ckpt.
    args = cli_args(
        photos,
        style,
        tmp_path / "run",
        "--steps",
        "3",
        "--trainer.val_check_interval",
        "3",
        "--trainer.enable_progress_bar",
        "true",
        "--trainer.enable_model_summary",
        "true",
    )
    # TQDM_MININTERVAL=0: tqdm redraws at most every 0.1 s, and on a fast machine 3 tiny steps take less
    # (CI saw only the final 3/3); with no throttle every step is drawn, so the count-up is checkable.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "TQDM_MININTERVAL": "0"}
    proc = subprocess.run([sys.executable, "-m", "stylecast.cli", "train", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = proc.stderr.replace("\r", "\n").splitlines()
    bars = [line for line in final if line.startswith("train: ")]
    assert re.fullmatch(
        r"train: 100%\|█+\| 3/3 \[\d\d:\d\d<00:00, +[\d.]+(step/s|s/step), loss [\d.e+]+, content [\d.e+]+, style [\d.e+]+, img/s [\d.]+\] *", bars[-1]
    ), bars[-1]
    assert any(" 1/3 [" in b or " 2/3 [" in b for b in bars)  # it counted up, step by step
    assert "trained 3 steps" in proc.stderr
    for notice in ("Tip:", "model summary", "logging interval", "weights_only", "Epoch ", "Trainer.fit` stopped", "Warning"):
        assert notice not in proc.stderr, notice


# ---- DDP --------------------------------------------------------------------------------------

DDP_DRIVER = textwrap.dedent(
    """
    import json, os, sys
    import pytorch_lightning as pl, torch
    from pytorch_lightning.strategies import DDPStrategy
    from stylecast.training.data import PhotoDataModule
    from stylecast.training.module import StyleTransferModule

    photos, style, out = sys.argv[1:4]
    style = json.loads(style) if style.startswith("[") else style  # several paintings: a multi-style net
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.manual_seed(100 + rank)  # different initial weights per process: DDP must broadcast rank 0's
    module = StyleTransferModule(style_image=style, style_size=64, image_size=32, width=0.25, residual_blocks=1)
    initial = {k: v.clone() for k, v in module.net.state_dict().items()}  # rank 0's are broadcast to all
    seen = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(float(batch["image"].sum()))

    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy=DDPStrategy(process_group_backend="gloo"), max_steps=3,
        max_epochs=-1, precision="bf16-mixed", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[Record()],
        default_root_dir=out,
    )
    trainer.fit(module, PhotoDataModule(photos, image_size=32, batch_size=2, val_images=0, num_workers=0))
    torch.save({"rank": trainer.global_rank, "world": trainer.world_size, "step": trainer.global_step,
                "seen": seen, "net": module.net.state_dict(), "initial": initial}, os.path.join(out, f"rank{trainer.global_rank}.pt"))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_on_gloo_agree_on_weights(photos, style, tmp_path):
    driver = tmp_path / "ddp_driver.py"
    driver.write_text(DDP_DRIVER)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("LOCAL_RANK", None)
    result = subprocess.run(
        [sys.executable, str(driver), str(photos), str(style), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"], r0["step"], r1["step"]) == (0, 1, 2, 3, 3)
    assert r0["seen"] != r1["seen"]  # the two processes trained on different photos ...
    for key, value in r0["net"].items():  # ... and still hold the same weights (gradients all-reduced)
        torch.testing.assert_close(r1["net"][key], value, atol=0, rtol=0, msg=key)
    # ... which 3 steps moved away from the weights rank 0 started from (and broadcast)
    changed = [k for k, v in r0["net"].items() if v.is_floating_point() and not torch.equal(r0["initial"][k], v)]
    assert len(changed) >= len([k for k in r0["net"] if k.endswith("weight")]), changed


def test_resume_after_a_kill_during_a_checkpoint_write(photos, style, tmp_path):
    """Issue 15.8: kill -9 while last.ckpt of step 4 was being written. What is left: last.ckpt
    of step 2, a 0-byte temp file, and step-000004.ckpt (saved just before last.ckpt). Resuming
    redoes steps 3-4: the stale temp file is removed and step 4's checkpoint is overwritten,
    not versioned beside the first (step-000004-v1.ckpt)."""
    common = ["--checkpoint.every_n_train_steps", "2", "--trainer.val_check_interval", "100", "--trainer.num_sanity_val_steps", "0"]
    run = tmp_path / "run"
    assert train_main(cli_args(photos, style, run, "--steps", "4", *common)) == 0
    ckpts = run / "checkpoints"
    (ckpts / "last.ckpt").write_bytes((ckpts / "step-000002.ckpt").read_bytes())
    proc = subprocess.Popen(["true"])
    proc.wait()
    stale = ckpts / f".last.ckpt.{proc.pid}.tmp"
    stale.write_bytes(b"")
    first = (ckpts / "step-000004.ckpt").stat().st_mtime_ns
    assert train_main(cli_args(photos, style, run, "--steps", "4", "--ckpt_path", "last", *common)) == 0
    names = sorted(p.name for p in ckpts.iterdir())
    assert names == ["last.ckpt", "step-000002.ckpt", "step-000004.ckpt"], names
    assert (ckpts / "step-000004.ckpt").stat().st_mtime_ns > first
    assert torch.load(ckpts / "step-000004.ckpt", weights_only=True)["global_step"] == 4


def test_a_new_run_refuses_an_earlier_runs_checkpoints_unless_forced(photos, style, tmp_path, capsys):
    """The overwrite rule of every command, for a run folder (issue 14): step checkpoints are
    overwritten, not versioned, so a fresh launch must not mix its files with an earlier run's."""
    from stylecast.cli import main as stylecast_main

    run = tmp_path / "run"
    common = ["--steps", "2", "--checkpoint.every_n_train_steps", "1", "--trainer.val_check_interval", "2"]
    assert train_main(cli_args(photos, style, run, *common)) == 0
    (run / "checkpoints" / "step-000099.ckpt").write_bytes(b"from the earlier run")
    capsys.readouterr()
    assert stylecast_main(["train", *cli_args(photos, style, run, *common)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 checkpoint(s) of an earlier run" in err and "--ckpt_path last" in err and "--force" in err
    # --force starts over: the earlier run's checkpoints are gone; -q and --style-image are accepted
    args = cli_args(photos, style, run, *common, "--force", "-q")
    args[args.index("--style")] = "--style-image"
    assert train_main(args) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt", "step-000001.ckpt", "step-000002.ckpt"]


def test_one_objective_table_for_the_trainer_and_the_optimizer(style, capsys):
    # The layers are named once (losses/objectives.py): the trainer's default is johnson2016, the
    # optimizer's gatys; --model.objective gatys gives the trainer exactly the optimizer's layers,
    # recorded in the checkpoint for the exporter; explicit layers still override.
    from stylecast.losses.objectives import OBJECTIVES
    from stylecast.optimization.cli import build_parser
    from stylecast.optimization.gatys import GatysOptions
    from stylecast.training.module import StyleTransferModule

    tiny = dict(style_image=str(style), style_size=64, image_size=32, width=0.25, residual_blocks=1)
    johnson = StyleTransferModule(**tiny)
    assert (johnson.hparams["content_layers"], johnson.hparams["style_layers"]) == ("relu2_2", "relu1_2,relu2_2,relu3_3,relu4_3")
    assert johnson.loss.style_layers == {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0}
    painterly = StyleTransferModule(objective="gatys", **tiny)
    assert painterly.loss.content_layers == {"relu4_2": 1.0}
    assert painterly.loss.style_layers == {"relu1_1": 200.0, "relu2_1": 10.0, "relu3_1": 20.0, "relu4_1": 1.0, "relu5_1": 1000.0}
    g = GatysOptions()
    assert (g.content_layers, g.style_layers) == (painterly.hparams["content_layers"], painterly.hparams["style_layers"])
    args = build_parser().parse_args(["c.jpg", "s.jpg", "-o", "o.png", "--objective", "johnson2016"])
    assert args.objective == "johnson2016" and OBJECTIVES[args.objective].content_layers == "relu2_2"
    mine = StyleTransferModule(objective="gatys", style_layers="relu3_1", **tiny)
    assert mine.loss.style_layers == {"relu3_1": 1.0} and mine.loss.content_layers == {"relu4_2": 1.0}
    with pytest.raises(UserError, match=r"^--model.objective: unknown objective 'gatsy'; objectives: gatys, johnson2016$"):
        StyleTransferModule(objective="gatsy", **tiny)


def test_the_variant_is_a_training_option(style):
    from stylecast.training.module import StyleTransferModule

    tiny = StyleTransferModule(style_image=str(style), style_size=64, image_size=32, width=0.5, residual_blocks=3, variant="tiny")
    assert tiny.net.variant == "tiny" and sum(p.numel() for p in tiny.net.parameters()) == 58_780
    full = StyleTransferModule(style_image=str(style), style_size=64, image_size=32, width=0.5, residual_blocks=3, variant="tiny_fullres")
    assert sum(p.numel() for p in full.net.parameters()) == 60_055
    with pytest.raises(UserError, match=r"^--model.variant: variant must be one of johnson, tiny, tiny_fullres, got 'small'$"):
        StyleTransferModule(style_image=str(style), variant="small")
