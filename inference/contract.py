"""The contract between an exported style network and everything that runs it.

The exporter (training/export.py, torch) writes models that satisfy it; the stylizer and server
(torch-free) read models through it. Keep this file free of torch and onnxruntime imports.
"""

INPUT_NAME = "content"    # float32 (N, 3, H, W), RGB, values in [0, 1]
OUTPUT_NAME = "stylized"  # float32 (N, 3, H, W), RGB, values in [0, 1]
IO_CONTRACT = "RGB float32 NCHW [0,1] -> RGB float32 NCHW [0,1]"

# Keys of the ONNX model's metadata_props.
META_PREFIX = "stylecast."
REQUIRED_METADATA = (
    "style_name",      # short name, e.g. starry_night
    "style_image",     # file name of the painting it was trained on
    "recipe",          # training recipe (config name)
    "steps",           # optimizer steps trained
    "content_weight",
    "style_weight",
    "tv_weight",
    "content_layers",  # e.g. relu2_2:1.0
    "style_layers",    # e.g. relu1_2:1.0,relu2_2:1.0,...
    "io",              # IO_CONTRACT
    "version",         # stylecast version that exported it
)
OPTIONAL_METADATA = ("architecture", "style_size", "vgg_weights", "pooling", "image_size", "precision", "weight_storage", "painting", "artist",
                     "init_from", "init_steps", "stability_weight")

# Smallest side the network accepts (the reflection pads of the deepest layer need >= 2 px there);
# the stylizer pads smaller images up to it.
MIN_SIDE = 8
SIZE_MULTIPLE = 4
