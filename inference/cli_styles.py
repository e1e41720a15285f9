"""`stylecast styles`: the styles in a models folder with their metadata (no torch); each style of
a multi-style file on its own line, as FILE/STYLE (the name `stylize -s` and the server take)."""

from __future__ import annotations

import argparse
import json

from stylecast.inference.registry import MODELS_DIR_RULE, StyleRegistry, resolve_models_dir
from stylecast.errors import UserError

COLUMNS = ("style_image", "recipe", "steps", "precision", "weight_storage", "architecture")


def list_styles(models_dir: str | None = None) -> list[dict]:
    """One dict per .onnx file: registry info, or {"name", "file", "error"} for an invalid file.
    models_dir None: registry.resolve_models_dir()."""
    registry = StyleRegistry(models_dir)
    out = []
    for name in registry.names():
        try:
            out.append(registry.info(name))
        except UserError as exc:
            out.append({"name": name, "file": registry.path(name).name, "error": str(exc)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stylecast styles", description="List the available styles and their metadata.")
    p.add_argument("--models-dir", default=None, help=f"folder of <style>.onnx files (default: {MODELS_DIR_RULE})")
    p.add_argument("--json", action="store_true", help="print all metadata as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="print every metadata field")
    args = p.parse_args(argv)
    folder = resolve_models_dir(args.models_dir)
    styles = list_styles(folder)
    if args.json:
        print(json.dumps(styles, indent=2, sort_keys=True))
        return 0
    if not styles:
        print(f"no styles in {folder} (export one with `stylecast export CKPT -o {folder}/NAME.onnx`)")
        return 0
    for s in styles:
        if "error" in s:
            print(f"{s['name']}  INVALID: {s['error']}")
            continue
        meta = dict(s["metadata"])
        size = f"{s['bytes'] / 1e6:.1f} MB"
        if "style" in s:  # one style of a multi-style file: its painting, and which file holds it
            meta["style_image"] = s["style"].get("painting", "")
            size = f"{s['file']}, style {s['styles'].index(s['style']['name']) + 1} of {len(s['styles'])}, {size}"
        fields = "  ".join(f"{k}={meta[k]}" for k in COLUMNS if meta.get(k))
        print(f"{s['name']}  ({size})  {fields}")
        if args.verbose:
            for k in sorted(meta):
                print(f"    {k}: {meta[k]}")
    return 0
