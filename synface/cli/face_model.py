"""`python -m synface face-model fit|list|show|preview|remove`: learn a face model from photographs, inspect it."""

from __future__ import annotations

import argparse
import json
import sys

from synface.cli.common import parse_folds, print_json, tqdm_progress
from synface.data.synth_config import CONTEXT_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("face-model", help="learn a face model from photographs (fit), list or show them")
    sub = p.add_subparsers(dest="action", required=True)
    fit = sub.add_parser("fit", help="fit the head to every photo and learn a model (resumable)")
    fit.add_argument("--photos", required=True, help="<person>/<photo> folder, or an LFW copy with images/ and people.txt")
    fit.add_argument("--name", default="learned", help="model name: face_models/<name>/ in the workspace")
    fit.add_argument("--people", type=int, default=None, help="use only the first N people (sorted by name)")
    fit.add_argument("--folds", default=None, help="LFW only: the people of these View-2 folds, e.g. 1,2,3")
    fit.add_argument("--bank", type=int, default=None, help="people in the reflectance bank (default 400)")
    fit.add_argument("--max-photos-per-person", type=int, default=None)
    fit.add_argument("--workspace", default=None, help="workspace root (default $SYNFACE_HOME or ./workspace)")
    fit.set_defaults(func=_fit)
    ls = sub.add_parser("list", help="the models in the workspace")
    ls.add_argument("--workspace", default=None)
    ls.set_defaults(func=_list)
    show = sub.add_parser("show", help="one model's card")
    show.add_argument("name")
    show.add_argument("--workspace", default=None)
    show.set_defaults(func=_show)
    remove = sub.add_parser("remove", help="delete a model folder (a damaged one, say); refused while it is being fitted")
    remove.add_argument("name")
    remove.add_argument("--workspace", default=None)
    remove.set_defaults(func=_remove)
    preview = sub.add_parser("preview", help="a PNG of new people: the built-in head beside learned models")
    preview.add_argument("names", nargs="+", help="learned model names (the built-in head comes first)")
    preview.add_argument("--out", required=True, help="PNG file to write")
    preview.add_argument("--people", type=int, default=8)
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--workspace", default=None)
    preview.add_argument("--context", choices=CONTEXT_MODES, default="plain",
                         help="add a row of each learned model's people drawn into its context photos "
                              "(derived from the source photos: do not commit the picture)")
    preview.set_defaults(func=_preview)


def _fit(args: argparse.Namespace) -> int:
    from synface.fitting.build import DEFAULT_BANK, fit_face_model  # noqa: PLC0415

    for flag, value in (("--people", args.people), ("--bank", args.bank), ("--max-photos-per-person", args.max_photos_per_person)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be a positive number, got {value}")
    bars: dict[str, tuple] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            for _update, close in bars.values():
                close()
            bars.clear()
            bars[stage] = tqdm_progress(f"face-model {stage}", total, unit="photo")
        bars[stage][0](done, total)

    try:
        card = fit_face_model(args.photos, args.name, people=args.people, folds=parse_folds(args.folds),
                              bank=args.bank or DEFAULT_BANK, workspace=args.workspace,
                              max_photos_per_person=args.max_photos_per_person, progress=progress)
    finally:
        for _, close in bars.values():
            close()
    print_json({k: v for k, v in card.items() if k != "source_people"})
    return 0


def _list(args: argparse.Namespace) -> int:
    from synface.face.catalog import list_models  # noqa: PLC0415

    print_json({"name": "builtin", "kind": "built-in procedural head (no photos)"})
    damaged = []
    for card in list_models(args.workspace):
        print_json({k: card.get(k) for k in ("name", "card_name", "kind", "version", "people_fitted", "bank_people",
                                              "images_fitted", "fit_error_iod_median", "created", "damaged", "error")
                    if k in card})
        if card.get("damaged"):
            damaged.append(card["name"])
    if damaged:
        print(f"warning: damaged face models (not offered; python -m synface face-model remove NAME deletes one): "
              f"{', '.join(damaged)}", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    from synface.face.catalog import model_card  # noqa: PLC0415

    card = model_card(args.name, args.workspace)  # the check generation makes: a damaged model is an error
    print(json.dumps({**card, "name": args.name, "card_name": card.get("name")}, indent=2))
    return 0


def _remove(args: argparse.Namespace) -> int:
    from synface.face.catalog import remove_model  # noqa: PLC0415

    print_json({"removed": str(remove_model(args.name, args.workspace))})
    return 0


def _preview(args: argparse.Namespace) -> int:
    from PIL import Image  # noqa: PLC0415

    from synface.base.files import atomic_path, check_file_target  # noqa: PLC0415
    from synface.face.catalog import load_model  # noqa: PLC0415
    from synface.fitting.preview import preview_grid  # noqa: PLC0415

    if not 1 <= args.people <= 32:
        raise ValueError(f"--people must be in 1..32, got {args.people}")
    check_file_target(args.out, "--out")
    models = {"builtin": None, **{name: load_model(name, args.workspace) for name in args.names}}
    grid, rows = preview_grid(models, people=args.people, seed=args.seed, context=args.context)
    with atomic_path(args.out) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    print_json({"out": str(args.out), "rows": rows})
    return 0
