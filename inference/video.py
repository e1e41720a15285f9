"""Stylize video files through PyAV (FFmpeg), without torch: `stylecast stylize clip.mp4 -s STYLE -o out.mp4`.

    from stylecast.inference.stylizer import Stylizer
    from stylecast.inference.video import stylize_video

    result = stylize_video("clip.mp4", "out.mp4", Stylizer("style.onnx"), size=480, batch=4)
    result.frames, result.fps, result.seconds, result.audio      # 48, 12.0, 4.0, 'copied (aac)'

What is kept, and how:

- **Timing**: every output frame carries its input frame's pts in the input stream's time base, so
  a variable frame rate (phones) stays as recorded; the frame count is unchanged (no frame is
  dropped or duplicated to make the rate constant).
- **Rotation**: a phone stores a portrait clip as landscape frames plus a display matrix (or, in
  older files, a `rotate` tag). The frames are turned upright *before* stylizing, as photos' EXIF
  orientation is (stylecast.images): brush strokes have a direction, and a style applied sideways
  then turned looks different from the style applied to the picture the viewer sees. The output is
  written upright with no rotation tag, so players that ignore the tag show it right too.
- **Audio**: the first audio stream is copied packet for packet (no re-encoding, no loss) when the
  output container accepts its codec; otherwise (AAC into WebM, Opus into MOV) it is re-encoded,
  to AAC (mp4, mov, mkv) or Opus (webm). `VideoResult.audio` says which.
- **Codec**: H.264 (libx264, CRF 18 by default, preset medium) in mp4/mov/mkv, VP9 (libvpx-vp9)
  in webm — WebM admits no H.264; mpeg4 part 2 only if PyAV's FFmpeg lacked both H.264 encoders.
  Pixel format yuv420p (what every player decodes), which needs even sides: an odd width or height
  loses its last column or row before stylizing. The RGB<->YUV matrix follows the input's (BT.709
  for HD, else BT.601) and is tagged on the output.
- **Frames** go through the network `batch` at a time (one runtime call for N same-size frames;
  Stylizer.stylize_batch), after the same `size` resize as photos.
- **Flicker**: a per-frame network redraws sensor noise and, when the camera pans by less than its
  stride, jumps with its grid. By default each frame goes through the motion-compensated recursive
  filter of stylecast.inference.temporal (`temporal=`, CLI `--steady`), which keeps what did not
  change in the scene still; `temporal=None` stylizes every frame on its own.
- **Errors**: a file FFmpeg cannot open or decode, without a video stream, or shorter than its
  header says (truncated) is a UserError naming the file. The output is written to a temp file
  beside the target and renamed at the end (stylecast.io), so a failure part-way leaves nothing.

PyAV is the optional extra `[video]`; it is imported only when a video is opened (require_av).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from stylecast.errors import UserError
from stylecast.images import longer_side_shape, resize_longer
from stylecast.io import RunOutputs, atomic_path
from stylecast.inference.temporal import TemporalFilter, TemporalSettings

# Inputs the CLI treats as video (anything FFmpeg reads would do; these are the names people use).
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".3gp"}
# Outputs: suffix -> FFmpeg muxer. An input of another kind (avi) is written as mp4 in a folder.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska"}
DEFAULT_OUTPUT_SUFFIX = ".mp4"
# Encoders in order of preference per muxer; the first PyAV's FFmpeg has is used.
VIDEO_ENCODERS = {"webm": ("libvpx-vp9", "libvpx"), "default": ("libx264", "libopenh264", "mpeg4")}
AUDIO_ENCODERS = {"webm": "libopus", "default": "aac"}
# CRF per encoder when none is given: x264 18 is "visually lossless"; VP9's scale is 0-63 and
# 30 is about the same quality (Google's VOD guide uses 31-33 at 1080p).
DEFAULT_CRF = {"libx264": 18, "libvpx-vp9": 30, "libvpx": 10}
DEFAULT_BATCH = 4
# A stream that decodes to less than this share of the duration its header declares is truncated.
TRUNCATED_SHARE = 0.9
VIDEO_EXTRA = "pip install 'stylecast[video]'"


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def output_suffix_for(src: str | os.PathLike) -> str:
    """A video's output suffix in a folder: its own when we can write it, else .mp4."""
    suffix = Path(src).suffix.lower()
    return suffix if suffix in OUTPUT_FORMATS else DEFAULT_OUTPUT_SUFFIX


