"""`stylecast stylize INPUT... --style NAME|FILE.onnx|MIX -o OUT`: stylize photos and videos without torch.

STYLE: a style name, a model file, a style of a multi-style model (`painters/starry_night`) or a
mix of its styles (`starry_night:0.7,great_wave:0.3`): the grammar is in inference/mix.py.

INPUT: image and video files and/or folders (their photos and videos, not recursive). OUT: a
folder (created if need be), a file name when there is one input, or `-` for stdout (one photo).
Videos go through stylecast.inference.video (PyAV, the [video] extra). Nothing is written until
every input has been opened and every output name checked; an error part-way (a write that fails
included: one line naming the file, exit 2) removes what this run wrote, so a failed run leaves no
partial output. An existing output is replaced only with --force; an input file never is.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from stylecast.inference import mix
from stylecast.inference.registry import MODELS_DIR_RULE, path_spec, resolve_choice
from stylecast.inference.stylizer import Stylizer, target_size
from stylecast.inference.temporal import MAX_HISTORY, TemporalSettings
from stylecast.inference.video import (
    DEFAULT_BATCH,
    OUTPUT_FORMATS as VIDEO_OUTPUT_FORMATS,
    VIDEO_SUFFIXES,
    VideoInfo,
    is_video_path,
    output_suffix_for,
    probe_video,
    stylize_video,
)
from stylecast.errors import UserError
from stylecast.flags import ArgumentParser, add_device, add_force, add_quiet
from stylecast.images import SAVE_FORMATS, encode_image, load_image, open_image
from stylecast.io import RunOutputs, check_new

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FORMAT_SUFFIX = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}
INPUT_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def output_suffix(src: Path, fmt: str | None) -> str:
    if is_video_path(src):
        return output_suffix_for(src)  # a video stays a video; --format is for photos
    if fmt:
        return FORMAT_SUFFIX[fmt]
    return src.suffix.lower() if src.suffix.lower() in SAVE_FORMATS else ".png"


@dataclass
class Job:
    src: Path
    dst: Path | None  # None: stdout
    video: VideoInfo | None = None  # set for a video input once it has been probed


def load_stylizer(style: str, models_dir: str | os.PathLike | None = None, **options) -> Stylizer:
    """`style` is an .onnx file path, a style name in the models folder, a multi-style model's
    style or a mix of its styles (registry.resolve_choice)."""
    choice = resolve_choice(style, models_dir)
    stylizer = Stylizer(choice.path, **options)
    if choice.weights is None:
        if stylizer.styles:  # a multi-style file given by path, without a style
            names = stylizer.style_names
            raise UserError(
                f"{style}: holds {len(names)} styles ({', '.join(names)}): pick one ({style}/{names[0]}) or mix them ({style}/{names[0]}:0.5,{names[1]}:0.5)"
            )
        stylizer.name = choice.name
        return stylizer
    return stylizer.with_style(choice.weights, choice.name)


def output_label(style: str) -> str:
    """The style part of output file names, from the text alone (checked before the model loads):
    a model file's stem, a style's name, or a mix's names with percentages (starry_night70+great_wave30)."""
    try:
        path = path_spec(style)
    except UserError:  # a missing file: reported as such when the model loads
        path = Path(style)
    return path.stem if path is not None else mix.label(style)


