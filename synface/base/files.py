"""Atomic writes: readers (a training run, the app, a resumed build) never see a half-written file.
Also: OS errors that name their file, a free-space check before a big write, the lock that
serialises a read-modify-write of a shared file between processes, and the one timestamp format
state files record."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

#: permissions of every file written atomically (mkstemp would leave 0600)
FILE_MODE = 0o644
#: how atomic_path's temp files end: `.<name>.<pid>-<random>.tmp`, the pid of the writer
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[^.]+\.tmp$")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it is flushed to disk and replaces `path`, on
    error it is removed.

    Why fsync before the rename: after a power loss or kill, the new name must never point at
    an empty or partial file.
    """
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with naming(path):
            yield tmp_path
            _fsync(tmp_path)
            os.chmod(tmp_path, FILE_MODE)
            os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give an OSError raised inside the block that names no file (a full disk on `write()`, an
    error from a library that wrote through a handle) `path` as its filename, so the one-line
    message the command line prints says which file failed."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def nearest_existing(path: str | Path) -> Path:
    """`path` or its nearest ancestor that exists (where a new folder would be created)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_file_target(path: str | Path, option: str) -> None:
    """An output FILE the user named can be made: neither it nor a folder above it is in the way
    (a folder where the file goes, a file where a folder goes). Checked before the work that
    produces it, so a bad path is one line naming the option, not a failure after minutes."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file path")
    where = nearest_existing(path.parent)
    if not where.is_dir():
        raise ValueError(f"{option} {path}: {where} is a file, not a folder")


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB', 3.2e9 -> '3.0 GB' (binary units, as `df -h`)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_free_space(path: str | Path, need_bytes: int, what: str) -> None:
    """Refuse (ValueError naming `what`, the estimate and the free space) when the disk holding
    `path` (or the folder that would hold it) has less than `need_bytes` free, before anything
    is written."""
    if need_bytes <= 0:
        return
    where = nearest_existing(path)
    free = shutil.disk_usage(where if where.is_dir() else where.parent).free
    if need_bytes > free:
        raise ValueError(f"{what} needs about {human_bytes(need_bytes)} but {where} has only "
                         f"{human_bytes(free)} free; free some space or choose a smaller set or another --out")


