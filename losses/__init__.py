"""Differentiable scoring of images: the Gatys losses on a frozen VGG (torch)."""

from stylecast.losses.functional import blend_grams, content_loss, gram_matrix, style_loss, total_variation
from stylecast.losses.perceptual import PerceptualLoss, parse_layers
from stylecast.losses.vgg import VGG, layer_names, load_vgg

__all__ = [
    "PerceptualLoss",
    "VGG",
    "blend_grams",
    "content_loss",
    "gram_matrix",
    "layer_names",
    "load_vgg",
    "parse_layers",
    "style_loss",
    "total_variation",
]
