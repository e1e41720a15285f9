"""stylecast: fast neural style transfer.

This package holds what every part shares without pulling in torch: the command-line dispatcher,
user-facing errors, and image decoding/encoding (numpy + Pillow).
"""

__version__ = "0.1.0"