def require_av(label: str | os.PathLike):
    """PyAV, or a one-line UserError naming the file and the extra that installs it."""
    try:
        import av
    except ModuleNotFoundError:
        raise UserError(f"{label}: video files need PyAV, which is not installed; install it with: {VIDEO_EXTRA}") from None
    return av


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason without PyAV's '[Errno N]' prefix and the file name it appends."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", str(text)).split(": '")[0].strip()


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns before any work: sizes are as displayed (after rotation)."""

    path: Path
    width: int
    height: int
    rotation: int  # counter-clockwise degrees the coded frames are turned for display (0, 90, 180, 270)
    fps: float
    frames: int | None  # from the header when it says, else estimated from the duration, else None
    frames_exact: bool
    duration: float | None  # seconds, the video stream's declared duration
    video_codec: str
    audio_codec: str | None
    audio_rate: int | None


@dataclass(frozen=True)
class VideoResult:
    """One stylized video: `seconds` spans the first frame's start to the last frame's end."""

    src: Path
    dst: Path
    frames: int
    width: int
    height: int
    fps: float
    seconds: float
    video_codec: str
    audio: str  # 'copied (aac)', 're-encoded (aac -> opus)', or 'none'
    elapsed: float  # wall seconds of the whole job

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else float("nan")


# --- reading --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_input(path: Path):
    av = require_av(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        container = av.open(str(path), "r")
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable video ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise UserError(f"{path}: has no video stream")
        yield container
    finally:
        container.close()


def _display_rotation(frame, stream) -> int:
    """Counter-clockwise degrees to turn the coded frame for display, a multiple of 90 (FFmpeg
    rounds the same way and ignores other angles). The frame's display matrix first; else a
    legacy `rotate` tag, which counts clockwise."""
    degrees = frame.rotation
    if not degrees:
        try:
            degrees = -float(stream.metadata.get("rotate") or 0)
        except ValueError:  # a tag that is not a number says nothing
            degrees = 0
    return int(round(degrees / 90.0)) % 4 * 90


def _declared_duration(stream) -> float | None:
    """The video stream's own duration from the header (the stream's, else Matroska's DURATION
    tag); None when nothing says (a live-recorded WebM). Not the container's: audio may run
    longer than the video."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    m = re.match(r"^(\d+):(\d+):(\d+(?:\.\d+)?)$", stream.metadata.get("DURATION") or "")
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None


def _frame_rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    # Only the encoder's rate control and the progress estimate use it (frames keep their own
    # pts); a stream that states no rate at all gets a common one.
    return Fraction(rate) if rate and rate > 0 else Fraction(30)


def _decode_error(path: Path, exc: BaseException, frames: int) -> UserError:
    return UserError(f"{path}: corrupt or truncated video at frame {frames + 1} ({_reason(exc)})")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open `path`, check it has a decodable video stream (decodes the first frame) and return what
    the run needs to know. A UserError names the file for anything FFmpeg cannot read."""
    path = Path(path)
    with _open_input(path) as container:
        av = require_av(path)
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise _decode_error(path, exc, 0) from None
        if first is None:
            raise UserError(f"{path}: the video stream has no frames")
        rotation = _display_rotation(first, stream)
        width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        fps = _frame_rate(stream)
        duration = _declared_duration(stream)
        estimate = duration or (container.duration / 1_000_000 if container.duration else None)
        exact = bool(stream.frames)
        frames = stream.frames if exact else (max(1, round(estimate * fps)) if estimate else None)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path,
            width,
            height,
            rotation,
            float(fps),
            frames,
            exact,
            duration,
            stream.codec_context.name,
            audio.codec_context.name if audio else None,
            audio.codec_context.sample_rate if audio else None,
        )


def _packets(container, streams, path: Path, counter: list[int]) -> Iterator:
    """Demux `streams`; FFmpeg's errors become a UserError naming the file and the frame."""
    av = require_av(path)
    demuxed = container.demux(*streams)
    while True:
        try:
            packet = next(demuxed)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as exc:
            raise _decode_error(path, exc, counter[0]) from None
        yield packet


