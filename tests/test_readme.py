"""README examples name things that exist: shipped styles, the Makefile's extras, files in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SHIPPED = {p.stem for p in (ROOT / "checkpoints").glob("*.onnx")}


def code_blocks() -> list[str]:
    return re.findall(r"```(?:bash|python)?\n(.*?)```", README, re.S)


def test_it_opens_with_a_stylization_by_a_shipped_style():
    title, rest = README.split("\n", 1)
    assert title == "# stylecast"
    assert rest.lstrip().startswith("```bash\n")  # before anything else
    first = code_blocks()[0].splitlines()
    assert len(first) == 5
    assert any(re.match(r"stylecast stylize \S+ -s (\w+) ", line) and re.match(r"stylecast stylize \S+ -s (\w+) ", line)[1] in SHIPPED for line in first)


def test_style_names_in_examples_are_shipped_styles():
    named = []
    for block in code_blocks():
        for line in block.splitlines():
            if "stylecast stylize" in line or "stylecast compare" in line:
                named += re.findall(r"(?:-s|--style) (\S+)", line)
            named += re.findall(r"[?&]style=(\w+)", line)
            named += re.findall(r"StyleRegistry\([^)]*\)\.get\(\"(\w+)\"\)", line)
    named += re.findall(r"\{\"style\": \"(\w+)\"", README)
    assert named, "no style names found: the patterns are stale"
    unknown = [n for n in named if n not in SHIPPED and not (n.endswith(".onnx") or "/" in n)]
    assert unknown == []


def test_install_line_matches_the_makefile():
    extras = re.search(r"^EXTRAS \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    assert f"pip install -c constraints.txt -e '.[{extras}]'   # everything (what make does)" in README


def test_no_paths_a_user_does_not_have():
    assert "DESIGN.md" not in README  # not in this repository
    assert "../shared" not in README and "shared/data" not in README  # this project's test data
    for path in re.findall(r"`((?:stylecast|scripts|inference|training|optimization|losses|benchmarks|docs)/[\w./-]+)`", README):
        if not re.search(r"[A-Z]{3,}", path):  # NAME.onnx and the like are placeholders
            assert (ROOT / path.rstrip("/")).exists(), path
