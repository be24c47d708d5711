"""`python -m synface runs`: list, filter, compare, stop, archive, delete and export training runs."""

from __future__ import annotations

import argparse
import json
import sys

from synface.cli.common import positive_int, print_json, tqdm_progress


def _common(p: argparse.ArgumentParser) -> None:
    """--root and --json after the action too (own dests: a subparser's default would hide the parent's)."""
    p.add_argument("--root", metavar="DIR", dest="root_sub", help="workspace root (default $SYNFACE_HOME or ./workspace)")
    p.add_argument("--json", action="store_true", dest="json_sub", help="JSON output")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("runs", help="list (default), filter, compare, stop, archive, delete or export runs")
    p.add_argument("--root", metavar="DIR", help="workspace root (default $SYNFACE_HOME or ./workspace)")
    p.add_argument("--json", action="store_true", help="JSON output")
    which = p.add_subparsers(dest="action")
    ls = which.add_parser("list", help="one row per run and evaluation set: accuracy +- std, TAR@FAR 1e-3 / 1e-4")
    ls.add_argument("--filter", action="append", default=[], metavar="KEY=V[,V...]",
                    help="keep rows whose KEY is one of the values; keys: dataset, face_model, backbone, psi, im, "
                         "scale, status, eval_set (repeatable)")
    ls.add_argument("--archived", action="store_true", help="include archived runs")
    ls.add_argument("--smoke", action="store_true", help="include smoke-test runs (reproduce --scale tiny)")
    ls.add_argument("--csv", metavar="FILE", help="also write the full table (every column) as CSV")
    _common(ls)
    c = which.add_parser("compare", help="side-by-side scores and config differences")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run ids or folders")
    _common(c)
    s = which.add_parser("stop", help="ask a run to stop (it saves a resumable checkpoint)")
    s.add_argument("run", metavar="RUN")
    _common(s)
    q = which.add_parser("queue", help="start queued runs if a slot is free")
    q.add_argument("--max-running", type=int, default=None)
    _common(q)
    a = which.add_parser("archive", help="move runs to runs/_archive: kept, hidden from lists and tables")
    a.add_argument("runs", nargs="+", metavar="RUN")
    a.add_argument("--undo", action="store_true", help="move archived runs back")
    _common(a)
    d = which.add_parser("delete", help="delete run folders (never a dataset; refused for active runs and folders a trainer holds)")
    d.add_argument("runs", nargs="+", metavar="RUN")
    _common(d)
    e = which.add_parser("export", help="a run's embeddings of an evaluation set (.npz/.parquet) and checkpoint")
    e.add_argument("run", metavar="RUN")
    e.add_argument("--embeddings", metavar="OUT", help="write embeddings to OUT.npz or OUT.parquet")
    e.add_argument("--checkpoint", metavar="OUT", help="write the backbone, config and input size to OUT.pt")
    e.add_argument("--set", dest="eval_set", metavar="NAME", help="which of the run's evaluation sets to embed")
    e.add_argument("--pairs", metavar="PATH", help="embed this LFW-layout folder or .bin instead")
    e.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    e.add_argument("--batch", type=positive_int, default=128, help="images per forward pass")
    _common(e)
    p.set_defaults(func=run_runs)


def _acc(summary: dict) -> str:
    if summary.get("best_accuracy") is None:
        return "evaluation off" if summary.get("evaluation") == "off" else "-"
    std = summary.get("best_std") or 0.0
    return f"{100 * summary['best_accuracy']:.2f} +- {100 * std:.2f}"


def _text_table(head: list[str], body: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body])


def _table(rows: list[dict]) -> str:
    head = ["id", "name", "status", "epoch", "best acc (%)", "img/s"]
    body = [[r["id"], r["name"], r["status"], f"{r['epoch']}/{r['epochs']}", _acc(r),
             "-" if r.get("images_per_s") is None else f"{r['images_per_s']:.0f}"] for r in rows]
    return _text_table(head, body)


def _results_text(frame) -> str:
    """The results frame as the terminal shows it: the display columns, '-' for no value."""
    from synface.analysis.run_results import display_frame  # noqa: PLC0415

    shown = display_frame(frame).drop(columns=["message"]).astype(object)
    shown = shown.where(shown.notna(), "-")
    return _text_table([str(c) for c in shown.columns], shown.values.tolist())


def _filters(specs: list[str]) -> dict[str, list[str]]:
    """['psi=0.8', 'dataset=A,B'] -> {'psi': ['0.8'], 'dataset': ['A', 'B']} (ValueError naming a bad one)."""
    from synface.analysis.run_results import FILTERS  # noqa: PLC0415

    out: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace(" ", "_").replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"--filter {spec!r}: write KEY=VALUE (or KEY=V1,V2), e.g. psi=0.8")
        if key not in FILTERS:
            raise ValueError(f"--filter {spec!r}: unknown key {key!r}; filter on {', '.join(FILTERS)}")
        out.setdefault(key, []).extend(v.strip() for v in values.split(",") if v.strip())
    return out


