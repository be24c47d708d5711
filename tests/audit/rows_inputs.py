"""Audit rows: bad inputs to every verb (names, sizes, values, paths, damaged and malicious files,
full disks). Each row is one command and what must come of it (tests/audit/harness.py)."""

from __future__ import annotations

import json
import pickle
import struct

from tests.audit.harness import (
    Context, Result, Row, copy_tree, evil_bin, evil_pt, image_folder, images_in, truncate,
)

ROWS: list[Row] = []


def add(id_: str, argv: list, **kw) -> Row:
    row = Row(id_, argv, **kw)
    ROWS.append(row)
    return row


def tiny_train(data: str, evalbin: str | None = None, epochs: int = 1, steps: int = 1) -> list[str]:
    sets = ["--set", f"eval_sets=[{json.dumps(evalbin)}]"] if evalbin else []
    return ["--set", f"data={data}", "--set", f"epochs={epochs}", "--set", f"steps_per_epoch={steps}",
            "--set", "batch_size=4", "--set", "backbone=compact", "--set", "embedding_dim=32", "--set", "log_every=1",
            "--set", "warmup_epochs=0", "--set", "milestones=[1]", "--set", "eval_batch_size=8", "--set", "workers=0",
            *sets]


# -- generate ----------------------------------------------------------------------------------
G = ["generate", "--device", "cpu"]
SMALL = ["--ids", 2, "--samples", 1]
for i, (opt, val) in enumerate([("--ids", 0), ("--ids", -1), ("--ids", 1_000_000_000), ("--samples", 0),
                                ("--samples", 1_000_000_000)]):
    other = ["--samples", 1] if opt == "--ids" else ["--ids", 2]
    add(f"generate-size-{i}", [*G, opt, val, *other, "--out", "{case}/o"], names=(opt,), absent=("{case}/o",))
add("generate-size-product", [*G, "--ids", 1_000_000, "--samples", 1000, "--out", "{case}/o"],
    names=("--ids", "--samples"), absent=("{case}/o",))
for i, v in enumerate(["0", "-5", "999999"]):
    add(f"generate-batch-{i}", [*G, *SMALL, "--batch", v, "--out", "{case}/o"], names=("--batch",), absent=("{case}/o",))
for i, v in enumerate(["", "0.5,2", "nan", "a,b"]):
    add(f"generate-phi-{i}", [*G, *SMALL, "--im", "--phi-grid", v, "--out", "{case}/o"], names=("--phi-grid",),
        absent=("{case}/o",))
for i, (opt, v) in enumerate([("--pose-scale", "nan"), ("--pose-scale", "-1"), ("--expression-scale", "inf"),
                              ("--min-source-distance", "nan")]):
    add(f"generate-value-{i}", [*G, *SMALL, opt, v, "--out", "{case}/o"], names=(opt, opt[2:].replace("-", "_")),
        absent=("{case}/o",))
for i, name in enumerate(["../ESC-gen", "../../ESC-gen2", "{top}/ESC-abs", "a/ESC", "", "ESC\x01x", "..", "-ESC", "x" * 300]):
    add(f"generate-name-{i}", [*G, *SMALL, "--name", name], names=("name",))
add("generate-out-under-file", [*G, *SMALL, "--out", "{fix}/afile/set"], names=("{fix}/afile",))
add("generate-out-is-file", [*G, *SMALL, "--out", "{fix}/afile"], names=("{fix}/afile",))
add("generate-out-sys", [*G, *SMALL, "--out", "/sys/synface-audit-set"], names=("/sys",))
add("generate-model-missing", [*G, *SMALL, "--model", "nosuch", "--out", "{case}/o"], names=("nosuch",), absent=("{case}/o",))
add("generate-model-traversal", [*G, *SMALL, "--model", "../ESC-model"], names=("ESC-model",))
for i, (argv, opt) in enumerate([(["--folds", 1], "--folds"), (["--folds", 2, "--pairs-per-fold", 0], "--pairs-per-fold"),
                                 (["--folds", 100000, "--pairs-per-fold", 100000], "--folds")]):
    add(f"generate-verif-{i}", [*G, "--verification", *argv, "--out", "{case}/o"], names=(opt,), absent=("{case}/o",))
