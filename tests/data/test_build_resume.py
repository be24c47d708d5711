"""Resumed builds (issue 16 item 6): another config or seed is refused naming what differs, images that
do not decode are rendered again, and a resumed alignment report keeps its counts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.data.benchmark import STATE as BENCH_STATE
from synface.data.benchmark import build_synthetic_benchmark
from synface.data.errors import DataError
from synface.data.synth_set import STATE_NAME as STATE
from synface.data.synthetic import SynthConfig, build_dataset, whole_image
from synface.generator import FaceGenerator


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def _damage(a: Path, b: Path) -> None:
    """`a` cut to half its bytes (a truncated copy), `b` emptied (a zero-byte file)."""
    a.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    b.write_bytes(b"")


def test_whole_image_refuses_empty_truncated_and_garbled_files(tmp_path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(good, quality=95)
    data = good.read_bytes()
    assert whole_image(good, "jpg")
    for name, content in {"empty": b"", "half": data[: len(data) // 2], "tail": data[:-2],
                          "garbled": data[:200] + bytes(len(data) - 202) + data[-2:]}.items():
        (tmp_path / f"{name}.jpg").write_bytes(content)
        assert not whole_image(tmp_path / f"{name}.jpg", "jpg"), name
    png = tmp_path / "x.png"
    Image.open(good).save(png)
    assert whole_image(png, "png") and not whole_image(good, "png")
    png.write_bytes(png.read_bytes()[:-5])
    assert not whole_image(png, "png")


def test_a_synthetic_build_resumed_with_another_seed_is_refused_and_damaged_images_rerendered(
        tmp_path, gen: FaceGenerator) -> None:
    cfg = SynthConfig(ids=4, samples=3, seed=2)
    out = tmp_path / "set"
    calls = {"n": 0}

    def stop_after_two_batches() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    partial = build_dataset(cfg, out, gen, batch_size=3, stop=stop_after_two_batches)
    assert partial.rendered == 6 and (out / STATE).is_file() and not (out / "dataset.json").exists()
    before = _snapshot(out)
    with pytest.raises(DataError) as info:
        build_dataset(SynthConfig(ids=4, samples=3, seed=5), out, gen)
    assert "seed 2 there, 5 now" in str(info.value) and str(out) in str(info.value)
    with pytest.raises(DataError, match="samples 3 there, 2 now"):
        build_dataset(SynthConfig(ids=4, samples=2, seed=2), out, gen)
    assert _snapshot(out) == before  # nothing written, nothing lost

    _damage(out / "00000" / "001.jpg", out / "00001" / "002.jpg")
    kept = {p: out.joinpath(p).read_bytes() for p in ("00000/000.jpg", "00001/000.jpg")}
    resumed = build_dataset(cfg, out, gen, batch_size=3)
    assert resumed.already_present == 4 and resumed.rendered == 8
    assert resumed.extra == {"damaged_rerendered": 2}
    fresh = tmp_path / "fresh"
    build_dataset(cfg, fresh, gen)
    for p in sorted(fresh.glob("*/*.jpg")):
        assert (out / p.relative_to(fresh)).read_bytes() == p.read_bytes(), p
    assert all(out.joinpath(p).read_bytes() == data for p, data in kept.items())
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in out.glob("*/*.jpg"))  # not mkstemp's 0600


def test_a_benchmark_resumed_with_another_seed_is_refused_and_damaged_images_rerendered(
        tmp_path, gen: FaceGenerator) -> None:
    out = tmp_path / "bench"

    def interrupt(done: int, total: int) -> None:  # the build dies after its images, before its card
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, seed=0, progress=interrupt, generator=gen)
    assert (out / BENCH_STATE).is_file() and not (out / "benchmark.json").exists()
    before = _snapshot(out)
    with pytest.raises(DataError) as info:
        build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, seed=1, generator=gen)
    assert "seed 0 there, 1 now" in str(info.value)
    with pytest.raises(DataError, match="pairs_per_fold 2 there, 3 now"):
        build_synthetic_benchmark(out, folds=2, pairs_per_fold=3, seed=0, generator=gen)
    assert _snapshot(out) == before
    held = json.loads((out / BENCH_STATE).read_text())
    (out / BENCH_STATE).write_text(json.dumps({**held, "generator": "builtin-6"}))  # half drawn by an older renderer
    with pytest.raises(DataError, match="drawn by generator 'builtin-6'"):
        build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, seed=0, generator=gen)
    (out / BENCH_STATE).write_text(json.dumps(held))
    before = _snapshot(out)

    _damage(out / "SynBench_00000" / "SynBench_00000_0001.jpg", out / "SynBench_00003" / "SynBench_00003_0002.jpg")
    build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, seed=0, generator=gen)
    card = json.loads((out / "benchmark.json").read_text())
    assert card["seed"] == 0 and not (out / BENCH_STATE).exists()
    fresh = build_synthetic_benchmark(tmp_path / "fresh", folds=2, pairs_per_fold=2, seed=0, generator=gen)
    for p in sorted(fresh.glob("*/*.jpg")):
        assert (out / p.relative_to(fresh)).read_bytes() == p.read_bytes(), p
    assert (out / "benchmark.bin").read_bytes() == (fresh / "benchmark.bin").read_bytes()
    with pytest.raises(DataError, match="seed 0 there, 1 now"):  # a finished one names the difference too
        build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, seed=1, generator=gen)


def test_a_benchmark_into_a_folder_of_other_files_is_refused(tmp_path, gen: FaceGenerator) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds no benchmark build"):
        build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, generator=gen)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="dlib missing")
def test_a_resumed_alignment_report_keeps_its_counts(tmp_path) -> None:
    from synface.data.align import JOURNAL_NAME, REPORT_NAME, align_folder

    src = tmp_path / "src"
    rng = np.random.default_rng(1)
    for person in ("a", "b"):
        (src / person).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)).save(src / person / f"{k}.jpg")
    dst = tmp_path / "dst"
    first = align_folder(src, dst, workers=1)
    counts = (first.detector, first.fallback)
    assert sum(counts) == 6 and first.aligned_now == 6
    (dst / "a" / "1.jpg").unlink()
    (dst / "b" / "2.jpg").unlink()
    again = align_folder(src, dst, workers=1)
    assert (again.skipped_existing, again.aligned_now) == (4, 2)
    saved = json.loads((dst / REPORT_NAME).read_text())
    assert (saved["detector"], saved["fallback"]) == counts and saved["total"] == 6
    # a crop written just before a kill, before its journal line: aligned again, so it is counted
    journal = dst / JOURNAL_NAME
    lost = "a/0.jpg"
    lines = [line for line in journal.read_text().splitlines() if not line.endswith(lost)]
    journal.write_text("\n".join(lines) + "\nfallb")  # its line never written, and a torn one
    third = align_folder(src, dst, workers=1)
    assert (third.skipped_existing, third.aligned_now) == (5, 1)
    assert (third.detector, third.fallback) == counts
    assert json.loads((dst / REPORT_NAME).read_text())["fallback"] == counts[1]