def _list(args: argparse.Namespace, root, as_json: bool) -> int:
    from synface.analysis.run_results import filter_frame, results_frame  # noqa: PLC0415
    from synface.base.files import atomic_path, check_file_target  # noqa: PLC0415

    chosen = _filters(args.filter)
    if args.csv:
        check_file_target(args.csv, "--csv")
    frame = filter_frame(results_frame(root, include_archived=args.archived, include_smoke=args.smoke), chosen)
    if args.csv:
        with atomic_path(args.csv) as tmp:
            frame.to_csv(tmp, index=False)
    if as_json:
        print_json({"filters": chosen, "rows": json.loads(frame.to_json(orient="records"))})
    elif frame.empty:
        print("no runs match" + (f" {' '.join(args.filter)}" if args.filter else ""))
    else:
        print(_results_text(frame))
    return 0


def _export(args: argparse.Namespace, root, as_json: bool) -> int:
    from synface.analysis.run_export import export_checkpoint, export_embeddings  # noqa: PLC0415
    from synface.base.files import check_file_target  # noqa: PLC0415
    from synface.runs.registry import find_run  # noqa: PLC0415

    if not args.embeddings and not args.checkpoint:
        raise ValueError("runs export: give --embeddings OUT.npz|OUT.parquet and/or --checkpoint OUT.pt")
    for option, target in (("--embeddings", args.embeddings), ("--checkpoint", args.checkpoint)):
        if target:
            check_file_target(target, option)  # before anything is embedded
    run = find_run(args.run, root)
    done = []
    if args.embeddings:
        update, close = tqdm_progress(f"embedding ({run.id})", unit="img", lazy=True)
        try:
            done.append(export_embeddings(run, args.embeddings, root, eval_set=args.eval_set, pairs=args.pairs,
                                          device=args.device, batch_size=args.batch, progress=update))
        finally:
            close()
    if args.checkpoint:
        done.append(export_checkpoint(run, args.checkpoint, root))
    for item in done:
        if not as_json:
            what = f"{item['images']} embeddings ({item['eval_set']}, dim {item['dim']})" if "images" in item \
                else f"checkpoint of epoch {item['epoch']}"
            print(f"wrote {item['path']}: {what}")
    if as_json:
        print_json({"run": run.id, "written": done})
    return 0


def run_runs(args: argparse.Namespace) -> int:
    from synface.base.workspace import workspace_root
    from synface.runs.manage import archive_run, delete_run, unarchive_run
    from synface.runs.registry import BROKEN, compare_runs, find_run, list_runs
    from synface.runs.queue import request_stop, run_queue

    as_json = args.json or getattr(args, "json_sub", False)
    root = getattr(args, "root_sub", None) or args.root
    if args.action == "list":
        return _list(args, root, as_json)
    if args.action == "export":
        return _export(args, root, as_json)
    if args.action == "compare":
        from synface.analysis.run_results import results_frame  # noqa: PLC0415

        runs = [find_run(r, root) for r in args.runs]
        result = compare_runs(runs)
        frame = results_frame(root, include_archived=True)
        frame = frame[frame["run_id"].isin([r.id for r in runs])]
        if as_json:
            print_json({**result, "results": json.loads(frame.to_json(orient="records"))})
            return 0
        print(_table(result["runs"]))
        if not frame.empty:
            print()
            print(_results_text(frame))
        print()
        print("config differences:" if result["config_differences"] else "config differences: none")
        for key, values in result["config_differences"].items():
            print(f"  {key}: " + " | ".join(json.dumps(v, default=str) for v in values))
        return 0
    if args.action in ("archive", "delete"):
        runs = [find_run(r, root) for r in args.runs]  # every name is checked before anything moves
        act = delete_run if args.action == "delete" else unarchive_run if args.undo else archive_run
        for run in runs:  # and every run may go, or none does
            act(run, root, check_only=True)
        for run in runs:
            if args.action == "delete":
                path = delete_run(run, root)
                print(f"deleted {path} (datasets it used are untouched)")
            else:
                moved = (unarchive_run if args.undo else archive_run)(run, root)
                print(f"{'unarchived' if args.undo else 'archived'} {run.id}: {moved.path}")
        return 0
    if args.action == "stop":
        run = request_stop(args.run, root)
        print(f"stop requested for {run.id}")
        return 0
    if args.action == "queue":
        if args.max_running is not None and args.max_running < 1:
            raise ValueError(f"--max-running must be at least 1, got {args.max_running}")
        problems: list[str] = []
        started = run_queue(root, args.max_running, problems)
        for line in problems:
            print(f"warning: {line}", file=sys.stderr)
        print_json({"started": started}) if as_json else print("started: " + (", ".join(started) or "none"))
        return 0
    rows = [s.to_dict() for s in list_runs(root) if not s.smoke]  # `runs list --smoke` shows smoke tests
    if as_json:
        print_json({"root": str(workspace_root(root)), "runs": rows})
    elif not rows:
        print(f"no runs in {workspace_root(root) / 'runs'}")
    else:
        print(_table(rows))
    for row in rows:
        if row["status"] == BROKEN:
            print(f"warning: run {row['id']} ({row['path']}): {row['message']}", file=sys.stderr)
    return 0
