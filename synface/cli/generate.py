"""`python -m synface generate`: build a synthetic dataset (resumable) or a synthetic benchmark.

A big set can be built in pieces: `--shard K/N` builds identities of part K of N (seeded as in the
whole set), `--merge DIR...` joins the shard folders into the set, and `--workers W` does both
with W local processes (`synface.data.shards`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synface.cli.common import MAX_WORKERS, count, print_json, tqdm_progress


def _phi_grid(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers in [0, 1], got {text!r}") from None
    if not values:  # an empty grid would silently fall back to the default one
        raise argparse.ArgumentTypeError(f"needs at least one value in [0, 1], got {text!r}")
    bad = [v for v in values if not 0.0 <= v <= 1.0]  # nan fails this too
    if bad:
        raise argparse.ArgumentTypeError(f"values must lie in [0, 1], got {bad[0]:g} in {text!r}")
    return values


def _shard(text: str):
    from synface.data.errors import DataError
    from synface.data.synth_config import Shard

    try:
        return Shard.parse(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_out(out: Path) -> None:
    """The output folder, or the folder it would be made in, is a folder (not a file)."""
    from synface.base.files import nearest_existing

    where = nearest_existing(out)
    if not where.is_dir():
        inside = "" if where == out.absolute() else f": {where}"
        raise ValueError(f"--out {out}{inside} is a file, not a folder")


def _check_sizes(args: argparse.Namespace) -> None:
    """Options the builders would only meet mid-work: refused before anything is loaded or written."""
    from synface.data.synth_config import MAX_IDS, MAX_IMAGES, MAX_SAMPLES

    if args.batch < 1:
        raise ValueError(f"--batch must be a positive integer, got {args.batch}")
    if args.name is not None and not args.name.strip():
        raise ValueError("--name is empty; give a dataset name or leave --name out for the paper-style default")
    for option, value, limit in (("--ids", args.ids, MAX_IDS), ("--samples", args.samples, MAX_SAMPLES)):
        if value is not None and not 1 <= value <= limit:
            raise ValueError(f"{option} must be between 1 and {limit:,}, got {value:,}")
    if args.ids and args.samples and args.ids * args.samples > MAX_IMAGES:
        raise ValueError(f"--ids x --samples must be at most {MAX_IMAGES:,} images, got {args.ids * args.samples:,}")
    if args.verification:
        if args.folds < 2:
            raise ValueError(f"--folds must be at least 2 for a verification benchmark (each fold's threshold is "
                             f"chosen on the others), got {args.folds}")
        if args.pairs_per_fold < 2:
            raise ValueError(f"--pairs-per-fold must be at least 2, got {args.pairs_per_fold}")
        if args.folds * args.pairs_per_fold > MAX_IDS:
            raise ValueError(f"--folds x --pairs-per-fold must be at most {MAX_IDS:,} people, "
                             f"got {args.folds * args.pairs_per_fold:,}")


#: the options that describe the set itself; `--config FILE` gives them all at once instead
SET_OPTIONS = ("ids", "samples", "seed", "im", "phi_grid", "pose", "expression", "illumination", "pose_scale",
               "expression_scale", "illumination_scale", "benchmark", "verification", "model",
               "min_source_distance", "distinct_sources", "context", "contexts_per_identity", "min_context_distance", "no_camera_match",
               "format", "name")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="render a synthetic dataset to disk (resumes when re-run)")
    p.add_argument("--config", metavar="FILE.json", default=None,
                   help="the set's settings as one JSON object of SynthConfig fields (e.g. the 'config' of a "
                        "dataset.json, or what the app's Datasets page writes); replaces --ids, --samples, ... ")
    p.add_argument("--ids", type=int, help="number of identities (required unless --verification)")
    p.add_argument("--samples", type=int, help="images per identity (required unless --verification)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--im", action="store_true", help="identity mixup: blend each image with a seeded partner")
    p.add_argument("--phi-grid", type=_phi_grid, default=None, help="comma-separated phi values (default 0,0.05,...,1)")
    for attr in ("pose", "expression", "illumination"):
        p.add_argument(f"--{attr}", choices=("vary", "fixed"), default="vary",
                       help=f"{attr}: drawn per image (vary) or once per identity (fixed)")
        p.add_argument(f"--{attr}-scale", type=float, default=1.0)
    p.add_argument("--benchmark", action="store_true", help="identities from the benchmark seed stream (disjoint from training sets)")
    p.add_argument("--verification", action="store_true",
                   help="build the synthetic verification benchmark instead: LFW layout + pairs.txt + people.txt + "
                        ".bin, identity-disjoint folds, identities disjoint from every training set")
    p.add_argument("--folds", type=int, default=10, help="with --verification: number of folds")
    p.add_argument("--pairs-per-fold", type=int, default=300, help="with --verification: same (and different) pairs per fold")
    p.add_argument("--model", default="builtin",
                   help="face model: 'builtin' (the procedural head) or a learned model of the workspace "
                        "(`python -m synface face-model list`)")
    p.add_argument("--min-source-distance", type=float, default=None, metavar="D",
                   help="learned models only: redraw every identity closer than D (dlib descriptor distance) to a "
                        "person of the model's source photos. Default: the model card's stranger_nearest_p01 "
                        "(closer than only 1%% of real strangers come); 0 keeps every draw. The card reports the "
                        "distances either way")
    p.add_argument("--distinct-sources", action="store_true",
                   help="learned models only: give each identity's facial regions the source people that earlier "
                        "identities used least, so identities share a region's person only when the bank is too "
                        "small (by default each identity draws its own, and about two in three share one when the "
                        "set has as many identities as the bank people)")
    p.add_argument("--context", choices=("plain", "photo", "background"), default="plain",
                   help="learned models only: 'photo' draws each face into one of the model's source photos (its "
                        "hair, ears, clothes and scene kept, the face replaced), 'background' draws the whole head over "
                        "one; 'plain' (default): the procedural background. Context sets contain real hair, ears and "
                        "backgrounds of the source people (docs/face_models.md)")
    p.add_argument("--contexts-per-identity", action="store_true",
                   help="with --context: one context photo per identity (default: one per image)")
    p.add_argument("--no-camera-match", action="store_true",
                   help="with --context: leave the drawn face as rendered (default: it takes its photo's colour, "
                        "blur, grain and JPEG level, so the seam is no shortcut)")
    p.add_argument("--min-context-distance", type=float, default=None, metavar="D",
                   help="with --context: redraw the context of any image whose face lies closer than D (dlib "
                        "descriptor distance) to the context photo's person. Default: the model card's "
                        "stranger_nearest_p01; 0 skips the check. The card reports the distances")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg")
    p.add_argument("--name", default=None, help="dataset name: one folder name of letters, digits, '.', '_', '-' "
                                               "(default: paper style, e.g. Syn_1K_50_IM)")
    p.add_argument("--out", default=None, help="output folder (default: <workspace>/datasets/<name>)")
    p.add_argument("--root", default=None, help="workspace root (default: $SYNFACE_HOME or workspace/)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=count(4096), default=256, help="images rendered per batch")
    p.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                   help="build part K of N only (1 <= K <= N; identities split in N contiguous ranges, seeded as in "
                        "the whole set); default --out: <workspace>/datasets/<name>.shard-K-of-N")
    p.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                   help="join the finished shard folders of one set into the set (--out, default "
                        "<workspace>/datasets/<name>): one manifest and card, images linked or copied")
    p.add_argument("--workers", type=count(MAX_WORKERS), default=1, metavar="W",
                   help="local processes: W shards built side by side, then merged (default 1)")
    p.add_argument("--json", action="store_true", help="print the build report as one JSON line")
    p.set_defaults(func=_generate, set_option_defaults={dest: p.get_default(dest) for dest in SET_OPTIONS})


class _Bars:
    """tqdm bars opened on their first progress call (so a refused build prints only its error);
    a new stage's bar closes the previous one."""

    def __init__(self) -> None:
        self.open: dict[str, tuple] = {}

    def stage(self, desc: str, unit: str):
        def update(done: int, total: int) -> None:
            if desc not in self.open:
                self.close()
                self.open[desc] = tqdm_progress(desc, total, unit=unit)
            self.open[desc][0](done, total)

        return update

    def close(self) -> None:
        for _, close in self.open.values():
            close()


