"""Rendering: camera and alignment, rasterisers, SH shading, backgrounds, the fused CPU path.

numba's 'workqueue' threading layer is chosen unless the user set one: the OpenMP and TBB layers
spin-wait against torch's own OpenMP pool and cost about a quarter of the CPU render throughput
(measured with `python -m synface bench render`).
"""

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
