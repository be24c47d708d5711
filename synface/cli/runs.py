"""`python -m synface runs`: list, compare and stop the training runs of a workspace."""

from __future__ import annotations

import argparse
import json
import sys

from synface.cli.common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("runs", help="list (default), compare or stop training runs")
    p.add_argument("--root", metavar="DIR", help="workspace root (default $SYNFACE_HOME or ./workspace)")
    p.add_argument("--json", action="store_true", help="JSON output")
    which = p.add_subparsers(dest="action")
    c = which.add_parser("compare", help="side-by-side summary and config differences")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run ids or folders")
    c.add_argument("--json", action="store_true", dest="json_sub")
    s = which.add_parser("stop", help="ask a run to stop (it saves a resumable checkpoint)")
    s.add_argument("run", metavar="RUN")
    q = which.add_parser("queue", help="start queued runs if a slot is free")
    q.add_argument("--max-running", type=int, default=None)
    p.set_defaults(func=run_runs)


def _acc(summary: dict) -> str:
    if summary.get("best_accuracy") is None:
        return "-"
    std = summary.get("best_std") or 0.0
    return f"{100 * summary['best_accuracy']:.2f} +- {100 * std:.2f}"


def _table(rows: list[dict]) -> str:
    head = ["id", "name", "status", "epoch", "best acc (%)", "img/s"]
    body = [[r["id"], r["name"], r["status"], f"{r['epoch']}/{r['epochs']}", _acc(r),
             "-" if r.get("images_per_s") is None else f"{r['images_per_s']:.0f}"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [head, *body]]
    return "\n".join(lines)


def run_runs(args: argparse.Namespace) -> int:
    from synface.base.workspace import workspace_root
    from synface.runs.registry import BROKEN, compare_runs, find_run, list_runs
    from synface.runs.queue import request_stop, run_queue

    as_json = args.json or getattr(args, "json_sub", False)
    if args.action == "compare":
        result = compare_runs([find_run(r, args.root) for r in args.runs])
        if as_json:
            print_json(result)
            return 0
        print(_table(result["runs"]))
        for key, values in result["config_differences"].items():
            print(f"  {key}: " + " | ".join(json.dumps(v, default=str) for v in values))
        return 0
    if args.action == "stop":
        run = request_stop(args.run, args.root)
        print(f"stop requested for {run.id}")
        return 0
    if args.action == "queue":
        if args.max_running is not None and args.max_running < 1:
            raise ValueError(f"--max-running must be at least 1, got {args.max_running}")
        started = run_queue(args.root, args.max_running)
        print_json({"started": started}) if as_json else print("started: " + (", ".join(started) or "none"))
        return 0
    rows = [s.to_dict() for s in list_runs(args.root)]
    if as_json:
        print_json({"root": str(workspace_root(args.root)), "runs": rows})
    elif not rows:
        print(f"no runs in {workspace_root(args.root) / 'runs'}")
    else:
        print(_table(rows))
    for row in rows:
        if row["status"] == BROKEN:
            print(f"warning: run {row['id']} ({row['path']}): {row['message']}", file=sys.stderr)
    return 0
