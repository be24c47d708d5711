"""`python -m synface bench {render,realism,...}`: the README's benchmark figures."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

from synface.bench.source_sharing import MAX_PAIRED_IDENTITIES  # light: numpy only
from synface.cli.common import count, positive_int, print_json

#: the most identities, pairs, renders or images one benchmark option may ask for (docs/limits.md)
MAX_BENCH_COUNT = 100_000


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark and print one JSON line")
    which = p.add_subparsers(dest="what", required=True)
    r = which.add_parser("render", help="rendering throughput, single-image latency and memory")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    r.add_argument("--batch", type=count(4096), default=256)
    r.add_argument("--repeats", type=count(1000), default=5)
    r.add_argument("--model", default=None, help="face model: builtin (default) or a learned model's name")
    r.add_argument("--workspace", default=None)
    r.add_argument("--context", choices=("plain", "photo", "background"), default="plain",
                   help="learned models: draw the faces into the model's context photos")
    r.add_argument("--no-camera-match", action="store_true",
                   help="with --context: composites as rendered (what camera matching costs)")
    r.add_argument("--json", action="store_true", help="print one JSON line (default output too)")
    r.set_defaults(func=_render)
    q = which.add_parser("realism", help="dlib detection rate, identity verification and the phi trend")
    q.add_argument("--device", default="auto")
    q.add_argument("--detect", type=count(MAX_BENCH_COUNT), default=500, help="renders with |yaw| <= 30 deg for the detector")
    q.add_argument("--pairs", type=count(MAX_BENCH_COUNT), default=500, help="genuine pairs (and as many impostor pairs)")
    q.add_argument("--phi-pairs", type=count(MAX_BENCH_COUNT), default=40)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--real-pairs", metavar="DIR_OR_BIN", default=None,
                   help="aligned real pairs (LFW-layout folder or .bin): the same verification protocol on them")
    q.add_argument("--identity-scale", type=float, default=1.0,
                   help="multiply every identity draw (1 = default prior): what more spread alone buys")
    q.add_argument("--real-crops", metavar="DIR", default=None,
                   help="aligned real crops (<person>/<crop> or a flat folder): accuracy of a classifier telling "
                        "them from renders by how they look (50%% = cannot tell)")
    from synface.bench.image_realism import DEFAULT_CROPS  # light: numpy only until it runs

    q.add_argument("--crops", type=positive_int, default=DEFAULT_CROPS,
                   help="real crops the classifier uses (a seeded choice, a few per person) and as many renders")
    q.add_argument("--model", default=None, help="face model: builtin (default) or a learned model's name")
    q.add_argument("--workspace", default=None, help="workspace holding the learned model")
    q.add_argument("--variant", default="mosaic", help="learned models: mosaic (default), one_person or whole_face_blend")
    q.add_argument("--context", choices=("plain", "photo", "background"), default="plain",
                   help="learned models: detection, verification and the look classifier on faces drawn into "
                        "the model's context photos")
    q.add_argument("--no-camera-match", action="store_true",
                   help="with --context: composites as rendered, without their photo's colour, blur, grain and JPEG")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_realism)
    lk = which.add_parser("leakage", help="a learned model's synthetic people against its source people (privacy)")
    lk.add_argument("--model", required=True, help="learned face model name")
    lk.add_argument("--identities", type=count(MAX_BENCH_COUNT), default=1000)
    lk.add_argument("--seed", type=int, default=0)
    lk.add_argument("--variant", default="mosaic", help="mosaic (the model's draws), one_person or whole_face_blend")
    lk.add_argument("--min-source-distance", type=float, default=0.0,
                    help="draw as generate --min-source-distance does, then re-check under unseen attributes")
    lk.add_argument("--workspace", default=None)
    lk.add_argument("--device", default="auto")
    lk.add_argument("--json", action="store_true")
    lk.set_defaults(func=_leakage)
    t = which.add_parser("train", help="training images/s and MFU against this machine's fp32 matmul peak")
    t.add_argument("--preset", default="cpu-quick")
    t.add_argument("--steps", type=count(MAX_BENCH_COUNT), default=8)
    t.add_argument("--batch", type=count(4096), default=None)
    t.add_argument("--device", default="cpu", help="cpu (default), cuda[:N] or auto; a missing GPU is one error line")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=_train)
    i = which.add_parser("identity", help="identity power of each shape/albedo coefficient under dlib's descriptor")
    i.add_argument("--identities", type=count(MAX_BENCH_COUNT), default=10, help="random identities each coefficient is swept on")
    i.add_argument("--amplitude", type=float, default=2.0, help="sweep from -A to +A (prior standard deviations)")
    i.add_argument("--seed", type=int, default=7)
    i.add_argument("--device", default="auto")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_identity)
    so = which.add_parser("sources", help="dlib distances of a learned model's new people that share a region's source person")
    so.add_argument("--model", required=True, help="a learned face model of the workspace")
    so.add_argument("--workspace", default=None)
    so.add_argument("--identities", type=count(MAX_PAIRED_IDENTITIES), default=400,
                    help=f"a training set's first N identities (every pair is compared: at most {MAX_PAIRED_IDENTITIES:,})")
    so.add_argument("--distinct", action="store_true", help="drawn as `generate --distinct-sources` draws them")
    so.add_argument("--seed", type=int, default=0, help="the set's seed")
    so.add_argument("--varied", action="store_true",
                    help="each identity under one draw of the attribute prior (pose, expression, light) instead of "
                         "frontal and neutral: comparable with real photos, whose poses and light vary")
    so.add_argument("--real", metavar="DIR", default=None,
                    help="identity-per-folder aligned crops (e.g. workspace/real/lfw_test/images): as many real "
                         "people's distances beside them, one photo each")
    so.add_argument("--device", default="auto")
    so.add_argument("--json", action="store_true")
    so.set_defaults(func=_sources)
    s = which.add_parser("spread", help="between- vs within-identity variance of dlib's descriptor, renders and real")
    s.add_argument("--identities", type=count(MAX_BENCH_COUNT), default=100)
    s.add_argument("--draws", type=count(1000), default=4, help="attribute draws (renders) or images (real) per identity")
    s.add_argument("--seed", type=int, default=31)
    s.add_argument("--identity-scale", type=float, default=1.0, help="multiply every identity draw (1 = default prior)")
    s.add_argument("--real", metavar="DIR", default=None,
                   help="identity-per-folder aligned crops (e.g. workspace/real/lfw_test/images): the same statistics")
    from synface.bench.crop_regions import (
        REGIONS,  # light: numpy only, no renderer or dlib
    )

    s.add_argument("--region", choices=REGIONS, default=None,
                   help="mask every crop (both sets) to this region first: how much of the spread it carries")
    s.add_argument("--device", default="auto")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_spread)
    ph = which.add_parser("photo", help="verification with real photographed appearance on the built-in mesh: the bar's ceiling")
    ph.add_argument("--photos", metavar="DIR", required=True,
                    help="identity-per-folder aligned crops (e.g. workspace/real/lfw_test/images); one photo per person")
    ph.add_argument("--identities", type=count(MAX_BENCH_COUNT), default=500, help="people (photo identities and as many built-in ones)")
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--mean-shape", action="store_true", help="every identity on the mean shape (appearance alone)")
    ph.add_argument("--region", choices=REGIONS, default=None,
                    help="photo colours only inside this crop region, built-in colours elsewhere: where identity lies")
    ph.add_argument("--device", default="auto")
    ph.add_argument("--json", action="store_true")
    ph.set_defaults(func=_photo)
    lm = which.add_parser("landmarks", help="landmark source for fitting: dlib 68 or mediapipe 468, on renders of known truth")
    lm.add_argument("--source", default="dlib", help="dlib (default) or mediapipe (optional, its own environment)")
    lm.add_argument("--renders", type=count(MAX_BENCH_COUNT), default=200, help="posed test renders (|yaw| <= 30 deg)")
    lm.add_argument("--photos", type=int, default=300, help="real photos sampled from --lfw for detection and timing")
    lm.add_argument("--lfw", metavar="DIR", default=None, help="an LFW copy (or any folder of .jpg photos)")
    lm.add_argument("--seed", type=int, default=11)
    lm.add_argument("--json", action="store_true")
    lm.set_defaults(func=_landmarks)
    al = which.add_parser("alignment", help="how dlib's alignment pipeline would re-frame renders, beside real crops")
    al.add_argument("--model", default=None, help="face model: builtin (default) or a learned model's name")
    al.add_argument("--workspace", default=None, help="workspace holding the learned model")
    al.add_argument("--renders", type=count(MAX_BENCH_COUNT), default=300,
                    help="renders under the default prior (and as many frontal ones)")
    al.add_argument("--seed", type=int, default=0)
    al.add_argument("--real", metavar="DIR", default=None,
                    help="real aligned 112x112 crops, <identity>/<image> (as `python -m synface align` writes)")
    al.add_argument("--real-max", type=count(MAX_BENCH_COUNT), default=3000, help="at most this many real crops, evenly spaced")
    al.add_argument("--device", default="auto")
    al.add_argument("--context", choices=("plain", "photo", "background"), default="plain",
                    help="learned models: re-frame faces drawn into the model's context photos")
    al.add_argument("--json", action="store_true", help="print one JSON line (default output too)")
    al.set_defaults(func=_alignment)
    mx = which.add_parser("mixup", help="identity mixup strips under dlib: one face at every phi, steady from B to A")
    mx.add_argument("--model", default=None, help="face model: builtin (default) or a learned model's name")
    mx.add_argument("--workspace", default=None, help="workspace holding the learned model")
    mx.add_argument("--strips", type=count(MAX_BENCH_COUNT), default=40, help="identity pairs, 11 renders each")
    mx.add_argument("--seed", type=int, default=0)
    mx.add_argument("--device", default="auto")
    mx.add_argument("--json", action="store_true", help="print one JSON line (default output too)")
    mx.set_defaults(func=_mixup)
    rc = which.add_parser("reconstruct", help="held-out photos re-rendered from their own fits: SSIM over the face")
    rc.add_argument("--photos", metavar="DIR", required=True,
                    help="photos: an LFW copy (images/ + people.txt) or <person>/<photo> folders")
    rc.add_argument("--folds", default=None, help="LFW only: the people of these folds, e.g. 4,5 (held out from fits)")
    rc.add_argument("--count", type=count(MAX_BENCH_COUNT), default=40, help="photos (one per person)")
    rc.add_argument("--seed", type=int, default=0)
    rc.add_argument("--json", action="store_true", help="print one JSON line (default output too)")
    rc.set_defaults(func=_reconstruct)
    ss = which.add_parser("selfswap", help="people's own fitted faces drawn into their own photos: do they still "
                                           "verify against their other photos?")
    ss.add_argument("--photos", metavar="DIR", required=True,
                    help="photos: an LFW copy (images/ + people.txt) or <person>/<photo> folders")
    ss.add_argument("--folds", default=None, help="LFW only: the people of these folds, e.g. 1,2,3")
    ss.add_argument("--people", type=count(MAX_BENCH_COUNT), default=60, help="people with two or more photos")
    ss.add_argument("--others", type=count(20), default=3, help="other photos per person to verify against")
    ss.add_argument("--seed", type=int, default=0)
    ss.add_argument("--write-sets", metavar="OUT", default=None,
                    help="instead of the check: redraw EVERY photo from its own fit into OUT/original, "
                         "OUT/self_composite and OUT/self_plain (<person>/<photo>.jpg), folders to train on")
    ss.add_argument("--workers", type=count(64), default=None, help="with --write-sets: processes (default: cores)")
    ss.add_argument("--json", action="store_true", help="print one JSON line (default output too)")
    ss.set_defaults(func=_selfswap)
    g = which.add_parser("generate", help="end-to-end synthetic set build to disk (images/s)")
    g.add_argument("--images", type=count(10_000_000), default=10_000)
    g.add_argument("--samples", type=count(10_000), default=50)
    g.add_argument("--device", default="auto")
    g.add_argument("--workers", type=count(64), default=None,
                   help="time one process against W (generate --workers W), alternated --repeats times")
    g.add_argument("--repeats", type=count(100), default=3)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=_generate)
    su = which.add_parser("startup", help="app start-up: health, first face and slider latency in Chromium")
    su.add_argument("--repeats", type=count(1000), default=3)
    su.add_argument("--moves", type=count(1000), default=15, help="phi slider moves timed per start")
    su.add_argument("--cold", action="store_true", help="an empty numba cache each start (a fresh clone)")
    su.add_argument("--model", default="builtin",
                    help="time the slider with this learned face model of --workspace (copied into each trial)")
    su.add_argument("--workspace", default=None, help="where --model is (default $SYNFACE_HOME or ./workspace)")
    su.add_argument("--json", action="store_true")
    su.set_defaults(func=_startup)


def _render(args: argparse.Namespace) -> int:
    from synface.bench.render import bench_render

    print_json(bench_render(device=args.device, batch=args.batch, repeats=args.repeats, model=args.model,
                            workspace=args.workspace, context=args.context, camera_match=not args.no_camera_match,
                            progress=lambda msg: print(f"[bench render] {msg}", file=sys.stderr)))
    return 0


def _realism(args: argparse.Namespace) -> int:
    from synface.bench.realism import bench_realism
    from synface.cli.common import tqdm_progress

    bars: dict[str, tuple] = {}

    def tick(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = tqdm_progress(f"realism {stage}", total)
        bars[stage][0](done, total)

    result = bench_realism(n_detect=args.detect, n_pairs=args.pairs, n_phi_pairs=args.phi_pairs, seed=args.seed,
                           device=args.device, progress=tick, real_pairs=args.real_pairs,
                           identity_scale=args.identity_scale, model=args.model, workspace=args.workspace,
                           variant=args.variant, context=args.context, real_crops=args.real_crops, n_crops=args.crops,
                           camera_match=not args.no_camera_match)
    for _update, close in bars.values():
        close()
    print_json(result)
    return 0


def _print_with_bar(desc: str, unit: str, run: Callable[[Callable[[int, int], None]], dict]) -> int:
    """Run a benchmark that reports (done, total) under one tqdm bar, then print its JSON line."""
    from synface.cli.common import tqdm_progress

    update, close = tqdm_progress(desc, 1, unit=unit)
    try:
        result = run(update)
    finally:
        close()
    print_json(result)
    return 0


def _leakage(args: argparse.Namespace) -> int:
    from synface.bench.leakage import bench_leakage

    if not math.isfinite(args.min_source_distance) or args.min_source_distance < 0:
        raise ValueError(f"--min-source-distance must be a finite number >= 0, got {args.min_source_distance}")
    return _print_with_bar("bench leakage", "identity", lambda progress: bench_leakage(
        args.model, identities=args.identities, seed=args.seed, variant=args.variant, workspace=args.workspace,
        device=args.device, progress=progress, min_distance=args.min_source_distance))


def _identity(args: argparse.Namespace) -> int:
    from synface.bench.identity import bench_identity

    return _print_with_bar("bench identity", "coeff", lambda progress: bench_identity(
        n_identities=args.identities, amplitude=args.amplitude, seed=args.seed, device=args.device,
        progress=progress))


def _sources(args: argparse.Namespace) -> int:
    from synface.bench.source_sharing import bench_sources

    return _print_with_bar("bench sources", "img", lambda progress: bench_sources(
        args.model, identities=args.identities, distinct=args.distinct, seed=args.seed, workspace=args.workspace,
        device=args.device, real=args.real, varied=args.varied, progress=progress))


def _spread(args: argparse.Namespace) -> int:
    from synface.bench.spread import bench_spread

    return _print_with_bar("bench spread", "img", lambda progress: bench_spread(
        identities=args.identities, draws=args.draws, seed=args.seed, identity_scale=args.identity_scale,
        device=args.device, real=args.real, region=args.region, progress=progress))


def _photo(args: argparse.Namespace) -> int:
    from synface.bench.photo import bench_photo

    return _print_with_bar("bench photo", "img", lambda progress: bench_photo(
        args.photos, identities=args.identities, seed=args.seed, mean_shape=args.mean_shape, region=args.region,
        device=args.device, progress=progress))


def _landmarks(args: argparse.Namespace) -> int:
    from synface.bench.landmarks import bench_landmarks

    if not 0 <= args.photos <= MAX_BENCH_COUNT:
        raise ValueError(f"--photos must be in 0..{MAX_BENCH_COUNT:,}, got {args.photos:,}")
    return _print_with_bar("bench landmarks", "img", lambda progress: bench_landmarks(
        args.source, renders=args.renders, photos=args.photos if args.lfw else 0, lfw=args.lfw, seed=args.seed,
        progress=progress))


def _alignment(args: argparse.Namespace) -> int:
    from synface.bench.alignment import bench_alignment

    return _print_with_bar("bench alignment", "img", lambda progress: bench_alignment(
        args.model, workspace=args.workspace, renders=args.renders, seed=args.seed, real=args.real,
        real_max=args.real_max, device=args.device, progress=progress, context=args.context))


def _mixup(args: argparse.Namespace) -> int:
    from synface.bench.mixup import bench_mixup

    return _print_with_bar("bench mixup", "img", lambda progress: bench_mixup(
        args.model, strips=args.strips, seed=args.seed, device=args.device, workspace=args.workspace,
        progress=progress))


def _reconstruct(args: argparse.Namespace) -> int:
    from synface.bench.reconstruct import bench_reconstruct
    from synface.cli.common import parse_folds

    folds = parse_folds(args.folds) if args.folds else None
    return _print_with_bar("bench reconstruct", "photo", lambda progress: bench_reconstruct(
        args.photos, folds=folds, count=args.count, seed=args.seed, progress=progress))


def _selfswap(args: argparse.Namespace) -> int:
    from synface.bench.selfswap import bench_selfswap
    from synface.cli.common import parse_folds

    folds = parse_folds(args.folds) if args.folds else None
    if args.workers is not None and args.write_sets is None:
        raise ValueError("--workers applies to --write-sets only (the check itself runs in one process)")
    if args.write_sets is not None:
        from synface.bench.selfswap_sets import write_self_sets

        return _print_with_bar("bench selfswap --write-sets", "photo", lambda progress: write_self_sets(
            args.photos, args.write_sets, folds=folds, workers=args.workers, seed=args.seed, progress=progress))
    return _print_with_bar("bench selfswap", "person", lambda progress: bench_selfswap(
        args.photos, folds=folds, people=args.people, others=args.others, seed=args.seed, progress=progress))


def _train(args: argparse.Namespace) -> int:
    from synface.bench.train import bench_train

    print_json(bench_train(preset=args.preset, steps=args.steps, batch=args.batch, device=args.device))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from synface.bench.generate import bench_generate
    from synface.cli.common import tqdm_progress

    if args.workers is not None:
        from synface.bench.generate import bench_workers

        update, close = tqdm_progress("bench generate (builds)", 2 * args.repeats, unit="build")
        try:
            result = bench_workers(images=args.images, samples=args.samples, workers=args.workers,
                                   repeats=args.repeats, progress=update)
        finally:
            close()
        print_json(result)
        return 0
    update, close = tqdm_progress("bench generate", args.images, unit="img")
    try:
        result = bench_generate(images=args.images, samples=args.samples, device=args.device, progress=update)
    finally:
        close()
    print_json(result)
    return 0


def _startup(args: argparse.Namespace) -> int:
    from synface.bench.startup import bench_startup

    return _print_with_bar("bench startup", "start", lambda progress: bench_startup(
        args.repeats, args.moves, args.cold, progress=progress, model=args.model, workspace=args.workspace))
