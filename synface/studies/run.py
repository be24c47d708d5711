"""Execute a study plan: prepare LFW, build datasets, train and evaluate each run; resumable at every step."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from synface.data.benchmark import build_synthetic_benchmark
from synface.data.errors import DataError
from synface.runs.run import Run
from synface.studies.cells import restrict_cells
from synface.studies.plan import (
    DEFAULT_SEEDS,
    SCALES,
    DatasetStep,
    Plan,
    ProgressFactory,
    RunStep,
    any_run,
    finished_runs,
    make_plan,
    prealigned,
)
from synface.studies.staleness import data_id, stale_run
from synface.studies.report import results_dir, write_report


def _link_people(images_root: Path, names: list[str], dst: Path) -> None:
    """A folder of symlinks to the chosen people's image folders (align_folder's source)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = dst / name
        if not link.exists():
            os.symlink((images_root / name).resolve(), link)


def _check_source(step: DatasetStep, lfw: Path) -> None:
    src = Path(step.path) / "source.json"
    if src.is_file():
        have = json.loads(src.read_text()).get("lfw")
        if have != str(lfw):
            raise DataError(f"{step.path} was made from {have}, not {lfw}; use another --root", path=step.path)


def _stage(images_root: Path, names: list[str], staging: Path, dst: Path, aligned: bool,
           progress: Callable[[int, int], None] | None, workers: int) -> None:
    """The chosen people's crops in `dst`: linked from a pre-aligned copy, else aligned with dlib."""
    if aligned:
        _link_people(images_root, names, dst)
        if progress:
            progress(len(names), len(names))
        return
    from synface.data.align import align_folder  # noqa: PLC0415

    _link_people(images_root, names, staging)
    align_folder(staging, dst, progress=progress, workers=workers)


def prepare_lfw(step: DatasetStep, lfw: str | Path, progress: Callable[[int, int], None] | None = None,
                workers: int = 2) -> Path:
    """Aligned real data: the training people (ImageFolder) or the test pairs (LFW layout), resumably;
    from a pre-aligned copy (plan.prealigned) the crops are linked, so no detector is needed."""
    from synface.base.files import atomic_path  # noqa: PLC0415
    from synface.data.lfw import (  # noqa: PLC0415
        LFWLayout, people_of_folds, people_without_images, read_pairs, read_people,
    )
    from synface.data.verification import Pair, write_pairs  # noqa: PLC0415

    lfw = Path(lfw).resolve()
    _check_source(step, lfw)
    layout = LFWLayout(lfw)
    people = read_people(layout.people_file)
    out = Path(step.path)
    staging = out.parent / f"_src_{out.name}"
    aligned = prealigned(lfw)

    def check_images(names: list[str]) -> None:
        missing = people_without_images(layout, names)
        if missing:
            more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            who = "1 person named here has" if len(missing) == 1 else f"{len(missing)} people named here have"
            raise DataError(f"{who} no images under {layout.images_root}: {', '.join(missing[:5])}{more}",
                            path=layout.people_file)

    if step.kind == "real-train":
        names = people_of_folds(people, step.spec["people_folds"])
        check_images(names)
        _stage(layout.images_root, names, staging, out, aligned, progress, workers)
    else:
        test_folds = step.spec["pairs_folds"]
        cap = step.spec.get("max_pairs_per_fold")
        pairs = read_pairs(layout.pairs_file)
        chosen: list[Pair] = []
        per = None
        for f in test_folds:
            same = [p for p in pairs if p.fold == f and p.same]
            diff = [p for p in pairs if p.fold == f and not p.same]
            n = min(len(same), len(diff), cap or 10**9)
            per = n if per is None else min(per, n)
        for new, f in enumerate(test_folds):
            same = [p for p in pairs if p.fold == f and p.same][:per]
            diff = [p for p in pairs if p.fold == f and not p.same][:per]
            chosen += [Pair(new, p.name_a, p.num_a, p.name_b, p.num_b, p.same) for p in same + diff]
        train_people = set(people_of_folds(people, range(len(people) - len(test_folds))))
        test_people = {p.name_a for p in chosen} | {p.name_b for p in chosen}
        overlap = train_people & test_people
        if overlap:
            raise DataError(f"test pairs share {len(overlap)} identities with the training people of people.txt: "
                            f"{', '.join(sorted(overlap)[:5])}", path=layout.pairs_file)
        check_images(sorted(test_people))
        _stage(layout.images_root, sorted(test_people), staging, out / "images", aligned, progress, workers)
        write_pairs(out / "pairs.txt", chosen, len(test_folds), per)  # type: ignore[arg-type]  # set by the folds' loop
        lines = [str(len(test_folds))]
        for f in test_folds:
            fold_people = [(n, c) for n, c in people[f] if n in test_people]
            lines += [str(len(fold_people))] + [f"{n}\t{c}" for n, c in fold_people]
        with atomic_path(out / "people.txt") as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out / "source.json") as tmp:
        tmp.write_text(json.dumps({"lfw": str(lfw), **step.spec, "kind": step.kind, "prealigned": aligned}, indent=1))
    return out


def build_step(step: DatasetStep, lfw: str | Path, progress: Callable[[int, int], None] | None = None,
               generator: Any = None, workspace: str | Path | None = None) -> None:
    """Build one dataset of a plan; synthetic ones with the face model their spec names (from
    `workspace`'s models; `generator` is used when it renders that model)."""
    if step.exists():
        return
    if step.kind == "synthetic":
        from synface.data.synthetic import SynthConfig, build_dataset  # noqa: PLC0415

        build_dataset(SynthConfig.from_dict(step.spec), step.path, generator=generator, progress=progress,
                      workspace=workspace)
    elif step.kind == "benchmark":
        build_synthetic_benchmark(step.path, step.spec["folds"], step.spec["pairs_per_fold"], step.spec["seed"],
                                  progress=progress, generator=generator, model=step.spec.get("model", "builtin"),
                                  workspace=workspace)
    else:
        prepare_lfw(step, lfw, progress)


