"""Public rasterisation entry point: validation and backend dispatch.

Conventions:
- screen_verts (B,V,3): x, y in pixels of the target image, pixel (i, j) centred at
  (x, y) = (j + 0.5, i + 0.5), y grows downward; z = view depth > 0, smaller is nearer.
- A triangle is front-facing iff e = (x1-x0)(y2-y0) - (x2-x0)(y1-y0) > 0 in these coordinates
  (i.e. counter-clockwise in a y-up camera frame before the y flip).
- Coverage: pixel centre inside the triangle, with the top-left tie rule evaluated on exact
  fixed-point geometry (1/256 pixel), so a shared edge is drawn exactly once.
- Interpolation uses screen-space (affine) barycentrics, not perspective-correct ones: with the
  project's ~12 degree field of view the depth varies by a few percent across the face, so the
  error is far below a pixel's worth of attribute change.
- Triangles are clipped to the image by clamping their pixel bbox; a triangle with a vertex at
  z <= 0 or with |x| or |y| > 2**20 pixels is skipped (no near-plane clipping).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from synface.render.raster_numba import raster_numba, warmup  # noqa: F401  (re-exported)
from synface.render.raster_torch import raster_torch

BACKENDS = ("auto", "numba", "torch")


@dataclass
class RasterOutput:
    """Rasteriser result; every tensor is float32 on the inputs' device."""

    attrs: torch.Tensor  # (B,H,W,C) interpolated vertex attributes; 0 where empty
    mask: torch.Tensor  # (B,H,W) 1 where a triangle covers the pixel centre, else 0
    depth: torch.Tensor  # (B,H,W) interpolated z of the visible surface; +inf where empty


def _check_tensor(name: str, t: object, ndim: int, dtype: torch.dtype) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype != dtype:
        raise ValueError(f"{name} must be {dtype}, got {t.dtype}")
    return t


def _validate(screen_verts: torch.Tensor, faces: torch.Tensor, vert_attrs: torch.Tensor,
              height: int, width: int, backend: str) -> None:
    """Raise ValueError naming the argument and the problem; cheap compared to rasterising."""
    _check_tensor("screen_verts", screen_verts, 3, torch.float32)
    _check_tensor("faces", faces, 2, torch.int64)
    _check_tensor("vert_attrs", vert_attrs, 3, torch.float32)
    B, V, three = screen_verts.shape
    if three != 3:
        raise ValueError(f"screen_verts must be (B,V,3), got shape {tuple(screen_verts.shape)}")
    if faces.shape[1] != 3:
        raise ValueError(f"faces must be (F,3), got shape {tuple(faces.shape)}")
    if vert_attrs.shape[:2] != (B, V) or vert_attrs.shape[2] < 1:
        raise ValueError(f"vert_attrs must be (B,V,C) = ({B},{V},C>=1) to match screen_verts, "
                         f"got shape {tuple(vert_attrs.shape)}")
    for name, t in (("faces", faces), ("vert_attrs", vert_attrs)):
        if t.device != screen_verts.device:
            raise ValueError(f"{name} is on {t.device} but screen_verts is on "
                             f"{screen_verts.device}")
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= V):
        raise ValueError(f"faces has indices outside [0, {V}) (min {int(faces.min())}, "
                         f"max {int(faces.max())})")
    if not bool(torch.isfinite(screen_verts).all()):
        raise ValueError("screen_verts contains NaN or inf")


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        return "numba" if device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ValueError(f"backend='numba' needs CPU tensors, got tensors on {device}; "
                         "use backend='torch' or 'auto'")
    return backend


def _check_out(out: RasterOutput, B: int, height: int, width: int, C: int,
               device: torch.device) -> None:
    shapes = {"attrs": (B, height, width, C), "mask": (B, height, width),
              "depth": (B, height, width)}
    for name, shape in shapes.items():
        t = getattr(out, name)
        if (not isinstance(t, torch.Tensor) or tuple(t.shape) != shape
                or t.dtype != torch.float32 or t.device != device or not t.is_contiguous()):
            raise ValueError(f"out.{name} must be a contiguous float32 tensor of shape {shape} "
                             f"on {device}")


def _empty_out(B: int, height: int, width: int, C: int) -> RasterOutput:
    return RasterOutput(torch.empty(B, height, width, C, dtype=torch.float32),
                        torch.empty(B, height, width, dtype=torch.float32),
                        torch.empty(B, height, width, dtype=torch.float32))


def _run_numba(sv: torch.Tensor, faces: torch.Tensor, va: torch.Tensor, height: int,
               width: int, cull: bool, out: RasterOutput) -> RasterOutput:
    """Zero-copy numpy views of contiguous tensors; the kernel fills the outputs entirely."""
    if sv.shape[0]:
        raster_numba(sv.detach().contiguous().numpy(), faces.contiguous().numpy(),
                     va.detach().contiguous().numpy(), height, width, cull,
                     out.attrs.numpy(), out.mask.numpy(), out.depth.numpy())
    return out


def rasterize(screen_verts: torch.Tensor, faces: torch.Tensor, vert_attrs: torch.Tensor,
              height: int, width: int, cull_backfaces: bool = True,
              backend: str = "auto", out: RasterOutput | None = None) -> RasterOutput:
    """Z-buffer rasterise a batch of meshes sharing `faces` and interpolate vertex attributes.

    backend: "auto" (numba on CPU tensors, torch on CUDA), "numba" or "torch". Both backends
    give the same image up to float rounding (exact depth ties may resolve differently in rare
    cases). Not differentiable: outputs carry no autograd graph.
    out: optional preallocated result to overwrite (returned). Reusing it across calls saves
    the page faults of fresh memory, ~1.6 MB per 224x224 image with C=6.
    """
    _validate(screen_verts, faces, vert_attrs, height, width, backend)
    chosen = _pick_backend(backend, screen_verts.device)
    B, _, C = vert_attrs.shape
    if out is not None:
        _check_out(out, B, height, width, C, screen_verts.device)
    with torch.no_grad():
        if chosen == "numba":
            return _run_numba(screen_verts, faces, vert_attrs, height, width, cull_backfaces,
                              out if out is not None else _empty_out(B, height, width, C))
        attrs, mask, depth = raster_torch(screen_verts.detach().contiguous(), faces,
                                          vert_attrs.detach().contiguous(), height, width,
                                          bool(cull_backfaces))
        if out is None:
            return RasterOutput(attrs, mask, depth)
        out.attrs.copy_(attrs)
        out.mask.copy_(mask)
        out.depth.copy_(depth)
    return out
