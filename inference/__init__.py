"""Torch-free inference: ONNX Runtime / OpenVINO stylizer, style registry, HTTP server, demo.

Nothing in this package may import torch, lightning, `training`, `losses` or `optimization` (a
serving install lacks torch, which they need); tests/test_boundaries.py and test_layers.py
enforce it.
"""
