"""The fault audit's machinery: where a case runs, how it runs and how its outcome is judged.

A case is a row of data (`Row`): the arguments after `python -m synface`, what to prepare, and what
outcome is right. Paths in a row are templates filled at run time: `{case}` (the case's own
folder), `{fix}` (shared inputs no case may change), `{ws}` ($SYNFACE_HOME), `{top}`, `{markers}`
(where a malicious pickle would leave its marker), `{outside}` (files outside the workspace a hostile
state file names), `{run_id}` (the fixture's trained run).

The workspace sits a few folders deep, so a name that climbs out of its folder lands somewhere the
audit watches. Every case must end one of the right ways:

- refused: its documented exit code (2) with exactly one `error:` line on stderr naming one of the
  row's `names`, no traceback, nothing on stderr but that line (and warnings), none of the row's
  `absent` paths left behind, no temp file in its folder;
- accepted: exit 0 where the row has an `ok` check, and that check passes;
- and always: no traceback, no hang (the row's timeout), no payload marker, no write outside the
  workspace and its own folder (the fixtures, the folders around the workspace and the files
  `{outside}` holds are watched), and the bystander process (an unrelated pid the hostile state
  files name) still alive and never signalled.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tests.support import REPO

TQDM_BAR = re.compile(r"(%\||\r|\d+\w* \[\d\d:\d\d)")  # a bar: percentage, carriage return or 'N unit [00:00'


@dataclass
class Row:
    """One case. `argv`: after `python -m synface` (str(...) of each item, templates filled).
    `names`: the error line names one of these. `setup(ctx)`: prepares the case's inputs. `ok(res,
    ctx)`: exit 0 is right when it returns None (else the reason it is wrong); without it exit 0 is
    a silent failure. `absent`: paths a refusal must not leave. `codes`: exit codes of a refusal.
    `fsize`: writes past this many bytes fail (a full disk). `marker`: a pickle payload's marker
    file name under {markers}. A kill row (`kill_when`): the command runs in a fresh interpreter
    and is SIGKILLed as soon as `kill_when(ctx)` holds (a milestone seen on disk); then `rerun` (or
    the same command) must finish and pass `ok`: nothing lost, nothing twice, no temp file left."""

    id: str
    argv: list
    names: tuple = ()
    setup: Callable[["Context"], Any] | None = None
    ok: Callable[["Result", "Context"], str | None] | None = None
    absent: tuple = ()
    codes: tuple = (2,)
    fsize: int | None = None
    marker: str | None = None
    timeout: float = 120
    kill_when: Callable[["Context"], bool] | None = None
    rerun: list | None = None


@dataclass
class Result:
    code: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool


class Context:
    """The audit's folders for one case (templates in rows are filled from `values`)."""

    def __init__(self, top: Path, case_id: str, extra: dict[str, str]) -> None:
        self.top = top
        self.deep = top / "deep" / "a" / "b"  # names with ../ from here land in deep/a[/b]
        self.cwd = self.deep / "cwd"
        self.ws = self.deep / "ws"
        self.fix = top / "fix"
        self.markers = top / "markers"
        self.outside = top / "outside"
        self.logs = top / "logs"
        self.case = top / "cases" / case_id
        self.extra = extra
        self.cleanup: list[subprocess.Popen] = []  # processes a setup started, ended after the case
        for p in (self.cwd, self.ws, self.fix, self.markers, self.outside, self.logs, self.case, self.deep / "home"):
            p.mkdir(parents=True, exist_ok=True)

    @property
    def values(self) -> dict[str, str]:
        return {"case": str(self.case), "fix": str(self.fix), "ws": str(self.ws), "top": str(self.top),
                "markers": str(self.markers), "outside": str(self.outside), **self.extra}

    def fill(self, item: Any) -> str:
        return str(item).format(**self.values) if isinstance(item, str) else str(item)

    def path(self, template: str) -> Path:
        return Path(self.fill(template))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNFACE_JOB_SLOT")}
        env.update(SYNFACE_HOME=str(self.ws), PYTHONPATH=str(REPO), HOME=str(self.deep / "home"),
                   PYTHONDONTWRITEBYTECODE="1", TQDM_MININTERVAL="0.5")
        return env


class ForkServer:
    """A client of tests/audit/fork_server.py: one case at a time, forked from warm imports."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fork_server.py"))], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        ready = json.loads(self.proc.stdout.readline())
        assert "ready" in ready, ready

    def run(self, ctx: Context, argv: list[str], tag: str, timeout: float, fsize: int | None = None) -> Result:
        out, err = ctx.logs / f"{tag}.out", ctx.logs / f"{tag}.err"
        request = {"argv": argv, "cwd": str(ctx.cwd), "env": ctx.env(), "out": str(out), "err": str(err),
                   "timeout": timeout, "fsize": fsize}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return Result(answer["code"], out.read_text(errors="replace"), err.read_text(errors="replace"),
                      answer["seconds"], answer["timed_out"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run_killed(ctx: Context, row: Row) -> str:
    """Start `row`'s command in a fresh interpreter and SIGKILL it (and its workers) at the row's
    milestone; returns when it was killed (or that it ended first)."""
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    proc = subprocess.Popen([sys.executable, "-m", "synface", *map(ctx.fill, row.argv)], cwd=ctx.cwd, env=ctx.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < row.timeout:
        try:
            if row.kill_when(ctx):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    ended = proc.poll() is not None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    return f"ended first (exit {proc.returncode})" if ended else f"killed after {time.time() - t0:.1f} s"


def run_fresh(ctx: Context, argv: list, timeout: float = 300) -> Result:
    """`python -m synface ARGV` in a fresh interpreter (fixtures)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "synface", *map(ctx.fill, argv)], cwd=ctx.cwd, env=ctx.env(),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout, proc.stderr, 0.0, False)
    except subprocess.TimeoutExpired as exc:
        return Result(None, str(exc.stdout or ""), str(exc.stderr or ""), timeout, True)


def stderr_lines(err: str) -> list[str]:
    """stderr without progress bars."""
    return [line for line in err.split("\n") if line.strip() and not TQDM_BAR.search(line)]


def watched(ctx: Context) -> dict[str, tuple]:
    """What no case may change: the entries around the workspace, the fixtures and the files
    outside the workspace that hostile state files name (sizes and modification times)."""
    state: dict[str, tuple] = {}
    for folder in (ctx.top, ctx.top / "deep", ctx.top / "deep" / "a", ctx.deep, ctx.cwd):
        for p in folder.iterdir():
            state[str(p)] = ("entry",)
    for base in (ctx.fix, ctx.markers, ctx.outside):
        for p in base.rglob("*"):
            try:
                st = p.lstat()
            except OSError:
                continue
            state[str(p)] = (st.st_size, st.st_mtime_ns)
    return state


def escapes(before: dict, after: dict) -> list[str]:
    changed = [p for p, sig in after.items() if before.get(p) != sig]
    removed = [f"{p} (removed)" for p in before if p not in after]
    return sorted(changed + removed)


def judge(row: Row, ctx: Context, res: Result) -> str | None:
    """Why the outcome is wrong (None when it is one of the right ones)."""
    if res.timed_out:
        return f"hang: still running after {row.timeout:.0f} s"
    if row.marker and (ctx.markers / row.marker).exists():
        return "payload: a malicious pickle ran code"
    if "Traceback" in res.err:
        return "traceback: " + res.err.strip().splitlines()[-1][:300]
    lines = stderr_lines(res.err)
    errors = [line for line in lines if line.startswith("error:")]
    if res.code == 0:
        if row.ok is None:
            return "silent: exit 0 for an input that should be refused"
        why = row.ok(res, ctx)
        return None if why is None else f"silent: {why}"
    if res.code not in row.codes:
        return f"unclear: exit code {res.code}: {res.err.strip()[-300:]}"
    others = [line for line in lines if not line.startswith(("error:", "warning:", "note:"))]
    if len(errors) != 1 or others:
        return f"unclear: {len(errors)} error lines, {len(others)} other lines: {(errors + others)[:3]}"
    names = [ctx.fill(n) for n in row.names]
    if names and not any(n in errors[0] for n in names):
        return f"unclear: the line names none of {names[:3]}: {errors[0][:300]}"
    left = [str(p) for p in map(ctx.path, row.absent) if os.path.lexists(p)]
    if left:
        return f"unclear: refused but left {left}"
    tmp = [str(p) for p in ctx.case.rglob("*.tmp")]
    if tmp:
        return f"unclear: refused but left temp files {tmp[:3]}"
    return None


# ----------------------------------------------------------------------------- small inputs


def jpeg(path: Path, seed: int = 0, side: int = 32) -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def image_folder(root: Path, ids: int = 3, per: int = 3, seed: int = 0) -> Path:
    for i in range(ids):
        for k in range(per):
            jpeg(root / f"p{i}" / f"{k}.jpg", seed=seed + 10 * i + k)
    return root


def fake_lfw(root: Path, people: tuple[str, ...] = ("Ann_A", "Bob_B", "Cid_C", "Dan_D"), folds: int = 2) -> Path:
    """LFW layout (images/<Name>/<Name>_000k.jpg, pairs.txt, people.txt) of random images."""
    for n, name in enumerate(people):
        for k in (1, 2):
            jpeg(root / "images" / name / f"{name}_{k:04d}.jpg", seed=7 * n + k)
    lines = [f"{folds}\t2"]
    for f in range(folds):
        a, b = people[(2 * f) % len(people)], people[(2 * f + 1) % len(people)]
        lines += [f"{a}\t1\t2", f"{b}\t1\t2", f"{a}\t1\t{b}\t2", f"{b}\t1\t{a}\t2"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    per_fold = len(people) // folds
    ptxt = [str(folds)]
    for f in range(folds):
        group = people[f * per_fold:(f + 1) * per_fold]
        ptxt += [str(len(group))] + [f"{p}\t2" for p in group]
    (root / "people.txt").write_text("\n".join(ptxt) + "\n")
    return root


class Payload:
    """Unpickling this runs code that creates `marker`: the marker must never appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('payload ran')",))


def evil_bin(path: Path, marker: Path, protocol: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(([Payload(marker), b"x"], [True]), protocol=protocol))
    return path


def evil_pt(path: Path, marker: Path, legacy: bool = False, where: str = "model") -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"model": {}, "config": {"backbone": "compact"}, "head": {}, "optimizer": {}, "epoch": 0, "step": 0}
    obj[where] = Payload(marker)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def evil_npz(path: Path, marker: Path, **arrays) -> Path:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(marker)
    np.savez(path, payload=obj, **arrays)
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def metrics_steps(run: Path) -> list[int]:
    steps = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == "train":
            steps.append(int(rec["step"]))
    return steps


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png") and p.is_file())
