"""Torch-free inference: ONNX Runtime / OpenVINO stylizer, style registry, HTTP server.

Nothing in this package may import torch, lightning, `training` or `losses` (a serving install has
none of them); tests/test_boundaries.py enforces it.
"""
