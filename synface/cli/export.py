"""`python -m synface export`: hand a dataset to other tools in the field's formats.

An ImageFolder set (any synthetic set, or an aligned real set) becomes insightface RecordIO
(train.rec + train.idx, so arcface_torch trains on it unchanged); an LFW-layout verification set
(images + pairs.txt) becomes an insightface `.bin`. Every image is decoded first: a file that is
not a whole image is never packed. RecordIO skips it (counted and named in the report and on
stderr); a `.bin`, whose pairs need every image, is refused.

A trained recogniser (a run's last checkpoint, or a checkpoint file) becomes ONNX (`--to onnx`,
`synface.models.onnx_export`): dynamic batch, its preprocessing recorded; the export checks that
onnxruntime's embeddings match PyTorch's before it reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synface.cli.common import print_json, tqdm_progress

#: skipped files named in the report (all are counted)
MAX_NAMED = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write a set as insightface RecordIO (train) or .bin (verification), "
                                             "or a trained recogniser as ONNX")
    p.add_argument("src", help="ImageFolder set (for --to rec), LFW-layout folder with pairs.txt (for --to bin), "
                               "or a run (id or folder) or checkpoint file (for --to onnx)")
    p.add_argument("--to", choices=("rec", "bin", "onnx"), required=True)
    p.add_argument("--out", default=None, help="output folder (rec), .bin file path, or .onnx file path "
                                              "(default for onnx: <run folder>/model.onnx)")
    p.add_argument("--pairs", default=None, help="pairs file for --to bin (default: SRC/pairs.txt)")
    p.add_argument("--root", default=None, help="workspace root for --to onnx (default: $SYNFACE_HOME or workspace/)")
    p.set_defaults(func=_export)


def _problems(paths: list[Path], desc: str) -> dict[str, str]:
    """{path: why} of every file in `paths` that is not a whole, decodable image."""
    from synface.data.imageio import image_problem

    bad: dict[str, str] = {}
    update, close = tqdm_progress(desc, len(paths), unit="img", lazy=True)
    try:
        for done, path in enumerate(paths, 1):
            try:
                why = image_problem(Path(path).read_bytes())
            except OSError as exc:
                why = exc.strerror or str(exc)
            if why:
                bad[str(path)] = why
            if done % 200 == 0 or (done == len(paths) and done > 200):  # no bar for a handful
                update(done, len(paths))
    finally:
        close()
    return bad


def _onnx(args: argparse.Namespace) -> int:
    """A run's last checkpoint (or a checkpoint file) as ONNX, checked against PyTorch."""
    import numpy as np
    import torch

    from synface.models.checkpoint import load_checkpoint_model
    from synface.models.onnx_export import export_onnx, onnx_embeddings, require_onnx

    require_onnx(runtime=True)  # before the checkpoint loads: one line naming the extra
    source = Path(args.src)
    run = None
    if source.suffix == ".pt" and source.is_file():
        checkpoint = source
    else:
        from synface.runs.registry import find_run

        run = find_run(args.src, args.root)
        checkpoint = run.last_checkpoint
        if not checkpoint.is_file():
            raise ValueError(f"run {run.id} has no checkpoint to export ({checkpoint}): it has not finished an "
                             "epoch or was stopped before its first save")
    out = Path(args.out) if args.out else (run.path / "model.onnx" if run is not None else source.with_suffix(".onnx"))
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"--out {out} must end in .onnx")
    model, cfg = load_checkpoint_model(checkpoint, "cpu")
    meta = {"run": run.id if run is not None else None, "checkpoint": str(checkpoint), "backbone": cfg.get("backbone")}
    record = export_onnx(model, out, meta)
    size = int(model.input_size)
    probe = torch.Generator().manual_seed(0)
    images = (torch.rand(4, 3, size, size, generator=probe) * 2 - 1).numpy()
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    exported = onnx_embeddings(out, images)
    cosine = (reference * exported).sum(1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(exported, axis=1))
    print_json({**record, "format": "onnx", **meta, "parity_min_cosine": round(float(cosine.min()), 6)})
    return 0


def _export(args: argparse.Namespace) -> int:
    from synface.data.errors import DataError

    if args.to == "onnx":
        return _onnx(args)
    if args.out is None:
        raise ValueError(f"--to {args.to} needs --out (the {'folder' if args.to == 'rec' else '.bin file'} to write)")
    out = Path(args.out)
    if args.to == "rec":
        from synface.data.imagefolder import ImageFolderIndex
        from synface.data.recordio import write_recordio

        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; RecordIO export writes train.rec and train.idx into a folder")
        index = ImageFolderIndex(args.src)
        samples = index.samples()
        bad = _problems([p for p, _ in samples], "check images")
        named = [f"{p} ({why})" for p, why in bad.items()]
        if len(bad) == len(samples):
            raise DataError(f"none of the {len(samples)} images decodes (e.g. {named[0]}); nothing written",
                            path=args.src)
        good = [(p, label) for p, label in samples if str(p) not in bad]
        labels: dict[int, int] = {}  # identities left without an image drop out; the rest stay 0..C-1
        update, close = tqdm_progress("export rec", len(good), unit="img", lazy=True)

        def items():
            for done, (path, label) in enumerate(good, 1):
                yield Path(path).read_bytes(), labels.setdefault(int(label), len(labels))
                if done % 200 == 0 or done == len(good):
                    update(done, len(good))

        try:
            images, ids = write_recordio(out, items())
        finally:
            close()
        record = {"out": args.out, "format": "recordio", "images": images, "identities": ids, "skipped": len(bad),
                  "skipped_files": named[:MAX_NAMED], "ignored_files": index.ignored_files}
        if bad:
            print(f"warning: skipped {len(bad)} of {len(samples)} files that are not whole images "
                  f"(e.g. {named[0]}); listed in the report", file=sys.stderr)
        print_json(record)
    else:
        from synface.data.lfw import lfw_verification_pairs
        from synface.data.verification_bin import write_bin

        if out.is_dir():
            raise ValueError(f"--out {out} is a folder; give the .bin file path to write")
        pairs = lfw_verification_pairs(args.src, args.pairs)
        paths = sorted({Path(p) for p in [*pairs.images_a, *pairs.images_b]})  # type: ignore[arg-type]  # files
        bad = _problems(paths, "check images")
        if bad:
            first = next(iter(bad.items()))
            raise DataError(f"{len(bad)} of the {len(paths)} images of the pairs do not decode "
                            f"(e.g. {first[0]} ({first[1]})); "
                            "a .bin needs every image of its pairs: nothing written", path=args.src)
        write_bin(out, pairs)
        print_json({"out": args.out, "format": "bin", "pairs": len(pairs), "folds": pairs.num_folds})
    return 0