def _null_progress(desc: str, total: int):
    return (lambda done, total_now: None), (lambda: None)


def untrained_twin(root: Path, config: dict) -> Path | None:
    """A run folder a kill left between its creation and its study tag: no tag, this very config,
    status 'created', no checkpoint. The rerun trains in it instead of leaving it behind."""
    base = root / "runs"
    if not base.is_dir():
        return None
    wanted = json.loads(json.dumps(config, default=str))
    for path in sorted(base.iterdir(), reverse=True):
        candidate = Run(path)
        if path.name.startswith((".", "_")) or not path.is_dir() or path.is_symlink() or candidate.is_tagged():
            continue
        try:
            found = candidate.config()
        except (OSError, ValueError):
            continue
        status = candidate.raw_status().get("status")
        checkpoints = path / "checkpoints"
        if status == "created" and found == wanted and not (checkpoints.is_dir() and any(checkpoints.iterdir())):
            return path
    return None


def execute_run(run: RunStep, plan: Plan, progress: ProgressFactory = _null_progress) -> Path:
    """Train and evaluate one run unless an identical finished one exists; returns its folder."""
    from synface.runs.registry import create_run  # noqa: PLC0415
    from synface.train.loop import train  # noqa: PLC0415

    root = Path(plan.root)
    smoke = SCALES[plan.scale].smoke
    tag = {"key": run.key, "seed": run.seed, "scale": plan.scale, "label": run.label, "smoke": smoke}
    current = data_id(run.config)
    if current:
        tag["data_id"] = current
    done = finished_runs(root).get(run.key)
    if done is not None and stale_run(Run(done).study_tag(), run.config):
        from synface.runs.manage import archive_run  # noqa: PLC0415

        archive_run(Run(done), root)  # kept in runs/_archive, out of the tables: its set was rebuilt since
        done = None
    if done is not None:  # its own record of the build it trained on stays (none: from before records)
        recorded = Run(done).study_tag().get("data_id")
        Run(done).tag_study(run.study, run.cell, **{k: v for k, v in tag.items() if k != "data_id"},
                            **({"data_id": recorded} if recorded else {}))
        return done
    existing = any_run(root, run.key) or untrained_twin(root, run.config)
    if existing is not None and stale_run(Run(existing).study_tag(), run.config):
        from synface.runs.manage import archive_run  # noqa: PLC0415

        with contextlib.suppress(ValueError, OSError):  # refused while a trainer holds it: then it stays
            archive_run(Run(existing), root)  # half-trained on the earlier build: out of the tables
        existing = None  # and trained again in a new folder
    resume = existing is not None and Run(existing).last_checkpoint.is_file()
    if existing is None:
        existing = create_run(run.config, name=run.config["name"], root=root).path
    Run(existing).tag_study(run.study, run.cell, **tag)
    update, close = progress(f"{run.study} {run.label} s{run.seed}", 0)
    try:
        result = train(run.config, existing, resume=resume, progress=update, make_folder=False)
    finally:
        close()
    if result["status"] != "finished":
        raise RuntimeError(f"run {existing.name} ended '{result['status']}': {result['message']}")
    if smoke:
        drop_smoke_checkpoints(root, keep=existing)
    return existing


def drop_smoke_checkpoints(root: Path, keep: Path) -> int:
    """Delete the checkpoints of every finished smoke-test run but `keep` (the last one trained);
    returns how many files went. Why: a smoke test's runs are evaluated once and never resumed,
    and thirty checkpoints of them filled gigabytes."""
    gone = 0
    base = root / "runs"
    for path in sorted(base.iterdir()) if base.is_dir() else []:
        run = Run(path)
        if path == keep or path.is_symlink() or not path.is_dir() or not run.is_smoke():
            continue
        if run.raw_status().get("status") != "finished" or run.locked_by() is not None:
            continue
        if run.checkpoints.is_symlink() or not run.checkpoints.is_dir():  # never delete through a link
            continue
        for ckpt in run.checkpoints.glob("*.pt"):
            ckpt.unlink(missing_ok=True)
            gone += 1
    return gone


def execute(plan: Plan, progress: ProgressFactory = _null_progress, generator: Any = None) -> list[Path]:
    """Build every dataset, then train/evaluate every run (resumable); returns the run folders."""
    for step in plan.datasets:
        if not step.exists():
            update, close = progress(f"dataset {step.name}", step.images)
            try:
                build_step(step, plan.lfw, update, generator, workspace=plan.root)
            finally:
                close()
    return [execute_run(run, plan, progress) for run in plan.runs]


def reproduce(name: str, scale: str = "cpu", lfw: str | Path | None = None, root: str | Path | None = None,
              seeds: int = DEFAULT_SEEDS, out_dir: str | Path | None = None, dry_run: bool = False,
              progress: ProgressFactory = _null_progress, model: str = "builtin",
              cells: Sequence[str] = ()) -> tuple[Plan, dict[str, Path] | None]:
    """Plan, then (unless dry_run) execute and write the report; synthetic sets of face model `model`;
    only the cells whose label contains one of `cells` when given (the report shows every finished one)."""
    plan = restrict_cells(make_plan(name, scale, lfw, root, seeds, model=model), cells)
    if dry_run:
        return plan, None
    t0 = time.time()
    execute(plan, progress)
    return plan, write_report(plan, results_dir(root) if out_dir is None else out_dir, time.time() - t0)