def _config_file(args: argparse.Namespace):
    """The SynthConfig of `--config FILE`; refused naming the file, or naming an option that would
    be ignored beside it."""
    from synface.data.errors import DataError
    from synface.data.synthetic import SynthConfig

    given = [dest for dest, default in args.set_option_defaults.items() if getattr(args, dest) != default]
    if given:
        options = ", ".join("--" + dest.replace("_", "-") for dest in given)
        raise ValueError(f"--config {args.config} gives the set's settings; drop {options} (or drop --config)")
    path = Path(args.config)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no such file (--config)", path=path) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"--config is not a readable JSON file ({exc})", path=path) from None
    if not isinstance(values, dict):
        raise DataError(f"--config must hold one JSON object of SynthConfig fields, got {type(values).__name__}",
                        path=path)
    try:
        return SynthConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise DataError(str(exc), path=path) from None


def _config_options(args: argparse.Namespace):
    """The SynthConfig of the set options (--ids, --samples, ...)."""
    from synface.data.synthetic import DEFAULT_PHI_GRID, SynthConfig

    if args.ids is None or args.samples is None:
        raise ValueError("generate needs --ids and --samples (or --config FILE, or --verification for the benchmark)")
    return SynthConfig(
        ids=args.ids, samples=args.samples, seed=args.seed, im=args.im,
        phi_grid=DEFAULT_PHI_GRID if args.phi_grid is None else args.phi_grid,
        pose=args.pose, expression=args.expression, illumination=args.illumination,
        pose_scale=args.pose_scale, expression_scale=args.expression_scale,
        illumination_scale=args.illumination_scale,
        purpose="benchmark" if args.benchmark else "train", image_format=args.format, name=args.name or "",
        model=args.model, min_source_distance=_min_source_distance(args), distinct_sources=args.distinct_sources,
        context=args.context,
        contexts_per_identity=args.contexts_per_identity, min_context_distance=_min_context_distance(args),
        camera_match=not args.no_camera_match,
    )


