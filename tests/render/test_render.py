"""Renderer tests: coverage rule, occlusion, culling, SH shading, backend agreement, validation."""

from __future__ import annotations

import math
import time

import numba
import numpy as np
import pytest
import torch

from synface.render.raster_torch import raster_torch
from synface.render.rasterize import RasterOutput, _pick_backend, rasterize, warmup
from synface.render.shading import (
    light_direction,
    light_to_sh,
    sh_basis,
    sh_irradiance,
    sh_to_light,
    vertex_normals,
)

BACKENDS = ["numba", "torch"] + (["torch-cuda"] if torch.cuda.is_available() else [])


def _raster(backend: str, sv, faces, attrs, h, w, cull=True) -> RasterOutput:
    """Run one backend; 'torch-cuda' runs the torch kernel on the GPU and returns CPU tensors."""
    if backend == "torch-cuda":
        out = rasterize(sv.cuda(), faces.cuda(), attrs.cuda(), h, w, cull, backend="torch")
        return RasterOutput(out.attrs.cpu(), out.mask.cpu(), out.depth.cpu())
    return rasterize(sv, faces, attrs, h, w, cull, backend=backend)


def uv_sphere(n_lat: int, n_lon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit sphere (camera frame, y up); faces counter-clockwise seen from outside, so that
    vertex_normals points outward. Seen from the camera such a face is counter-clockwise on
    screen too, which is e < 0 in y-down pixel coordinates: rasterise with raster_faces()."""
    theta = torch.linspace(0, math.pi, n_lat)[1:-1]
    phi = torch.arange(n_lon) * (2 * math.pi / n_lon)
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    ring = torch.stack([torch.sin(t) * torch.cos(p), torch.cos(t), torch.sin(t) * torch.sin(p)], -1)
    verts = torch.cat([torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]), ring.reshape(-1, 3)])
    n = n_lat - 2
    i = torch.arange(n - 1)[:, None]
    j = torch.arange(n_lon)[None, :]
    a, b = 2 + i * n_lon + j, 2 + i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    quads = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3),
                       torch.stack([b, d, c], -1).reshape(-1, 3)])
    jj = torch.arange(n_lon)
    top = torch.stack([torch.zeros_like(jj), 2 + (jj + 1) % n_lon, 2 + jj], -1)
    last = 2 + (n - 1) * n_lon
    bottom = torch.stack([torch.ones_like(jj), last + jj, last + (jj + 1) % n_lon], -1)
    return verts, torch.cat([quads, top, bottom]).long()


def raster_faces(faces: torch.Tensor) -> torch.Tensor:
    """Winding for rasterize (front iff e > 0 with y down): reverse CCW-outward faces."""
    return faces[:, [0, 2, 1]].contiguous()


def sphere_screen(verts: torch.Tensor, cx: float, cy: float, radius: float) -> torch.Tensor:
    """Orthographic-ish projection to screen (y down); depth 10 - z (nearer = smaller)."""
    return torch.stack([cx + radius * verts[:, 0], cy - radius * verts[:, 1],
                        10.0 - verts[:, 2]], -1)


def _inside_reference(tri: np.ndarray, h: int, w: int):
    """Independent float64 point-in-triangle at pixel centres: (strictly inside, on an edge)."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    ws = []
    for k in range(3):
        a, b = tri[(k + 1) % 3], tri[(k + 2) % 3]
        ws.append((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0]))
    ws = np.stack(ws)
    return (ws > 0).all(0), ((ws >= 0).all(0) & (ws == 0).any(0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_triangle_matches_point_in_triangle(backend):
    rng = np.random.default_rng(0)
    for _ in range(20):
        tri = np.round(rng.uniform(-6, 38, (3, 2)) * 256) / 256  # on the 1/256 grid: no snapping
        e = (tri[1, 0] - tri[0, 0]) * (tri[2, 1] - tri[0, 1]) \
            - (tri[2, 0] - tri[0, 0]) * (tri[1, 1] - tri[0, 1])
        if e < 0:
            tri = tri[[0, 2, 1]]
        sv = torch.tensor(np.c_[tri, np.ones(3)], dtype=torch.float32)[None]
        out = _raster(backend, sv, torch.tensor([[0, 1, 2]]), torch.ones(1, 3, 1), 30, 34)
        inside, on_edge = _inside_reference(tri, 30, 34)
        got = out.mask[0].numpy() > 0
        assert np.array_equal(got[~on_edge], inside[~on_edge])
        assert np.allclose(out.depth[0].numpy()[got], 1.0, atol=1e-6)
        assert np.all(np.isinf(out.depth[0].numpy()[~got]))


def _fan(n: int, cx: float, cy: float, r: float) -> np.ndarray:
    """n triangles (centre, p_k, p_k+1), e > 0 in y-down screen coordinates, each with its own
    three vertices so that the attribute identifies the triangle. Returns (n,3,2)."""
    ang = np.arange(n + 1) * 2 * np.pi / n + 0.3
    ring = np.c_[cx + r * np.cos(ang), cy + r * np.sin(ang)]
    return np.stack([np.stack([[cx, cy], ring[k], ring[k + 1]]) for k in range(n)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_shared_edges_cover_every_pixel_once(backend):
    # fan centre on a pixel centre, plus an axis-aligned quad split on a diagonal through
    # pixel centres: many centres lie exactly on shared edges and at shared vertices
    tris = np.concatenate([
        _fan(7, 12.5, 11.5, 9.3),
        np.array([[[24.5, 2.5], [36.5, 2.5], [36.5, 14.5]], [[24.5, 2.5], [36.5, 14.5],
                                                              [24.5, 14.5]]])])
    tris = np.round(tris * 256) / 256
    n = len(tris)
    sv = torch.tensor(np.c_[tris.reshape(-1, 2), np.ones(3 * n)], dtype=torch.float32)[None]
    faces = torch.arange(3 * n).reshape(n, 3)
    tid = torch.arange(n, dtype=torch.float32).repeat_interleave(3)[None, :, None]
    count = np.zeros((24, 40))
    for k in range(n):
        count += _raster(backend, sv, faces[k:k + 1], tid, 24, 40).mask[0].numpy()
    assert count.max() == 1, "a pixel was drawn by two triangles"
    ys, xs = np.mgrid[0:24, 0:40] + 0.5
    inner = (np.hypot(xs - 12.5, ys - 11.5) < 9.3 * np.cos(np.pi / 7) - 1e-6) \
        | ((xs > 24.5) & (xs < 36.5) & (ys > 2.5) & (ys < 14.5))
    assert np.all(count[inner] == 1), "gap between adjacent triangles"
    together = _raster(backend, sv, faces, tid, 24, 40)
    assert np.array_equal(together.mask[0].numpy(), count)
    ids = together.attrs[0, ..., 0].numpy()
    assert np.allclose(ids, np.round(ids), atol=1e-5)  # each pixel from exactly one triangle


@pytest.mark.parametrize("backend", BACKENDS)
def test_nearer_triangle_wins_regardless_of_order(backend):
    near = [[2.0, 2.0, 1.0], [18.0, 3.0, 1.0], [4.0, 17.0, 1.0]]
    far = [[1.0, 1.0, 3.0], [19.0, 1.0, 3.0], [1.0, 19.0, 3.0]]
    for order in ([near, far], [far, near]):
        sv = torch.tensor(order[0] + order[1])[None]
        attrs = sv[..., 2:].clone()  # attribute = the triangle's own depth
        out = _raster(backend, sv, torch.tensor([[0, 1, 2], [3, 4, 5]]), attrs, 20, 20)
        centre_near = out.depth[0, 6, 6].item()
        assert centre_near == pytest.approx(1.0) and out.attrs[0, 6, 6, 0] == pytest.approx(1.0)
        assert out.depth[0, 1, 17].item() == pytest.approx(3.0)  # only the far one there
        drawn = out.mask[0] > 0
        assert torch.allclose(out.attrs[0, ..., 0][drawn], out.depth[0][drawn])


@pytest.mark.parametrize("backend", BACKENDS)
def test_backface_culling_convention(backend):
    front = torch.tensor([[[2.0, 2.0, 1.0], [14.0, 2.0, 1.0], [2.0, 14.0, 1.0]]])
    # e = (x1-x0)(y2-y0) - (x2-x0)(y1-y0) = 12*12 > 0: front-facing
    faces, back = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 1]])
    attrs = torch.ones(1, 3, 1)
    drawn = _raster(backend, front, faces, attrs, 16, 16).mask.sum()
    assert drawn > 50
    assert _raster(backend, front, back, attrs, 16, 16).mask.sum() == 0
    both = _raster(backend, front, back, attrs, 16, 16, cull=False)
    assert both.mask.sum() == drawn
    assert torch.allclose(both.attrs, _raster(backend, front, faces, attrs, 16, 16).attrs)


def test_degenerate_offscreen_and_behind_camera_are_skipped():
    sv = torch.tensor([[[1.0, 1.0, 1.0], [9.0, 9.0, 1.0], [5.0, 5.0, 1.0],  # collinear
                        [-30.0, 2.0, 1.0], [-20.0, 2.0, 1.0], [-30.0, 9.0, 1.0],  # off-screen
                        [2.0, 2.0, -1.0], [14.0, 2.0, 1.0], [2.0, 14.0, 1.0]]])  # z <= 0
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    for backend in BACKENDS:
        assert _raster(backend, sv, faces, torch.ones(1, 9, 2), 16, 16, cull=False).mask.sum() == 0
    # partly outside: clipped to the image, not dropped
    big = torch.tensor([[[-50.0, -50.0, 1.0], [120.0, -50.0, 1.0], [-50.0, 120.0, 1.0]]])
    out = rasterize(big, torch.tensor([[0, 1, 2]]), torch.ones(1, 3, 1), 16, 16)
    assert out.mask.sum() == 256


def _random_scene(seed: int, b: int = 3, n_tri: int = 300, h: int = 48, w: int = 64):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(b, n_tri, 1, 3, generator=g) * torch.tensor([w + 20.0, h + 20.0, 5.0]) \
        - torch.tensor([10.0, 10.0, -0.5])
    sizes = torch.rand(b, n_tri, 1, 1, generator=g) ** 3 * 30 + 0.3
    offs = torch.randn(b, n_tri, 3, 3, generator=g) * torch.tensor([1.0, 1.0, 0.2])
    sv = (centres + sizes * offs).reshape(b, -1, 3)
    sv[..., 2] = sv[..., 2].clamp_min(0.05)
    faces = torch.arange(3 * n_tri).reshape(n_tri, 3)
    attrs = torch.rand(b, 3 * n_tri, 4, generator=g)
    return sv, faces, attrs, h, w


@pytest.mark.parametrize("cull", [True, False])
def test_backends_agree_on_random_scene(cull):
    sv, faces, attrs, h, w = _random_scene(1)
    ref = rasterize(sv, faces, attrs, h, w, cull, backend="numba")
    others = [b for b in BACKENDS if b != "numba"]
    outs = [_raster(b, sv, faces, attrs, h, w, cull) for b in others]
    # tiny chunks and batch groups exercise the torch kernel's memory bounding
    outs.append(RasterOutput(*raster_torch(sv, faces, attrs, h, w, cull, chunk=256,
                                           max_tris_per_pass=400)))
    assert ref.mask.sum() > 0.5 * ref.mask.numel()
    for out in outs:
        assert torch.equal(ref.mask, out.mask)  # coverage is exact integer arithmetic
        both = ref.mask > 0
        assert torch.allclose(ref.depth[both], out.depth[both], atol=1e-6)
        close = (ref.attrs - out.attrs).abs().amax(-1)[both] < 1e-5
        assert close.float().mean() > 0.999  # rare exact-depth ties may differ


@pytest.mark.parametrize("backend", BACKENDS)
def test_sphere_shading_matches_analytic_normals(backend):
    verts, faces = uv_sphere(48, 96)
    cx, cy, radius = 32.0, 30.0, 26.0
    sv = sphere_screen(verts, cx, cy, radius)[None]
    gamma = torch.randn(1, 27, generator=torch.Generator().manual_seed(3)) * 0.3
    albedo = torch.tensor([0.8, 0.6, 0.5]).expand(1, verts.shape[0], 3)
    attrs = torch.cat([albedo, verts[None]], -1)
    out = _raster(backend, sv, raster_faces(faces), attrs, 64, 64)
    n_pix = torch.nn.functional.normalize(out.attrs[..., 3:], dim=-1)
    irr = sh_irradiance(n_pix.reshape(1, -1, 3), gamma).reshape(1, 64, 64, 3)
    colour = out.attrs[..., :3] * irr
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    nx, ny = (xs - cx) / radius, -(ys - cy) / radius
    rho2 = nx ** 2 + ny ** 2
    n_true = torch.stack([nx, ny, (1 - rho2).clamp_min(0).sqrt()], -1)
    expected = albedo[0, 0] * sh_irradiance(n_true.reshape(1, -1, 3), gamma).reshape(1, 64, 64, 3)
    interior = rho2 < 0.8 ** 2
    assert torch.all(out.mask[0][interior] == 1) and torch.all(out.mask[0][rho2 > 1.05] == 0)
    err = (colour - expected).abs()[0][interior]
    assert err.max() < 0.01 * expected.abs().max(), err.max()
    # depth of the visible (front) hemisphere
    assert torch.allclose(out.depth[0][interior], 10 - n_true[..., 2][interior], atol=2e-3)


def test_vertex_normals_of_sphere_are_radial_and_isolated_vertex_is_safe():
    verts, faces = uv_sphere(24, 48)
    v = torch.cat([verts, torch.tensor([[5.0, 5.0, 5.0]])])[None].repeat(2, 1, 1) * 3.0
    n = vertex_normals(v, faces)
    # the UV triangulation's diagonals tilt area-weighted normals a little near the poles
    assert torch.all((n[:, :-1] * verts[None]).sum(-1) > 0.998)
    assert torch.allclose(n[:, -1], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(n.norm(dim=-1), torch.ones(2, v.shape[1]))


def test_sh_basis_convention():
    n = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    x, y, z = n.unbind(-1)
    a = (math.pi, 2 * math.pi / math.sqrt(3), 2 * math.pi / math.sqrt(8))
    c = (1 / math.sqrt(4 * math.pi), math.sqrt(3) / math.sqrt(4 * math.pi),
         3 * math.sqrt(5) / math.sqrt(12 * math.pi))
    k2 = a[2] * c[2]
    expected = torch.stack([torch.full_like(x, a[0] * c[0]), -a[1] * c[1] * y, a[1] * c[1] * z,
                            -a[1] * c[1] * x, k2 * x * y, -k2 * y * z,
                            k2 * 0.5 / math.sqrt(3) * (3 * z * z - 1), -k2 * x * z,
                            k2 * 0.5 * (x * x - y * y)], -1)
    assert torch.allclose(sh_basis(n), expected)
    # the 0.8 offset: gamma = 0 gives uniform grey irradiance 0.8 * a0 * c0
    irr = sh_irradiance(n[None], torch.zeros(1, 27))
    assert torch.allclose(irr, torch.full_like(irr, 0.8 * a[0] * c[0]))


def _sphere_dirs(n: int = 2000) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=torch.Generator()
                                                     .manual_seed(5)), dim=-1)


