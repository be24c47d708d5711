"""Coefficient-times-basis products whose rows never depend on the batch they are computed in.

Why: BLAS picks its kernel and summation order from the matrix shapes and the CPU (gemv for one
row, blocked gemm for many, AVX2 or AVX-512), so a face rendered alone differed in the last bit
from the same face rendered in a batch, and a rounding at the final uint8 step turned that into a
grey level. On the CPU each row here is summed in one fixed order (coefficient 0 first)
in float32 with strict IEEE arithmetic (no fused multiply-add, no reassociation): the same bits
for any batch size, thread count or vector width, equal to summing the terms one by one in numpy.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from synface.base.thread_pools import named_pool

#: output columns per block: a block of the basis stays in cache while every row uses it
_BLOCK = 1024
#: rows per worker below which one thread does the whole product (a hand-off costs more)
_ROWS_PER_WORKER = 16


@numba.njit(cache=True, nogil=True)
def _exact_rows(coeffs, basis, offset, out):
    rows, terms = coeffs.shape
    width = basis.shape[1]
    acc = np.empty(_BLOCK, np.float32)
    for start in range(0, width, _BLOCK):
        stop = min(start + _BLOCK, width)
        span = stop - start
        for m in range(rows):
            a = acc[:span]
            first = offset[start:stop]
            for n in range(span):
                a[n] = first[n]
            for k in range(terms):
                c = coeffs[m, k]
                if c != 0.0:
                    row = basis[k, start:stop]
                    for n in range(span):
                        a[n] = a[n] + c * row[n]
            dest = out[m, start:stop]
            for n in range(span):
                dest[n] = a[n]


def basis_product(coeffs: torch.Tensor, basis: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """coeffs (M,K) @ basis (K,N) (+ offset (N,)) as float32, each row the same whatever M is.

    On a GPU this is a plain matmul (the CUDA path makes no bit-for-bit promise)."""
    if coeffs.device.type != "cpu":
        coeffs = coeffs.to(basis.dtype)
        return coeffs @ basis if offset is None else torch.addmm(offset.view(1, -1), coeffs, basis)
    if coeffs.dim() != 2 or basis.dim() != 2 or coeffs.shape[1] != basis.shape[0]:
        raise ValueError(f"basis_product: shapes {tuple(coeffs.shape)} and {tuple(basis.shape)} do not multiply")
    c = np.ascontiguousarray(coeffs.detach().to(torch.float32).numpy())
    b = np.ascontiguousarray(basis.detach().to(torch.float32).numpy())
    o = (np.ascontiguousarray(offset.detach().reshape(-1).to(torch.float32).numpy()) if offset is not None
         else np.zeros(b.shape[1], np.float32))
    rows = c.shape[0]
    out = np.empty((rows, b.shape[1]), np.float32)
    workers = max(1, min(numba.get_num_threads(), rows // _ROWS_PER_WORKER))
    if workers == 1:
        _exact_rows(c, b, o, out)
    else:
        bounds = np.linspace(0, rows, workers + 1).astype(int)
        # rows are independent: workers split them without changing a bit
        pool = named_pool("basis", numba.get_num_threads())
        jobs = [pool.submit(_exact_rows, c[lo:hi], b, o, out[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]
        for job in jobs:
            job.result()
    return torch.from_numpy(out)


def _per_element(math_fn, torch_fn, x: torch.Tensor) -> torch.Tensor:
    """math_fn on every element of a small CPU tensor, in float64 and rounded once to x's dtype.

    Why: torch's CPU kernels run a vector routine on most of a tensor and a scalar one on its
    tail, and the two round differently in the last bit, so where an element falls (its batch)
    would change its value. The C library's float64 result, rounded to float32, does not depend
    on the position or on the CPU's vector width. GPU tensors use torch's own kernel."""
    if x.device.type != "cpu":
        return torch_fn(x)
    values = [math_fn(v) for v in x.detach().to(torch.float64).reshape(-1).tolist()]
    return torch.tensor(values, dtype=torch.float64).view(x.shape).to(x.dtype)


def stable_sin(x: torch.Tensor) -> torch.Tensor:
    """sin with the same bits wherever the element sits in its batch."""
    return _per_element(math.sin, torch.sin, x)


def stable_cos(x: torch.Tensor) -> torch.Tensor:
    """cos with the same bits wherever the element sits in its batch."""
    return _per_element(math.cos, torch.cos, x)


def stable_exp(x: torch.Tensor) -> torch.Tensor:
    """exp with the same bits wherever the element sits in its batch."""
    return _per_element(math.exp, torch.exp, x)


def stable_erf(x: torch.Tensor) -> torch.Tensor:
    """erf with the same bits wherever the element sits in its batch."""
    return _per_element(math.erf, torch.erf, x)


def stable_pow(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """x ** exponent (x > 0) with the same bits wherever the element sits in its batch."""
    return _per_element(lambda v: v ** exponent, lambda t: t.pow(exponent), x)