def _decode(packet, path: Path, counter: list[int]) -> list:
    av = require_av(path)
    try:
        return packet.decode()
    except (av.FFmpegError, OSError) as exc:
        raise _decode_error(path, exc, counter[0]) from None


def _to_rgb(frame, coded_size: tuple[int, int]) -> np.ndarray:
    """A decoded frame as HxWx3 uint8 RGB at the first frame's coded size (a stream that changes
    size part-way is scaled back to it), in the frame's own colour matrix and range."""
    w, h = coded_size
    return frame.to_ndarray(format="rgb24", width=w, height=h, src_color_range=frame.color_range or None)


def prepare_frame(rgb: np.ndarray, rotation: int, size: int | None) -> np.ndarray:
    """Coded uint8 frame -> the float32 image the network sees: upright, resized like a photo
    (longer side `size`, Lanczos), even sides (yuv420p), [0, 1]."""
    if rotation:
        rgb = np.rot90(rgb, rotation // 90)
    if size is not None and size != max(rgb.shape[:2]):
        rgb = np.asarray(resize_longer(Image.fromarray(np.ascontiguousarray(rgb)), size))
    h, w = rgb.shape[:2]
    if h < 2 or w < 2:
        raise UserError(f"a video frame of {w}x{h} px is too small (yuv420p needs at least 2x2)")
    return np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2], dtype=np.float32) / 255.0


def output_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """(width, height) of the output: the displayed size, resized like a photo, made even."""
    h, w = (info.height, info.width) if size is None else longer_side_shape(info.height, info.width, size)
    return w - w % 2, h - h % 2


# --- writing --------------------------------------------------------------------------------------


def _pick_encoder(av, names: tuple[str, ...], dst: Path) -> str:
    for name in names:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # PyAV raises UnknownCodecError (or ValueError in older releases)
            continue
    raise UserError(f"{dst}: PyAV's FFmpeg has none of the encoders {', '.join(names)}")