def expand_inputs(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in INPUT_SUFFIXES and not q.name.startswith("."))
            if not found:
                raise UserError(f"{p}: folder has no images or videos ({', '.join(sorted(INPUT_SUFFIXES))})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    if not files:
        raise UserError("no input images")
    return files


def plan_outputs(files: list[Path], output: str, fmt: str | None, style_name: str, force: bool) -> list[Job]:
    """Where each result goes; refuses to overwrite an input, and existing files without --force."""
    if output == "-":
        if len(files) != 1:
            raise UserError(f"-o - writes one image to stdout, but {len(files)} inputs were given")
        if is_video_path(files[0]):
            raise UserError(f"{files[0]}: a video cannot be written to stdout (-o -); give an output file or folder")
        return [Job(files[0], None)]
    out = Path(output)
    looks_like_file = out.suffix.lower() in INPUT_SUFFIXES and not out.is_dir()
    if len(files) == 1 and looks_like_file:
        check_output_kind(files[0], out)
    if len(files) > 1 and looks_like_file:
        # It would become a folder named like an image (issue 15.8): surely not what was meant.
        raise UserError(f"{out}: a file name, but {len(files)} inputs need an output folder")
    if len(files) == 1 and looks_like_file:
        jobs = [Job(files[0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise UserError(f"{out}: exists and is not a folder (several inputs need an output folder)")
        jobs = [Job(src, out / f"{src.stem}_{style_name}{output_suffix(src, fmt)}") for src in files]
    seen: set[Path] = set()
    for job in jobs:
        dst = job.dst.resolve()
        if dst in seen:
            raise UserError(f"{job.dst}: two inputs would be written to the same output (e.g. a.jpg and a.png)")
        seen.add(dst)
    check_new([job.dst for job in jobs], force, inputs=files)
    return jobs


def check_output_kind(src: Path, out: Path) -> None:
    """A photo is written as a photo, a video as a video, each in a format we can write."""
    suffix = out.suffix.lower()
    if is_video_path(src) and suffix not in VIDEO_OUTPUT_FORMATS:
        raise UserError(f"{out}: {src} is a video; its output must be one of {', '.join(VIDEO_OUTPUT_FORMATS)}")
    if not is_video_path(src) and suffix not in SAVE_FORMATS:
        raise UserError(f"{out}: unsupported output format {out.suffix!r}; use one of {', '.join(SAVE_FORMATS)}")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="stylecast stylize", description="Stylize photos and videos with an exported ONNX style (no torch needed).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photo and video files and/or folders of them")
    p.add_argument(
        "-s",
        "--style",
        required=True,
        help="style name (see `stylecast styles`), a FILE.onnx, a multi-style model's style "
        "(painters/starry_night) or a mix of its styles (starry_night:0.7,great_wave:0.3)",
    )
    p.add_argument("-o", "--output", required=True, help="output folder, output file (one input), or - for stdout")
    p.add_argument("--models-dir", default=None, help=f"folder of <style>.onnx files (default: {MODELS_DIR_RULE})")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="longer side in px to stylize at (default: the style's native size, where its strokes have the painting's "
        "proportions: larger inputs are scaled down to it, smaller ones kept; 0 = each input's own size)",
    )
    p.add_argument("--strength", type=float, default=1.0, help="0..1: blend of stylized (1) and original (0) (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours (luminance-only transfer, YIQ)")
    p.add_argument("--tile", type=int, default=None, help="stylize in TILE px tiles (large images, less memory)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in px, blended (default 32)")
    add_device(p)
    p.add_argument("--backend", choices=("auto", "ort", "openvino"), default="auto", help="runtime (auto: OpenVINO on CPU when installed, else ONNX Runtime)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="OpenVINO precision (auto: bf16 on CPUs with bf16 units)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--format", choices=sorted(FORMAT_SUFFIX), default=None, help="output format in a folder / on stdout (default: input's, else png)")
    p.add_argument("--quality", type=int, default=92, help="JPEG/WebP quality (default 92)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"video: frames per network run (default {DEFAULT_BATCH})")
    p.add_argument("--crf", type=int, default=None, help="video: constant rate factor, lower is better and bigger (default 18 for H.264, 30 for VP9)")
    p.add_argument(
        "--steady",
        type=float,
        default=TemporalSettings.history,
        metavar="W",
        help=f"video: weight 0..{MAX_HISTORY} of the motion-compensated previous frame where the scene did not change: "
        f"holds the painted texture still (default {TemporalSettings.history}, and {TemporalSettings.still_history} while the "
        "camera is still; 0 = every frame on its own)",
    )
    p.add_argument(
        "--server",
        default=None,
        metavar="URL",
        help="run the network on a server speaking the Open Inference Protocol "
        "(stylecast serve, Triton, KServe) instead of here; -s names its model (MODEL/STYLE for a multi-style one)",
    )
    p.add_argument("--token", default=os.environ.get("STYLECAST_TOKEN"), help="--server's bearer token (default $STYLECAST_TOKEN)")
    add_force(p)
    add_quiet(p)
    return p


def validate_args(args: argparse.Namespace) -> None:
    if not 0.0 <= args.strength <= 1.0:
        raise UserError(f"--strength must be between 0 and 1, got {args.strength}")
    if args.size is not None and args.size < 0:
        raise UserError(f"--size must be a number of pixels (0 = each input's own size), got {args.size}")
    if args.tile is not None and args.tile < 16:
        raise UserError(f"--tile must be at least 16 px, got {args.tile}")
    if args.overlap < 0 or (args.tile and args.overlap * 2 > args.tile):
        raise UserError(f"--overlap must be between 0 and half the tile, got {args.overlap}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if not 1 <= args.quality <= 100:
        raise UserError(f"--quality must be 1..100, got {args.quality}")
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1 frame, got {args.batch}")
    if not 0.0 <= args.steady <= MAX_HISTORY:
        raise UserError(f"--steady must be between 0 and {MAX_HISTORY}, got {args.steady}")
    if args.crf is not None and not 0 <= args.crf <= 63:
        raise UserError(f"--crf must be 0..63, got {args.crf}")
    if getattr(args, "server", None):
        # these choose how the network runs here; with --server the server decides
        local = [
            flag
            for flag, value, default in (
                ("--tile", args.tile, None),
                ("--backend", args.backend, "auto"),
                ("--device", args.device, "auto"),
                ("--precision", args.precision, "auto"),
                ("--threads", args.threads, None),
                ("--models-dir", args.models_dir, None),
            )
            if value != default
        ]
        if local:
            raise UserError(f"{local[0]} chooses how the network runs on this machine; it does not apply with --server")


def stylize_files(args: argparse.Namespace, *, stdout=None, log=None) -> list[Job]:
    """The command's work; returns the jobs done. `stdout` (binary) receives `-o -` output."""
    validate_args(args)
    quiet = getattr(args, "quiet", False)
    log = log or (sys.stderr if args.output == "-" else sys.stdout)
    files = expand_inputs(args.inputs)
    # Open every input before writing anything: a bad file fails the run with nothing written.
    # A video is probed (opened, its first frame decoded); a corrupt one can still fail part-way,
    # which removes what the run wrote.
    videos = {f: probe_video(f) for f in files if is_video_path(f)}
    for f in files:
        if f not in videos:
            open_image(f).close()
    # The outputs are named after the style (its file stem): checked before the model loads.
    jobs = plan_outputs(files, args.output, args.format, output_label(args.style), args.force)
    for job in jobs:
        job.video = videos.get(job.src)
    start = time.perf_counter()
    if getattr(args, "server", None):
        from stylecast.inference.remote import remote_stylizer

        stylizer = remote_stylizer(args.server, args.style, args.token)
    else:
        stylizer = load_stylizer(args.style, args.models_dir, device=args.device, backend=args.backend, threads=args.threads, precision=args.precision)
    if not quiet:
        print(f"style {stylizer.name!r}: {stylizer.backend} {', '.join(stylizer.providers)}, loaded in {time.perf_counter() - start:.2f} s", file=sys.stderr)
        if args.size is None and stylizer.native_size:
            print(
                f"inputs larger than {stylizer.native_size} px are scaled down to it, the size this style is meant to be seen at "
                "(--size N for another, --size 0 for each input's own)",
                file=sys.stderr,
            )
    # A failed run (a write error, Ctrl-C, a bad image) removes what it wrote and the folder it made.
    with RunOutputs() as outputs:
        if jobs[0].dst is not None:
            outputs.folder(jobs[0].dst.parent)
        bar = tqdm(jobs, desc="stylize", unit="img", file=sys.stderr, disable=quiet or len(jobs) < 2, leave=False)
        # with --server, photos of one size go as one request (the server runs them as one batch)
        batched = remote_batches(jobs, stylizer, args) if getattr(args, "server", None) else {}
        for job in bar:
            if job.video is not None:
                stylize_video_job(job, stylizer, args, outputs, log)
                continue
            if job.src in batched:
                result, seconds = batched.pop(job.src)
            else:
                image = load_image(job.src)
                t0 = time.perf_counter()
                size = target_size(args.size, stylizer.native_size, max(image.shape[:2]))
                result = stylizer(image, size=size, strength=args.strength, preserve_color=args.preserve_color, tile=args.tile, overlap=args.overlap)
                seconds = time.perf_counter() - t0
            h, w = result.shape[:2]
            if job.dst is None:
                data = encode_image(result, SAVE_FORMATS[output_suffix(job.src, args.format)], quality=args.quality)
                out = stdout if stdout is not None else sys.stdout.buffer
                out.write(data)
                out.flush()
            else:
                outputs.write_bytes(job.dst, encode_image(result, SAVE_FORMATS[job.dst.suffix.lower()], quality=args.quality))
            if not quiet:
                tqdm.write(f"{job.src} -> {job.dst or '<stdout>'}  {w}x{h}  {seconds:.2f} s", file=log)
    return jobs


def remote_batches(jobs: list[Job], stylizer: Stylizer, args: argparse.Namespace) -> dict[Path, tuple]:
    """{photo: (result, seconds per photo)}: the photos resized as --size says (target_size), grouped
    by size in requests of up to --batch images (Triton and our server batch only same-shape tensors)."""
    import numpy as np

    from stylecast.inference.stylizer import resized

    groups: dict[tuple[int, int], list[tuple[Path, object]]] = {}
    for job in jobs:
        if job.video is None:
            image = load_image(job.src)
            image = resized(image, target_size(args.size, stylizer.native_size, max(image.shape[:2])))
            groups.setdefault(image.shape[:2], []).append((job.src, image))
    out = {}
    for group in groups.values():
        for i in range(0, len(group), args.batch):
            part = group[i : i + args.batch]
            t0 = time.perf_counter()
            results = stylizer.stylize_batch(np.stack([im for _, im in part]), strength=args.strength, preserve_color=args.preserve_color)
            seconds = (time.perf_counter() - t0) / len(part)
            out.update({src: (res, seconds) for (src, _), res in zip(part, results)})
    return out


def stylize_video_job(job: Job, stylizer: Stylizer, args: argparse.Namespace, outputs: RunOutputs, log) -> None:
    quiet = getattr(args, "quiet", False)
    r = stylize_video(
        job.src,
        job.dst,
        stylizer,
        size=target_size(args.size, stylizer.native_size, max(job.video.width, job.video.height)),
        strength=args.strength,
        preserve_color=args.preserve_color,
        batch=args.batch,
        tile=args.tile,
        overlap=args.overlap,
        crf=args.crf,
        progress=not quiet,
        outputs=outputs,
        info=job.video,
        temporal=TemporalSettings(history=args.steady),
    )
    if not quiet:
        tqdm.write(
            f"{job.src} -> {job.dst}  {r.width}x{r.height}  {r.frames} frames, {r.seconds:.2f} s at {r.fps:.3g} fps, "
            f"{r.video_codec}, audio {r.audio}  {r.elapsed:.2f} s ({r.frames_per_second:.1f} frames/s)",
            file=log,
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stylize_files(args)
    return 0
