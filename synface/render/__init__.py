"""Rendering: camera and alignment, rasterisers, SH shading, backgrounds, the fused CPU path."""
