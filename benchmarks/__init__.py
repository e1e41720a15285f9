"""Benchmarks: scripts that measure and write JSON + rows in BENCHMARKS.md (`python -m benchmarks`)."""
