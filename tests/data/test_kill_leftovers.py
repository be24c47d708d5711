"""What the fault audit (tests/audit) found after kills and odd files: a resumed benchmark
build removes the temp files of image writes a kill interrupted, `real add` refuses an empty name and a .bin
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


WRITE_UNDER_A_LIMIT = """
import resource, signal, sys
import numpy as np
from synface.data.imageio import write_image
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2500, 2500))
try:
    write_image(sys.argv[1], np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8), "JPEG", quality=95)
except OSError as exc:
    print(exc.errno, exc.filename)
"""


def test_a_full_disk_while_writing_an_image_is_an_error_not_a_short_file(tmp_path) -> None:
    """PIL saving to a path under a file-size limit (a full disk, also for root) left a truncated
    JPEG and no error, so align packed cut crops and exited 0; write_image raises, naming the file."""
    import errno
    import subprocess
    import sys

    from tests.support import REPO

    path = tmp_path / "a" / "crop.jpg"
    path.parent.mkdir()
    out = subprocess.run([sys.executable, "-c", WRITE_UNDER_A_LIMIT, str(path)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == [str(errno.EFBIG), str(path)], (out.stdout, out.stderr)
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("name", ["", " ", "../x"])
def test_real_add_refuses_an_empty_or_climbing_name(tmp_path, name) -> None:
    """`real add --name ""` registered the set under its default name; a name given must be valid."""
    path = tmp_path / "x.bin"
    from synface.data.verification_bin import write_bin
    from tests.data.test_input_errors import _jpeg

    write_bin(path, [_jpeg(tmp_path / f"{k}.jpg", k).read_bytes() for k in range(2)], [True])
    with pytest.raises(DataError, match="set name .* must be"):
        register_real_set(path, name=name, root=tmp_path / "ws")
    assert not (tmp_path / "ws" / "real").exists()
