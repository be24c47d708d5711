"""Audit rows: the tool's own state files written by someone else. Hostile but valid JSON in every
state file (queue.json, job records, model cards and arrays, a run's status.json), pids of
processes the tool did not start, FIFOs where files belong, decompression bombs, caches that do not
describe the photos, and a second writer of a name that is being written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests.audit.harness import Context, Result, Row, copy_tree
from tests.hostile import write_bomb, write_model_folder
from tests.support import REPO

ROWS: list[Row] = []
RUN = "20240101-000000-r"


def add(id_: str, argv: list, **kw) -> Row:
    row = Row(id_, argv, **kw)
    ROWS.append(row)
    return row


def _run(ctx: Context, status: dict | None = None) -> os.PathLike:
    run = copy_tree(ctx.fix / "run", ctx.case / "ws" / "runs" / RUN)
    (run / "status.json").write_text(json.dumps(status or {"status": "created"}))
    return run


def _warned_and_started_none(res: Result, ctx: Context) -> str | None:
    if "warning:" not in res.err or "skipped, not started" not in res.err:
        return "the invalid entries were not reported"
    return None if "started: none" in res.out else f"something started: {res.out[:200]}"


# -- queue.json: only run ids, each validated; what runs is never read from the file ------------
QUEUES = {
    "argv": '[{{"run_id": "{run}", "queued": "x", "argv": ["/bin/sh", "-c", "touch {markers}/queue"]}}]',
    "climbing": '[{{"run_id": "../../../outside"}}, {{"run_id": "/etc"}}]',
    "types": '[5, "x", null, {{"run_id": 7}}, {{"run_id": ["a"]}}]',
    "unknown": '[{{"run_id": "no-such-run"}}]',
    "finished": '[{{"run_id": "{run}", "queued": "x"}}]',
}
for key, text in QUEUES.items():
    def setup(ctx: Context, text=text, key=key) -> None:
        _run(ctx, {"status": "finished"} if key == "finished" else {"status": "created"})
        (ctx.case / "ws" / "runs" / "queue.json").write_text(text.format(run=RUN, markers=ctx.markers))
    add(f"queue-json-{key}", ["runs", "--root", "{case}/ws", "queue", "--max-running", 1], setup=setup,
        ok=_warned_and_started_none, marker="queue")
for key, text in (("object", '{"run_id": "x"}'), ("torn", "[{")):
    add(f"queue-json-{key}", ["runs", "--root", "{case}/ws", "queue"], names=("queue.json",),
        setup=lambda ctx, t=text: (_run(ctx), (ctx.case / "ws" / "runs" / "queue.json").write_text(t)))
add("queue-json-fifo", ["runs", "--root", "{case}/ws", "queue"], names=("queue.json",), timeout=30,
    setup=lambda ctx: (_run(ctx), os.mkfifo(ctx.case / "ws" / "runs" / "queue.json")))


# -- job records: a pid counts only with its start time; log and stop file come from the key -------
def _job_record(fields: dict):
    def setup(ctx: Context) -> None:
        _run(ctx)
        meta = ctx.case / "ws" / "jobs" / "run" / f"{RUN}.json"
        meta.parent.mkdir(parents=True)
        values = {k: (v.format(**ctx.values) if isinstance(v, str) else v) for k, v in fields.items()}
        values = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in values.items()}
        meta.write_text(json.dumps({"kind": "run", "key": RUN, "argv": ["x"], **values}))
    return setup


def _stop_landed_in_the_run(res: Result, ctx: Context) -> str | None:
    return None if (ctx.case / "ws" / "runs" / RUN / "STOP").is_file() else "no STOP file in the run folder"


for key, fields in {
    "bystander-pid": {"pid": "{bystander}", "pid_start": 1, "stop_file": "{outside}/passwd", "log": "{outside}/hostname"},
    "own-runner-pid": {"pid": "{runner}", "log_offset": -99, "stop_file": "{outside}/passwd"},
    "exit-recorded": {"pid": "{bystander}", "pid_start": "{bystander_start}", "exit_code": 0},
    "types": {"pid": "{bystander}", "pid_start": "later", "exit_code": "no", "info": [1], "started": "yesterday"},
}.items():
    add(f"job-record-{key}", ["runs", "--root", "{case}/ws", "stop", RUN], setup=_job_record(fields),
        ok=_stop_landed_in_the_run)
add("job-record-fifo", ["runs", "--root", "{case}/ws", "stop", RUN], ok=_stop_landed_in_the_run, timeout=30,
    setup=lambda ctx: (_run(ctx), (ctx.case / "ws" / "jobs" / "run").mkdir(parents=True),
                       os.mkfifo(ctx.case / "ws" / "jobs" / "run" / f"{RUN}.json")))
add("runs-stop-finished", ["runs", "--root", "{case}/ws", "stop", RUN], names=("nothing to stop",),
    setup=lambda ctx: _run(ctx, {"status": "finished"}), absent=(f"{{case}}/ws/runs/{RUN}/STOP",))


# -- a run's status.json -----------------------------------------------------------------------
def _listed(res: Result, ctx: Context) -> str | None:
    return None if RUN in res.out else "the run is missing from the list"


for key, status in {"bystander-running": {"status": "running", "pid": "{bystander}"},
                    "list": [], "types": {"status": 5, "pid": "x", "epoch": "many", "progress": "half"}}.items():
    def setup(ctx: Context, status=status) -> None:
        run = _run(ctx)
        text = json.dumps(status).replace('"{bystander}"', ctx.values["bystander"])
        (run / "status.json").write_text(text)
    add(f"status-json-{key}", ["runs", "--root", "{case}/ws", "list"], setup=setup, ok=_listed)
def _fifo_in_run(name: str):
    def setup(ctx: Context) -> None:
        run = _run(ctx)
        (run / name).unlink()
        os.mkfifo(run / name)
    return setup


def _fifo_dataset_card(ctx: Context) -> None:
    data = copy_tree(ctx.fix / "syn", ctx.case / "data")
    (data / "dataset.json").unlink()
    os.mkfifo(data / "dataset.json")


add("status-json-fifo", ["runs", "--root", "{case}/ws", "list"], ok=_listed, timeout=30, setup=_fifo_in_run("status.json"))
add("config-json-fifo", ["runs", "--root", "{case}/ws", "list"], ok=lambda res, ctx: None, timeout=30,
    setup=_fifo_in_run("config.json"))
add("dataset-json-fifo", ["train", "--preset", "cpu-quick", "--no-progress", "--set", "data={case}/data",
                          "--run-dir", "{case}/run"], names=("dataset.json", "{case}/data"), timeout=30, absent=("{case}/run",),
    setup=_fifo_dataset_card)


# -- learned model folders: one check, every reader -----------------------------------------------
def _model(damage):
    def setup(ctx: Context) -> None:
        damage(write_model_folder(ctx.case / "ws", "bad"), ctx)
    return setup


def _npz(folder, file: str, **changes) -> None:
    with np.load(folder / file) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(folder / file, **arrays)


def _card(folder, **changes) -> None:
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card))


def _fifo(folder, file: str) -> None:
    (folder / file).unlink()
    os.mkfifo(folder / file)


def _huge_bank(folder) -> None:
    """A few-KB model.npz whose regions header declares a texture of 10^8 texels and whose card
    declares a bank of 10^6 people."""
    import io
    import zipfile

    with np.load(folder / "model.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "regions"}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (4, 10**8)})
    with zipfile.ZipFile(folder / "model.npz", "w") as archive:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.save(buf, value)
            archive.writestr(f"{key}.npy", buf.getvalue())
        archive.writestr("regions.npy", header.getvalue() + b"\0" * 64)
    _card(folder, bank_people=10**6)


def _evil_model(folder, ctx: Context) -> None:
    from tests.audit.harness import evil_npz

    evil_npz(folder / "model.npz", ctx.markers / "model", format=np.array([2]))


def _only(change):
    """A damage that needs only the folder."""
    return lambda folder, ctx: change(folder)


MODELS = {
    "strings-in-tones": (_only(lambda f: _npz(f, "model.npz", tones=np.full((4, 3), "abc"))), "'tones' has dtype"),
    "regions-5": (_only(lambda f: _npz(f, "model.npz", regions=np.array(5))), "'regions' has"),
    "card-regions-5": (_only(lambda f: _card(f, regions=5)), "'regions' is an integer"),
    "components-1e30": (_only(lambda f: _npz(f, "model.npz", shape_components=np.full((56, 56), 1e30, np.float32))),
                        "'shape_components' spans"),
    "complex-tones": (_only(lambda f: _npz(f, "model.npz", tones=np.zeros((4, 3), np.complex64))),
                      "'tones' has dtype complex"),
    "textures-altered": (_only(lambda f: (f / "textures.npy").write_bytes((f / "textures.npy").read_bytes()[:-2] + b"zz")),
                         "textures.npy"),
    "fifo-textures": (_only(lambda f: _fifo(f, "textures.npy")), "textures.npy: not a regular file"),
    "threshold-nan": (_only(lambda f: _card(f, genuine_threshold=float("nan"))), "'genuine_threshold' is nan"),
    "descriptors-nan": (_only(lambda f: _npz(f, "sources.npz", descriptors=np.full((6, 128), np.nan, np.float32))),
                        "'descriptors' holds NaN"),
    "empty-format": (_only(lambda f: _npz(f, "model.npz", format=np.zeros(0, np.int64))), "'format' dimension 0 is 0"),
    "fifo-card": (_only(lambda f: _fifo(f, "card.json")), "FIFO"),
    "fifo-model": (_only(lambda f: _fifo(f, "model.npz")), "FIFO"),
    "huge-bank": (_only(_huge_bank), "outside 2..5,000"),
    "mixed-refit": (_only(lambda f: _card(f, version="learned-bad-0123456789ab")), "'version'"),
    "evil-pickle": (_evil_model, "model.npz"),
}
for key, (damage, needle) in MODELS.items():
    marker = "model" if key == "evil-pickle" else None
    add(f"model-{key}-generate", ["generate", "--device", "cpu", "--ids", 2, "--samples", 1, "--model", "bad", "--root",
                                  "{case}/ws", "--out", "{case}/o"], names=(needle,), setup=_model(damage), absent=("{case}/o",),
        marker=marker, timeout=60)
    add(f"model-{key}-show", ["face-model", "show", "bad", "--workspace", "{case}/ws"], names=(needle,), setup=_model(damage),
        marker=marker, timeout=60)


def _damaged_listed(res: Result, ctx: Context) -> str | None:
    rows = {json.loads(line)["name"]: json.loads(line) for line in res.out.splitlines()}
    if not rows.get("bad", {}).get("damaged") or "FIFO" not in rows["bad"].get("error", ""):
        return f"the damaged model is not listed as damaged: {rows.get('bad')}"
    if rows.get("copy", {}).get("damaged") or rows.get("copy", {}).get("card_name") != "good":
        return f"the copied folder is not its own model: {rows.get('copy')}"
    return None if "warning: damaged face models" in res.err else "no warning about the damaged model"


def _list_setup(ctx: Context) -> None:
    _fifo(write_model_folder(ctx.case / "ws", "bad"), "card.json")
    good = write_model_folder(ctx.case / "ws", "good")
    copy_tree(good, ctx.case / "ws" / "face_models" / "copy")


add("model-list-damaged-and-copied", ["face-model", "list", "--workspace", "{case}/ws"], setup=_list_setup, ok=_damaged_listed,
    timeout=60)
add("model-leakage-nan", ["bench", "leakage", "--model", "bad", "--workspace", "{case}/ws", "--identities", 2],
    names=("'descriptors' holds NaN",), setup=_model(MODELS["descriptors-nan"][0]), timeout=60)


# -- decompression bombs and caches that do not describe the photos -------------------------------
def _bomb_photos(ctx: Context) -> None:
    for k in range(10):
        write_bomb(ctx.case / "photos" / f"p{k}" / "1.png")


def _hostile_cache(ctx: Context) -> None:
    """A landmark chunk under the very key of these photos that claims a face in each, at NaN points:
    a cache that does not describe its photos is recomputed, never used."""
    from synface.face.catalog import staging_folder
    from synface.fitting.build import _chunk_key
    from synface.fitting.photos import find_photos

    _bomb_photos(ctx)
    photos = find_photos(ctx.case / "photos")
    key = _chunk_key(photos.files, photos.root)
    cache = staging_folder("m", ctx.case / "ws") / "cache"
    cache.mkdir(parents=True)
    n = len(photos.files)
    np.savez(cache / f"landmarks-{key}.npz", found=np.ones(n, bool), unreadable=np.zeros(n, bool),
             points=np.full((n, 68, 2), np.nan), descriptors=np.zeros((n, 128), np.float32))


add("fit-bombs", ["face-model", "fit", "--photos", "{case}/photos", "--name", "m", "--workspace", "{case}/ws", "--bank", 10],
    names=("{case}/photos",), setup=_bomb_photos, timeout=90)
add("fit-hostile-cache", ["face-model", "fit", "--photos", "{case}/photos", "--name", "m", "--workspace", "{case}/ws",
                          "--bank", 10], names=("{case}/photos",), setup=_hostile_cache, timeout=90)
add("train-bomb-first-image", ["train", "--preset", "cpu-quick", "--no-progress", "--set", "data={case}/data",
                               "--run-dir", "{case}/run"], names=("0.png",), absent=("{case}/run",),
    setup=lambda ctx: [write_bomb(ctx.case / "data" / f"p{i}" / "0.png") for i in range(2)])


# -- a second writer of a name that is being written ----------------------------------------------
def _holder(ctx: Context, code: str) -> None:
    """A process (not started by the tool) that holds a lock, until the case ends."""
    proc = subprocess.Popen([sys.executable, "-c", code + "\nprint('held', flush=True)\nimport time; time.sleep(120)"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    ctx.extra["holder"] = str(proc.pid)
    ctx.cleanup.append(proc)


add("second-fit-of-a-name", ["face-model", "fit", "--photos", "{case}/photos", "--name", "m", "--workspace", "{case}/ws",
                             "--bank", 10], names=("being fitted by process {holder}",),
    setup=lambda ctx: (_bomb_photos(ctx), _holder(ctx, f"from synface.face.catalog import hold_name\n"
                                                      f"hold = hold_name('m', {str(ctx.case / 'ws')!r}); hold.__enter__()")))
add("remove-a-model-being-fitted", ["face-model", "remove", "m", "--workspace", "{case}/ws"],
    names=("being fitted or removed by process {holder}", "being fitted by process {holder}"),
    setup=lambda ctx: (write_model_folder(ctx.case / "ws", "m"), _holder(
        ctx, f"from synface.face.catalog import hold_name\nhold = hold_name('m', {str(ctx.case / 'ws')!r}); hold.__enter__()")))
add("second-trainer-of-a-run", ["train", "--resume", "{case}/ws/runs/" + RUN, "--no-progress"],
    names=("in use by training process {holder}",),
    setup=lambda ctx: (_run(ctx), _holder(ctx, f"from synface.runs.run_lock import hold\n"
                                               f"h = hold(__import__('pathlib').Path({str(ctx.case / 'ws' / 'runs' / RUN)!r}))\n"
                                               "h.__enter__()")))