def test_light_to_sh_direction_ambient_and_fit():
    one, zero = torch.ones(1), torch.zeros(1)
    white = torch.ones(1, 3)
    from_x = light_to_sh(one * math.pi / 2, zero, one, zero + 0.2, white)
    irr = sh_irradiance(torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0]]]), from_x)
    assert torch.all(irr[0, 0] > irr[0, 1] + 0.5)
    ambient_only = light_to_sh(zero, zero, zero, one * 0.7, torch.tensor([[1.0, 0.5, 0.25]]))
    irr = sh_irradiance(_sphere_dirs()[None], ambient_only)
    assert torch.allclose(irr, torch.tensor([0.7, 0.35, 0.175]).expand_as(irr), atol=1e-5)
    # fit error of the clamped-cosine lobe, 2nd-order SH: a few percent of the intensity
    yaw, pitch = torch.tensor([0.4, -1.2]), torch.tensor([0.3, -0.2])
    inten, amb = torch.tensor([1.0, 2.0]), torch.tensor([0.3, 0.1])
    col = torch.tensor([[1.0, 0.9, 0.8], [0.6, 0.7, 1.0]])
    n = _sphere_dirs()[None].expand(2, -1, -1)
    target = col[:, None] * (amb[:, None, None] + inten[:, None, None]
                             * (n @ light_direction(yaw, pitch)[..., None]).clamp_min(0))
    rms = (sh_irradiance(n, light_to_sh(yaw, pitch, inten, amb, col)) - target) \
        .pow(2).mean(1).sqrt()
    assert torch.all(rms < 0.05 * inten[:, None])


