"""Measuring instruments: `python -m synface bench <what> --json`, one flat JSON record each.

Nothing outside `synface.bench` and `synface.cli` imports this package: the product never
depends on its benchmarks.
"""
