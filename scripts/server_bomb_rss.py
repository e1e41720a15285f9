"""Peak memory of `stylecast serve` under parallel decompression bombs at the pixel limit (issue 15).

Starts the server (its own process, `--concurrency` workers), warms it with one small request,
then posts N copies of a PNG of black pixels just under `--max-pixels` (6300x6300 = 39.7 MPix,
~116 KB: deflate shrinks a constant image ~1000x) at once, and reports the server's peak RSS
(VmHWM, Linux) before and after, the wall time, and the answers.

    python scripts/server_bomb_rss.py                           # shipped styles, server defaults, 4 bombs
    python scripts/server_bomb_rss.py --models-dir M --max-side 256   # decode cost only (small inference)
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def bomb(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side)).save(buf, format="PNG")
    return buf.getvalue()


def start_server(models_dir: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "stylecast.cli", "serve", "--models-dir", models_dir, "--port", "0", "--no-access-log", *extra]
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}\n{Path(log.name).read_text()}")
    url = m.group(1)
    for _ in range(600):
        try:
            if httpx.get(url + "readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server not ready in 60 s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", default=str(ROOT / "checkpoints"))
    p.add_argument("--bombs", type=int, default=4)
    p.add_argument("--side", type=int, default=6300)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-side", type=int, default=None)
    args = p.parse_args(argv)
    extra = ["--concurrency", str(args.concurrency), "--queue-size", str(args.bombs)]
    if args.max_side:
        extra += ["--max-side", str(args.max_side)]
    data = bomb(args.side)
    proc, url = start_server(args.models_dir, extra)
    try:
        style = httpx.get(url + "v1/styles", timeout=10).json()["default"]
        small = io.BytesIO()
        Image.new("RGB", (64, 48), (120, 80, 40)).save(small, format="PNG")
        assert httpx.post(url + "v1/stylize", params={"style": style}, content=small.getvalue(), timeout=60).status_code == 200
        before, resident = peak_rss_mb(proc.pid), rss_mb(proc.pid)
        codes: list[int] = []

        def one() -> None:
            r = httpx.post(url + "v1/stylize", params={"style": style, "format": "jpeg"}, content=data, timeout=600)
            codes.append(r.status_code)

        start = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(args.bombs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        after = peak_rss_mb(proc.pid)
        time.sleep(1.0)
        print(
            f"{args.bombs} x PNG {args.side}x{args.side} ({len(data) / 1024:.0f} KB, {args.side**2 / 1e6:.1f} MPix), style {style}, "
            f"server {' '.join(extra)}: answers {sorted(codes)}, wall {wall:.1f} s"
        )
        print(
            f"RSS before {resident:.0f} MB (peak so far {before:.0f} MB); peak during {after:.0f} MB (+{after - before:.0f} MB); "
            f"RSS after {rss_mb(proc.pid):.0f} MB"
        )
    finally:
        proc.terminate()
        proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