def test_light_direction_convention_and_inverse():
    d = light_direction(torch.zeros(1), torch.zeros(1))
    assert torch.allclose(d, torch.tensor([[0.0, 0.0, 1.0]]))
    yaw, pitch = torch.tensor([0.5, -0.8]), torch.tensor([0.2, 0.4])
    inten, amb = torch.tensor([1.5, 0.6]), torch.tensor([0.4, 0.2])
    col = torch.tensor([[1.0, 0.8, 0.7], [0.5, 0.9, 1.0]])
    back = sh_to_light(light_to_sh(yaw, pitch, inten, amb, col))
    for key, val in (("yaw", yaw), ("pitch", pitch), ("intensity", inten), ("ambient", amb),
                     ("colour", col)):
        assert torch.allclose(back[key], val, atol=2e-3), key


def test_input_validation():
    sv = torch.rand(2, 4, 3) * 8
    faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
    attrs = torch.rand(2, 4, 3)
    bad = [
        ((sv.double(), faces, attrs), "screen_verts"),
        ((sv[..., :2], faces, attrs), "screen_verts"),
        ((sv, faces.int(), attrs), "faces"),
        ((sv, faces[:, :2], attrs), "faces"),
        ((sv, faces + 2, attrs), "faces"),
        ((sv, faces - 1, attrs), "faces"),
        ((sv, faces, attrs[:1]), "vert_attrs"),
        ((sv, faces, attrs[..., :0]), "vert_attrs"),
        ((sv, faces, attrs.half()), "vert_attrs"),
    ]
    nan_sv = sv.clone()
    nan_sv[1, 2, 0] = float("nan")
    inf_sv = sv.clone()
    inf_sv[0, 0, 2] = float("inf")
    bad += [((nan_sv, faces, attrs), "screen_verts"), ((inf_sv, faces, attrs), "screen_verts")]
    for args, name in bad:
        with pytest.raises(ValueError, match=name):
            rasterize(*args, 8, 8)
    with pytest.raises(ValueError, match="height"):
        rasterize(sv, faces, attrs, 0, 8)
    with pytest.raises(ValueError, match="backend"):
        rasterize(sv, faces, attrs, 8, 8, backend="opengl")
    with pytest.raises(ValueError, match="numba"):
        _pick_backend("numba", torch.device("cuda"))
    assert _pick_backend("auto", torch.device("cuda")) == "torch"
    assert _pick_backend("auto", torch.device("cpu")) == "numba"
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="numba"):
            rasterize(sv.cuda(), faces.cuda(), attrs.cuda(), 8, 8, backend="numba")
    empty = rasterize(sv, torch.zeros(0, 3, dtype=torch.int64), attrs, 8, 8, backend="torch")
    assert empty.mask.sum() == 0 and torch.isinf(empty.depth).all()


