"""The audit's command runner: a process that imports the command line once, then runs each case as
a forked child (`python -m synface ARGV` is `main(ARGV)` with the same uncaught-exception handling
as a fresh interpreter, only without seconds of imports per case).

Requests arrive as JSON lines on stdin, answers leave as JSON lines on stdout. This process never
computes with torch itself: a child forked from a process whose thread pools have started can hang.
Each child runs in its own process group (its workers are ended with it), its output goes to files,
and with `fsize` it runs under RLIMIT_FSIZE, so its writes past that many bytes fail as on a full
disk, also for root (its stdout and stderr go through pipes drained by processes without the limit).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import numpy  # noqa: E402,F401  (what every verb imports lazily: imported once here)
import pandas  # noqa: E402,F401
import PIL.Image  # noqa: E402,F401
import torch  # noqa: E402,F401

import synface.__main__  # noqa: E402
import synface.data.synthetic  # noqa: E402,F401
import synface.eval.run_eval  # noqa: E402,F401
import synface.train.loop  # noqa: E402,F401


def _drain_into(path: str, fd_target: int) -> int:
    """Point `fd_target` at a pipe whose reader (a process without the file-size limit) copies it
    into `path`. Returns the reader's pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setpgrp()
        os.close(w)
        with open(path, "wb") as fh:
            while chunk := os.read(r, 65536):
                fh.write(chunk)
        os._exit(0)
    os.close(r)
    os.dup2(w, fd_target)
    os.close(w)
    return pid


def _child(req: dict) -> None:
    code, drainers = 1, []
    try:
        os.setpgrp()
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        if req.get("fsize") is None:
            os.dup2(os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
            os.dup2(os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        else:
            drainers = [_drain_into(req["out"], 1), _drain_into(req["err"], 2)]
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
        sys.argv = ["python -m synface", *req["argv"]]
        try:
            code = synface.__main__.main(req["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        code = int(code or 0)
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
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


def run(req: dict) -> dict:
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        _child(req)
    code, timed_out = None, False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.time() - t0 > req["timeout"]:
            timed_out = True
            break
        time.sleep(0.005)
    try:  # the case's stragglers (alignment workers), or the case itself when it hung
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if timed_out:
        os.waitpid(pid, 0)
    return {"code": code, "timed_out": timed_out, "seconds": round(time.time() - t0, 3)}


def serve() -> None:
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    serve()
