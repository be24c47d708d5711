"""`python -m synface export`: hand a dataset to other tools in the field's formats.

An ImageFolder set (any synthetic set, or an aligned real set) becomes insightface RecordIO
(train.rec + train.idx, so arcface_torch trains on it unchanged); an LFW-layout verification set
(images + pairs.txt) becomes an insightface `.bin`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synface.cli.common import print_json, tqdm_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write a set as insightface RecordIO (train) or .bin (verification)")
    p.add_argument("src", help="ImageFolder set (for --to rec) or LFW-layout folder with pairs.txt (for --to bin)")
    p.add_argument("--to", choices=("rec", "bin"), required=True)
    p.add_argument("--out", required=True, help="output folder (rec) or .bin file path")
    p.add_argument("--pairs", default=None, help="pairs file for --to bin (default: SRC/pairs.txt)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    if args.to == "rec":
        from synface.data.imagefolder import ImageFolderIndex
        from synface.data.recordio import write_recordio

        samples = ImageFolderIndex(args.src).samples()
        update, close = tqdm_progress("export rec", len(samples), unit="img")

        def items():
            for done, (path, label) in enumerate(samples, 1):
                yield Path(path).read_bytes(), int(label)
                if done % 200 == 0 or done == len(samples):
                    update(done, len(samples))

        try:
            images, ids = write_recordio(args.out, items())
        finally:
            close()
        print_json({"out": args.out, "format": "recordio", "images": images, "identities": ids})
    else:
        from synface.data.lfw import lfw_verification_pairs
        from synface.data.verification_bin import write_bin

        pairs = lfw_verification_pairs(args.src, args.pairs)
        write_bin(args.out, pairs)
        print_json({"out": args.out, "format": "bin", "pairs": len(pairs), "folds": pairs.num_folds})
    return 0