add("generate-format", [*G, *SMALL, "--format", "gif"], names=("--format",))
add("generate-device", ["generate", *SMALL, "--device", "cuda", "--out", "{case}/o"], names=("cuda",), absent=("{case}/o",))
add("generate-full-disk", [*G, "--ids", 3, "--samples", 2, "--out", "{case}/o"], names=("File too large", "No space"),
    fsize=1500)


def _corrupt_state(name: str, text: str):
    def setup(ctx: Context) -> None:
        copy_tree(ctx.fix / "syn", ctx.case / "o")
        (ctx.case / "o" / name).write_text(text)
    return setup


def _card_rewritten(res: Result, ctx: Context) -> str | None:
    card = json.loads((ctx.case / "o" / "dataset.json").read_text())
    imgs = len(images_in(ctx.case / "o"))
    return None if imgs == 16 and card.get("config", {}).get("ids") == 4 else f"{imgs} images, card {card}"[:200]


for i, (name, text) in enumerate([("build_state.json", "{not json"), ("dataset.json", "[1,2"),
                                  ("build_state.json", '"a string"')]):
    add(f"generate-resume-corrupt-{i}", [*G, "--ids", 4, "--samples", 4, "--out", "{case}/o"],
        names=(name, "dataset.json", "build_state.json"), setup=_corrupt_state(name, text),
        ok=_card_rewritten if name == "dataset.json" else None)
add("generate-resume-seed", [*G, "--ids", 4, "--samples", 4, "--seed", 1, "--out", "{case}/o"], names=("seed",),
    setup=lambda ctx: copy_tree(ctx.fix / "syn", ctx.case / "o"))

# -- train -------------------------------------------------------------------------------------
T = ["train", "--preset", "cpu-quick", "--no-progress"]
BASE = tiny_train("{fix}/syn")
for i, ov in enumerate(["lr=nan", "lr=-1", "head_s=inf", "embedding_dim=1000000000", "embedding_dim=0",
                        "batch_size=1000000000", "batch_size=-5", "input_size=100000", "epochs=10000000", "epochs=0",
                        "psi=1.5", "lr_sheduler=step", "amp=fp8", "milestones=[a]", "eval_every=0", "workers=-3"]):
    add(f"train-set-{i}", [*T, *BASE, "--set", ov, "--run-dir", "{case}/run"], names=(ov.split("=")[0],),
        absent=("{case}/run",))
add("train-set-noeq", [*T, *BASE, "--set", "lr"], names=("lr", "--set"))


def _data(kind: str):
    def setup(ctx: Context) -> None:
        data = ctx.case / "data"
        if kind == "empty":
            data.mkdir(parents=True)
        elif kind == "nonimages":
            for i in range(2):
                (data / f"p{i}").mkdir(parents=True)
                (data / f"p{i}" / "0.jpg").write_text("not an image")
        elif kind == "truncated":
            image_folder(data, 2, 2)
            for p in data.glob("*/*.jpg"):
                truncate(p)
        elif kind == "manifest-pickle":
            copy_tree(ctx.fix / "syn", data)
            (data / "manifest.parquet").write_bytes(pickle.dumps(_payload(ctx, "manifest")))
        elif kind == "datasetjson":
            copy_tree(ctx.fix / "syn", data)
            (data / "dataset.json").write_text("{oops")
        elif kind == "oneclass":
            image_folder(data, 1, 3)
    return setup


def _payload(ctx: Context, name: str):
    from tests.audit.harness import Payload

    return Payload(ctx.markers / name)


for kind in ("empty", "nonimages", "truncated", "datasetjson", "oneclass"):
    add(f"train-data-{kind}", [*T, *tiny_train("{case}/data"), "--run-dir", "{case}/run"], names=("{case}/data", "data"),
        setup=_data(kind), absent=("{case}/run",))
add("train-data-manifest-pickle", [*T, *tiny_train("{case}/data"), "--run-dir", "{case}/run"], names=("manifest.parquet",),
    setup=_data("manifest-pickle"), marker="manifest", absent=("{case}/run",))
add("train-data-missing", [*T, *tiny_train("{case}/nope"), "--run-dir", "{case}/run"], names=("nope",), absent=("{case}/run",))
for i, (text, suffix) in enumerate([("data: [unclosed", ".yaml"), ("[1, 2]", ".json"), ("data: x\nbogus_key: 1\n", ".yaml")]):
    add(f"train-config-{i}", ["train", "--config", f"{{case}}/cfg{suffix}", "--no-progress", "--run-dir", "{case}/run"],
        names=(f"cfg{suffix}", "bogus_key"), setup=lambda ctx, t=text, s=suffix: (ctx.case / f"cfg{s}").write_text(t),
        absent=("{case}/run",))
