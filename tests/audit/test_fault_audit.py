"""The fault audit, as data: every row of tests/audit/rows_*.py is one `python -m synface` command
with bad, damaged, malicious or hostile input (or a second writer of a busy name), run in a
prepared workspace and judged the same way (tests/audit/harness.py): one named error or a checked
result, and never a traceback, a hang, a payload that ran, a signal to a process the tool did not
start, or a file read or written outside the workspace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.audit import rows_inputs, rows_kills, rows_trust
from tests.audit.harness import (
    Context, ForkServer, escapes, fake_lfw, image_folder, judge, run_fresh, run_killed, watched,
)
from tests.audit.rows_inputs import tiny_train

pytestmark = pytest.mark.slow
ROWS = rows_inputs.ROWS + rows_trust.ROWS + rows_kills.ROWS
assert len({r.id for r in ROWS}) == len(ROWS), "row ids must be unique"


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """The shared inputs (a generated set, an LFW-like copy, its .bin, a .rec, a trained run, files
    outside the workspace that hostile records name), a bystander process, and the fork server."""
    top = tmp_path_factory.mktemp("audit")
    ctx = Context(top, "_fixtures", {})
    fix = ctx.fix
    (fix / "afile").write_text("a regular file\n")
    image_folder(fix / "imgs")
    fake_lfw(fix / "lfw")
    fake_lfw(fix / "lfw5", tuple(f"Person_{k}" for k in range(10)), folds=5)  # reproduce's five folds
    (ctx.outside / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (ctx.outside / "hostname").write_text("error: the content of a file outside the workspace\n")
    steps = [["generate", "--ids", 4, "--samples", 4, "--out", "{fix}/syn", "--device", "cpu"],
             ["export", "{fix}/lfw", "--to", "bin", "--out", "{fix}/lfw.bin"],
             ["export", "{fix}/imgs", "--to", "rec", "--out", "{fix}/rec"],
             ["train", "--preset", "cpu-quick", "--name", "fixture", "--no-progress", *tiny_train("{fix}/syn")]]
    for argv in steps:
        res = run_fresh(ctx, argv)
        assert res.code == 0, (argv, res.err[-2000:])
    run = next((ctx.ws / "runs").glob("*fixture*"))
    subprocess.run(["cp", "-r", str(run), str(fix / "run")], check=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                  f"log = {str(top / 'bystander.log')!r}\n"
                                  "def got(sig, frame):\n    open(log, 'a').write(f'signal {sig}\\n')\n"
                                  "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):\n"
                                  "    signal.signal(s, got)\n"
                                  "print('ready', flush=True)\nwhile True: time.sleep(1)"], stdout=subprocess.PIPE, text=True)
    assert bystander.stdout.readline().strip() == "ready"
    from synface.base.processes import start_time

    server = ForkServer()
    extra = {"run_id": run.name, "bystander": str(bystander.pid), "bystander_start": str(start_time(bystander.pid)),
             "runner": str(server.proc.pid)}
    yield {"top": top, "server": server, "extra": extra, "bystander": bystander}
    server.close()
    bystander.kill()
    bystander.wait()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_fault_audit(audit, row) -> None:
    ctx = Context(audit["top"], row.id, dict(audit["extra"]))
    try:
        if row.setup is not None:
            row.setup(ctx)
        moment = run_killed(ctx, row) if row.kill_when is not None else ""
        before = watched(ctx)
        argv = [ctx.fill(a) for a in (row.rerun or row.argv)]
        res = audit["server"].run(ctx, argv, row.id, row.timeout, row.fsize)
        problem = judge(row, ctx, res)
        escaped = escapes(before, watched(ctx))
    finally:
        for proc in ctx.cleanup:
            proc.kill()
            proc.wait()
    shown = f"argv {argv} {moment}\nexit {res.code} in {res.seconds:.1f} s\nstderr: {res.err.strip()[-1500:]}"
    assert problem is None, f"{problem}\n{shown}"
    assert not escaped, f"escape: changed {escaped[:5]}\n{shown}"
    bystander = audit["bystander"]
    assert bystander.poll() is None and not (audit["top"] / "bystander.log").exists(), "the bystander was signalled"
    assert os.path.isdir(ctx.ws)
