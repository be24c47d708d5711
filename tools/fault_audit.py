#!/usr/bin/env python
"""Fault audit of the command line: bad inputs, malicious pickles and kill -9s (issue 16's last bar).

Run from the repository root:

    python tools/fault_audit.py --out audit.json            # everything (about 10-15 min on 2 cores)
    python tools/fault_audit.py --only eval --skip-kills    # a subset, by case id substring

Everything happens in a temporary workspace (removed afterwards unless --keep): a workspace
($SYNFACE_HOME) and a working folder nested a few levels deep, so that a name that climbs out of
its folder lands somewhere the audit watches. Each bad input runs `python -m synface <verb> ...`
(a forked child of a process that has imported the package already, which is the same `main()`
with the same uncaught-exception handling as a fresh interpreter, only faster; `--fresh` uses a
fresh interpreter for every case) and is classified:

- clean: exit code 2 (or the case's documented code) with exactly one `error:` line on stderr
  naming the file, value or option, no traceback; or, for inputs that are legitimately usable, exit
  0 with a result the case's own check accepts (a counted warning, a re-rendered image);
- traceback: "Traceback" on stderr;
- silent: exit 0 where the input should have been refused, or a result the check rejects;
- unclear: refused, but not with one line naming the culprit, another exit code, or an output left
  behind by a refusal;
- hang: still running after the case's time limit;
- escape: something written outside the workspace and the case's own folder, into an input, or
  by a name that climbed out of its parent;
- payload: a malicious pickle's marker file appeared (code ran).

Kill cases start a real `python -m synface` process, SIGKILL it at a chosen moment (a milestone
seen on disk), run the same command again (or `train --resume`) and check that nothing was lost
or duplicated: image counts match the card, metrics steps are contiguous, eval.json is written,
no `.tmp` files are left. They are classified clean, traceback (the rerun), lost (an image, step,
record or result missing or twice), leftover (nothing lost, but a temp file or an empty folder the
kill left stays after the rerun) or hang.

Full disks are real, also for root: the case runs under RLIMIT_FSIZE, so its writes past a few KB
fail with EFBIG as on a full disk (its own stdout/stderr go through pipes, outside the limit).
Read-only folders are a path under a regular file (ENOTDIR) and /sys, which root cannot write
either.

A summary table goes to stdout, the full report (every case: argv, exit code, stderr tail,
class, why) to --out as JSON. Exit code 0 when every case is clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's synface, whatever else is installed
LFW_SOURCE = Path(os.environ.get("SYNFACE_LFW", REPO.parent / "shared" / "data" / "lfw"))
CLASSES = ("clean", "traceback", "silent", "unclear", "hang", "escape", "payload", "lost", "leftover", "skipped")


# ----------------------------------------------------------------------------- the workspace


class Layout:
    """Where everything lives inside the temporary folder W."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.deep = top / "deep" / "a" / "b"          # names with ../ from here land in W/deep/a[/b]
        self.cwd = self.deep / "cwd"                   # the commands' working folder
        self.ws = self.deep / "ws"                     # $SYNFACE_HOME
        self.fix = top / "fix"                         # shared inputs (never written by a case)
        self.cases = top / "cases"
        self.markers = top / "markers"                 # where a pickle payload would drop its file
        self.logs = top / "logs"                       # each case's stdout and stderr
        for p in (self.cwd, self.ws, self.fix, self.cases, self.markers, self.logs):
            p.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SYNFACE_HOME=str(self.ws), PYTHONPATH=str(REPO), HOME=str(self.deep / "home"),
                   PYTHONDONTWRITEBYTECODE="1", TQDM_MININTERVAL="0.5")
        return env


def watched_state(lay: Layout) -> dict[str, tuple]:
    """What a case must not change: the folders around the workspace (one level), the workspace's
    top level, the fixtures (recursively), the repository's results/, assets/ and workspace/."""
    state: dict[str, tuple] = {}
    for folder in (lay.top, lay.top / "deep", lay.top / "deep" / "a", lay.deep, lay.cwd, lay.ws):
        for p in folder.iterdir():
            state[str(p)] = ("entry",)
    for base in (lay.fix, lay.markers, REPO / "results", REPO / "assets", REPO / "workspace"):
        if base.exists():
            for p in base.rglob("*"):
                try:
                    st = p.lstat()
                except OSError:
                    continue
                state[str(p)] = (st.st_size, st.st_mtime_ns)
    return state


WS_KNOWN = {"datasets", "runs", "real", "real_train", "face_models", "results", "features", "cache", "benchmarks",
            "fits", "jobs", "registry.json", "real_sets.json", "logs"}


def escapes(lay: Layout, before: dict, after: dict) -> list[str]:
    out = []
    for path, sig in after.items():
        if before.get(path) == sig:
            continue
        p = Path(path)
        if p.parent == lay.ws and (p.name in WS_KNOWN or p.name.endswith(".lock")) and "ESC" not in p.name:
            continue  # the workspace's own folders appear on first use
        out.append(path)
    for path in before:
        if path not in after and not path.startswith(str(lay.ws)):
            out.append(f"{path} (removed)")
    # a climbing name that was accepted but stayed a child of its parent (sanitised) is not an
    # escape (the exit code says whether it should have been refused); anywhere else it is
    parents = {lay.ws / sub for sub in ("runs", "datasets", "real", "real_train", "face_models")}
    hits = [str(p) for p in lay.top.rglob("*ESC*") if p.parent not in parents and not str(p).startswith(str(lay.logs))]
    out = [p for p in out if not ("ESC" in Path(p).name and Path(p).parent in parents)]
    return sorted(set(out) | set(hits))


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


def mini_real_lfw(dst: Path, per_fold: int = 4) -> bool:
    """A 5-fold LFW copy of real faces (2 photos of the first `per_fold` people with >= 2 photos of
    each people.txt fold) from the shared LFW copy; False when it is missing."""
    src = LFW_SOURCE
    if not (src / "people.txt").is_file():
        return False
    lines = (src / "people.txt").read_text().split("\n")
    nf, i, folds = int(lines[0]), 1, []
    for _ in range(nf):
        n = int(lines[i])
        i += 1
        rows = [line.split("\t") for line in lines[i:i + n]]
        i += n
        folds.append([p for p, c in rows if int(c) >= 2][:per_fold])
    people, pairs = [str(nf)], [f"{nf}\t2"]
    for ppl in folds:
        people.append(str(len(ppl)))
        for p in ppl:
            people.append(f"{p}\t2")
            for k in (1, 2):
                target = dst / "images" / p / f"{p}_{k:04d}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src / "images" / p / f"{p}_{k:04d}.jpg", target)
        pairs += [f"{ppl[0]}\t1\t2", f"{ppl[1]}\t1\t2", f"{ppl[0]}\t1\t{ppl[2]}\t1", f"{ppl[1]}\t2\t{ppl[3]}\t1"]
    (dst / "people.txt").write_text("\n".join(people) + "\n")
    (dst / "pairs.txt").write_text("\n".join(pairs) + "\n")
    return True


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


# ----------------------------------------------------------------------------- running one command


@dataclass
class Result:
    code: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool = False


