"""What the fault audit (tools/fault_audit.py) found after kills and odd files: a resumed benchmark
build removes the temp files of image writes a kill interrupted, and `real add` refuses a .bin
whose images do not decode instead of registering it."""

from __future__ import annotations

import pickle

import pytest

from synface.data.benchmark import build_synthetic_benchmark
from synface.data.errors import DataError
from synface.data.realsets import register_real_set


class _Interrupt(Exception):
    pass


def test_a_resumed_benchmark_sweeps_the_temp_files_a_kill_left(gen, tmp_path) -> None:
    out = tmp_path / "bench"

    def interrupt(done: int, total: int) -> None:
        raise _Interrupt

    with pytest.raises(_Interrupt):
        build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, seed=0, progress=interrupt, generator=gen)
    person = sorted(p for p in out.iterdir() if p.is_dir())[0]
    (person / f".{person.name}_0001.jpg.k1ll3d.tmp").write_bytes(b"\xff\xd8 half a jpeg")
    build_synthetic_benchmark(out, folds=2, pairs_per_fold=2, seed=0, generator=gen)
    assert (out / "benchmark.json").is_file()
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("images", [[b"abc", b"def"], [b"\xff\xd8\xff\xe0 not really", b"\x89PNG\r\n\x1a\n"]])
def test_real_add_refuses_a_bin_of_non_images(tmp_path, images) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(pickle.dumps((images, [True]), protocol=2))
    with pytest.raises(DataError, match=r"x\.bin: not an insightface verification \.bin: its first image does not decode"):
        register_real_set(path, name="x", root=tmp_path / "ws")
    assert not (tmp_path / "ws" / "real" / "x").exists()