def test_preallocated_out_is_overwritten():
    sv, faces, attrs, h, w = _random_scene(2, b=2, n_tri=50)
    fresh = rasterize(sv, faces, attrs, h, w)
    for backend in ("numba", "torch"):
        out = RasterOutput(torch.full((2, h, w, 4), 7.0), torch.full((2, h, w), 7.0),
                           torch.full((2, h, w), 7.0))
        got = rasterize(sv, faces, attrs, h, w, backend=backend, out=out)
        assert got is out
        assert torch.equal(out.mask, fresh.mask) and torch.equal(out.depth, fresh.depth)
        assert torch.allclose(out.attrs, fresh.attrs, atol=1e-6)
    with pytest.raises(ValueError, match="out.attrs"):
        rasterize(sv, faces, attrs, h, w, out=RasterOutput(torch.zeros(2, h, w, 3),
                                                           fresh.mask, fresh.depth))


def test_timing_report():
    """Not a benchmark assertion: prints the rasteriser's cost on the lead's workload."""
    verts, faces = uv_sphere(87, 140)  # 11,902 vertices, 23,800 triangles
    faces = raster_faces(faces)
    b = 256
    sv = sphere_screen(verts, 112.0, 112.0, 100.0)[None].repeat(b, 1, 1).contiguous()
    attrs = torch.rand(b, verts.shape[0], 6)
    warmup()
    rasterize(sv[:4], faces, attrs[:4], 224, 224)
    t0 = time.perf_counter()
    out = rasterize(sv, faces, attrs, 224, 224, backend="numba")
    dt_fresh = (time.perf_counter() - t0) / b
    t0 = time.perf_counter()
    rasterize(sv, faces, attrs, 224, 224, backend="numba", out=out)
    dt_reuse = (time.perf_counter() - t0) / b
    t0 = time.perf_counter()
    ref = rasterize(sv[:4], faces, attrs[:4], 224, 224, backend="torch")
    dt_torch = (time.perf_counter() - t0) / 4
    print(f"\nraster 224x224, {faces.shape[0]} tris, C=6, wall time per image: numba "
          f"{dt_fresh * 1e3:.3f} ms (fresh outputs), {dt_reuse * 1e3:.3f} ms (out= reused), "
          f"{numba.get_num_threads()} threads; torch-cpu {dt_torch * 1e3:.1f} ms")
    assert torch.equal(out.mask[:4], ref.mask)