for i, name in enumerate(["../ESC-run", "a/ESC", ".."]):
    add(f"train-name-{i}", [*T, *BASE, "--name", name], names=("name",))
add("train-rundir-under-file", [*T, *BASE, "--run-dir", "{fix}/afile/run"], names=("{fix}/afile",))
for i, sets in enumerate(["nosuch", "all,nosuch"]):
    add(f"train-eval-missing-{i}", [*T, *BASE, "--eval", sets, "--run-dir", "{case}/run"], names=("nosuch",),
        absent=("{case}/run",))
add("train-evalset-evil", [*T, *tiny_train("{fix}/syn", "{case}/evil.bin"), "--run-dir", "{case}/run"], names=("evil.bin",),
    setup=lambda ctx: evil_bin(ctx.case / "evil.bin", ctx.markers / "train-bin"), marker="train-bin", absent=("{case}/run",))
add("train-resume-missing", ["train", "--resume", "nosuch-run", "--no-progress"], names=("nosuch-run",))
add("train-resume-traversal", ["train", "--resume", "../../ESC-x", "--no-progress"], names=("ESC-x",))


def _broken_run(what: str):
    def setup(ctx: Context) -> None:
        run = copy_tree(ctx.fix / "run", ctx.case / "run")
        last = run / "checkpoints" / "last.pt"
        if what == "config":
            (run / "config.json").write_text("{not json")
        elif what == "ckpt-garbage":
            last.write_bytes(b"garbage")
        elif what == "ckpt-truncated":
            truncate(last)
        elif what == "ckpt-evil":
            evil_pt(last, ctx.markers / "resume-pt")
        elif what == "ckpt-evil-legacy":
            evil_pt(last, ctx.markers / "resume-pt", legacy=True)
    return setup


for what, names in [("config", "config.json"), ("ckpt-garbage", "last.pt"), ("ckpt-truncated", "last.pt"),
                    ("ckpt-evil", "last.pt"), ("ckpt-evil-legacy", "last.pt")]:
    add(f"train-resume-{what}", ["train", "--resume", "{case}/run", "--no-progress"], names=(names,), setup=_broken_run(what),
        marker="resume-pt" if "evil" in what else None)
add("train-resume-set", ["train", "--resume", "{case}/run", "--set", "lr=0.5", "--no-progress"], names=("lr",),
    setup=_broken_run("none"))
add("train-full-disk", [*T, *BASE, "--run-dir", "{case}/run"], names=("File too large", "No space"), fsize=200_000)

# -- eval --------------------------------------------------------------------------------------
E = ["eval", "--checkpoint", "{fix}/run/checkpoints/last.pt"]
for i, (opt, v) in enumerate([("--center-crop", "0"), ("--center-crop", "nan"), ("--far", "1"), ("--far", "inf"),
                              ("--batch", "0"), ("--batch", "999999"), ("--folds", "99")]):
    add(f"eval-option-{i}", [*E, "--lfw", "{fix}/lfw", opt, v], names=(opt,))


def _ckpt(kind: str):
    def setup(ctx: Context) -> None:
        import torch

        p = ctx.case / "c.pt"
        if kind == "garbage":
            p.write_bytes(b"garbage")
        elif kind == "dict":
            torch.save({"foo": 1}, p)
        elif kind == "backbone":
            torch.save({"model": {}, "config": {"backbone": "nosuchnet"}}, p)
        elif kind == "dim":
            torch.save({"model": {}, "config": {"backbone": "compact", "embedding_dim": 1_000_000_000}}, p)
        elif kind.startswith("evil"):
            evil_pt(p, ctx.markers / "eval-pt", legacy=kind == "evil-legacy", where="config" if kind == "evil-config" else "model")
    return setup


for kind in ("garbage", "dict", "backbone", "dim", "evil", "evil-legacy", "evil-config"):
    add(f"eval-ckpt-{kind}", ["eval", "--checkpoint", "{case}/c.pt", "--lfw", "{fix}/lfw"], names=("c.pt",), setup=_ckpt(kind),
        marker="eval-pt" if kind.startswith("evil") else None)