class _Writer:
    """The output container: one video stream (encoded from stylized frames, the input's time base
    and pts) and the input's first audio stream, copied when the muxer accepts its codec, else
    re-encoded. Errors writing are UserErrors naming `dst` (the temp file is an implementation
    detail)."""

    def __init__(self, av, tmp: Path, dst: Path, vin, ain, size: tuple[int, int], crf: int | None, fps: Fraction):
        self.av, self.tmp, self.dst, self.vin, self.ain = av, tmp, dst, vin, ain
        self.muxer = OUTPUT_FORMATS[dst.suffix.lower()]
        self.video_codec = _pick_encoder(av, VIDEO_ENCODERS.get(self.muxer, VIDEO_ENCODERS["default"]), dst)
        self.size, self.crf, self.fps = size, crf, fps
        # BT.709 for input tagged so (HD), else BT.601 (SD, and what untagged frames were decoded with).
        self.bt709 = vin.codec_context.colorspace == 1
        self.container = self.audio_out = None
        self.copy_audio = ain is not None
        try:
            try:
                self._open()
            except (ValueError, av.FFmpegError):
                if ain is None:
                    raise
                # The muxer refuses the audio codec (AAC in WebM: ValueError from add_stream; Opus
                # in MOV: EINVAL when the header is written): start again, re-encoding the audio.
                self.close()
                self.copy_audio = False
                self._open()
        except (ValueError, av.FFmpegError) as exc:
            self.close()
            raise UserError(f"{dst}: cannot write: {_reason(exc)}") from None
        if ain is None:
            self.audio = "none"
        elif self.copy_audio:
            self.audio = f"copied ({ain.codec_context.name})"
        else:
            self.audio = f"re-encoded ({ain.codec_context.name} -> {self.audio_out.codec_context.name})"

    def _open(self) -> None:
        av = self.av
        try:
            self.container = av.open(str(self.tmp), "w", format=self.muxer)
        except (av.FFmpegError, OSError) as exc:
            raise UserError(f"{self.dst}: cannot write: {_reason(exc)}") from None
        self._add_video()
        if self.ain is not None:
            self.audio_out = self.container.add_stream_from_template(self.ain) if self.copy_audio else self._add_audio_encoder()
        self.container.start_encoding()  # writes the header: the muxer checks the codecs here

    def _add_video(self) -> None:
        crf = self.crf if self.crf is not None else DEFAULT_CRF.get(self.video_codec)
        options = {"crf": str(crf), "preset": "medium"} if self.video_codec == "libx264" else {}
        if self.video_codec.startswith("libvpx"):
            # Constant quality needs bitrate 0; cpu-used 4 and row-mt: libvpx's defaults are many
            # times slower than the stylizer on a CPU, for a gain the viewer does not see.
            options = {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
        elif self.video_codec == "mpeg4":
            options = {"flags": "+qscale", "global_quality": str(3 * 118)}  # -q:v 3 (FF_QP2LAMBDA = 118)
        stream = self.container.add_stream(self.video_codec, rate=self.fps, options=options)
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        # The input's time base, so every pts is carried over exactly (variable frame rate).
        stream.time_base = self.vin.time_base
        stream.codec_context.time_base = self.vin.time_base
        stream.codec_context.colorspace = 1 if self.bt709 else 6  # AVCOL_SPC_BT709 / SMPTE170M (BT.601)
        stream.codec_context.color_range = 1  # limited ("MPEG"), what players assume
        self.video_out = stream

    def _add_audio_encoder(self):
        name = AUDIO_ENCODERS.get(self.muxer, AUDIO_ENCODERS["default"])
        ctx = self.ain.codec_context
        rate = ctx.sample_rate
        rates = self.av.codec.Codec(name, "w").audio_rates
        if rates and rate not in rates:  # Opus: 8, 12, 16, 24, 48 kHz only
            rate = min((r for r in rates if r >= rate), default=max(rates))
        stream = self.container.add_stream(name, rate=rate)
        stream.layout = ctx.layout.name if ctx.channels <= 2 else "stereo"
        return stream

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except (self.av.FFmpegError, OSError) as exc:
            raise UserError(f"{self.dst}: cannot write: {_reason(exc)}") from None

    def write_frames(self, images: np.ndarray, pts: list[int]) -> None:
        """uint8 (N, H, W, 3) RGB frames with their input pts."""
        matrix = "itu709" if self.bt709 else "itu601"
        for image, p in zip(images, pts):
            frame = self.av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=matrix, dst_color_range="MPEG")
            frame.pts, frame.time_base = p, self.vin.time_base
            self._mux(self.video_out.encode(frame))

    def audio_packet(self, packet, decode) -> None:
        """Copy one input audio packet, or decode and re-encode it (`decode`: packet -> frames)."""
        if self.copy_audio:
            if packet.dts is not None and packet.size:  # the demuxer's empty end-of-stream packet
                packet.stream = self.audio_out
                self._mux(packet)
            return
        for frame in decode(packet):
            self._mux(self.audio_out.encode(frame))

    def finish(self) -> None:
        """Flush the encoders and write the trailer."""
        self._mux(self.video_out.encode(None))
        if self.audio_out is not None and not self.copy_audio:
            self._mux(self.audio_out.encode(None))
        container, self.container = self.container, None
        try:
            container.close()
        except (self.av.FFmpegError, OSError) as exc:
            raise UserError(f"{self.dst}: cannot write: {_reason(exc)}") from None

    def close(self) -> None:
        """Give the file up without finishing it (a failed run: the temp file is removed after)."""
        container, self.container = self.container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()


# --- the job ----------------------------------------------------------------------------------------