def _min_source_distance(args: argparse.Namespace) -> float:
    """--min-source-distance, else (a learned model) its card's strangers' 1st percentile: privacy on
    by default. A value for the built-in head is kept, so SynthConfig refuses it by name."""
    if args.min_source_distance is not None:
        return args.min_source_distance
    from synface.data.synth_model import privacy_floor

    return privacy_floor(args.model, args.root)


def _min_context_distance(args: argparse.Namespace) -> float:
    """--min-context-distance, else (a set drawn into context photos) the card's strangers' 1st
    percentile: a composite must not be recognisable as its context photo's person by default."""
    if args.min_context_distance is not None:
        return args.min_context_distance
    if args.context == "plain":
        return 0.0
    from synface.data.synth_model import privacy_floor

    return privacy_floor(args.model, args.root)


def _check_pieces(args: argparse.Namespace) -> None:
    """--shard, --merge and --workers: refused where they cannot apply, before any work."""
    if args.merge is not None:
        given = [dest for dest, default in args.set_option_defaults.items() if getattr(args, dest) != default]
        given += ["config"] if args.config else []
        given += ["shard"] if args.shard else []
        given += ["workers"] if args.workers != 1 else []
        given += ["verification"] if args.verification else []
        if given:
            options = ", ".join("--" + dest.replace("_", "-") for dest in given)
            raise ValueError(f"--merge takes the set's settings from its shards; drop {options}")
    if args.verification and (args.shard or args.workers != 1):
        raise ValueError("--shard and --workers build training sets; a --verification benchmark is one process")
    if args.shard and args.workers != 1:
        raise ValueError(f"--shard {args.shard.label} is one piece of work; --workers splits a whole set (drop one)")