add("eval-ckpt-folder", ["eval", "--checkpoint", "{fix}/lfw", "--lfw", "{fix}/lfw"], names=("{fix}/lfw",))


def _lfw_variant(kind: str):
    def setup(ctx: Context) -> None:
        root = copy_tree(ctx.fix / "lfw", ctx.case / "lfw")
        pairs = root / "pairs.txt"
        if kind == "nopairs":
            pairs.unlink()
        elif kind == "badpairs":
            pairs.write_text("2\t2\nAnn_A\tx\t2\n")
        elif kind == "ghost":
            pairs.write_text("1\t1\nGhost_G\t1\t2\nAnn_A\t1\tBob_B\t1\n")
        elif kind == "textimg":
            (root / "images" / "Bob_B" / "Bob_B_0001.jpg").write_text("hello")
        elif kind == "header":
            pairs.write_text("99999999\t99999999\nAnn_A\t1\t2\n")
        elif kind == "bomb":
            from tests.hostile import write_bomb

            write_bomb(root / "images" / "Ann_A" / "Ann_A_0001.jpg")
        elif kind == "fifo":
            target = root / "images" / "Bob_B" / "Bob_B_0002.jpg"
            target.unlink()
            import os

            os.mkfifo(target)
    return setup


for kind in ("nopairs", "badpairs", "ghost", "textimg", "header", "bomb", "fifo"):
    add(f"eval-lfw-{kind}", [*E, "--lfw", "{case}/lfw"], names=("{case}/lfw", "pairs.txt", "Ghost_G", "Ann_A", "Bob_B"),
        setup=_lfw_variant(kind), timeout=60)