def _check_options(dst: Path, batch: int, crf: int | None) -> None:
    if dst.suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(f"{dst}: unsupported video output format {dst.suffix or '(none)'!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if batch < 1:
        raise UserError(f"batch must be at least 1 frame, got {batch}")
    if crf is not None and not 0 <= crf <= 63:
        raise UserError(f"crf must be between 0 and 63, got {crf}")


def stylize_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    stylizer,
    *,
    size: int | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    batch: int = DEFAULT_BATCH,
    tile: int | None = None,
    overlap: int = 32,
    crf: int | None = None,
    progress: bool = False,
    outputs: RunOutputs | None = None,
    info: VideoInfo | None = None,
    temporal: TemporalSettings | None = TemporalSettings(),
) -> VideoResult:
    """Stylize the video `src` into `dst` (its suffix picks the container: .mp4 .m4v .mov .webm
    .mkv) with a Stylizer, `batch` frames per network run; see the module's docstring for what is
    kept. `dst` is replaced atomically (no overwrite check here: the CLI's rule is
    stylecast.io.check_new); with `outputs` it is recorded there, so a run that fails later removes
    it. `progress`: a tqdm bar on stderr (frames, ETA when the count is known). `info`: the
    probe_video result when the caller already has it. `temporal`: the motion-compensated recursive
    filter that holds the stylized texture still between frames (inference/temporal.py); None or
    history 0 stylizes every frame on its own."""
    src, dst = Path(src), Path(dst)
    _check_options(dst, batch, crf)
    av = require_av(src)
    info = info or probe_video(src)
    start = time.perf_counter()
    writing = outputs.path(dst) if outputs is not None else atomic_path(dst)
    with writing as tmp, _open_input(src) as container:
        frames, seconds, writer = _transcode(
            av,
            container,
            info,
            Path(tmp),
            dst,
            stylizer,
            size=size,
            strength=strength,
            preserve_color=preserve_color,
            batch=batch,
            tile=tile,
            overlap=overlap,
            crf=crf,
            progress=progress,
            steady=TemporalFilter(temporal) if temporal is not None and temporal.history > 0 else None,
        )
    width, height = output_size(info, size)
    return VideoResult(src, dst, frames, width, height, info.fps, seconds, writer.video_codec, writer.audio, time.perf_counter() - start)


def _transcode(av, container, info: VideoInfo, tmp: Path, dst: Path, stylizer, *, size, strength, preserve_color, batch, tile, overlap, crf, progress, steady):
    """Decode, stylize in batches, encode; returns (frames, seconds, writer)."""
    src = info.path
    vin = container.streams.video[0]
    ain = container.streams.audio[0] if container.streams.audio else None
    vin.thread_type = "AUTO"  # FFmpeg's frame threads: decoding stays far below the network's cost
    fps = Fraction(info.fps).limit_denominator(1_000_001)
    writer = _Writer(av, tmp, dst, vin, ain, output_size(info, size), crf, fps)
    coded = (info.height, info.width) if info.rotation % 180 else (info.width, info.height)
    # One frame's duration in pts units: for frames without a pts, and the last frame's end.
    step = max(1, round(1 / (fps * vin.time_base)))
    counter, pending, pending_pts, first_pts, last_pts = [0], [], [], None, None
    bar = tqdm(total=info.frames, unit="frame", desc=src.name, disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True)

    def flush() -> None:
        if pending:
            out = stylizer.stylize_batch(np.stack(pending), strength=strength, preserve_color=preserve_color, tile=tile, overlap=overlap)
            if steady is not None:  # in frame order: each frame's history is the one written before it
                out = np.stack([steady(frame, o) for frame, o in zip(pending, out)])
            writer.write_frames(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), pending_pts)
            bar.update(len(pending))
            pending.clear()
            pending_pts.clear()

    try:
        for packet in _packets(container, [vin] + ([ain] if ain is not None else []), src, counter):
            if packet.stream.index != vin.index:
                writer.audio_packet(packet, lambda p: _decode(p, src, counter))
                continue
            for frame in _decode(packet, src, counter):
                # A frame without pts follows the previous one; a repeated or backward pts (broken
                # muxing) moves on by one tick: encoders and muxers refuse non-increasing times.
                pts = frame.pts if frame.pts is not None else (last_pts + step if last_pts is not None else 0)
                pts = pts if last_pts is None or pts > last_pts else last_pts + 1
                first_pts = pts if first_pts is None else first_pts
                last_pts = pts
                pending.append(prepare_frame(_to_rgb(frame, coded), info.rotation, size))
                pending_pts.append(pts)
                counter[0] += 1
                if len(pending) == batch:
                    flush()
        flush()
        if counter[0] == 0:
            raise UserError(f"{src}: the video stream has no frames")
        seconds = float((last_pts - first_pts + step) * vin.time_base)
        if info.duration and seconds < TRUNCATED_SHARE * info.duration:
            raise UserError(f"{src}: truncated: the video ends at {seconds:.2f} s of the {info.duration:.2f} s its header declares")
        writer.finish()
        return counter[0], seconds, writer
    finally:
        bar.close()
        writer.close()
