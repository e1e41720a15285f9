"""Optimizing pixels on the frozen VGG: the Gatys baseline, DeepDream, inversion, visualization."""