def _generate(args: argparse.Namespace) -> int:
    _check_sizes(args)
    _check_pieces(args)
    if args.merge is not None:
        return _merge(args)
    if args.config is not None:
        config = _config_file(args)
    elif args.verification:
        return _verification(args)
    else:
        config = _config_options(args)
    from synface.base.names import child_path
    from synface.base.workspace import workspace_root
    from synface.data.synthetic import build_dataset, check_build_space
    from synface.face.catalog import load_model
    from synface.generator import FaceGenerator

    # SynthConfig has checked the name; --out is the user's own folder and may be anywhere
    folder = config.name if args.shard is None else f"{config.name}.shard-{args.shard.index}-of-{args.shard.count}"
    out = Path(args.out) if args.out else child_path(workspace_root(args.root) / "datasets", folder, "dataset name")
    _check_out(out)
    if args.shard is not None:
        args.shard.identities(config.ids)  # more shards than identities: refused before anything loads
    if not out.exists():
        images = None if args.shard is None else len(args.shard.identities(config.ids)) * config.samples
        check_build_space(config, out, images)  # a new set that cannot fit: refused before the generator loads
    bars = _Bars()
    try:
        if args.workers > 1:
            from synface.data.shards import build_with_workers

            load_model(config.model, args.root)  # a missing face model: one line before any worker starts
            report = build_with_workers(config, out, args.workers, device=args.device, batch_size=args.batch,
                                        workspace=args.root, progress=bars.stage(f"generate {config.name}", "img"),
                                        merge_progress=bars.stage("merge", "img"))
        else:
            gen = FaceGenerator(device=args.device, model=load_model(config.model, args.root))
            report = build_dataset(config, out, gen, batch_size=args.batch, workspace=args.root,
                                   progress=bars.stage(f"generate {config.name}", "img"),
                                   check_progress=bars.stage("source-distance check", "id"), shard=args.shard)
    finally:
        bars.close()
    _print_record(args, config, report, shard=args.shard)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from synface.base.names import child_path
    from synface.base.workspace import workspace_root
    from synface.data.shards import merge_shards, read_shards

    config, _ = read_shards(args.merge)  # refused (naming the shard) before anything is written
    out = Path(args.out) if args.out else child_path(workspace_root(args.root) / "datasets", config.name, "dataset name")
    _check_out(out)
    bars = _Bars()
    try:
        report = merge_shards(args.merge, out, args.root, progress=bars.stage(f"merge {config.name}", "img"))
    finally:
        bars.close()
    _print_record(args, config, report)
    return 0


def _print_record(args: argparse.Namespace, config, report, shard=None) -> None:
    from synface.data.synth_set import SynthSet

    record = {"out": report.out, "name": report.name, "model": config.model, "images": report.num_images,
              "rendered": report.rendered, "already_present": report.already_present, "seconds": report.seconds,
              "images_per_s": report.images_per_s, "disk_mb": round(report.disk_bytes / 2**20, 1)}
    if shard is not None:
        span = shard.identities(config.ids)
        record.update(shard=shard.label, identities=[span.start, span.stop])
    if report.extra.get("merged_shards"):
        record["merged_shards"] = report.extra["merged_shards"]
    built = SynthSet(report.out)
    if built.is_complete() and config.model != "builtin":
        record["privacy"] = {k: v for k, v in built.card().get("privacy", {}).items()
                             if k in ("threshold", "identities_checked", "nearest_min", "nearest_p01", "nearest_median",
                                      "share_under_threshold", "redrawn")}
    if args.json:
        print_json(record)
    else:
        print(json.dumps(record, indent=1))


def _verification(args: argparse.Namespace) -> int:
    from synface.base.names import check_name, child_path
    from synface.base.workspace import workspace_root
    from synface.data.benchmark import build_synthetic_benchmark
    from synface.face.catalog import load_model
    from synface.generator import FaceGenerator

    if args.min_source_distance:
        raise ValueError("--min-source-distance applies to training sets, not to --verification benchmarks")
    if args.distinct_sources:
        raise ValueError("--distinct-sources applies to training sets, not to --verification benchmarks")
    if args.no_camera_match:
        raise ValueError("--no-camera-match applies to training sets drawn into context photos, not to --verification "
                         "benchmarks")
    if args.context != "plain" or args.contexts_per_identity or args.min_context_distance:
        raise ValueError("--context applies to training sets, not to --verification benchmarks")
    model = load_model(args.model, args.root)  # a one-line error before anything is written
    suffix = "" if args.model == "builtin" else f"_{args.model}"
    name = check_name(args.name or f"SynBench_{args.folds}x{args.pairs_per_fold}_s{args.seed}{suffix}", "benchmark name")
    out = Path(args.out) if args.out else child_path(workspace_root(args.root) / "benchmarks", name, "benchmark name")
    _check_out(out)
    total = args.folds * args.pairs_per_fold
    bars = _Bars()
    try:
        build_synthetic_benchmark(out, folds=args.folds, pairs_per_fold=args.pairs_per_fold, seed=args.seed,
                                  progress=bars.stage(f"benchmark {name}", "id"),
                                  generator=FaceGenerator(device=args.device, model=model),
                                  model=args.model, workspace=args.root)
    finally:
        bars.close()
    record = {"out": str(out), "name": name, "folds": args.folds, "pairs": 2 * total, "images": 2 * total,
              "bin": str(out / "benchmark.bin")}
    print_json(record) if args.json else print(json.dumps(record, indent=1))
    return 0
