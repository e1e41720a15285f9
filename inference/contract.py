"""The contract between an exported style network and everything that runs it.

The exporter (training/export.py, torch) writes models that satisfy it; the stylizer and server
(torch-free) read models through it. Keep this file free of torch and onnxruntime imports.
"""

import re
from typing import NamedTuple

INPUT_NAME = "content"  # float32 (N, 3, H, W), RGB, values in [0, 1]
OUTPUT_NAME = "stylized"  # float32 (N, 3, H, W), RGB, values in [0, 1]
IO_CONTRACT = "RGB float32 NCHW [0,1] -> RGB float32 NCHW [0,1]"

# A multi-style model (Dumoulin et al. 2017: conditional instance norm) has a second input: one
# weight per style for each image, float32 (N, n_styles) with the content's N. A one-hot row picks
# a style; a convex mix (weights >= 0 summing to 1) blends styles. Its metadata key STYLES_KEY
# holds the styles as JSON, in the order of the weights:
#   [{"name": "starry_night", "painting": "starry_night.jpg", "style_weight": 1.0}, ...]
STYLE_WEIGHTS_NAME = "style_weights"
STYLES_KEY = "styles"
MULTI_IO_CONTRACT = "RGB float32 NCHW [0,1] + style weights float32 (N, n_styles) -> RGB float32 NCHW [0,1]"

# Keys of the ONNX model's metadata_props.
META_PREFIX = "stylecast."
REQUIRED_METADATA = (
    "style_name",  # short name, e.g. starry_night (a multi-style model: the model's name, e.g. painters)
    "style_image",  # file name of the painting it was trained on (multi-style: the paintings, comma-separated)
    "recipe",  # training recipe (config name)
    "steps",  # optimizer steps trained
    "content_weight",
    "style_weight",
    "tv_weight",
    "content_layers",  # e.g. relu2_2:1.0
    "style_layers",  # e.g. relu1_2:1.0,relu2_2:1.0,...
    "io",  # IO_CONTRACT
    "version",  # stylecast version that exported it
)
OPTIONAL_METADATA = (
    "architecture",
    "style_size",
    "vgg_weights",
    "pooling",
    "image_size",
    "native_size",  # longer side (px) at which the style looks like its painting: stylize/serve's default
    "precision",
    "weight_storage",
    "painting",
    "artist",
    "init_from",
    "init_steps",
    "stability_weight",
    STYLES_KEY,
    "base",
    "base_steps",
)  # multi-style: the styles; --base: the model styles were added to

# Smallest side the network accepts (the deepest layer needs >= 2 px there for its reflection pads
# and instance norm: 1/4 in the johnson nets, 1/8 in the tiny one); the stylizer pads smaller images up to it.
MIN_SIDE = 16
SIZE_MULTIPLE = 4


class Architecture(NamedTuple):
    width: float
    residual_blocks: int
    n_styles: int = 1
    variant: str = "johnson"  # training/transformer.py VARIANTS


_ARCHITECTURE = re.compile(r"TransformerNet\(width=([0-9.]+), residual_blocks=(\d+)(?:, n_styles=(\d+))?(?:, variant=(\w+))?\)")


def parse_architecture(text: str) -> Architecture | None:
    """The metadata's `architecture`, as training/export.architecture() writes it
    ('TransformerNet(width=0.5, residual_blocks=3[, n_styles=N][, variant=tiny])'); None when the
    text is not one."""
    m = _ARCHITECTURE.fullmatch(str(text).strip())
    if not m:
        return None
    return Architecture(float(m.group(1)), int(m.group(2)), int(m.group(3) or 1), m.group(4) or "johnson")


# The size a style is meant to be seen at. A feed-forward net paints strokes of a fixed size in
# pixels, learned from the painting's Gram matrices at style_size (its longer side, 256 px in every
# recipe), so the frame size sets how large the strokes look. Measured on the shipped nets
# (benchmarks/bench_scale.py, BENCHMARKS.md "Stroke scale"): the output is closest to the painting
# seen at the same size when its longer side is about 1.5 x style_size: 384 px for 6 of 9 nets,
# 256 for the other 3 (within 1-10 % at 384). The exporter writes it as `native_size`;
# `stylecast stylize` and the server scale larger inputs down to it unless a size is asked for.
NATIVE_SCALE = 1.5


def native_size_for(style_size: int) -> int:
    """The `native_size` the exporter records for a style image of longer side `style_size`."""
    return int(round(NATIVE_SCALE * int(style_size) / SIZE_MULTIPLE)) * SIZE_MULTIPLE


def native_size(metadata: dict, where: str) -> int | None:
    """The model's `native_size` (None for a model exported before it existed); ValueError naming
    `where` for a value that is not a size."""
    text = metadata.get("native_size")
    if text in (None, ""):
        return None
    try:
        value = int(str(text))
    except ValueError:
        value = 0
    if value < MIN_SIDE:
        raise ValueError(f"{where}: metadata native_size must be a whole number of pixels >= {MIN_SIDE}, got {text!r}")
    return value
