"""Several styles in one network (Dumoulin et al. 2017): training, --base, export.

The transformer's conditional instance norm itself is tested in test_transformer.py; the
torch-free side (stylizer, registry, mix grammar) in test_multistyle_inference.py.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import fake_checkpoint, smooth_image, stripes_image, textured_net
from stylecast.cli import main as stylecast_main
from stylecast.errors import UserError
from stylecast.images import load_image, save_image
from stylecast.inference.contract import META_PREFIX, MULTI_IO_CONTRACT, STYLE_WEIGHTS_NAME, STYLES_KEY
from stylecast.training.cli import main as train_main
from stylecast.training.data import PhotoStream, StreamSampler
from stylecast.training.export import export_checkpoint, export_onnx, load_checkpoint, metadata_from_checkpoint
from stylecast.training.module import StyleTransferModule
from stylecast.training.styles import replay_draw
from stylecast.training.transformer import TransformerNet
from test_training import DDP_DRIVER, ROOT, cli_args, free_port, one_thread, photos, style  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def paintings(tmp_path_factory) -> Path:
    """A folder of two tiny 'paintings': diagonal stripes and a blobby photo-like image."""
    folder = tmp_path_factory.mktemp("paintings")
    save_image(stripes_image(64, 64), folder / "stripes.png")
    save_image(smooth_image(64, 64, seed=42), folder / "blobs.png")
    return folder


@pytest.fixture(scope="module")
def multi_run(photos, paintings, tmp_path_factory) -> Path:  # noqa: F811
    """3 steps of a 2-style run (`--style a --style b`), validation at step 3."""
    out = tmp_path_factory.mktemp("multi") / "run"
    args = cli_args(photos, paintings / "stripes.png", out, "--style", str(paintings / "blobs.png"), "--steps", "3",
                    "--trainer.val_check_interval", "3", "--trainer.log_every_n_steps", "1")  # fmt: skip
    torch.set_num_threads(1)
    assert train_main(args) == 0
    return out


def metrics(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "logs" / "version_0" / "metrics.csv").open()))


# ---- training ---------------------------------------------------------------------------------


def test_multi_style_run_logs_per_style_losses_and_a_photos_by_styles_grid(multi_run):
    rows = metrics(multi_run)
    train_style = {k for r in rows for k, v in r.items() if k.startswith("train/style/") and v}
    assert train_style == {"train/style/stripes", "train/style/blobs"}
    val = next(r for r in rows if r.get("val/total"))
    per_style = [float(val[f"val/total/{name}"]) for name in ("stripes", "blobs")]
    assert float(val["val/total"]) == pytest.approx(np.mean(per_style), rel=1e-5)
    assert per_style[0] != per_style[1]
    # train/style is the batch mean; each per-style value is the mean over that style's samples
    for r in rows:
        if r.get("train/style"):
            assert np.isfinite(float(r["train/style"]))
    # grid: photos on top, one row per style (val_size 32, pad 2): 3·32 + 4·2 high, 2·32 + 3·2 wide
    grid = load_image(multi_run / "images" / "step_000003.png")
    assert grid.shape[:2] == (3 * 32 + 4 * 2, 2 * 32 + 3 * 2)
    net, hparams, step = load_checkpoint(multi_run / "checkpoints" / "last.ckpt")
    assert (net.n_styles, step) == (2, 3)
    assert [s["name"] for s in hparams["styles"]] == ["stripes", "blobs"]
    assert [s["painting"] for s in hparams["styles"]] == ["stripes.png", "blobs.png"]


def test_multi_style_resume_matches_a_straight_run(photos, paintings, tmp_path):  # noqa: F811
    two = ["--style", str(paintings / "blobs.png"), "--checkpoint.every_n_train_steps", "3", "--trainer.val_check_interval", "100",
           "--trainer.num_sanity_val_steps", "0"]  # fmt: skip
    stripes = paintings / "stripes.png"
    assert train_main(cli_args(photos, stripes, tmp_path / "straight", "--steps", "5", *two)) == 0
    assert train_main(cli_args(photos, stripes, tmp_path / "resumed", "--steps", "3", *two)) == 0
    assert train_main(cli_args(photos, stripes, tmp_path / "resumed", "--steps", "5", "--ckpt_path", "last", *two)) == 0
    straight, resumed = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True) for run in ("straight", "resumed"))
    assert straight["global_step"] == resumed["global_step"] == 5
    for key, value in straight["state_dict"].items():  # same photos, same styles drawn, same optimizer state
        torch.testing.assert_close(resumed["state_dict"][key], value, atol=1e-6, rtol=1e-5, msg=key)


def test_multi_style_ddp_two_cpu_processes_agree(photos, paintings, tmp_path):  # noqa: F811
    driver = tmp_path / "ddp_driver.py"
    driver.write_text(DDP_DRIVER)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("LOCAL_RANK", None)
    styles = json.dumps([str(paintings / "stripes.png"), str(paintings / "blobs.png")])
    result = subprocess.run([sys.executable, str(driver), str(photos), styles, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["step"], r1["step"]) == (3, 3) and r0["seen"] != r1["seen"]
    for key, value in r0["net"].items():
        torch.testing.assert_close(r1["net"][key], value, atol=0, rtol=0, msg=key)
    tables = [k for k, v in r0["net"].items() if v.dim() == 2]
    assert tables and all(not torch.equal(r0["initial"][k][row], r0["net"][k][row]) for k in tables for row in (0, 1))


def test_each_sample_draws_its_style_uniformly_and_reproducibly(photos):  # noqa: F811
    from stylecast.training.data import find_images

    stream = PhotoStream(find_images(photos), 8, (0.6, 1.0))
    sampler = StreamSampler(stream, batch_size=4, seed=3)
    keys = list(sampler)  # the first epoch's samples
    draws = [int(stream[sampler.key(p, sampler._perm(p // len(stream)))]["draw"]) for p in range(300)]
    counts = np.bincount(np.array(draws) % 3, minlength=3)
    assert counts.min() > 80, counts  # 300 samples over 3 styles: 100 each expected
    # a sample's draw is a function of its position in the stream, like its crop (resumable, per rank)
    assert [int(stream[k]["draw"]) for k in keys] == draws[: len(keys)]
    a, b = stream[(0, 123)], stream[(0, 123)]
    assert int(a["draw"]) == int(b["draw"]) and torch.equal(a["image"], b["image"])


def test_folder_of_paintings_and_per_style_weights(paintings):
    module = StyleTransferModule(style_image=str(paintings), style_weights=[2.0, 0.5], style_size=64, image_size=32, width=0.25, residual_blocks=1)
    assert module.net.n_styles == 2
    # a folder is sorted: blobs before stripes
    assert [(s["name"], s["style_weight"]) for s in module.hparams["styles"]] == [("blobs", 2.0), ("stripes", 0.5)]
    assert module.style_scales.tolist() == [2.0, 0.5]


@pytest.mark.parametrize("case, message", [
    ("weights_count", r"--model.style_weights has 1 value\(s\) for 2 painting"),
    ("weights_sign", "must all be positive"),
    ("weights_single", "--model.style_weights weighs several styles"),
    ("same_name", "two styles would be named 'stripes'"),
    ("empty_folder", "folder has no paintings"),
    ("missing", "no such file"),
])  # fmt: skip
def test_style_list_errors_are_one_line(paintings, tmp_path, case, message):
    kw = dict(style_size=64, image_size=32, width=0.25, residual_blocks=1)
    other = tmp_path / "other"
    other.mkdir()
    save_image(stripes_image(32, 32), other / "stripes.jpg")
    (tmp_path / "empty").mkdir()
    style_image, weights = {
        "weights_count": (str(paintings), [1.0]),
        "weights_sign": (str(paintings), [1.0, 0.0]),
        "weights_single": (str(paintings / "blobs.png"), [2.0]),
        "same_name": ([str(paintings / "stripes.png"), str(other / "stripes.jpg")], None),
        "empty_folder": (str(tmp_path / "empty"), None),
        "missing": ([str(paintings / "blobs.png"), str(tmp_path / "nope.jpg")], None),
    }[case]
    with pytest.raises(UserError, match=message):
        StyleTransferModule(style_image=style_image, style_weights=weights, **kw)


def test_cli_repeated_style_and_run_folder_name(photos, paintings, tmp_path, capsys):  # noqa: F811
    # --print_config shows what the repeated --style became, without training
    assert train_main(["--style", str(paintings / "stripes.png"), "--style", str(paintings / "blobs.png"), "--print_config"]) == 0
    import yaml

    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["style_image"] == [str(paintings / "stripes.png"), str(paintings / "blobs.png")]
    from stylecast.training.cli import default_run_name
    from stylecast.training.styles import expand_style_images

    listed = [str(paintings / "stripes.png"), str(paintings / "blobs.png")]
    assert default_run_name(listed, expand_style_images(listed), "") == "stripes+1"
    assert default_run_name(str(paintings), expand_style_images(str(paintings)), "") == paintings.name
    assert default_run_name(str(paintings / "blobs.png"), expand_style_images(str(paintings / "blobs.png")), "multi.ckpt") == "multi+blobs"


# ---- --base: a new style on a trained network ---------------------------------------------------


def test_base_trains_only_the_new_styles_gamma_and_beta(multi_run, photos, tmp_path):  # noqa: F811
    base_ckpt = multi_run / "checkpoints" / "last.ckpt"
    new = tmp_path / "waves.png"
    save_image(stripes_image(64, 64, period=3)[::-1].copy(), new)
    out = tmp_path / "added"
    # width/blocks are taken from the base (the CLI's default would be the full net)
    args = ["--base", str(base_ckpt), "--style", str(new), "--data", str(photos), "--out", str(out), "--data.image_size", "32",
            "--data.batch_size", "2", "--data.val_images", "2", "--data.num_workers", "0", "--model.style_size", "64",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--steps", "3",
            "--trainer.val_check_interval", "3", "--model.lr", "0.05"]  # fmt: skip
    assert train_main(args) == 0
    before = torch.load(base_ckpt, weights_only=True)["state_dict"]
    after_ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    after = after_ckpt["state_dict"]
    assert set(before) == set(after)
    tables = 0
    for key, old in before.items():
        if old.shape == after[key].shape:
            assert torch.equal(after[key], old), key  # shared tensors: bit for bit
        else:
            tables += 1
            assert after[key].shape == (3, old.shape[1])
            assert torch.equal(after[key][:2], old), key  # the base's styles: bit for bit
            assert not torch.allclose(after[key][2], old.mean(0)), key  # the new row (started at their mean) trained
    assert tables == 2 * (3 + 2 + 2)  # γ and β of 3 encoder, 2 residual and 2 decoder norms
    hp = after_ckpt["hyper_parameters"]
    assert [s["name"] for s in hp["styles"]] == ["stripes", "blobs", "waves"]
    assert (hp["base_steps"], hp["width"], hp["residual_blocks"]) == (3, 0.25, 1)
    # only the tables are in the optimizer
    assert len(after_ckpt["optimizer_states"][0]["state"]) == tables
    # validation scores the new style only: its losses are comparable with a single-style run's
    val = next(r for r in metrics(out) if r.get("val/total"))
    assert val["val/total"] == val["val/total/waves"] and "val/total/stripes" not in val
    meta = metadata_from_checkpoint(hp, after_ckpt["global_step"], style_name="three")
    assert (meta["base"], meta["base_steps"], meta["style_image"]) == ("last.ckpt", "3", "stripes.png,blobs.png,waves.png")


def test_base_can_be_a_single_style_net_or_an_exported_model(paintings, tmp_path):
    single = textured_net(0.25, 1, seed=3)
    ckpt = fake_checkpoint(tmp_path / "single.ckpt", single)
    kw = dict(style_image=str(paintings / "blobs.png"), style_size=64, image_size=32, width=0.25, residual_blocks=1)
    module = StyleTransferModule(base=str(ckpt), **kw)
    assert module.net.n_styles == 2 and module.style_offset == 1
    assert [s["name"] for s in module.hparams["styles"]] == ["starry_night", "blobs"]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (module.net.eval()(x, torch.tensor([1.0, 0.0])) - single(x)).abs().max() < 5e-6
    frozen = [n for n, p in module.net.named_parameters() if not p.requires_grad]
    trained = [n for n, p in module.net.named_parameters() if p.requires_grad]
    assert all(n.endswith((".weight", ".bias")) and module.net.get_parameter(n).dim() == 2 for n in trained)
    assert len(frozen) + len(trained) == len(list(module.net.parameters())) and len(trained) == 14
    # an exported multi-style model works as a base too (its weights and style list)
    two = StyleTransferModule(style_image=str(paintings), style_size=64, image_size=32, width=0.25, residual_blocks=1)
    with torch.no_grad():  # distinct tables: the exporter merges identical initializers (a fresh net's ones)
        gen = torch.Generator().manual_seed(0)
        for table in two.net.style_parameters():
            table.normal_(generator=gen)
    onnx_path = tmp_path / "two.onnx"
    export_onnx(two.net, onnx_path, metadata_from_checkpoint(dict(two.hparams), 5, style_name="two"))
    other = tmp_path / "dots.png"
    save_image(smooth_image(64, 64, seed=7), other)
    three = StyleTransferModule(base=str(onnx_path), **{**kw, "style_image": str(other)})
    assert [s["name"] for s in three.hparams["styles"]] == ["blobs", "stripes", "dots"]
    with torch.no_grad():
        for key, value in two.net.state_dict().items():
            assert torch.equal(three.net.state_dict()[key][: value.shape[0]] if value.dim() == 2 else three.net.state_dict()[key], value), key


def test_a_base_run_steps_its_gamma_beta_with_base_lr(paintings, tmp_path):
    # only γ, β train in a --base run: Adam gets --model.base_lr (1e-2), not the recipe's lr
    ckpt = fake_checkpoint(tmp_path / "single.ckpt", textured_net(0.25, 1, seed=3))
    kw = dict(style_image=str(paintings / "blobs.png"), style_size=64, image_size=32, width=0.25, residual_blocks=1, lr=5e-4)
    added = StyleTransferModule(base=str(ckpt), **kw).configure_optimizers()
    assert [g["lr"] for g in added.param_groups] == [1e-2] and len(added.param_groups[0]["params"]) == 14
    assert StyleTransferModule(base=str(ckpt), base_lr=3e-3, **kw).configure_optimizers().param_groups[0]["lr"] == 3e-3
    plain = StyleTransferModule(**{**kw, "style_image": str(paintings)}).configure_optimizers()
    assert plain.param_groups[0]["lr"] == 5e-4


def test_a_single_style_net_warm_starts_every_style_of_a_multi_style_run(paintings, tmp_path):
    # --model.init_from SINGLE with several paintings: every row of every γ/β table is the source's
    # (C,) vector, so before training each style reproduces the single-style net exactly.
    single = textured_net(0.25, 1, seed=3)
    ckpt = fake_checkpoint(tmp_path / "single.ckpt", single)
    module = StyleTransferModule(style_image=str(paintings), init_from=str(ckpt), style_size=64, image_size=32, width=0.25, residual_blocks=1)
    module.setup("fit")
    n = module.net.n_styles
    assert n == 2  # blobs, stripes
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want = single.eval()(x)
        for k in range(n):
            assert (module.net.eval()(x, torch.eye(n)[k]) - want).abs().max() < 5e-6
    tables = list(module.net.style_parameters())
    assert tables and all(torch.equal(t[0], t[1]) for t in tables)


def test_base_train_all_trains_the_shared_weights_and_replays_the_base_styles(multi_run, paintings, photos, tmp_path):  # noqa: F811
    # --model.base_train all: the new style gets the shared weights too; the base's γ, β rows stay
    # bit for bit and its styles are replayed (their paintings are in --style, matched by name).
    base_ckpt = multi_run / "checkpoints" / "last.ckpt"
    styles = tmp_path / "styles"
    styles.mkdir()
    for p in paintings.iterdir():
        (styles / p.name).write_bytes(p.read_bytes())
    save_image(stripes_image(64, 64, period=3)[::-1].copy(), styles / "waves.png")
    out = tmp_path / "added"
    args = ["--base", str(base_ckpt), "--style", str(styles), "--model.base_train", "all", "--model.new_share", "0.5",
            "--data", str(photos), "--out", str(out), "--data.image_size", "32", "--data.batch_size", "2", "--data.val_images", "2",
            "--data.num_workers", "0", "--model.style_size", "64", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--steps", "3", "--trainer.val_check_interval", "3"]  # fmt: skip
    assert train_main(args) == 0
    before = torch.load(base_ckpt, weights_only=True)["state_dict"]
    after_ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    after = after_ckpt["state_dict"]
    shared_moved, tables = 0, 0
    for key, old in before.items():
        if old.shape == after[key].shape:
            shared_moved += not torch.equal(after[key], old)
        else:
            tables += 1
            assert torch.equal(after[key][:2], old), key  # the base's rows: bit for bit
            assert not torch.allclose(after[key][2], old.mean(0)), key
    assert tables == 14 and shared_moved >= 10  # the convolutions' weights and biases trained
    hp = after_ckpt["hyper_parameters"]
    assert [s["name"] for s in hp["styles"]] == ["stripes", "blobs", "waves"]  # the base's rows first, as they were
    # every weight is in the optimizer: the tables at base_lr, the shared weights at base_shared_lr
    groups = after_ckpt["optimizer_states"][0]["param_groups"]
    assert [(g["initial_lr"] if "initial_lr" in g else g["lr"]) for g in groups] == [1e-2, 1e-4]
    assert [len(g["params"]) for g in groups] == [14, len(after) - 14] and len(after_ckpt["optimizer_states"][0]["state"]) == len(after)
    # validation scores every style (the base's ones: how much the replay kept them)
    val = next(r for r in metrics(out) if r.get("val/total"))
    assert all(val.get(f"val/total/{name}") for name in ("stripes", "blobs", "waves"))


def test_replay_draw_gives_the_new_styles_their_share():
    draw = torch.randint(2**62, (40_000,), generator=torch.Generator().manual_seed(0))
    uniform = replay_draw(draw, 0, 3, 0.5)
    assert torch.equal(uniform, draw % 3)  # without replay: the multi-style run's uniform pick
    index = replay_draw(draw, 8, 9, 0.75)  # 8 replayed styles, 1 new one
    counts = torch.bincount(index, minlength=9).double() / len(draw)
    assert abs(counts[8] - 0.75) < 0.01  # binomial std 0.002
    assert (counts[:8] - 0.25 / 8).abs().max() < 0.006  # std 0.0009 each
    assert torch.equal(index, replay_draw(draw, 8, 9, 0.75))  # a function of the draw: resumable
    two_new = torch.bincount(replay_draw(draw, 2, 4, 1.0), minlength=4)
    assert two_new[:2].sum() == 0 and abs(int(two_new[2]) - int(two_new[3])) < 600


@pytest.mark.parametrize("case, message", [
    ("lacks", "--model.base_train all replays the base's styles: --style lacks starry_night.jpg"),
    ("nothing_new", "every --style painting is already a style of the base"),
    ("no_base", "--model.base_train all applies to a --base run"),
    ("bad_mode", "--model.base_train must be 'styles' or 'all', got 'some'"),
    ("share", r"--model.new_share must be in \(0, 1\], got 0"),
    ("shared_lr", "--model.base_lr and --model.base_shared_lr must be positive, got 0.01 and 0"),
])  # fmt: skip
def test_base_train_all_errors(paintings, tmp_path, case, message):
    ckpt = fake_checkpoint(tmp_path / "single.ckpt", textured_net(0.25, 1, seed=3))  # one style: starry_night
    kw = dict(style_image=str(paintings / "blobs.png"), style_size=64, image_size=32, width=0.25, residual_blocks=1, base=str(ckpt), base_train="all")
    if case == "nothing_new":
        starry = tmp_path / "starry_night.png"
        save_image(smooth_image(64, 64, seed=1), starry)
        kw["style_image"] = str(starry)
    elif case == "no_base":
        kw.pop("base")
    elif case == "bad_mode":
        kw["base_train"] = "some"
    elif case == "share":
        kw["new_share"] = 0.0
    elif case == "shared_lr":
        kw["base_shared_lr"] = 0.0
    with pytest.raises(UserError, match=message):
        StyleTransferModule(**kw)


@pytest.mark.parametrize("case, message", [
    ("init_from", "--base and --model.init_from both"),
    ("width", r"set --model.width 0.25 --model.residual_blocks 1"),
    ("same_name", "two styles would be named 'blobs'"),
    ("missing", "--base: .*nope.ckpt: no such file"),
])  # fmt: skip
def test_base_errors(paintings, tmp_path, case, message):
    ckpt = fake_checkpoint(tmp_path / "single.ckpt", textured_net(0.25, 1, seed=3))
    kw = dict(style_image=str(paintings / "blobs.png"), style_size=64, image_size=32, width=0.25, residual_blocks=1, base=str(ckpt))
    if case == "init_from":
        kw["init_from"] = str(ckpt)
    elif case == "width":
        kw["width"] = 0.5
    elif case == "same_name":
        kw["style_image"] = [str(paintings / "blobs.png"), str(paintings / "blobs.png")]
    elif case == "missing":
        kw["base"] = str(tmp_path / "nope.ckpt")
    with pytest.raises(UserError, match=message):
        StyleTransferModule(**kw)


# ---- export ---------------------------------------------------------------------------------------


def three_style_net() -> TransformerNet:
    """A textured 3-style net: conv weights of textured_net, random γ, β rows."""
    single = textured_net(0.5, 2, seed=0)
    net = TransformerNet(0.5, 2, n_styles=3).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, value in net.state_dict().items():
            if value.dim() == 2:
                mean = 1.0 if key.endswith("weight") else 0.0
                value.copy_(mean + 0.5 * torch.randn(value.shape, generator=gen))
            else:
                value.copy_(single.state_dict()[key])
    return net


def three_style_hparams() -> dict:
    styles = [{"name": n, "painting": f"{n}.jpg", "style_weight": w} for n, w in (("starry_night", 1.0), ("great_wave", 2.0), ("the_scream", 1.0))]
    return dict(width=0.5, residual_blocks=2, style_image=[s["painting"] for s in styles], styles=styles, recipe="test", content_weight=1.0,
                style_weight=1.0, tv_weight=1000.0, content_layers="relu2_2", style_layers="relu1_2,relu2_2")  # fmt: skip


@pytest.fixture(scope="module")
def painters(tmp_path_factory) -> Path:
    """painters.onnx: three_style_net() exported from a checkpoint (parity checked)."""
    folder = tmp_path_factory.mktemp("painters")
    ckpt = folder / "painters.ckpt"
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in three_style_net().state_dict().items()}, "hyper_parameters": three_style_hparams(), "global_step": 50}, ckpt
    )
    result = export_checkpoint(ckpt, folder / "painters.onnx")
    (folder / "result.json").write_text(json.dumps({k: v for k, v in result.items() if k != "path"}))
    return folder / "painters.onnx"


def test_export_parity_per_style_and_for_a_mix_at_two_sizes(painters):
    result = json.loads((painters.parent / "result.json").read_text())
    names = ["starry_night", "great_wave", "the_scream", "mix"]
    assert sorted(result["parity"]) == sorted(f"{size}/{n}" for size in ("256x256", "480x640") for n in names)
    assert max(result["parity"].values()) < 1e-4  # measured 1e-5 .. 2e-5; bound 1e-3


def test_export_inputs_metadata_and_batch_of_different_mixes(painters):
    model = onnx.load(str(painters))
    onnx.checker.check_model(model, full_check=True)
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert inputs == {"content": ["batch", 3, "height", "width"], STYLE_WEIGHTS_NAME: ["batch", 3]}
    meta = {p.key[len(META_PREFIX) :]: p.value for p in model.metadata_props}
    assert json.loads(meta[STYLES_KEY]) == [{"name": "starry_night", "painting": "starry_night.jpg", "style_weight": 1.0},
                                            {"name": "great_wave", "painting": "great_wave.jpg", "style_weight": 2.0},
                                            {"name": "the_scream", "painting": "the_scream.jpg", "style_weight": 1.0}]  # fmt: skip
    assert meta["io"] == MULTI_IO_CONTRACT
    assert meta["architecture"] == "TransformerNet(width=0.5, residual_blocks=2, n_styles=3)"
    assert (meta["style_name"], meta["style_image"]) == ("painters", "starry_night.jpg,great_wave.jpg,the_scream.jpg")
    # three images, three different weight rows, one run: each as torch gives it
    x = np.stack([smooth_image(40, 56, seed=s).transpose(2, 0, 1) for s in range(3)])
    w = np.array([[0, 1, 0], [0.7, 0, 0.3], [1 / 3, 1 / 3, 1 / 3]], np.float32)
    got = ort.InferenceSession(str(painters), providers=["CPUExecutionProvider"]).run(None, {"content": x, STYLE_WEIGHTS_NAME: w})[0]
    with torch.no_grad():
        ref = three_style_net()(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_export_refuses_a_multi_style_net_without_its_style_list(tmp_path):
    hp = {k: v for k, v in three_style_hparams().items() if k != "styles"}
    with pytest.raises(ValueError, match="needs metadata 'styles' listing 3 styles"):
        export_onnx(three_style_net(), tmp_path / "x.onnx", metadata_from_checkpoint(hp, 1, style_name="x"))
    assert not (tmp_path / "x.onnx").exists()


def test_fp16_weights_and_cli_summary(painters, tmp_path, capsys):
    ckpt = painters.parent / "painters.ckpt"
    assert stylecast_main(["export", str(ckpt), "-o", str(tmp_path / "p16.onnx"), "--fp16-weights"]) == 0
    out = capsys.readouterr().out
    assert "3 styles p16/{starry_night,great_wave,the_scream}" in out
    assert "480x640" in out and "worst of 4 style vectors" in out
    assert (tmp_path / "p16.onnx").stat().st_size < 0.6 * painters.stat().st_size