def _bin_variant(kind: str):
    def setup(ctx: Context) -> None:
        p = ctx.case / "x.bin"
        if kind == "garbage":
            p.write_bytes(b"garbage")
        elif kind == "truncated":
            p.write_bytes((ctx.fix / "lfw.bin").read_bytes()[:(ctx.fix / "lfw.bin").stat().st_size // 2])
        elif kind == "wrongtype":
            p.write_bytes(pickle.dumps({"a": 1}, protocol=2))
        elif kind == "nonimage":
            p.write_bytes(pickle.dumps(([b"abc", b"def", b"ghi", b"jkl"], [True, False]), protocol=2))
        elif kind == "by-reference":  # one image referenced 400,000 times (pickle's memo)
            image = (ctx.fix / "lfw" / "images" / "Ann_A" / "Ann_A_0001.jpg").read_bytes()
            p.write_bytes(pickle.dumps(([image] * 400_000, [True] * 200_000), protocol=2))
        elif kind == "bomb":
            from tests.hostile import bomb_png

            image = (ctx.fix / "lfw" / "images" / "Ann_A" / "Ann_A_0001.jpg").read_bytes()
            p.write_bytes(pickle.dumps(([image, bomb_png(), image, image], [True, False]), protocol=2))
    return setup


for kind in ("garbage", "truncated", "wrongtype", "nonimage", "by-reference", "bomb"):
    add(f"eval-bin-{kind}", [*E, "--bin", "{case}/x.bin"], names=("x.bin",), setup=_bin_variant(kind))
for i, proto in enumerate((0, 2, 4)):
    add(f"eval-bin-evil-{i}", [*E, "--bin", "{case}/x.bin"], names=("x.bin",), marker=f"eval-bin-{i}",
        setup=lambda ctx, p=proto, i=i: evil_bin(ctx.case / "x.bin", ctx.markers / f"eval-bin-{i}", p))
add("eval-run-traversal", ["eval", "--run", "../ESC-run"], names=("ESC-run",))
add("eval-sets-missing", [*E, "--sets", "all,nosuch"], names=("nosuch",))
add("eval-out-under-file", [*E, "--bin", "{fix}/lfw.bin", "--out", "{fix}/afile/r.json"], names=("{fix}/afile",))

# -- align, export -----------------------------------------------------------------------------


def _src(kind: str):
    def setup(ctx: Context) -> None:
        s = ctx.case / "src"
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
        elif kind == "bombs":
            from tests.hostile import write_bomb

            for k in range(2):
                write_bomb(s / "a" / f"{k}.png")
    return setup


for kind in ("empty", "nonimages", "truncated", "bombs"):
    add(f"align-src-{kind}", ["align", "{case}/src", "--out", "{case}/out", "--workers", 1], names=("{case}/src",),
        setup=_src(kind))
add("align-src-missing", ["align", "{case}/none", "--out", "{case}/out"], names=("none",), absent=("{case}/out",))
add("align-out-under-file", ["align", "{fix}/imgs", "--out", "{fix}/afile/o", "--workers", 1], names=("{fix}/afile",))
for i, v in enumerate(["0", "100000"]):
    add(f"align-workers-{i}", ["align", "{fix}/imgs", "--out", "{case}/o", "--workers", v], names=("--workers",),
        absent=("{case}/o",))
for kind in ("empty", "nonimages", "truncated", "bombs"):
    add(f"export-rec-{kind}", ["export", "{case}/src", "--to", "rec", "--out", "{case}/out"], names=("{case}/src",),
        setup=_src(kind), absent=("{case}/out/train.rec",))
add("export-rec-under-file", ["export", "{fix}/imgs", "--to", "rec", "--out", "{fix}/afile/o"], names=("{fix}/afile",))
add("export-rec-sys", ["export", "{fix}/imgs", "--to", "rec", "--out", "/sys/synface-audit-rec"], names=("/sys/synface-audit-rec",))
add("export-rec-full-disk", ["export", "{fix}/imgs", "--to", "rec", "--out", "{case}/o"], names=("File too large", "No space"),
    fsize=3000)


def _mixed_rec(ctx: Context) -> None:
    from tests.hostile import write_bomb

    s = image_folder(ctx.case / "src", 2, 2)
    (s / "p1" / "9.jpg").write_text("nope")
    write_bomb(s / "p0" / "8.png")


def _mixed_rec_ok(res: Result, ctx: Context) -> str | None:
    report = json.loads(res.out)
    if report.get("skipped") != 2 or report.get("images") != 4 or "warning:" not in res.err:
        return f"skipped {report.get('skipped')} / images {report.get('images')}, warning missing or wrong"
    return None


add("export-rec-mixed", ["export", "{case}/src", "--to", "rec", "--out", "{case}/o"], setup=_mixed_rec, ok=_mixed_rec_ok)
for kind in ("nopairs", "ghost", "textimg", "header", "bomb"):
    add(f"export-bin-{kind}", ["export", "{case}/lfw", "--to", "bin", "--out", "{case}/x.bin"],
        names=("{case}/lfw", "pairs.txt", "Ghost_G", "Ann_A", "Bob_B"), setup=_lfw_variant(kind), absent=("{case}/x.bin",))
add("export-bin-full-disk", ["export", "{fix}/lfw", "--to", "bin", "--out", "{case}/x.bin"], names=("File too large", "No space"),
    fsize=2000)

# -- real --------------------------------------------------------------------------------------
add("real-add-missing", ["real", "add", "{case}/none"], names=("none",))
add("real-add-txt", ["real", "add", "{fix}/afile"], names=("{fix}/afile",))
for kind in ("garbage", "wrongtype", "nonimage", "by-reference"):
    add(f"real-add-bin-{kind}", ["real", "add", "{case}/x.bin", "--name", f"b{kind}"], names=("x.bin",),
        setup=_bin_variant(kind), absent=(f"{{ws}}/real/b{kind}",))
add("real-add-bin-evil", ["real", "add", "{case}/x.bin", "--name", "bevil"], names=("x.bin",), marker="real-add-bin",
    setup=lambda ctx: evil_bin(ctx.case / "x.bin", ctx.markers / "real-add-bin"))
for i, name in enumerate(["../ESC-real", "a/ESC", "", "ESC\x7f"]):
    add(f"real-add-name-{i}", ["real", "add", "{fix}/lfw.bin", "--name", name], names=("name",))
for i, v in enumerate(["9", "x", "3-1"]):
    add(f"real-add-folds-{i}", ["real", "add", "{fix}/lfw", "--name", f"lf{i}", "--train-folds", v],
        names=("--train-folds", v, "test fold"), absent=(f"{{ws}}/real/lf{i}",))


def _rec_variant(kind: str):
    def setup(ctx: Context) -> None:
        from synface.data.recordio import MAGIC, frame_record, pack_record

        out = copy_tree(ctx.fix / "rec", ctx.case / "rec")
        if kind == "length":
            (out / "train.rec").write_bytes(struct.pack("<II", MAGIC, (1 << 29) - 1) + b"\0" * 32)
            (out / "train.idx").write_text("0\t0\n")
        elif kind == "records":  # record 0 declares half a billion images
            (out / "train.rec").write_bytes(frame_record(pack_record([5e8, 5e8], b"", 0)))
            (out / "train.idx").write_text("0\t0\n")
        elif kind == "noidx":
            (out / "train.idx").unlink()
        elif kind == "offset":
            (out / "train.idx").write_text("0\t99999999\n")
    return setup


for kind in ("length", "records", "noidx", "offset"):
    add(f"real-add-rec-{kind}", ["real", "add", "{case}/rec/train.rec", "--name", f"r{kind}"], names=("train.rec", "train.idx"),
        setup=_rec_variant(kind), absent=(f"{{ws}}/real/r{kind}",))
    add(f"train-rec-{kind}", [*T, *tiny_train("{case}/rec"), "--run-dir", "{case}/run"], names=("train.rec", "train.idx", "rec"),
        setup=_rec_variant(kind), absent=("{case}/run",))

# -- runs, reproduce, bench ----------------------------------------------------------------------
for verb in ("compare", "stop", "archive", "delete"):
    add(f"runs-{verb}-missing", ["runs", verb, "nosuch", *(["{run_id}"] if verb == "compare" else [])], names=("nosuch",))
for i, name in enumerate(["..", "/", "{top}", "../ESC-del"]):
    add(f"runs-delete-traversal-{i}", ["runs", "delete", name], names=(name,))
add("runs-export-under-file", ["runs", "export", "{run_id}", "--embeddings", "{fix}/afile/e.npz"], names=("{fix}/afile",))
add("runs-export-evil", ["runs", "export", "{run_id}", "--embeddings", "{case}/e.npz", "--pairs", "{case}/x.bin"],
    names=("x.bin",), marker="runs-export", setup=lambda ctx: evil_bin(ctx.case / "x.bin", ctx.markers / "runs-export"))
for i, f in enumerate(["nosuch=1", "psi"]):
    add(f"runs-filter-{i}", ["runs", "list", "--filter", f], names=("--filter", f, "nosuch"))
add("runs-queue-zero", ["runs", "queue", "--max-running", "0"], names=("--max-running",))


def _broken_listing(ctx: Context) -> None:
    root = ctx.case / "ws"
    copy_tree(ctx.fix / "run", root / "runs" / "20240101-000000-good")
    bad = copy_tree(ctx.fix / "run", root / "runs" / "20250101-000000-broken")
    (bad / "config.json").write_text("{torn")
    (bad / "status.json").write_text("[")


def _listing_ok(res: Result, ctx: Context) -> str | None:
    return None if "good" in res.out and "broken" in res.out + res.err else "a run is missing from the list"


add("runs-list-broken", ["runs", "--root", "{case}/ws", "list"], setup=_broken_listing, ok=_listing_ok)
RP = ["reproduce", "table3", "--scale", "tiny", "--no-progress"]
add("reproduce-lfw-missing", [*RP, "--lfw", "{case}/none"], names=("none",))
for i, v in enumerate(["0", "1000000"]):
    add(f"reproduce-seeds-{i}", [*RP, "--lfw", "{fix}/lfw5", "--seeds", v, "--dry-run"], names=("--seeds",))
add("reproduce-model", [*RP, "--lfw", "{fix}/lfw5", "--model", "nosuch", "--dry-run"], names=("nosuch",))
add("reproduce-scale", ["reproduce", "table3", "--scale", "huge", "--lfw", "{fix}/lfw5"], names=("--scale",))
for i, (argv, option) in enumerate([(["render", "--batch", 0], "--batch"), (["render", "--batch", 1_000_000], "--batch"),
                                    (["render", "--model", "nosuch"], "nosuch"), (["generate", "--images", 0], "--images"),
                                    (["train", "--steps", 0], "--steps"), (["spread", "--draws", 100_000], "--draws"),
                                    (["leakage", "--model", "m", "--identities", 1_000_000_000], "--identities"),
                                    (["realism", "--pairs", 10**8], "--pairs")]):
    add(f"bench-{i}", ["bench", *argv, *(["--device", "cpu"] if argv[0] != "leakage" else [])], names=(option,))
add("bench-render-cuda", ["bench", "render", "--device", "cuda"], names=("cuda",))
