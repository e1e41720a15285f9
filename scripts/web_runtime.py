"""Build the page's in-browser runtime: `npm ci` on package.json + package-lock.json (onnxruntime-web,
pinned), then copy the files the page loads into inference/ort_web/ with a manifest.

    python scripts/web_runtime.py              # what `make web-runtime` runs; fails without npm
    python scripts/web_runtime.py --optional   # what `make install/test` run: without npm, a warning

The files are package data (pyproject), so the wheel carries them: a server installed from it
needs no network. The manifest (runtime.json) is written last and removed first, so a copy that
stops half-way leaves a folder the server reports as "not built" rather than serves.
`--ignore-scripts`: nothing of the package runs on this machine (protobufjs has a postinstall
script the runtime files do not need).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from stylecast.inference.web_runtime import FILES, MANIFEST, PACKAGE, RUNTIME_DIR

ROOT = Path(__file__).resolve().parent.parent
# Kept in the folder: its README says what fills it.
KEEP = {"README.md", MANIFEST}


class BuildError(Exception):
    pass


def pinned_version() -> str:
    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"][PACKAGE]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"][f"node_modules/{PACKAGE}"]["version"]
    if wanted != locked:
        raise BuildError(f"package.json pins {PACKAGE} {wanted} but package-lock.json has {locked}: run `npm install --package-lock-only`")
    return locked


def npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm is not installed (Node.js 18+ brings it)")
    done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"npm ci failed ({last})")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_runtime(version: str, dest: Path = RUNTIME_DIR) -> dict:
    src = ROOT / "node_modules" / PACKAGE
    installed = json.loads((src / "package.json").read_text())["version"]
    if installed != version:
        raise BuildError(f"node_modules has {PACKAGE} {installed}, the lockfile {version}")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)
    for old in dest.iterdir():  # files of an earlier version or file list
        if old.name not in KEEP and old.name not in FILES and old.is_file():
            old.unlink()
    files = {}
    for name in FILES:
        shutil.copyfile(src / "dist" / name, dest / name)
        files[name] = {"bytes": (dest / name).stat().st_size, "sha256": sha256(dest / name)}
    manifest = {
        "package": PACKAGE,
        "version": version,
        "license": "MIT (Copyright (c) Microsoft Corporation)",
        "source": "the npm registry, checked against package-lock.json by npm ci",
        "files": files,
    }
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(dest / MANIFEST)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/web_runtime.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--optional", action="store_true", help="without npm (or when npm ci fails) warn and exit 0")
    args = parser.parse_args(argv)
    try:
        version = pinned_version()
        npm_ci()
        manifest = copy_runtime(version)
    except (BuildError, OSError, KeyError, ValueError) as exc:
        print(f"web runtime: {'warning' if args.optional else 'error'}: {exc}; the page will stylize on the server only", file=sys.stderr)
        return 0 if args.optional else 2
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"web runtime: {PACKAGE} {version}, {len(manifest['files'])} files, {total / 1e6:.1f} MB in {RUNTIME_DIR.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