def _fsync(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def append_line(path: str | Path, line: str) -> None:
    """Append `line` (no newline of its own) as one line of a log that readers parse line by line.

    Why check the last byte: a writer killed mid-line leaves a torn last line; appending straight
    after it would glue this record onto it and a reader would lose both. The file is opened per
    line, so a killed writer loses at most the line it was writing."""
    data = (line + "\n").encode("utf-8")
    with naming(path), open(path, "a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)  # append mode: always at the end
        f.flush()


def write_bytes(path: str | Path, data: bytes) -> None:
    """`data` into `path`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, data: Any) -> None:
    """`data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def sweep_temp_files(folder: str | Path) -> int:
    """Remove the temp files of atomic writes a kill interrupted in `folder` (not below it): those
    whose writer is gone. A temp file names its writer's pid, so a live writer's is never
    touched; one without a pid (an older version's) is stale. Returns how many."""
    from synface.base.processes import pid_alive  # noqa: PLC0415

    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for tmp in folder.glob(f".*{TEMP_SUFFIX}"):
        match = _TEMP_NAME.match(tmp.name)
        with contextlib.suppress(OSError):
            stale = not match or not pid_alive(int(match.group(1)))
            if stale and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
                removed += 1
    return removed


def rename_new(src: str | Path, dst: str | Path) -> None:
    """Rename `src` to `dst` only when nothing is at `dst` (FileExistsError otherwise), in one step
    where the system offers it (renameat2 RENAME_NOREPLACE): claiming a name and filling it are
    then one act, so no half-made folder is ever seen under it."""
    src, dst = Path(src), Path(dst)
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        if renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), 1) == 0:  # AT_FDCWD, RENAME_NOREPLACE
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


#: hidden folders publish_folder fills before naming them: `.creating-<pid>-<random>`
CREATING_PREFIX = ".creating-"


def publish_folder(base: str | Path, names: Iterable[str], fill: Callable[[Path], Any]) -> Path:
    """A new folder in `base` under the first of `names` that is free, made whole before it gets
    that name: `fill` writes into a hidden folder, which is then renamed (`rename_new`). A kill
    never leaves a half-made folder under a real name; the hidden folders of killed writers are
    removed by the next call."""
    from synface.base.processes import pid_alive  # noqa: PLC0415

    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob(f"{CREATING_PREFIX}*"):
        pid = old.name[len(CREATING_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{CREATING_PREFIX}{os.getpid()}-", dir=base))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide it from the workspace's other users
        fill(staging)
        for name in names:
            try:
                rename_new(staging, base / name)
                return base / name
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "every candidate name is taken", str(base))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def open_regular(path: str | Path, limit: int | None = None, follow_links: bool = False) -> BinaryIO:
    """`path` opened for reading when it is a regular file; OSError (naming it) otherwise.

    Why: a file the tool reads is untrusted, its own state files too. Opening a FIFO blocks until
    a writer appears (forever), a device can be endless, and a link can point anywhere. So the
    name is opened without following a final link and without blocking, and the open file is
    checked (fstat) before a byte is read. `limit`: a larger file is refused too (ValueError naming
    it and the limit), before anything is read. `follow_links`: a link to a regular file is read
    (a user's image folder made of links), still never a FIFO or device."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_links and os.path.islink(path):
            raise OSError(exc.errno, "is a symbolic link, not a regular file", str(path)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode) else \
                "a device or socket"
            raise OSError(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        if limit is not None and info.st_size > limit:
            raise ValueError(f"{path}: {human_bytes(info.st_size)}, more than the {human_bytes(limit)} this file may hold")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int | None = None, start: int = 0, tail: int | None = None,
                 follow_links: bool = False) -> bytes:
    """The bytes of regular file `path` (`open_regular`: never a FIFO or device, nor a link unless
    `follow_links`), from byte `start`, at most its last `tail` bytes; a file over `limit` bytes is
    a ValueError."""
    with open_regular(path, limit, follow_links) as handle:
        size = os.fstat(handle.fileno()).st_size
        begin = min(max(0, start), size)
        if tail is not None:
            begin = max(begin, size - tail)
        handle.seek(begin)
        return handle.read(size - begin)


#: the most a state file read by read_json may weigh
MAX_JSON_BYTES = 64 << 20


def read_json(path: str | Path, default: Any = None) -> Any:
    """The JSON in `path`, or `default` when it is missing, unreadable, not a regular file (a FIFO
    would block the reader for good) or larger than MAX_JSON_BYTES."""
    try:
        return json.loads(read_regular(path, limit=MAX_JSON_BYTES, follow_links=True).decode("utf-8"))
    except (OSError, ValueError):
        return default


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths `a` and `b` in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system does not offer it."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def swap_folder(new: str | Path, target: str | Path) -> None:
    """Put folder `new` at `target` with one rename, then remove what was there.

    Why one rename: a folder whose files belong together (a face model's card, arrays and source
    index) must never be seen half old, half new, nor be gone after a kill. With a `target` in
    place the two are exchanged atomically (the old folder lands at `new` and is deleted after);
    without one, `new` is renamed to it. Where the exchange is not offered, the old folder is
    renamed aside first, so a kill between the two renames leaves `target` missing (its old
    content sits at `new`'s name + '.old')."""
    new, target = Path(new), Path(target)
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        _remove(new)
        return
    aside = new.with_name(new.name + ".old")
    if os.path.lexists(aside):
        _remove(aside)
    os.rename(target, aside)
    os.rename(new, target)
    _remove(aside)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
def utc_now() -> str:
    """The current UTC time to the second, ISO 8601 ('2025-01-01T12:00:00Z'): what every state file
    of the tool (status, queue, cards, registrations, locks) records."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the lock file `path` (created, with its folder, when missing) for
    the block, waiting while another process holds it.

    Why flock: the kernel drops it when its holder dies, so a killed process never leaves a lock
    behind that would block the next one."""
    path = Path(path)
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