def _drain_into(path: Path, fd_target: int) -> int:
    """Point `fd_target` at a pipe whose reader (a grandchild without the file-size limit) copies it
    into `path`: RLIMIT_FSIZE must fail the case's own writes, not its stderr log. Returns its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setpgrp()  # outlives a kill of the case's process group until the pipe closes
        os.close(w)
        with open(path, "wb") as fh:
            while chunk := os.read(r, 65536):
                fh.write(chunk)
        os._exit(0)
    os.close(r)
    os.dup2(w, fd_target)
    os.close(w)
    return pid


def _child(argv: list[str], cwd: Path, env: dict, out: Path, err: Path, fsize: int | None, fresh: bool) -> None:
    """In the forked child: become `python -m synface ARGV` (in this interpreter, or a fresh one
    with `fresh`) and exit with its code."""
    code = 1
    drainers: list[int] = []
    try:
        os.setpgrp()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        fi = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fi, 0)
        if fsize is None:
            os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        else:
            drainers = [_drain_into(out, 1), _drain_into(err, 2)]
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if fresh:
            os.execve(sys.executable, [sys.executable, "-m", "synface", *argv], env)
        sys.argv = ["python -m synface", *argv]
        from synface.__main__ import main

        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        code = int(code or 0)
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.close(1)
            os.close(2)
            for pid in drainers:
                os.waitpid(pid, 0)
        finally:
            os._exit(code)


class Runner:
    """Runs `python -m synface ARGV` cases, up to `jobs` at a time (forked children, or fresh
    interpreters with `fresh`)."""

    def __init__(self, lay: Layout, fresh: bool, jobs: int) -> None:
        self.lay, self.fresh, self.jobs = lay, fresh, jobs
        if not fresh:  # import once what every verb imports lazily, so children start fast
            import numpy  # noqa: F401
            import pandas  # noqa: F401
            import PIL.Image  # noqa: F401
            import torch  # noqa: F401

            import synface.__main__  # noqa: F401
            import synface.train.loop  # noqa: F401
            import synface.eval.run_eval  # noqa: F401
            import synface.data.synthetic  # noqa: F401

    def start(self, argv: list[str], tag: str, fsize: int | None = None) -> tuple:
        out, err = self.lay.logs / f"{tag}.out", self.lay.logs / f"{tag}.err"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(argv, self.lay.cwd, self.lay.env(), out, err, fsize, self.fresh)
        return pid, None, out, err, time.time()

    @staticmethod
    def poll(handle) -> int | None:
        done, status = os.waitpid(handle[0], os.WNOHANG)
        return None if done == 0 else os.waitstatus_to_exitcode(status)

    @staticmethod
    def kill(handle) -> None:
        for target in (lambda: os.killpg(handle[0], signal.SIGKILL), lambda: os.kill(handle[0], signal.SIGKILL)):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.waitpid(handle[0], 0)
        except ChildProcessError:
            pass

    @staticmethod
    def result(handle, code: int | None, timed_out: bool = False) -> Result:
        _, _, out, err, t0 = handle
        return Result(code, out.read_text(errors="replace"), err.read_text(errors="replace"), time.time() - t0,
                      timed_out)


def run_cli(lay: Layout, argv: list[str], timeout: float = 300, tag: str = "cmd") -> Result:
    """A fresh `python -m synface ARGV` to the end (fixtures and kill reruns)."""
    env = lay.env()
    t0 = time.time()
    try:
        proc = subprocess.run([sys.executable, "-m", "synface", *map(str, argv)], cwd=lay.cwd, env=env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout, proc.stderr, time.time() - t0)
    except subprocess.TimeoutExpired as exc:
        return Result(None, str(exc.stdout or ""), str(exc.stderr or ""), time.time() - t0, True)


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    id: str
    fault: str                       # the class of bad input
    argv: list                       # after `python -m synface`
    names: tuple = ()                # the error line must contain one of these
    setup: Callable | None = None    # makes the case's inputs (called with the case folder)
    ok: Callable | None = None       # exit 0 is fine when ok(result) returns None (else: why it is wrong)
    absent: tuple = ()               # paths a refusal must not leave behind
    codes: tuple = (2,)              # documented exit codes of a refusal
    fsize: int | None = None         # RLIMIT_FSIZE: writes past this many bytes fail (a full disk)
    marker: Path | None = None       # a pickle payload's marker
    timeout: float = 120
    folder: Path = field(default=Path())


TQDM_BAR = re.compile(r"(%\||\r|\d+\w* \[\d\d:\d\d)")  # a bar: percentage, carriage return or 'N unit [00:00'


def stderr_lines(err: str) -> list[str]:
    """stderr without progress bars."""
    return [line for line in err.split("\n") if line.strip() and not TQDM_BAR.search(line)]


def classify(case: Case, res: Result) -> tuple[str, str]:
    if res.timed_out:
        return "hang", f"still running after {case.timeout:.0f} s"
    if case.marker is not None and case.marker.exists():
        return "payload", f"{case.marker} appeared: the pickle ran code"
    if "Traceback" in res.err:
        return "traceback", res.err.strip().splitlines()[-1][:300]
    lines = stderr_lines(res.err)
    errors = [line for line in lines if line.startswith("error:")]
    if res.code == 0:
        if case.ok is None:
            return "silent", "exit 0 for an input that should be refused"
        why = case.ok(res)
        return ("clean", "accepted and checked") if why is None else ("silent", why)
    if res.code not in case.codes:
        return "unclear", f"exit code {res.code}"
    others = [line for line in lines if not line.startswith(("error:", "warning:"))]
    if len(errors) != 1 or others:
        return "unclear", f"{len(errors)} error lines, {len(others)} other lines: {(errors + others)[:3]}"
    if case.names and not any(str(n) in errors[0] for n in case.names):
        return "unclear", f"the line names none of {list(map(str, case.names))[:3]}"
    left = [str(p) for p in case.absent if Path(p).exists()]
    if left:
        return "unclear", f"refused but left {left}"
    tmp = [str(p) for p in case.folder.rglob("*.tmp")] if case.folder.exists() else []
    if tmp:
        return "unclear", f"refused but left temp files {tmp[:3]}"
    return "clean", errors[0][:200]


class Fix:
    """Shared inputs: a generated set, image folders, an LFW-like copy, a .bin, a .rec, a run."""

    def __init__(self, lay: Layout) -> None:
        self.lay = lay
        f = lay.fix
        self.syn = f / "syn"
        self.imgs = image_folder(f / "imgs")
        self.lfw = fake_lfw(f / "lfw")
        self.real = f / "real_lfw"
        self.have_real = mini_real_lfw(self.real)
        self.afile = f / "afile"
        self.afile.write_text("a regular file\n")
        self.bin = f / "lfw.bin"
        self.rec = f / "rec"
        self.run_id = ""
        self.run = Path()
        self.model = ""

    def build(self) -> list[str]:
        """The slower fixtures through the CLI itself; returns what failed."""
        lay, problems = self.lay, []
        steps = [
            ["generate", "--ids", 4, "--samples", 4, "--out", self.syn, "--device", "cpu"],
            ["export", self.lfw, "--to", "bin", "--out", self.bin],
            ["export", self.imgs, "--to", "rec", "--out", self.rec],
            ["train", "--preset", "cpu-quick", "--name", "fixture", "--no-progress", *tiny_train(self.syn, self.bin)],
        ]
        if self.have_real:
            steps.append(["face-model", "fit", "--photos", self.real, "--name", "fixmodel", "--people", 12, "--bank", 10,
                          "--max-photos-per-person", 1])
        for argv in steps:
            res = run_cli(lay, argv, timeout=300)
            if res.code != 0:
                problems.append(f"fixture {argv[:2]} failed ({res.code}): {res.err.strip()[-400:]}")
        runs = sorted(p for p in (lay.ws / "runs").glob("*fixture*") if p.is_dir())
        if runs:
            self.run, self.run_id = runs[-1], runs[-1].name
        if (lay.ws / "face_models" / "fixmodel" / "model.npz").is_file():
            self.model = "fixmodel"
        return problems


def tiny_train(data: Path, evalbin: Path | None = None, epochs: int = 2, steps: int = 3) -> list[str]:
    sets = ["--set", f"eval_sets=[{json.dumps(str(evalbin))}]"] if evalbin else []
    return ["--set", f"data={data}", "--set", f"epochs={epochs}", "--set", f"steps_per_epoch={steps}",
            "--set", "batch_size=4", "--set", "backbone=compact", "--set", "embedding_dim=32", "--set", "log_every=1",
            "--set", "warmup_epochs=0", "--set", "milestones=[1]", "--set", "eval_batch_size=8", "--set", "workers=0",
            *sets]


def build_cases(lay: Layout, fx: Fix) -> list[Case]:
    cases: list[Case] = []
    C = lay.cases

    def add(id_: str, fault: str, argv: list, **kw) -> Case:
        folder = C / id_
        case = Case(id_, fault, [str(a) for a in argv], folder=folder, **kw)
        cases.append(case)
        return case

    def d(id_: str) -> Path:  # the case's own folder (for paths in argv)
        return C / id_

    W = lay.ws
    g = ["generate", "--device", "cpu"]
    small = ["--ids", 2, "--samples", 1]

    # -- generate: sizes, values, names, paths ------------------------------------------------------
    for i, (opt, val) in enumerate([("--ids", 0), ("--ids", -1), ("--ids", 1_000_000_000), ("--samples", 0),
                                    ("--samples", -3), ("--samples", 1_000_000_000)]):
        other = ["--samples", 1] if opt == "--ids" else ["--ids", 2]
        add(f"generate-size-{i}", "absurd/zero/negative size", [*g, opt, val, *other, "--out", d(f"generate-size-{i}") / "o"],
            names=(opt,), absent=(d(f"generate-size-{i}") / "o",))
    add("generate-size-product", "absurd size", [*g, "--ids", 1_000_000, "--samples", 1000, "--out", d("generate-size-product") / "o"],
        names=("--ids", "--samples"), absent=(d("generate-size-product") / "o",))
    for i, v in enumerate(["0", "-5"]):
        add(f"generate-batch-{i}", "--batch 0/-5", [*g, *small, "--batch", v, "--out", d(f"generate-batch-{i}") / "o"],
            names=("--batch",), absent=(d(f"generate-batch-{i}") / "o",))
    for i, v in enumerate(["", ",", "0.5,2", "nan", "inf", "-0.1", "a,b"]):
        add(f"generate-phi-{i}", "empty/bad --phi-grid", [*g, *small, "--im", "--phi-grid", v, "--out", d(f"generate-phi-{i}") / "o"],
            names=("--phi-grid",), absent=(d(f"generate-phi-{i}") / "o",))
    for i, (opt, v) in enumerate([("--pose-scale", "nan"), ("--pose-scale", "inf"), ("--pose-scale", "-1"),
                                  ("--expression-scale", "nan"), ("--illumination-scale", "-2"),
                                  ("--min-source-distance", "nan"), ("--min-source-distance", "-1")]):
        add(f"generate-value-{i}", "NaN/inf/negative value", [*g, *small, opt, v, "--out", d(f"generate-value-{i}") / "o"],
            names=(opt, opt[2:].replace("-", "_")), absent=(d(f"generate-value-{i}") / "o",))
    for i, name in enumerate(["../ESC-gen", "../../ESC-gen2", str(lay.top / "ESC-abs"), "a/ESC", "", "ESC\x01x", "..", ".",
                              "-ESC", "x" * 300]):
        add(f"generate-name-{i}", "traversal/odd name", [*g, *small, "--name", name], names=("name",))
    add("generate-out-under-file", "path under a regular file (read-only for root too)",
        [*g, *small, "--out", fx.afile / "set"], names=(str(fx.afile),))
    add("generate-out-is-file", "output is a file", [*g, *small, "--out", fx.afile], names=(str(fx.afile),))
    add("generate-out-sys", "read-only folder (/sys)", [*g, *small, "--out", "/sys/synface-audit-set"],
        names=("/sys",))
    add("generate-model-missing", "missing model", [*g, *small, "--model", "nosuch", "--out", d("generate-model-missing") / "o"],
        names=("nosuch",), absent=(d("generate-model-missing") / "o",))
    add("generate-model-traversal", "traversal name", [*g, *small, "--model", "../ESC-model"], names=("ESC-model",))
    for i, (argv, names) in enumerate([(["--folds", 1], "--folds"), (["--folds", 0], "--folds"), (["--folds", -2], "--folds"),
                                       (["--folds", 2, "--pairs-per-fold", 1], "--pairs-per-fold"),
                                       (["--folds", 2, "--pairs-per-fold", 0], "--pairs-per-fold"),
                                       (["--folds", 100000, "--pairs-per-fold", 100000], "--folds")]):
        add(f"generate-verif-{i}", "bad folds", [*g, "--verification", *argv, "--out", d(f"generate-verif-{i}") / "o"],
            names=(names,), absent=(d(f"generate-verif-{i}") / "o",))
    add("generate-format", "bad option", [*g, *small, "--format", "gif"], names=("--format",))
    add("generate-seed", "bad option", [*g, *small, "--seed", "abc"], names=("--seed",))
    add("generate-nosamples", "missing option", [*g, "--ids", 2], names=("--samples",))
    add("generate-device", "absent device", [*g[:1], *small, "--device", "cuda", "--out", d("generate-device") / "o"],
        names=("cuda",), absent=(d("generate-device") / "o",))
    add("generate-device-bogus", "bad value", [*g[:1], *small, "--device", "bogus", "--out", d("generate-device-bogus") / "o"],
        names=("bogus",), absent=(d("generate-device-bogus") / "o",))
    add("generate-full-disk", "full disk (RLIMIT_FSIZE)", [*g, "--ids", 3, "--samples", 2, "--out", d("generate-full-disk") / "o"],
        names=("File too large", "No space"), fsize=1500)

    def corrupt_state(name: str, text: str) -> Callable:
        def setup(folder: Path) -> None:
            out = folder / "o"
            shutil.copytree(fx.syn, out)
            (out / name).write_text(text)
        return setup
    def card_rewritten(folder: Path) -> Callable:
        def ok(res: Result) -> str | None:  # the card is an output of the build: a resume may write it again
            try:
                card = json.loads((folder / "dataset.json").read_text())
            except ValueError as exc:
                return f"dataset.json still unreadable after exit 0 ({exc})"
            imgs = len(images_in(folder))
            return None if imgs == 16 and card.get("config", {}).get("ids") == 4 else f"{imgs} images, card {card}"[:200]
        return ok
    for i, (name, text) in enumerate([("build_state.json", "{not json"), ("dataset.json", "[1,2"),
                                      ("build_state.json", '"a string"')]):
        cid = f"generate-resume-corrupt-{i}"
        add(cid, "malformed state file on resume", [*g, "--ids", 4, "--samples", 4, "--out", d(cid) / "o"],
            names=(name, "dataset.json", "build_state.json"), setup=corrupt_state(name, text),
            ok=card_rewritten(d(cid) / "o") if name == "dataset.json" else None)

    def copy_syn(folder: Path) -> None:
        shutil.copytree(fx.syn, folder / "o")
    add("generate-resume-seed", "resume under another seed", [*g, "--ids", 4, "--samples", 4, "--seed", 1, "--out", d("generate-resume-seed") / "o"],
        names=("seed",), setup=copy_syn)
    add("generate-resume-size", "resume under another size", [*g, "--ids", 4, "--samples", 5, "--out", d("generate-resume-size") / "o"],
        names=("samples", "Syn_4_5", "differ"), setup=copy_syn)

    def damage_images(folder: Path) -> None:
        copy_syn(folder)
        imgs = sorted((folder / "o").glob("*/*.jpg"))
        truncate(imgs[0])
        imgs[1].write_bytes(b"")
        imgs[2].write_bytes(b"not an image at all")

    def all_images_decode(folder: Path, want: int) -> Callable:
        def ok(res: Result) -> str | None:
            from PIL import Image
            imgs = sorted(folder.glob("*/*.jpg"))
            if len(imgs) != want:
                return f"{len(imgs)} images, expected {want}"
            for p in imgs:
                try:
                    with Image.open(p) as im:
                        im.load()
                except Exception as exc:  # noqa: BLE001
                    return f"{p} does not decode after the resume ({exc})"
            return None
        return ok
    add("generate-resume-damaged", "truncated/empty/garbled images on resume (re-rendered)",
        [*g, "--ids", 4, "--samples", 4, "--out", d("generate-resume-damaged") / "o"], setup=damage_images,
        ok=all_images_decode(d("generate-resume-damaged") / "o", 16))

    # -- train ---------------------------------------------------------------------------------
    t = ["train", "--preset", "cpu-quick", "--no-progress"]
    base = tiny_train(fx.syn, None, epochs=1, steps=1)
    for i, ov in enumerate(["lr=nan", "lr=inf", "lr=-.inf", "lr=-1", "head_s=nan", "head_s=inf", "head_m=nan",
                            "weight_decay=inf", "embedding_dim=1000000000", "embedding_dim=0", "batch_size=1000000000",
                            "batch_size=0", "batch_size=-5", "input_size=100000", "input_size=0", "epochs=10000000",
                            "epochs=0", "epochs=-1", "psi=1.5", "psi=nan", "lr_sheduler=step", "amp=fp8",
                            "milestones=[a]", "eval_every=0", "workers=-3", "steps_per_epoch=-1"]):
        key = ov.split("=")[0]
        add(f"train-set-{i}", "NaN/inf/absurd/zero config value", [*t, *base, "--set", ov, "--run-dir", d(f"train-set-{i}") / "run"],
            names=(key,), absent=(d(f"train-set-{i}") / "run",))
    add("train-set-noeq", "malformed --set", [*t, *base, "--set", "lr"], names=("lr", "--set"))
    add("train-set-yaml", "malformed --set", [*t, *base, "--set", "milestones=[1,"], names=("milestones",))

    def data_setup(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            data = folder / "data"
            if kind == "empty":
                data.mkdir(parents=True)
            elif kind == "nonimages":
                for i in range(2):
                    (data / f"p{i}").mkdir(parents=True)
                    (data / f"p{i}" / "0.jpg").write_text("not an image")
                    (data / f"p{i}" / "notes.txt").write_text("hello")
            elif kind == "truncated":
                image_folder(data, 2, 2)
                for p in data.glob("*/*.jpg"):
                    truncate(p)
            elif kind == "manifest":
                shutil.copytree(fx.syn, data)
                (data / "manifest.parquet").write_bytes(b"PAR1garbage")
            elif kind == "manifest-pickle":
                shutil.copytree(fx.syn, data)
                (data / "manifest.parquet").write_bytes(pickle.dumps(Payload(lay.markers / "manifest")))
            elif kind == "datasetjson":
                shutil.copytree(fx.syn, data)
                (data / "dataset.json").write_text("{oops")
            elif kind == "oneclass":
                image_folder(data, 1, 3)
        return setup
    for kind in ("empty", "nonimages", "truncated", "manifest", "datasetjson", "oneclass"):
        cid = f"train-data-{kind}"
        add(cid, "empty/corrupt/non-image training data", [*t, *tiny_train(d(cid) / "data", None, 1, 1), "--run-dir", d(cid) / "run"],
            names=(str(d(cid) / "data"), "data"), setup=data_setup(kind), absent=(d(cid) / "run",))
    cid = "train-data-manifest-pickle"
    add(cid, "malicious pickle as manifest.parquet", [*t, *tiny_train(d(cid) / "data", None, 1, 1), "--run-dir", d(cid) / "run"],
        names=("manifest.parquet",), setup=data_setup("manifest-pickle"), marker=lay.markers / "manifest",
        absent=(d(cid) / "run",))
    add("train-data-missing", "missing folder", [*t, *tiny_train(d("train-data-missing") / "nope", None), "--run-dir", d("train-data-missing") / "run"],
        names=("nope",), absent=(d("train-data-missing") / "run",))
    add("train-data-file", "a file as data", [*t, *tiny_train(fx.afile, None)], names=(str(fx.afile),))

    def cfg_file(text: str, suffix: str) -> Callable:
        def setup(folder: Path) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"cfg{suffix}").write_text(text)
        return setup
    for i, (text, suffix) in enumerate([("data: [unclosed", ".yaml"), ("[1, 2]", ".json"), ("{bad json", ".json"),
                                        ("", ".yaml"), ("data: x\nbogus_key: 1\n", ".yaml")]):
        cid = f"train-config-{i}"
        add(cid, "malformed config file", ["train", "--config", d(cid) / f"cfg{suffix}", "--no-progress", "--run-dir", d(cid) / "run"],
            names=(f"cfg{suffix}", "bogus_key", "'data' is required"), setup=cfg_file(text, suffix), absent=(d(cid) / "run",))
    add("train-config-missing", "missing file", ["train", "--config", d("train-config-missing") / "none.yaml"], names=("none.yaml",))
    for i, name in enumerate(["../ESC-run", "a/ESC", "ESC\n", ".."]):
        add(f"train-name-{i}", "traversal/odd name", [*t, *base, "--name", name], names=("name",))
    add("train-rundir-under-file", "path under a regular file", [*t, *base, "--run-dir", fx.afile / "run"], names=(str(fx.afile),))
    add("train-real-missing", "missing registered set", [*t, *base, "--real", "nosuch"], names=("nosuch",))
    add("train-eval-missing", "missing registered set", [*t, *base, "--eval", "nosuch"], names=("nosuch",))
    cid = "train-evalset-missing"
    add(cid, "missing eval file", [*t, *tiny_train(fx.syn, d(cid) / "none.bin", 1, 1), "--run-dir", d(cid) / "run"],
        names=("none.bin",), absent=(d(cid) / "run",))
    cid = "train-evalset-corrupt"
    add(cid, "corrupt .bin", [*t, *tiny_train(fx.syn, d(cid) / "bad.bin", 1, 1), "--run-dir", d(cid) / "run"],
        names=("bad.bin",), setup=lambda f: (f / "bad.bin").write_bytes(b"\x80\x02garbage"),
        absent=(d(cid) / "run",))
    cid = "train-evalset-evil"
    add(cid, "malicious .bin in eval_sets", [*t, *tiny_train(fx.syn, d(cid) / "evil.bin", 1, 1), "--run-dir", d(cid) / "run"],
        names=("evil.bin",), setup=lambda f: evil_bin(f / "evil.bin", lay.markers / "train-bin"),
        marker=lay.markers / "train-bin", absent=(d(cid) / "run",))
    add("train-resume-missing", "missing run", ["train", "--resume", "nosuch-run", "--no-progress"], names=("nosuch-run",))
    add("train-resume-traversal", "traversal name", ["train", "--resume", "../../ESC-x", "--no-progress"], names=("ESC-x",))

    def broken_run(what: str) -> Callable:
        def setup(folder: Path) -> None:
            run = folder / "run"
            shutil.copytree(fx.run, run)
            last = run / "checkpoints" / "last.pt"
            if what == "config":
                (run / "config.json").write_text("{not json")
            elif what == "config-list":
                (run / "config.json").write_text("[1]")
            elif what == "ckpt-garbage":
                last.write_bytes(b"garbage")
            elif what == "ckpt-empty":
                last.write_bytes(b"")
            elif what == "ckpt-truncated":
                truncate(last)
            elif what == "ckpt-keys":
                import torch
                torch.save({"model": {}, "num_classes": 2}, last)
            elif what == "ckpt-evil":
                evil_pt(last, lay.markers / "resume-pt")
            elif what == "ckpt-evil-legacy":
                evil_pt(last, lay.markers / "resume-pt-legacy", legacy=True)
            elif what == "status":
                (run / "status.json").write_text("{torn")
            elif what == "no-ckpt":
                shutil.rmtree(run / "checkpoints")
        return setup
    for what, names in [("config", "config.json"), ("config-list", "config.json"), ("ckpt-garbage", "last.pt"),
                        ("ckpt-empty", "last.pt"), ("ckpt-truncated", "last.pt"), ("ckpt-keys", "last.pt")]:
        cid = f"train-resume-{what}"
        add(cid, "malformed config.json/checkpoint on --resume", ["train", "--resume", d(cid) / "run", "--no-progress"],
            names=(names,), setup=broken_run(what), codes=(2,))
    for what in ("ckpt-evil", "ckpt-evil-legacy"):
        cid = f"train-resume-{what}"
        add(cid, "malicious checkpoint on --resume", ["train", "--resume", d(cid) / "run", "--no-progress"],
            names=("last.pt",), setup=broken_run(what), marker=lay.markers / what.replace("ckpt-evil", "resume-pt"))
    cid = "train-resume-no-ckpt"

    def restarted(res: Result, run=d(cid) / "run") -> str | None:
        steps = metrics_steps(run)
        return None if steps == list(range(1, 7)) and (run / "eval.json").is_file() else f"steps {steps} after the restart"
    add(cid, "--resume of a run without a checkpoint (starts again from step 0)",
        ["train", "--resume", d(cid) / "run", "--no-progress"], setup=broken_run("no-ckpt"), ok=restarted)
    cid = "train-resume-set"
    add(cid, "--resume --set that would make config.json lie", ["train", "--resume", d(cid) / "run", "--set", "lr=0.5", "--no-progress"],
        names=("lr",), setup=broken_run("none"))
    add("train-full-disk", "full disk during a checkpoint (RLIMIT_FSIZE)",
        [*t, *tiny_train(fx.syn, None, 1, 1), "--run-dir", d("train-full-disk") / "run"],
        names=("File too large", "No space"), fsize=200_000)

    # -- eval ----------------------------------------------------------------------------------
    ck = fx.run / "checkpoints" / "last.pt"
    e = ["eval", "--checkpoint", ck]
    for i, (opt, v) in enumerate([("--center-crop", "0"), ("--center-crop", "1.5"), ("--center-crop", "nan"),
                                  ("--center-crop", "-1"), ("--far", "0"), ("--far", "1"), ("--far", "-0.1"),
                                  ("--far", "nan"), ("--far", "inf"), ("--batch", "0"), ("--batch", "-5"),
                                  ("--folds", "99"), ("--folds", "-1")]):
        add(f"eval-option-{i}", "out-of-range option", [*e, "--lfw", fx.lfw, opt, v], names=(opt,))

    def ckpt(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            import torch
            folder.mkdir(parents=True, exist_ok=True)
            p = folder / "c.pt"
            if kind == "garbage":
                p.write_bytes(b"garbage")
            elif kind == "empty":
                p.write_bytes(b"")
            elif kind == "truncated":
                p.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
            elif kind == "dict":
                torch.save({"foo": 1}, p)
            elif kind == "list":
                torch.save([1, 2], p)
            elif kind == "backbone":
                torch.save({"model": {}, "config": {"backbone": "nosuchnet"}}, p)
            elif kind == "weights":
                torch.save({"model": {"x": torch.zeros(1)}, "config": {"backbone": "compact"}}, p)
            elif kind == "dim":
                torch.save({"model": {}, "config": {"backbone": "compact", "embedding_dim": 1_000_000_000}}, p)
            elif kind == "nan":
                c = torch.load(ck, weights_only=True)
                for v in c["model"].values():
                    if v.is_floating_point():
                        v.fill_(float("nan"))
                torch.save(c, p)
        return setup
    for kind in ("garbage", "empty", "truncated", "dict", "list", "backbone", "weights", "dim"):
        cid = f"eval-ckpt-{kind}"
        add(cid, "malformed checkpoint", ["eval", "--checkpoint", d(cid) / "c.pt", "--lfw", fx.lfw], names=("c.pt",),
            setup=ckpt(kind))
    cid = "eval-ckpt-nan"
    add(cid, "checkpoint of NaN weights", ["eval", "--checkpoint", d(cid) / "c.pt", "--lfw", fx.lfw], names=("c.pt", "nan", "NaN"),
        setup=ckpt("nan"))
    add("eval-ckpt-missing", "missing file", ["eval", "--checkpoint", d("eval-ckpt-missing") / "none.pt", "--lfw", fx.lfw],
        names=("none.pt",))
    add("eval-ckpt-folder", "a folder as checkpoint", ["eval", "--checkpoint", fx.lfw, "--lfw", fx.lfw], names=(str(fx.lfw),))
    for i, (legacy, where) in enumerate([(False, "model"), (True, "model"), (False, "config")]):
        cid = f"eval-ckpt-evil-{i}"
        add(cid, "malicious checkpoint .pt", ["eval", "--checkpoint", d(cid) / "c.pt", "--lfw", fx.lfw], names=("c.pt",),
            setup=lambda f, m=lay.markers / cid, lg=legacy, w=where: evil_pt(f / "c.pt", m, lg, w), marker=lay.markers / cid)

    def lfw_variant(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            root = folder / "lfw"
            shutil.copytree(fx.lfw, root)
            pairs = root / "pairs.txt"
            if kind == "nopairs":
                pairs.unlink()
            elif kind == "badpairs":
                pairs.write_text("2\t2\nAnn_A\tx\t2\n")
            elif kind == "ghost":
                pairs.write_text("1\t1\nGhost_G\t1\t2\nAnn_A\t1\tBob_B\t1\n")
            elif kind == "index":
                pairs.write_text("1\t1\nAnn_A\t1\t9\nAnn_A\t1\tBob_B\t1\n")
            elif kind == "emptypairs":
                pairs.write_text("")
            elif kind == "truncimg":
                truncate(root / "images" / "Ann_A" / "Ann_A_0002.jpg")
            elif kind == "textimg":
                (root / "images" / "Bob_B" / "Bob_B_0001.jpg").write_text("hello")
            elif kind == "noimages":
                shutil.rmtree(root / "images")
            elif kind == "header":
                pairs.write_text("99999999\t99999999\nAnn_A\t1\t2\n")
        return setup
    lfw_kinds = ("nopairs", "badpairs", "ghost", "index", "emptypairs", "truncimg", "textimg", "noimages", "header")
    for kind in lfw_kinds:
        cid = f"eval-lfw-{kind}"
        add(cid, "missing/malformed pairs.txt or images", [*e, "--lfw", d(cid) / "lfw"],
            names=(str(d(cid) / "lfw"), "pairs.txt", "Ghost_G", "Ann_A", "Bob_B"), setup=lfw_variant(kind))
    add("eval-lfw-missing", "missing folder", [*e, "--lfw", d("eval-lfw-missing") / "none"], names=("none",))
    add("eval-pairs-missing", "missing file", [*e, "--lfw", fx.lfw, "--pairs", d("eval-pairs-missing") / "p.txt"], names=("p.txt",))

    def bin_variant(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            p = folder / "x.bin"
            if kind == "garbage":
                p.write_bytes(b"garbage")
            elif kind == "empty":
                p.write_bytes(b"")
            elif kind == "truncated":
                p.write_bytes(fx.bin.read_bytes()[: fx.bin.stat().st_size // 2])
            elif kind == "wrongtype":
                p.write_bytes(pickle.dumps({"a": 1}, protocol=2))
            elif kind == "nonimage":
                p.write_bytes(pickle.dumps(([b"abc", b"def", b"ghi", b"jkl"], [True, False]), protocol=2))
            elif kind == "mismatch":
                p.write_bytes(pickle.dumps(([b"abc"] * 3, [True, False]), protocol=2))
            elif kind == "nopairs":
                p.write_bytes(pickle.dumps(([], []), protocol=2))
        return setup
    for kind in ("garbage", "empty", "truncated", "wrongtype", "nonimage", "mismatch", "nopairs"):
        cid = f"eval-bin-{kind}"
        add(cid, "malformed .bin", [*e, "--bin", d(cid) / "x.bin"], names=("x.bin",), setup=bin_variant(kind))
    for i, proto in enumerate((0, 2, 4)):
        cid = f"eval-bin-evil-{i}"
        add(cid, "malicious .bin pickle", [*e, "--bin", d(cid) / "x.bin"], names=("x.bin",),
            setup=lambda f, m=lay.markers / cid, p=proto: evil_bin(f / "x.bin", m, p), marker=lay.markers / cid)
    add("eval-bin-missing", "missing file", [*e, "--bin", d("eval-bin-missing") / "none.bin"], names=("none.bin",))
    add("eval-run-missing", "missing run", ["eval", "--run", "nosuch"], names=("nosuch",))
    add("eval-run-traversal", "traversal name", ["eval", "--run", "../ESC-run"], names=("ESC-run",))
    add("eval-sets-missing", "missing registered set", [*e, "--sets", "nosuch"], names=("nosuch",))
    add("eval-out-under-file", "path under a regular file", [*e, "--bin", fx.bin, "--out", fx.afile / "r.json"],
        names=(str(fx.afile),))

    def run_with_ckpt(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            run = W / "runs" / f"audit-{kind}"
            if not run.exists():
                shutil.copytree(fx.run, run)
            if kind == "evil":
                evil_pt(run / "checkpoints" / "last.pt", lay.markers / "eval-run-evil")
            elif kind == "garbage":
                (run / "checkpoints" / "last.pt").write_bytes(b"junk")
        return setup
    add("eval-run-evil", "malicious checkpoint via --run", ["eval", "--run", "audit-evil", "--bin", fx.bin], names=("last.pt",),
        setup=run_with_ckpt("evil"), marker=lay.markers / "eval-run-evil")
    add("eval-run-garbage", "corrupt checkpoint via --run", ["eval", "--run", "audit-garbage", "--bin", fx.bin], names=("last.pt",),
        setup=run_with_ckpt("garbage"))

    # -- align ---------------------------------------------------------------------------------
    a = ["align"]

    def src(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            s = folder / "src"
            if kind == "empty":
                s.mkdir(parents=True)
            elif kind == "nonimages":
                (s / "a").mkdir(parents=True)
                (s / "a" / "0.jpg").write_text("not an image")
                (s / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
            elif kind == "truncated":
                image_folder(s, 1, 2)
                for p in s.glob("*/*.jpg"):
                    truncate(p)
            elif kind == "emptyimages":
                (s / "images").mkdir(parents=True)
            elif kind == "flat":
                s.mkdir(parents=True)
                (s / "notes.txt").write_text("hi")
        return setup
    for kind in ("empty", "nonimages", "truncated", "emptyimages", "flat"):
        cid = f"align-src-{kind}"
        add(cid, "empty/non-image/truncated source", [*a, d(cid) / "src", "--out", d(cid) / "out", "--workers", 1],
            names=(str(d(cid) / "src"),), setup=src(kind))
    add("align-src-missing", "missing folder", [*a, d("align-src-missing") / "none", "--out", d("align-src-missing") / "out"],
        names=("none",), absent=(d("align-src-missing") / "out",))
    add("align-src-file", "a file as source", [*a, fx.afile, "--out", d("align-src-file") / "out"], names=(str(fx.afile),),
        absent=(d("align-src-file") / "out",))
    add("align-out-under-file", "path under a regular file", [*a, fx.imgs, "--out", fx.afile / "o", "--workers", 1],
        names=(str(fx.afile),))
    add("align-out-is-file", "output is a file", [*a, fx.imgs, "--out", fx.afile, "--workers", 1], names=(str(fx.afile),))
    for i, v in enumerate(["0", "-1"]):
        add(f"align-workers-{i}", "zero/negative workers", [*a, fx.imgs, "--out", d(f"align-workers-{i}") / "o", "--workers", v],
            names=("--workers",), absent=(d(f"align-workers-{i}") / "o",))
    add("align-noface", "no face anywhere (random images)", [*a, fx.imgs, "--out", d("align-noface") / "o", "--workers", 1],
        names=("no face",))
    if fx.have_real:
        def mixed(folder: Path) -> None:
            s = folder / "src"
            for p in sorted((fx.real / "images").iterdir())[:2]:
                shutil.copytree(p, s / p.name)
            (s / "Zed_Z").mkdir()
            (s / "Zed_Z" / "Zed_Z_0001.jpg").write_text("not an image")

        def mixed_ok(res: Result) -> str | None:
            try:
                report = json.loads(res.out)
            except ValueError:
                return "no JSON report on stdout"
            if report.get("unreadable") != 1 or "warning" not in res.err.lower():
                return f"the unreadable file is not counted and warned about: {report.get('unreadable')}"
            return None
        add("align-mixed", "one non-image among faces (counted)", [*a, d("align-mixed") / "src", "--out", d("align-mixed") / "o",
                                                                     "--workers", 1], setup=mixed, ok=mixed_ok)
        add("align-full-disk", "full disk (RLIMIT_FSIZE)", [*a, fx.real, "--out", d("align-full-disk") / "o", "--workers", 1],
            names=("File too large", "No space"), fsize=2500)

    # -- export --------------------------------------------------------------------------------
    for kind in ("empty", "nonimages", "truncated"):
        cid = f"export-rec-{kind}"
        add(cid, "empty/non-image/truncated source", ["export", d(cid) / "src", "--to", "rec", "--out", d(cid) / "out"],
            names=(str(d(cid) / "src"),), setup=src(kind), absent=(d(cid) / "out" / "train.rec",))
    add("export-rec-missing", "missing folder", ["export", d("export-rec-missing") / "none", "--to", "rec", "--out", d("export-rec-missing") / "o"],
        names=("none",), absent=(d("export-rec-missing") / "o",))
    add("export-rec-under-file", "path under a regular file", ["export", fx.imgs, "--to", "rec", "--out", fx.afile / "o"],
        names=(str(fx.afile),))
    add("export-rec-is-file", "output is a file", ["export", fx.imgs, "--to", "rec", "--out", fx.afile], names=(str(fx.afile),))
    add("export-rec-sys", "read-only folder (/sys)", ["export", fx.imgs, "--to", "rec", "--out", "/sys/synface-audit-rec"],
        names=("/sys/synface-audit-rec",))
    add("export-rec-full-disk", "full disk (RLIMIT_FSIZE)", ["export", fx.imgs, "--to", "rec", "--out", d("export-rec-full-disk") / "o"],
        names=("File too large", "No space"), fsize=3000)

    def mixed_rec(folder: Path) -> None:
        s = folder / "src"
        image_folder(s, 2, 2)
        (s / "p1" / "9.jpg").write_text("nope")

    def mixed_rec_ok(res: Result) -> str | None:
        try:
            report = json.loads(res.out)
        except ValueError:
            return "no JSON report on stdout"
        if report.get("skipped") != 1 or report.get("images") != 4 or "warning:" not in res.err:
            return f"skipped {report.get('skipped')} / images {report.get('images')}, warning missing or wrong"
        return None
    add("export-rec-mixed", "a non-image in an image folder (skipped, counted)",
        ["export", d("export-rec-mixed") / "src", "--to", "rec", "--out", d("export-rec-mixed") / "o"], setup=mixed_rec, ok=mixed_rec_ok)
    for kind in ("nopairs", "badpairs", "ghost", "index", "emptypairs", "truncimg", "textimg", "header"):
        cid = f"export-bin-{kind}"
        add(cid, "missing/malformed pairs.txt or images", ["export", d(cid) / "lfw", "--to", "bin", "--out", d(cid) / "x.bin"],
            names=(str(d(cid) / "lfw"), "pairs.txt", "Ghost_G", "Ann_A", "Bob_B"), setup=lfw_variant(kind),
            absent=(d(cid) / "x.bin",))
    add("export-bin-pairs-missing", "missing file", ["export", fx.lfw, "--to", "bin", "--pairs", d("export-bin-pairs-missing") / "p.txt",
                                                     "--out", d("export-bin-pairs-missing") / "x.bin"], names=("p.txt",))
    add("export-bin-under-file", "path under a regular file", ["export", fx.lfw, "--to", "bin", "--out", fx.afile / "x.bin"],
        names=(str(fx.afile),))
    add("export-bin-full-disk", "full disk (RLIMIT_FSIZE)", ["export", fx.lfw, "--to", "bin", "--out", d("export-bin-full-disk") / "x.bin"],
        names=("File too large", "No space"), fsize=2000)

    # -- face-model ----------------------------------------------------------------------------
    fm = ["face-model"]
    photos = fx.real if fx.have_real else fx.imgs
    for i, name in enumerate(["../ESC-fm", "a/ESC", "", "ESC\t", ".."]):
        add(f"fm-fit-name-{i}", "traversal/odd name", [*fm, "fit", "--photos", photos, "--name", name], names=("name",))
    for i, (opt, v) in enumerate([("--people", 0), ("--people", -1), ("--bank", 0), ("--bank", -1),
                                  ("--max-photos-per-person", 0), ("--folds", "9"), ("--folds", "x")]):
        add(f"fm-fit-option-{i}", "zero/negative/bad option", [*fm, "fit", "--photos", photos, "--name", f"o{i}", opt, v],
            names=(opt, str(v)), absent=(W / "face_models" / f"o{i}",))
    if fx.have_real:  # 'the first N people': more than there are means all of them
        add("fm-fit-option-huge", "absurd --people (an upper bound: all people)",
            [*fm, "fit", "--photos", photos, "--name", "ohuge", "--people", 10**9, "--bank", 10, "--max-photos-per-person", 1],
            ok=lambda res: None if json.loads(res.out or "{}").get("people_fitted", 0) >= 12 else f"fitted {res.out[:200]}")
    for kind in ("empty", "nonimages", "truncated"):
        cid = f"fm-fit-{kind}"
        add(cid, "empty/non-image photos", [*fm, "fit", "--photos", d(cid) / "src", "--name", f"m-{kind}"],
            names=(str(d(cid) / "src"), "photos", "people"), setup=src(kind))
    add("fm-fit-missing", "missing folder", [*fm, "fit", "--photos", d("fm-fit-missing") / "none", "--name", "mm"], names=("none",))
    add("fm-fit-noface", "no face in any photo", [*fm, "fit", "--photos", fx.imgs, "--name", "noface", "--bank", 10],
        names=(str(fx.imgs), "face", "people"))
    add("fm-show-missing", "missing model", [*fm, "show", "nosuch"], names=("nosuch",))
    add("fm-show-traversal", "traversal name", [*fm, "show", "../ESC-show"], names=("ESC-show",))
    add("fm-preview-missing", "missing model", [*fm, "preview", "nosuch", "--out", d("fm-preview-missing") / "p.png"],
        names=("nosuch",), absent=(d("fm-preview-missing") / "p.png",))

    def model_variant(kind: str, name: str) -> Callable:
        def setup(folder: Path) -> None:
            m = W / "face_models" / name
            if fx.model:
                shutil.copytree(W / "face_models" / fx.model, m, ignore=shutil.ignore_patterns("cache"), dirs_exist_ok=True)
            else:
                m.mkdir(parents=True, exist_ok=True)
                (m / "card.json").write_text(json.dumps({"name": name, "kind": "learned"}))
            if kind == "card":
                (m / "card.json").write_text("{torn")
            elif kind == "npz":
                (m / "model.npz").write_bytes(b"PK\x03\x04garbage")
            elif kind == "evil":
                evil_npz(m / "model.npz", lay.markers / name, format=[2])
            elif kind == "nomodel":
                (m / "model.npz").unlink(missing_ok=True)
        return setup
    for kind in ("card", "npz", "evil", "nomodel"):
        name = f"bad{kind}"
        marker = lay.markers / name if kind == "evil" else None
        add(f"fm-show-{kind}", "corrupt/malicious face model", [*fm, "show", name], names=(name,), setup=model_variant(kind, name),
            marker=marker, codes=(2,))
        add(f"generate-model-{kind}", "corrupt/malicious face model", [*g, *small, "--model", name, "--out", d(f"generate-model-{kind}") / "o"],
            names=(name,), setup=model_variant(kind, name), marker=marker, absent=(d(f"generate-model-{kind}") / "o",))
    add("fm-preview-evil", "malicious face model", [*fm, "preview", "badevil", "--out", d("fm-preview-evil") / "p.png"],
        names=("badevil",), setup=model_variant("evil", "badevil"), marker=lay.markers / "badevil")
    add("bench-render-evil", "malicious face model", ["bench", "render", "--model", "badevil", "--device", "cpu", "--repeats", 1,
                                                      "--batch", 2], names=("badevil",), setup=model_variant("evil", "badevil"),
        marker=lay.markers / "badevil")
    if fx.model:
        add("fm-preview-people-0", "zero value", [*fm, "preview", fx.model, "--people", 0, "--out", d("fm-preview-people-0") / "p.png"],
            names=("--people",), absent=(d("fm-preview-people-0") / "p.png",))
        add("fm-preview-people-huge", "absurd size", [*fm, "preview", fx.model, "--people", 10**9, "--out", d("fm-preview-people-huge") / "p.png"],
            names=("--people",), absent=(d("fm-preview-people-huge") / "p.png",))
        add("fm-preview-under-file", "path under a regular file", [*fm, "preview", fx.model, "--out", fx.afile / "p.png"],
            names=(str(fx.afile),))

        def evil_cache(folder: Path) -> None:
            m = W / "face_models" / "evilcache"
            shutil.copytree(W / "face_models" / fx.model / "cache", m / "cache", dirs_exist_ok=True)
            for p in (m / "cache").glob("*.npz"):
                evil_npz(p, lay.markers / "fm-cache")
        add("fm-fit-evil-cache", "malicious fit cache (.npz)", [*fm, "fit", "--photos", fx.real, "--name", "evilcache", "--people", 12,
                                                                 "--bank", 10, "--max-photos-per-person", 1],
            setup=evil_cache, marker=lay.markers / "fm-cache", names=("evilcache", "cache"),
            ok=lambda res: None if (W / "face_models" / "evilcache" / "model.npz").is_file() else "exit 0 without model.npz")

    # -- real ----------------------------------------------------------------------------------
    r = ["real"]
    add("real-add-missing", "missing path", [*r, "add", d("real-add-missing") / "none"], names=("none",))
    add("real-add-txt", "a text file", [*r, "add", fx.afile], names=(str(fx.afile),))
    add("real-add-empty", "empty folder", [*r, "add", d("real-add-empty") / "src", "--name", "emptyset"], names=(str(d("real-add-empty") / "src"),),
        setup=src("empty"))
    for kind in ("garbage", "truncated", "wrongtype", "nonimage"):
        cid = f"real-add-bin-{kind}"
        add(cid, "malformed .bin", [*r, "add", d(cid) / "x.bin", "--name", f"b{kind}"], names=("x.bin",), setup=bin_variant(kind),
            absent=(W / "real" / f"b{kind}",))
    add("real-add-bin-evil", "malicious .bin pickle", [*r, "add", d("real-add-bin-evil") / "x.bin", "--name", "bevil"], names=("x.bin",),
        setup=lambda f: evil_bin(f / "x.bin", lay.markers / "real-add-bin"), marker=lay.markers / "real-add-bin")
    for i, name in enumerate(["../ESC-real", "a/ESC", "", "ESC\x7f"]):
        add(f"real-add-name-{i}", "traversal/odd name", [*r, "add", fx.bin, "--name", name], names=("name",))
    lfw_for_real = fx.real if fx.have_real else fx.lfw
    add("real-add-lfw-nofolds", "LFW without --train-folds", [*r, "add", lfw_for_real, "--name", "lfwnf"], names=("--train-folds",))
    for i, v in enumerate(["9", "x", "1-4", "0", "3-1"]):
        add(f"real-add-folds-{i}", "bad folds", [*r, "add", lfw_for_real, "--name", f"lf{i}", "--train-folds", v],
            names=("--train-folds", v, "test fold"),
            absent=(W / "real" / f"lf{i}",))

    def rec_variant(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            out = folder / "rec"
            shutil.copytree(fx.rec, out)
            from synface.data.recordio import MAGIC
            if kind == "header":
                (out / "train.rec").write_bytes(struct.pack("<II", MAGIC, (1 << 29) - 1) + b"\0" * 32)
                (out / "train.idx").write_text("0\t0\n")
            elif kind == "noidx":
                (out / "train.idx").unlink()
            elif kind == "magic":
                (out / "train.rec").write_bytes(b"\0" * 64)
            elif kind == "offset":
                (out / "train.idx").write_text("0\t99999999\n")
            elif kind == "idxtext":
                (out / "train.idx").write_text("zero\tone\n")
        return setup
    for kind in ("header", "noidx", "magic", "offset", "idxtext"):
        cid = f"real-add-rec-{kind}"
        add(cid, "malformed .rec header/index", [*r, "add", d(cid) / "rec" / "train.rec", "--name", f"r{kind}"],
            names=("train.rec", "train.idx"), setup=rec_variant(kind), absent=(W / "real" / f"r{kind}",))
        add(f"train-rec-{kind}", "malformed .rec as training data", [*t, *tiny_train(d(f"train-rec-{kind}") / "rec", None, 1, 1),
                                                                     "--run-dir", d(f"train-rec-{kind}") / "run"],
            names=("train.rec", "train.idx", "rec"), setup=rec_variant(kind), absent=(d(f"train-rec-{kind}") / "run",))
    add("real-remove-missing", "missing set", [*r, "remove", "nosuch"], names=("nosuch",))
    add("real-remove-traversal", "traversal name", [*r, "remove", "../ESC-rm"], names=("ESC-rm",))

    # -- runs ----------------------------------------------------------------------------------
    rn = ["runs"]
    for verb in ("compare", "stop", "archive", "delete", "export"):
        extra = ["--embeddings", d(f"runs-{verb}-missing") / "e.npz"] if verb == "export" else []
        others = [fx.run_id] if verb == "compare" else []
        add(f"runs-{verb}-missing", "missing run", [*rn, verb, "nosuch", *others, *extra], names=("nosuch",))
    for i, name in enumerate(["..", "../..", "/", str(lay.top), "../ESC-del"]):
        add(f"runs-delete-traversal-{i}", "traversal name", [*rn, "delete", name], names=(name,))
    add("runs-archive-traversal", "traversal name", [*rn, "archive", "../ws"], names=("../ws",))
    add("runs-export-under-file", "path under a regular file", [*rn, "export", fx.run_id, "--embeddings", fx.afile / "e.npz"],
        names=(str(fx.afile),))
    add("runs-export-ext", "bad file type", [*rn, "export", fx.run_id, "--embeddings", d("runs-export-ext") / "e.txt"], names=("e.txt",))
    for i, v in enumerate(["0", "-5"]):
        add(f"runs-export-batch-{i}", "--batch 0/-5", [*rn, "export", fx.run_id, "--embeddings", d(f"runs-export-batch-{i}") / "e.npz",
                                                       "--batch", v], names=("--batch",), absent=(d(f"runs-export-batch-{i}") / "e.npz",))
    add("runs-export-set", "missing set", [*rn, "export", fx.run_id, "--embeddings", d("runs-export-set") / "e.npz", "--set", "nosuch"],
        names=("nosuch",))
    add("runs-export-pairs", "malformed .bin", [*rn, "export", fx.run_id, "--embeddings", d("runs-export-pairs") / "e.npz", "--pairs",
                                                d("runs-export-pairs") / "x.bin"], names=("x.bin",), setup=bin_variant("garbage"))
    add("runs-export-evil", "malicious .bin pickle", [*rn, "export", fx.run_id, "--embeddings", d("runs-export-evil") / "e.npz",
                                                      "--pairs", d("runs-export-evil") / "x.bin"], names=("x.bin",),
        setup=lambda f: evil_bin(f / "x.bin", lay.markers / "runs-export"), marker=lay.markers / "runs-export")
    add("runs-export-run-evil", "malicious checkpoint via runs export", [*rn, "export", "audit-evil", "--checkpoint",
                                                                        d("runs-export-run-evil") / "m.pt"], names=("last.pt",),
        setup=run_with_ckpt("evil"), marker=lay.markers / "eval-run-evil")
    for i, f in enumerate(["nosuch=1", "psi", "=x"]):
        add(f"runs-filter-{i}", "bad filter", [*rn, "list", "--filter", f], names=("--filter", f, "nosuch"))
    for i, v in enumerate(["0", "-1"]):
        add(f"runs-queue-{i}", "zero/negative value", [*rn, "queue", "--max-running", v], names=("--max-running",))
    add("runs-csv-under-file", "path under a regular file", [*rn, "list", "--csv", fx.afile / "r.csv"], names=(str(fx.afile),))

    def damaged_queue(text: str) -> Callable:
        def setup(folder: Path) -> None:
            q = folder / "ws" / "runs" / "queue.json"
            q.parent.mkdir(parents=True)
            q.write_text(text)
        return setup
    for i, text in enumerate(["{not json", '{"run_id": "x"}', "[5]", '[{"argv": ["python"]}]']):
        cid = f"runs-queue-json-{i}"
        add(cid, "malformed queue.json", [*rn, "--root", d(cid) / "ws", "queue", "--max-running", 1], names=("queue.json",),
            setup=damaged_queue(text))
        add(f"runs-stop-queue-{i}", "malformed queue.json", [*rn, "--root", d(cid) / "ws", "stop", "somerun"],
            names=("queue.json", "somerun"), setup=None)

    def broken_listing(folder: Path) -> None:
        root = folder / "ws"
        (root / "runs").mkdir(parents=True)
        shutil.copytree(fx.run, root / "runs" / fx.run_id)
        bad = root / "runs" / "20250101-000000-broken"
        shutil.copytree(fx.run, bad)
        (bad / "config.json").write_text("{torn")
        (bad / "status.json").write_text("[")
        with open(bad / "metrics.jsonl", "a") as fh:
            fh.write('{"type": "train", "step": 9')

    def listing_ok(res: Result) -> str | None:
        if fx.run_id not in res.out:
            return "the intact run is missing from the list"
        if "broken" not in (res.out + res.err):
            return "the broken run is not reported"
        return None
    add("runs-list-broken", "malformed config.json/status.json/metrics.jsonl in a run (listed as broken)",
        [*rn, "--root", d("runs-list-broken") / "ws", "list"], setup=broken_listing, ok=listing_ok)
    add("runs-compare-broken", "malformed config.json (compared, shown as broken)",
        [*rn, "--root", d("runs-list-broken") / "ws", "compare", fx.run_id, "20250101-000000-broken"], names=("config.json",),
        ok=lambda res: None if "broken" in res.out else "the broken run is not shown as broken")

    # -- reproduce -----------------------------------------------------------------------------
    rp = ["reproduce", "table3", "--scale", "tiny", "--no-progress"]
    real = fx.real if fx.have_real else fx.lfw

    def lfw_copy(kind: str) -> Callable:
        def setup(folder: Path) -> None:
            root = folder / "lfw"
            shutil.copytree(real, root)
            people = root / "people.txt"
            if kind == "nopeople":
                people.unlink()
            elif kind == "badpeople":
                people.write_text("5\nx\n")
            elif kind == "ghost":
                people.write_text(people.read_text().replace("\t2\n", "\t2\nGhost_Person\t2\n", 1).replace("5\n4\n", "5\n5\n", 1))
            elif kind == "nopairs":
                (root / "pairs.txt").unlink()
            elif kind == "badpairs":
                (root / "pairs.txt").write_text("5\t2\nnot a pair line\n")
            elif kind == "onefold":
                (root / "people.txt").write_text("1\n" + "\n".join(people.read_text().split("\n")[1:]))
        return setup
    for kind in ("nopeople", "badpeople", "ghost", "nopairs", "badpairs", "onefold"):
        cid = f"reproduce-{kind}"
        add(cid, "malformed/missing people.txt or pairs.txt, missing people", [*rp, "--lfw", d(cid) / "lfw", "--out", d(cid) / "res",
                                                                              "--seeds", 1],
            names=("people.txt", "pairs.txt", "Ghost_Person", str(d(cid) / "lfw")), setup=lfw_copy(kind),
            absent=(d(cid) / "res",), timeout=180)
    add("reproduce-lfw-missing", "missing folder", [*rp, "--lfw", d("reproduce-lfw-missing") / "none"], names=("none",))
    for i, v in enumerate(["0", "-1", "1000000"]):
        add(f"reproduce-seeds-{i}", "zero/negative/absurd seeds", [*rp, "--lfw", real, "--seeds", v, "--dry-run"], names=("--seeds",))
    add("reproduce-model", "missing model", [*rp, "--lfw", real, "--model", "nosuch", "--dry-run"], names=("nosuch",))
    add("reproduce-out-under-file", "path under a regular file", [*rp, "--lfw", real, "--seeds", 1, "--out", fx.afile / "res"],
        names=(str(fx.afile),), timeout=180)
    add("reproduce-scale", "bad option", ["reproduce", "table3", "--scale", "huge", "--lfw", real], names=("--scale",))

    # -- bench (the cheap ones) ----------------------------------------------------------------
    b = ["bench"]
    for i, argv in enumerate([["render", "--batch", 0], ["render", "--batch", -5], ["render", "--repeats", 0],
                              ["render", "--model", "nosuch"], ["generate", "--images", 0], ["generate", "--images", -1],
                              ["generate", "--samples", 0], ["train", "--steps", 0], ["train", "--batch", -1]]):
        add(f"bench-{i}", "zero/negative/missing value", [*b, *argv, "--device", "cpu"], names=(str(argv[1]), "nosuch"))
    add("bench-render-cuda", "absent device", [*b, "render", "--device", "cuda"], names=("cuda",))
    add("bench-train-cuda", "absent device", [*b, "train", "--device", "cuda"], names=("cuda",))
    return cases


# ----------------------------------------------------------------------------- running the inputs


def run_setup(lay: Layout, case: Case) -> str:
    """Make a case's inputs in a forked child: torch must never compute in the process that forks
    the cases (a forked child of a process whose OpenMP pool has started can hang)."""
    if case.setup is None:
        return ""
    log = lay.logs / f"{case.id}.setup"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 2)
            case.setup(case.folder)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return ""
    return "setup failed: " + (log.read_text().strip().splitlines() or ["?"])[-1]


def run_inputs(lay: Layout, runner: Runner, cases: list[Case], jobs: int, progress: bool) -> list[dict]:
    pending = list(cases)
    running: list[tuple[Case, tuple, dict]] = []
    rows: list[dict] = []
    finished_windows: list[tuple[float, float, str]] = []
    while pending or running:
        while pending and len(running) < jobs:
            case = pending.pop(0)
            case.folder.mkdir(parents=True, exist_ok=True)
            why = run_setup(lay, case)
            if why:  # the audit's own setup failed: say so, go on
                rows.append(dict(id=case.id, fault=case.fault, argv=case.argv, cls="skipped", why=why))
                continue
            before = watched_state(lay)
            handle = runner.start(case.argv, case.id, case.fsize)
            running.append((case, handle, before))
        time.sleep(0.02)
        for item in list(running):
            case, handle, before = item
            code = runner.poll(handle)
            timed_out = code is None and time.time() - handle[4] > case.timeout
            if code is None and not timed_out:
                continue
            if timed_out:
                runner.kill(handle)
            else:  # end stragglers of its process group (alignment workers)
                try:
                    os.killpg(handle[0], signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            running.remove(item)
            res = runner.result(handle, code, timed_out)
            cls, why = classify(case, res)
            esc = escapes(lay, before, watched_state(lay))
            if esc:
                cls, why = "escape", f"wrote {esc[:3]}"
                for p in esc:  # undo, so the next case starts clean
                    q = Path(p.replace(" (removed)", ""))
                    if "ESC" in q.name and q.exists():
                        shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink()
            rows.append(dict(id=case.id, fault=case.fault, argv=case.argv, code=res.code, cls=cls, why=why,
                             seconds=round(res.seconds, 2), stderr_tail=res.err.strip()[-600:]))
            finished_windows.append((handle[4], time.time(), case.id))
            if progress:
                print(f"  [{len(rows):3d}/{len(cases)}] {cls:9s} {case.id}: {why[:110]}", flush=True)
    return rows


# ----------------------------------------------------------------------------- kills


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png") and p.is_file())


def decode_all(paths: list[Path]) -> list[str]:
    from PIL import Image
    bad = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
        except Exception as exc:  # noqa: BLE001
            bad.append(f"{p.name}: {exc}")
    return bad


def tmp_files(folder: Path) -> list[str]:
    """Temp files a kill left and the rerun did not sweep (debris, not loss)."""
    return [f"leftover: temp file {p}" for p in folder.rglob("*")
            if p.name.endswith(".tmp") or ".tmp." in p.name or p.name.startswith(".tmp")]


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


@dataclass
class Kill:
    id: str
    what: str
    argv: list
    when: Callable[[], bool]          # kill as soon as this is true (polled)
    rerun: list | Callable | None     # None: the same argv again; a callable: decided after the kill
    check: Callable[[Result], list[str]]
    setup: Callable | None = None
    delay: float = 0.0                 # seconds to wait after `when` turns true
    state: Callable[[], str] | None = None  # what the kill interrupted (for the report)


def run_kill(lay: Layout, k: Kill) -> dict:
    env = lay.env()
    if k.setup is not None:
        k.setup()
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "synface", *map(str, k.argv)], cwd=lay.cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    moment = "never (it finished first)"
    while proc.poll() is None and time.time() - t0 < 240:
        try:
            hit = k.when()
        except (OSError, ValueError):
            hit = False
        if hit:
            if k.delay:
                time.sleep(k.delay)
            moment = f"after {time.time() - t0:.1f} s"
            if k.state is not None:
                try:
                    moment += f", {k.state()}"
                except (OSError, ValueError):
                    pass
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    for target in (lambda: os.kill(proc.pid, signal.SIGKILL), lambda: os.killpg(proc.pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()
    first_err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if not killed:
        moment = f"not killed: it ended first (code {proc.returncode})"
    rerun = k.rerun() if callable(k.rerun) else k.rerun if k.rerun is not None else k.argv
    res = run_cli(lay, rerun, timeout=300)
    problems: list[str] = []
    if res.timed_out:
        cls = "hang"
        problems.append("the rerun did not finish in 300 s")
    elif "Traceback" in res.err or "Traceback" in first_err:
        cls = "traceback"
        problems.append((res.err or first_err).strip().splitlines()[-1][:300])
    elif res.code != 0:
        cls = "lost"
        problems.append(f"the rerun failed ({res.code}): {res.err.strip()[-300:]}")
    else:
        problems = k.check(res)
        cls = "clean" if not problems else "leftover" if all(p.startswith("leftover:") for p in problems) else "lost"
    return dict(id=k.id, what=k.what, argv=[str(a) for a in k.argv], killed=killed, moment=moment, cls=cls,
                why="; ".join(problems) or "rerun completed, nothing lost or duplicated", rerun_code=res.code,
                seconds=round(time.time() - t0, 1))


def build_kills(lay: Layout, fx: Fix) -> list[Kill]:
    K = lay.top / "kills"
    K.mkdir(exist_ok=True)
    kills: list[Kill] = []

    def n_images(folder: Path) -> int:
        return len(list(folder.glob("*/*.jpg"))) + len(list(folder.glob("*/*.png"))) if folder.exists() else 0

    # generate: 6 x 4 images, killed at several counts
    def gen_check(out: Path, want: int) -> Callable[[Result], list[str]]:
        def check(res: Result) -> list[str]:
            import pandas as pd
            p = []
            imgs = images_in(out)
            card = json.loads((out / "dataset.json").read_text())
            n_card = card.get("num_images", card.get("images"))
            if len(imgs) != want:
                p.append(f"{len(imgs)} images on disk, expected {want}")
            if n_card is not None and int(n_card) != len(imgs):
                p.append(f"card says {n_card} images, disk has {len(imgs)}")
            rows = len(pd.read_parquet(out / "manifest.parquet"))
            if rows != want:
                p.append(f"manifest has {rows} rows, expected {want}")
            p += decode_all(imgs)[:3]
            p += tmp_files(out)[:3]
            return p
        return check
    for i, at in enumerate([0, 1, 60, 150, 280]):
        out = K / f"gen{i}"
        kills.append(Kill(f"kill-generate-{i}", f"generate --ids 30 --samples 10, killed at {at} images",
                          ["generate", "--ids", 30, "--samples", 10, "--device", "cpu", "--batch", 2, "--out", out],
                          (lambda o=out, a=at: n_images(o) >= a) if at else (lambda: True), None, gen_check(out, 300),
                          delay=0.0 if at else 1.5, state=lambda o=out: f"{n_images(o)} images on disk"))
    for i, at in enumerate([2, 30]):
        out = K / f"verif{i}"

        def vcheck(res: Result, o=out) -> list[str]:
            p = []
            if not (o / "pairs.txt").is_file():
                p.append("no pairs.txt")
            if not list(o.glob("*.bin")):
                p.append("no .bin")
            p += decode_all(images_in(o))[:3] + tmp_files(o)[:3]
            return p
        kills.append(Kill(f"kill-verification-{i}", f"generate --verification, killed at {at} images",
                          ["generate", "--verification", "--folds", 2, "--pairs-per-fold", 20, "--device", "cpu", "--batch", 2,
                           "--out", out], lambda o=out, a=at: n_images(o) >= a, None, vcheck,
                          state=lambda o=out: f"{n_images(o)} images on disk"))

    # align: killed at several counts of crops (real faces when the LFW copy is here)
    if fx.have_real:
        n_src = len(images_in(fx.real / "images"))
        for i, at in enumerate([1, 8, 20]):
            out = K / f"align{i}"

            def acheck(res: Result, o=out) -> list[str]:
                p = []
                crops = images_in(o)
                if len(crops) != n_src:
                    p.append(f"{len(crops)} crops, expected {n_src}")
                report = json.loads((o / "align_report.json").read_text())
                if report.get("total") != n_src or report.get("detector", 0) + report.get("fallback", 0) != n_src:
                    p.append(f"report counts {report.get('total')} / {report.get('detector')} + {report.get('fallback')}, "
                             f"expected {n_src}")
                p += decode_all(crops)[:3] + tmp_files(o)[:3]
                return p
            kills.append(Kill(f"kill-align-{i}", f"align a 40-photo LFW copy, killed at {at} crops",
                              ["align", fx.real, "--out", out, "--workers", 1], lambda o=out, a=at: n_images(o) >= a, None, acheck))

    # train: killed at several steps, during the final evaluation; then --resume
    def train_check(run: Path, epochs: int, steps: int) -> Callable[[Result], list[str]]:
        def check(res: Result) -> list[str]:
            p = []
            got = metrics_steps(run)
            want = list(range(1, epochs * steps + 1))
            if got != want and got != list(range(epochs * steps)):
                p.append(f"metrics steps {got}, expected {want}")
            status = json.loads((run / "status.json").read_text())
            if status.get("status") != "finished":
                p.append(f"status {status.get('status')}")
            if not (run / "eval.json").is_file():
                p.append("no eval.json")
            p += tmp_files(run)[:3]
            return p
        return check

    def steps_at_least(run: Path, n: int) -> bool:
        return (run / "metrics.jsonl").exists() and len(metrics_steps(run)) >= n

    def stage_is(run: Path, word: str) -> bool:
        try:
            st = json.loads((run / "status.json").read_text())
        except (OSError, ValueError):
            return False
        return word in json.dumps(st).lower()
    for i, (label, cond, delay) in enumerate([
            ("at start-up", None, 2.0), ("after step 1", 1, 0.0), ("mid-epoch (step 2 of 3)", 2, 0.0),
            ("after the epoch-1 checkpoint (step 4)", 4, 0.0), ("at step 5", 5, 0.0),
            ("during the final evaluation", "eval", 0.0), ("in the final evaluation, later", "eval", 0.6)]):
        run = K / f"train{i}"
        argv = ["train", "--preset", "cpu-quick", "--no-progress", "--run-dir", run, *tiny_train(fx.syn, fx.bin, 2, 3)]
        if cond is None:
            when = lambda: True  # noqa: E731
        elif cond == "eval":
            when = (lambda r=run: steps_at_least(r, 6) and stage_is(r, "evaluat"))
        else:
            when = (lambda r=run, n=cond: steps_at_least(r, n))
        def rerun(r=run, a=argv) -> list:  # what a user does: resume the run, or start again if it never began
            return ["train", "--resume", r, "--no-progress"] if (r / "config.json").exists() else a
        kills.append(Kill(f"kill-train-{i}", f"train 2 epochs x 3 steps, killed {label}", argv, when, rerun,
                          train_check(run, 2, 3), delay=delay,
                          state=lambda r=run: f"{len(metrics_steps(r)) if (r / 'metrics.jsonl').exists() else 0} steps logged"))

    # eval --run and runs export, killed while scoring
    def eval_run_setup(name: str) -> Callable:
        def setup() -> None:
            shutil.copytree(fx.run, lay.ws / "runs" / name)
            (lay.ws / "runs" / name / "eval.json").unlink(missing_ok=True)
        return setup
    kills.append(Kill("kill-eval-run", "eval --run, killed while scoring",
                      ["eval", "--run", "audit-killeval", "--bin", fx.bin], lambda: True, None,
                      lambda res: ([] if (lay.ws / "runs" / "audit-killeval" / "eval.json").is_file() else ["no eval.json"])
                      + tmp_files(lay.ws / "runs" / "audit-killeval")[:3], setup=eval_run_setup("audit-killeval"), delay=3.0))
    emb = K / "emb" / "e.npz"

    def emb_check(res: Result) -> list[str]:
        import numpy as np
        p = tmp_files(emb.parent)[:3]
        with np.load(emb, allow_pickle=False) as z:
            if len(z["embeddings"]) != 2 * len(z["issame"]):
                p.append(f"{len(z['embeddings'])} embeddings for {len(z['issame'])} pairs")
        return p
    kills.append(Kill("kill-runs-export", "runs export --embeddings, killed while embedding",
                      ["runs", "export", fx.run_id, "--embeddings", emb], lambda: True, None, emb_check, delay=3.0))

    # export rec of the 300-image set the generate kills made, killed as it starts writing and later
    for i, delay in enumerate([0.0, 0.1]):
        out = K / f"rec{i}"

        def rcheck(res: Result, o=out) -> list[str]:
            from synface.data.recordio import RecordReader
            p = tmp_files(o)[:3]
            with RecordReader(o / "train.rec") as reader:
                if len(reader) != 300:
                    p.append(f"{len(reader)} records, expected 300")
                for j in range(len(reader)):
                    reader.read(j)
            return p
        kills.append(Kill(f"kill-export-rec-{i}", f"export --to rec of 300 images, killed {delay} s after its first file",
                          ["export", K / "gen0", "--to", "rec", "--out", out],
                          lambda o=out: o.exists() and any(o.iterdir()), None, rcheck, delay=delay))

    # face-model fit, killed at several moments
    if fx.have_real:
        for i, (label, cond) in enumerate([("after start-up", "start"), ("after the first landmark chunk", "landmarks"),
                                           ("after the head fits", "geometry")]):
            name = f"killfit{i}"
            folder = lay.ws / "face_models" / name

            def fcond(f=folder, c=cond) -> bool:
                if c == "start":
                    return (f / "cache").exists() or True
                return bool(list((f / "cache").glob(f"{c}-*.npz")))

            def fcheck(res: Result, f=folder) -> list[str]:
                p = []
                if not (f / "model.npz").is_file():
                    p.append("no model.npz")
                card = json.loads((f / "card.json").read_text())
                if card.get("people_fitted") != 12:
                    p.append(f"card: {card.get('people_fitted')} people fitted, expected 12")
                return p + tmp_files(f)[:3]
            kills.append(Kill(f"kill-face-model-{i}", f"face-model fit (12 people), killed {label}",
                              ["face-model", "fit", "--photos", fx.real, "--name", name, "--people", 12, "--bank", 10,
                               "--max-photos-per-person", 1], fcond, None, fcheck, delay=3.0 if cond == "start" else 0.0))

        # real add of an LFW copy (aligned into the workspace), killed while aligning
        for i, at in enumerate([2, 15]):
            name = f"killreal{i}"

            def rc(res: Result, n=name) -> list[str]:
                listing = run_cli(lay, ["real", "list", "--json"], timeout=120)
                if n not in listing.out:
                    return [f"{n} not registered after the rerun"]
                crops = images_in(lay.ws / "real" / n)
                p = [] if len(crops) == n_src else [f"{len(crops)} crops, expected {n_src}"]
                return p + decode_all(crops)[:3] + tmp_files(lay.ws / "real")[:3]
            kills.append(Kill(f"kill-real-add-{i}", f"real add of an LFW copy, killed at {at} crops",
                              ["real", "add", fx.real, "--name", name, "--train-folds", "1-3", "--workers", 1],
                              lambda n=name, a=at: n_images(lay.ws / "real" / n) >= a, None, rc,
                              state=lambda n=name: f"{n_images(lay.ws / 'real' / n)} crops"))

        # reproduce tiny (3 runs), each kill in its own workspace: killed while building its sets, during
        # its first run and during its last
        def rep_runs(root: Path) -> list[Path]:
            return sorted(p for p in (root / "runs").glob("*table3*") if p.is_dir()) if (root / "runs").is_dir() else []

        def rep_check(res: Result, root: Path, out: Path) -> list[str]:
            p = []
            if not (out / "table3.md").is_file():
                p.append("no table3.md")
            stray = [r for r in rep_runs(root) if not (r / "metrics.jsonl").exists()]
            p += [f"leftover: run folder {r.name} never trained (killed as it was made; the rerun made another)"
                  for r in stray]
            runs = [r for r in rep_runs(root) if r not in stray]
            done = [r for r in runs if (r / "eval.json").is_file()]
            if len(done) != 3 or len(runs) != 3:
                p.append(f"{len(done)} evaluated table3 runs of {len(runs)}, expected 3 of 3")
            for r in runs:
                steps = metrics_steps(r)
                if steps != list(range(1, len(steps) + 1)):
                    p.append(f"{r.name}: steps {steps}")
            return p + tmp_files(root / "runs")[:3] + tmp_files(root / "datasets")[:3]
        for i, (label, cond) in enumerate([
                ("while building its sets", lambda root: n_images(root / "datasets" / "Syn_4_3_IM") >= 2),
                ("during its first run", lambda root: len(rep_runs(root)) >= 1),
                ("during its last run", lambda root: len(rep_runs(root)) >= 3)]):
            root, out = K / f"repws{i}", K / f"rep{i}"
            rep = ["reproduce", "table3", "--scale", "tiny", "--lfw", fx.real, "--seeds", 1, "--root", root, "--out", out,
                   "--no-progress"]
            kills.append(Kill(f"kill-reproduce-{i}", f"reproduce table3 --scale tiny --seeds 1, killed {label}", rep,
                              lambda c=cond, r=root: c(r), None, lambda res, r=root, o=out: rep_check(res, r, o),
                              state=lambda r=root: f"{len(rep_runs(r))} run folders"))

    # a second trainer on a busy run folder (the lock), then the first finishes
    return kills


def lock_case(lay: Layout, fx: Fix) -> dict:
    """Two trainers on one run folder: the second is refused naming the first one's pid."""
    run = lay.top / "kills" / "lock"
    argv = ["train", "--preset", "cpu-quick", "--no-progress", "--run-dir", run, *tiny_train(fx.syn, fx.bin, 3, 3)]
    first = subprocess.Popen([sys.executable, "-m", "synface", *map(str, argv)], cwd=lay.cwd, env=lay.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while not (run / "metrics.jsonl").exists() and first.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    second = run_cli(lay, ["train", "--resume", run, "--no-progress"], timeout=120)
    first.wait(timeout=300)
    lines = [line for line in stderr_lines(second.err) if line.startswith("error:")]
    ok = second.code == 2 and len(lines) == 1 and str(first.pid) in lines[0] and "Traceback" not in second.err
    return dict(id="lock-second-trainer", what="a second trainer on a busy run folder", cls="clean" if ok else "unclear",
                why=(lines or [second.err.strip()[-200:]])[0], killed=False, moment="-", argv=[str(a) for a in argv])


# ----------------------------------------------------------------------------- the report


def summarise(inputs: list[dict], kills: list[dict], markers_left: list[str]) -> dict:
    def counts(rows: list[dict]) -> dict:
        return {c: sum(r["cls"] == c for r in rows) for c in CLASSES if any(r["cls"] == c for r in rows) or c == "clean"}
    pickles = [r for r in inputs if "malicious" in r["fault"]]
    return dict(inputs=len(inputs), kills=len(kills), pickles=len(pickles),
                input_classes=counts(inputs), kill_classes=counts(kills),
                payload_markers=markers_left,
                failures=[r for r in inputs + kills if r["cls"] not in ("clean", "skipped")])


def print_table(summary: dict, inputs: list[dict], kills: list[dict]) -> None:
    by_verb: dict[str, dict[str, int]] = {}
    for r in inputs:
        verb = r["argv"][0] if r.get("argv") else r["id"].split("-")[0]
        row = by_verb.setdefault(verb, {})
        row[r["cls"]] = row.get(r["cls"], 0) + 1
    cols = [c for c in CLASSES if any(c in row for row in by_verb.values()) or c == "clean"
            or any(r["cls"] == c for r in kills)]
    print("\n" + f"{'verb':12s} {'inputs':>6s} " + " ".join(f"{c:>9s}" for c in cols))
    for verb, row in sorted(by_verb.items()):
        print(f"{verb:12s} {sum(row.values()):6d} " + " ".join(f"{row.get(c, 0):9d}" for c in cols))
    kc: dict[str, int] = {}
    for r in kills:
        kc[r["cls"]] = kc.get(r["cls"], 0) + 1
    print(f"{'kills':12s} {len(kills):6d} " + " ".join(f"{kc.get(c, 0):9d}" for c in cols))
    s = summary
    print(f"\ninputs {s['inputs']} (malicious pickles {s['pickles']}), kill -9 cases {s['kills']}: "
          + ", ".join(f"{k} {v}" for k, v in s["input_classes"].items()) + " | kills: "
          + ", ".join(f"{k} {v}" for k, v in s["kill_classes"].items())
          + f" | payload markers {len(s['payload_markers'])}")
    for r in s["failures"]:
        print(f"  FAIL {r['cls']:9s} {r['id']}: {r['why'][:160]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON report")
    p.add_argument("--only", action="append", default=[], help="run only cases whose id contains this (repeatable)")
    p.add_argument("--skip-kills", action="store_true")
    p.add_argument("--skip-inputs", action="store_true")
    p.add_argument("--jobs", type=int, default=2, help="bad-input cases at a time")
    p.add_argument("--fresh", action="store_true", help="a fresh interpreter per case (slower)")
    p.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    t0 = time.time()
    top = Path(tempfile.mkdtemp(prefix="synface-audit-"))
    lay = Layout(top)
    print(f"workspace {top}", flush=True)
    fx = Fix(lay)
    problems = fx.build()
    for line in problems:
        print(f"  {line}", flush=True)
    print(f"fixtures ready in {time.time() - t0:.0f} s (real LFW copy: {fx.have_real}, run {fx.run_id or 'MISSING'})", flush=True)

    def wanted(case_id: str) -> bool:
        return not args.only or any(s in case_id for s in args.only)
    inputs: list[dict] = []
    if not args.skip_inputs:
        cases = [c for c in build_cases(lay, fx) if wanted(c.id)]
        runner = Runner(lay, args.fresh, args.jobs)
        inputs = run_inputs(lay, runner, cases, args.jobs, not args.quiet)
        print(f"inputs done in {time.time() - t0:.0f} s", flush=True)
    kills: list[dict] = []
    if not args.skip_kills:
        for k in build_kills(lay, fx):
            if wanted(k.id):
                row = run_kill(lay, k)
                kills.append(row)
                if not args.quiet:
                    print(f"  [kill {len(kills):2d}] {row['cls']:9s} {k.id} ({row['moment']}): {row['why'][:110]}", flush=True)
        if wanted("lock-second-trainer"):
            kills.append(lock_case(lay, fx))
            if not args.quiet:
                print(f"  [kill {len(kills):2d}] {kills[-1]['cls']:9s} lock-second-trainer: {kills[-1]['why'][:110]}", flush=True)
    markers_left = [str(m) for m in lay.markers.iterdir()]
    summary = summarise(inputs, kills, markers_left)
    summary.update(seconds=round(time.time() - t0, 1), fixture_problems=problems, fresh=args.fresh,
                   command="python tools/fault_audit.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    Path(args.out).write_text(json.dumps(dict(summary=summary, inputs=inputs, kills=kills), indent=1, default=str))
    print_table(summary, inputs, kills)
    print(f"report: {args.out} ({summary['seconds']:.0f} s)")
    if not args.keep:
        shutil.rmtree(top, ignore_errors=True)
    bad = summary["failures"] or markers_left or problems
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
