"""The shipped styles: `NAME.onnx` (the network, with its training facts in the ONNX metadata)
and `NAME.md` (its model card).

No code: this folder is installed as `stylecast.checkpoints` (pyproject's package-dir) so that a
wheel carries the styles and `stylecast.inference.registry.packaged_models_dir()` finds them in
any install, editable or not.
"""
