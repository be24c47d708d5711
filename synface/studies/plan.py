"""Reproduce the paper's Tables 1-3 and Figure 4 end to end: datasets, training runs, evaluation, reports.

    plan = make_plan("table2", scale="cpu", lfw="/data/lfw")   # what would run, and how long
    execute(plan)                                             # builds, trains, evaluates, resumable
    write_report(plan, "results")                             # results/table2.{md,csv,html,png}

Protocol at every scale. Real data is LFW given in its own layout (people.txt folds): the people
of folds 1-3 are the real training identities (an aligned copy under <workspace>/real/), the
pairs of the remaining folds (4-5 of the 5-fold copy; 4-10 of a full LFW) are the test set, also
aligned, with identity disjointness asserted. Synthetic test data is `build_synthetic_benchmark`:
LFW-layout pairs of benchmark-purpose identities, which can never be training identities.
Accuracy is k-fold over the test pairs' own folds; each cell is trained with `seeds` training
seeds (datasets are fixed, seed 0), and the reports pool folds x seeds.

Resumability: datasets are keyed by name (a build resumes), runs by a hash of their config
(a finished run with all its evaluations is reused, an interrupted one resumes from last.pt).
Runs carry a study tag (`synface.runs.run.Run.tag_study`). No Streamlit here.

Face model. `model` names the face model of every synthetic set the study builds ("builtin", or a
learned model of the workspace). A learned model's sets and runs carry its name (Syn_400_20_IM_t60,
study key `table2-t60`, report `table2-t60.md`), so its tables never pool with the built-in
head's, while runs on real data alone serve both. A learned model whose source people appear in
the evaluation pairs is refused: its faces would be built from the very people it is tested on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from synface.analysis import tables
from synface.data.errors import DataError
from synface.data.synth_set import SynthSet
from synface.runs.run import Run
from synface.studies.staleness import stale_run

#: synface.face.catalog.BUILTIN, spelled out: the CLI imports this module to build its parser, and
#: the catalog would bring torch along
BUILTIN = "builtin"

__all__ = ["SCALES", "TABLES", "STUDIES", "FACTORS", "DEFAULT_SEEDS", "Plan", "DatasetStep", "RunStep", "make_plan", "plan_dict",
           "prealigned", "scale_label", "ProgressFactory"]

TABLES = ("table1", "table2", "table3", "figure4")
#: every study `reproduce` runs: the paper's tables and the context ablation (synface/studies/context_study.py)
STUDIES = (*TABLES, "context")
FACTORS = ("pose", "expression", "illumination")

#: Throughput used by the time estimates, measured on the shared 2-core dev CPU (see README):
#: rendering to disk, cpu-quick training at 56x56 (~250 images/s free, 55-150 shared), dlib
#: alignment of LFW photos (2 workers), one evaluation of ~1,000 pairs at 56x56 (decode + flip).
#: The gpu and paper rows are assumptions, not measurements (no GPU has run them yet): gpu is one
#: H200 training IResNet-50 at 112x112 with AMP at the 2,500 images/s that docs/benchmarks.md sets
#: as the bar of `bench train --preset paper` (about 10% of its dense bf16 peak at 38 GFLOPs per
#: training image), 20 s per run to start (CUDA, cuDNN autotuning, 8 loader workers, checkpoints).
#: "link" is a pre-aligned LFW copy, whose crops are linked instead of re-aligned.
#: "context": sets drawn into context photos, each composite checked by a dlib descriptor (measured on
#: the CPU; the GPU rows assume the check, which runs on the CPU, bounds them).
RATES = {"cpu": {"render": 120.0, "context": 5.0, "train": 110.0, "align": 20.0, "link": 2000.0, "eval_s_per_kpair": 12.0,
                 "start_s": 6.0},
         "tiny": {"render": 120.0, "context": 5.0, "train": 110.0, "align": 20.0, "link": 2000.0, "eval_s_per_kpair": 12.0,
                  "start_s": 6.0},
         "gpu": {"render": 1500.0, "context": 20.0, "train": 2500.0, "align": 50.0, "link": 5000.0, "eval_s_per_kpair": 3.0,
                 "start_s": 20.0},
         # one 8-GPU node, paper recipe (IResNet-50, 512 batch): ~4,800 images/s train
         "paper": {"render": 1500.0, "context": 20.0, "train": 4800.0, "align": 50.0, "link": 5000.0, "eval_s_per_kpair": 2.0,
                   "start_s": 60.0}}


@dataclass(frozen=True)
class Scale:
    """Sizes of every grid at one scale; documented in each report."""

    name: str
    preset: str
    train: dict  # TrainConfig overrides on top of the preset
    t1_syn: tuple[int, int, bool]            # (ids, samples, im) of Table 1's synthetic model
    t2_ids: tuple[int, ...]
    t2_samples: tuple[int, ...]
    t3_syn: tuple[int, int]                  # Table 3's synthetic set (with IM)
    t3_real: tuple[int, int]                 # Real_{R}_{k}
    f4_syn: tuple[int, int]                  # Figure 4's sets (ids, samples)
    bench: tuple[int, int]                   # synthetic benchmark (folds, pairs per class per fold)
    train_people_folds: int = 3              # people.txt folds 1..N train, the remaining pairs folds test
    max_test_pairs_per_fold: int | None = None

    @property
    def smoke(self) -> bool:
        """A smoke test (a few test pairs): its runs hide from run lists and keep one checkpoint."""
        return self.max_test_pairs_per_fold is not None


SCALES: dict[str, Scale] = {
    # Sized so each table finishes within ~90 min on the shared 2-core CPU (estimates in the plan).
    "cpu": Scale("cpu", "cpu-quick", {"eval_every": 5, "batch_size": 128}, (400, 20, True), (100, 300), (10, 20),
                 (400, 20), (100, 5), (200, 15), (10, 50)),
    # One H200, the paper's network and input (IResNet-50, 112x112, AMP): Syn_2K_20 sets, 2 epochs
    # of batch 256 with a poly schedule, one evaluation at the end. Sized with RATES["gpu"] so Tables
    # 1-3 estimate <= 8 min at 3 seeds from a pre-aligned LFW; Figure 4 (10 cells) at 1 seed.
    "gpu": Scale("gpu", "paper", {"epochs": 2, "batch_size": 256, "lr_schedule": "poly", "warmup_epochs": 0.2,
                                  "eval_every": 2}, (2_000, 20, True), (500, 2_000), (10,), (2_000, 20), (50, 10),
                 (200, 15), (10, 50)),
    "paper": Scale("paper", "paper", {}, (10_000, 50, False), (1_000, 2_000, 5_000, 10_000), (10, 20, 50),
                   (10_000, 50), (2_000, 10), (10_000, 50), (10, 300)),
    # For tests: a few steps, a handful of images (Real_4_2 is one batch of 8).
    "tiny": Scale("tiny", "cpu-quick", {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "warmup_epochs": 0.0,
                                        "milestones": [1], "eval_every": 1, "eval_batch_size": 16, "log_every": 1},
                  (4, 3, False), (4,), (3,), (4, 3), (4, 2), (4, 2), (2, 2), max_test_pairs_per_fold=2),
}

#: reproduce's training seeds per cell unless told otherwise: 3 give a t interval over seeds x folds
DEFAULT_SEEDS = 3


def prealigned(lfw: str | Path) -> bool:
    """Whether an LFW copy holds aligned 112x112 crops already (`python -m synface align` wrote its
    images folder, leaving align_report.json): they are linked, not aligned again (no dlib needed)."""
    from synface.data.align import REPORT_NAME, images_root_of  # noqa: PLC0415

    return (images_root_of(lfw) / REPORT_NAME).is_file()


def scale_label(scale: str, lfw: str | Path | None = None) -> str:
    """A scale's name as a picker shows it: tiny says it is a smoke test, with its number of test
    pairs when the LFW copy is known (8 for a 5-fold copy)."""
    sc = SCALES[scale]
    if not sc.smoke:
        return scale
    if lfw is not None:
        try:
            pairs = f"{_lfw_sizes(Path(lfw), sc)[1]} test pairs"
        except (OSError, ValueError):
            pairs = None
        if pairs:
            return f"{scale} (smoke test: {pairs})"
    return f"{scale} (smoke test: {2 * (sc.max_test_pairs_per_fold or 0)} test pairs per test fold)"


# ----------------------------------------------------------------------------- plan


@dataclass
class DatasetStep:
    name: str
    kind: str  # "synthetic" | "benchmark" | "real-train" | "real-test"
    path: str
    images: int
    spec: dict = field(default_factory=dict)

    def exists(self) -> bool:
        p = Path(self.path)
        if self.kind == "synthetic":
            return SynthSet(p).is_complete()
        if self.kind == "benchmark":
            return (p / "benchmark.json").is_file()
        return (p / "source.json").is_file()


@dataclass
class RunStep:
    study: str
    label: str
    cell: dict
    seed: int
    config: dict
    train_images: int
    eval_pairs: int
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            cfg = {k: v for k, v in self.config.items() if k != "name"}
            self.key = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Plan:
    name: str
    scale: str
    root: str
    lfw: str
    seeds: int
    datasets: list[DatasetStep]
    runs: list[RunStep]
    notes: list[str] = field(default_factory=list)
    model: str = BUILTIN  # the face model of the synthetic sets
    model_version: str = ""

    @property
    def study(self) -> str:
        """The study key of this plan's runs and report: the table, plus a learned model's name."""
        return tables.study_key(self.name, self.model)

    def estimate(self) -> dict[str, float]:
        """Seconds still to spend per stage (finished datasets and runs cost nothing)."""
        r = RATES[self.scale]
        done = finished_runs(self.root)
        est = {"datasets": 0.0, "training": 0.0, "evaluation": 0.0}
        real_rate = r["link"] if prealigned(self.lfw) else r["align"]
        for d in self.datasets:
            if not d.exists():
                rate = r["context"] if d.spec.get("context", "plain") != "plain" else r["render"]
                est["datasets"] += d.images / (real_rate if d.kind.startswith("real") else rate)
        epochs = None
        for run in self.runs:
            if run.key in done and not stale_run(Run(done[run.key]).study_tag(), run.config):
                continue
            epochs = run.config.get("epochs", 1)
            steps = run.config.get("steps_per_epoch")
            per_epoch = run.train_images if steps is None else min(run.train_images, steps * run.config["batch_size"])
            est["training"] += epochs * per_epoch / r["train"] + r["start_s"]
            n_eval = max(1, epochs // max(1, run.config.get("eval_every", 1)))
            est["evaluation"] += n_eval * run.eval_pairs / 1000 * r["eval_s_per_kpair"]
        est["total"] = sum(est.values())
        return est

    def describe(self) -> str:
        """The plan as text (what --dry-run prints)."""
        done = finished_runs(self.root)
        est = self.estimate()
        lines = [f"reproduce {self.name} at scale '{self.scale}' ({self.seeds} training seed(s)); workspace {self.root}",
                 f"LFW: {self.lfw}" + (" (pre-aligned crops: linked, not aligned again)" if prealigned(self.lfw) else ""),
                 f"face model: {self.model} ({self.model_version})", "", "datasets:"]
        for d in self.datasets:
            lines.append(f"  [{'done' if d.exists() else 'todo'}] {d.kind:11s} {d.name:28s} {d.images:7d} images  {d.path}")
        lines += ["", "runs:"]
        for run in self.runs:
            cfg = run.config
            state = "todo"
            if run.key in done:
                state = "stale" if stale_run(Run(done[run.key]).study_tag(), cfg) else "done"
            lines.append(f"  [{state}] {run.study} {run.label:34s} seed {run.seed}  "
                         f"{run.train_images} images x {cfg['epochs']} epochs, {cfg['backbone']}, key {run.key}")
        if "[stale]" in "\n".join(lines):
            lines += ["", "stale: trained on an earlier build of its set (rebuilt since); archived and trained again"]
        lines += ["", "estimated time still to spend (s): " +
                  ", ".join(f"{k} {v:.0f}" for k, v in est.items()) + f"  (~{est['total'] / 60:.0f} min)"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def finished_runs(root: str | Path) -> dict[str, Path]:
    """key -> run folder of every tagged run that finished with evaluations."""
    base = Path(root) / "runs"
    out: dict[str, Path] = {}
    if not base.is_dir():
        return out
    for p in sorted(base.iterdir()):
        run = Run(p)
        tag = run.study_tag()
        if tag.get("key") and run.raw_status().get("status") == "finished" and run.read_eval():
            out[tag["key"]] = p
    return out


def any_run(root: str | Path, key: str) -> Path | None:
    base = Path(root) / "runs"
    if not base.is_dir():
        return None
    for p in sorted(base.iterdir(), reverse=True):
        if Run(p).study_tag().get("key") == key:
            return p
    return None


def _syn_name(ids: int, samples: int, im: bool = False, varied: str | None = None) -> str:
    from synface.data.subsets import subset_name  # noqa: PLC0415

    name = subset_name(ids, samples, prefix="Syn") + ("_IM" if im else "")
    if varied is not None:
        name += f"_vary-{varied}"
    return name


def _synth_spec(ids: int, samples: int, im: bool, varied: str | None = None, model: str = BUILTIN) -> dict:
    spec: dict[str, Any] = {"ids": ids, "samples": samples, "im": im, "seed": 0}
    if varied is not None:  # Figure 4: only the chosen factor(s) are drawn per image
        for f in FACTORS:
            spec[f] = "vary" if varied == "all" or varied == f else "fixed"
    spec["name"] = _syn_name(ids, samples, im, varied) + model_suffix(model)
    if model != BUILTIN:
        spec["model"] = model
    return spec


def model_suffix(model: str) -> str:
    """'' for the built-in head, '_<name>' for a learned model (dataset and benchmark names)."""
    return "" if model == BUILTIN else f"_{model}"


def evaluation_people(lfw: Path, scale: Scale) -> set[str]:
    """Names in the pairs of the evaluation folds (pairs.txt folds after the training folds)."""
    from synface.data.lfw import LFWLayout, read_pairs  # noqa: PLC0415

    pairs = read_pairs(LFWLayout(lfw).pairs_file)
    return {n for p in pairs if p.fold >= scale.train_people_folds for n in (p.name_a, p.name_b)}


def check_model_sources(model: str, card: dict, lfw: Path, scale: Scale) -> None:
    """Refuse a learned model fitted to people of the evaluation pairs (one-line ValueError)."""
    shared = sorted(set(card.get("source_people") or []) & evaluation_people(lfw, scale))
    if shared:
        more = f" (+{len(shared) - 10} more)" if len(shared) > 10 else ""
        raise ValueError(f"face model {model!r} was learned from {len(shared)} people of the evaluation pairs "
                         f"(pairs folds {scale.train_people_folds + 1}+ of {lfw}): {', '.join(shared[:10])}{more}; "
                         f"fit it on the training people only (face-model fit --folds "
                         f"{','.join(str(f + 1) for f in range(scale.train_people_folds))}, or those LFW folds in the "
                         f"app's fit form) or on other photos")


def _lfw_sizes(lfw: Path, scale: Scale) -> tuple[int, int, int]:
    """(train images of people folds 1..N, test pairs, people folds) of an LFW folder."""
    from synface.data.lfw import LFWLayout, read_pairs, read_people  # noqa: PLC0415

    layout = LFWLayout(lfw)
    people = read_people(layout.people_file)
    if len(people) <= scale.train_people_folds:
        raise DataError(f"people.txt has {len(people)} folds; need more than {scale.train_people_folds} "
                        f"(train on folds 1-{scale.train_people_folds}, test on the rest)", path=layout.people_file)
    train_images = sum(c for fold in people[: scale.train_people_folds] for _, c in fold)
    pairs = read_pairs(layout.pairs_file)
    test = [p for p in pairs if p.fold >= scale.train_people_folds]
    if scale.max_test_pairs_per_fold:
        folds = len(people) - scale.train_people_folds
        return train_images, min(len(test), folds * 2 * scale.max_test_pairs_per_fold), len(people)
    return train_images, len(test), len(people)


def make_plan(name: str, scale: str = "cpu", lfw: str | Path | None = None, root: str | Path | None = None,
              seeds: int = DEFAULT_SEEDS, model: str = BUILTIN) -> Plan:
    """Datasets and runs one table needs at one scale (nothing is created); synthetic sets of face
    model `model` (a FaceModelError when it does not load, a ValueError when its source people
    overlap the evaluation pairs)."""
    from synface.base.workspace import workspace_root  # noqa: PLC0415
    from synface.face.builtin import GENERATOR_MODEL_VERSION  # noqa: PLC0415
    from synface.face.catalog import load_model  # noqa: PLC0415
    from synface.train.config import config_from_dict  # noqa: PLC0415

    if name not in STUDIES:
        raise ValueError(f"unknown table {name!r}; choose from {', '.join(STUDIES)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if lfw is None:
        raise ValueError("--lfw is required: an LFW-layout folder with people.txt and pairs.txt")
    sc = SCALES[scale]
    ws = workspace_root(root).resolve()
    lfw = Path(lfw).expanduser().resolve()
    train_images, test_pairs, n_folds = _lfw_sizes(lfw, sc)
    model = model or BUILTIN
    learned = load_model(model, ws)
    if learned is not None:
        check_model_sources(model, learned.card, lfw, sc)
    model_version = learned.version if learned is not None else GENERATOR_MODEL_VERSION
    study_name = tables.study_key(name, model)
    real_train = DatasetStep("lfw_folds123" if sc.train_people_folds == 3 else f"lfw_folds1-{sc.train_people_folds}",
                             "real-train", str(ws / "real" / "lfw_folds123"), train_images,
                             {"people_folds": list(range(sc.train_people_folds))})
    real_test = DatasetStep(f"lfw_test_folds{sc.train_people_folds + 1}-{n_folds}", "real-test",
                            str(ws / "real" / "lfw_test"), 2 * test_pairs,
                            {"pairs_folds": list(range(sc.train_people_folds, n_folds)),
                             "max_pairs_per_fold": sc.max_test_pairs_per_fold})
    datasets: list[DatasetStep] = [real_test]
    eval_lfw = {"path": real_test.path, "name": tables.LFW_SET}
    notes = [f"test: LFW pairs of folds {sc.train_people_folds + 1}-{n_folds} ({test_pairs} pairs, aligned), "
             f"identity-disjoint from the real training people (folds 1-{sc.train_people_folds})",
             f"training: preset '{sc.preset}' with {sc.train or 'no overrides'}; datasets seed 0; training seeds 0..{seeds - 1}"]

    if learned is not None:
        notes.append(f"face model of the synthetic sets: {model} ({model_version}), learned from "
                     f"{len(learned.card.get('source_people') or [])} people, none of them in the evaluation pairs")

    def syn(ids: int, samples: int, im: bool, varied: str | None = None) -> DatasetStep:
        return syn_step(_synth_spec(ids, samples, im, varied, model))

    def syn_step(spec: dict) -> DatasetStep:
        step = DatasetStep(spec["name"], "synthetic", str(ws / "datasets" / spec["name"]), spec["ids"] * spec["samples"],
                           spec)
        if all(d.name != step.name for d in datasets):
            datasets.append(step)
        return step

    runs: list[RunStep] = []

    def add_runs(study: str, label: str, cell: dict, data: dict, images: int, evals: list[dict]) -> None:
        for seed in range(seeds):
            values = {"preset": sc.preset, **sc.train, **data, "seed": seed, "eval_sets": evals,
                      "name": f"{study}-{label}-s{seed}"}
            cfg = config_from_dict(values).to_dict()
            pairs = sum(test_pairs if e["name"] == tables.LFW_SET else bench_pairs for e in evals)
            runs.append(RunStep(study, label, cell, seed, cfg, images, pairs))

    bench_pairs = 0
    if name == "table1":
        folds, n = sc.bench
        bench_name = f"SynBench_{folds}x{n}{model_suffix(model)}"
        bench_spec = {"folds": folds, "pairs_per_fold": n, "seed": 0, **({"model": model} if learned is not None else {})}
        bench = DatasetStep(bench_name, "benchmark", str(ws / "benchmarks" / bench_name), folds * n * 2, bench_spec)
        datasets.append(bench)
        bench_pairs = 2 * folds * n
        evals = [eval_lfw, {"path": bench.path, "name": tables.BENCH_SET}]
        ids, samples, im = sc.t1_syn
        s = syn(ids, samples, im)
        datasets.append(real_train)
        add_runs(study_name, s.name, {"train": "Syn", "train_set": s.name}, {"data": s.path}, s.images, evals)
        add_runs(study_name, "Real_LFW123", {"train": "Real", "train_set": f"Real (LFW people folds 1-{sc.train_people_folds})"},
                 {"real_root": real_train.path}, train_images, evals)
        notes.append(f"synthetic benchmark: {folds} folds x ({n} same + {n} different) pairs of benchmark-purpose identities")
    elif name == "table2":
        for ids in sc.t2_ids:
            for samples in sc.t2_samples:
                for im in (False, True):
                    s = syn(ids, samples, im)
                    add_runs(study_name, s.name, {"ids": ids, "samples": samples, "im": im}, {"data": s.path}, s.images,
                             [eval_lfw])
    elif name == "table3":
        ids, samples = sc.t3_syn
        r_id, k = sc.t3_real
        s = syn(ids, samples, True)
        datasets.append(real_train)
        from synface.data.subsets import subset_name  # noqa: PLC0415

        real_name = subset_name(r_id, k)
        add_runs(study_name, s.name, {"method": "Syn", "data": s.name}, {"data": s.path}, s.images, [eval_lfw])
        add_runs(study_name, real_name, {"method": "Real", "data": real_name},
                 {"real_root": real_train.path, "real_ids": r_id, "real_k": k}, r_id * k, [eval_lfw])
        add_runs(study_name, f"{s.name}+{real_name}-DM", {"method": "Mix (DM)", "data": f"{s.name} + {real_name}"},
                 {"data": s.path, "real_root": real_train.path, "real_ids": r_id, "real_k": k, "psi": "grid"},
                 s.images, [eval_lfw])
        notes.append(f"{real_name}: the first {r_id} LFW people (sorted) of folds 1-{sc.train_people_folds} "
                     f"with >= {k} images, {k} images each; DM oversamples it to the synthetic set's length")
    elif name == "context":
        from synface.data.synth_model import privacy_floor  # noqa: PLC0415
        from synface.studies.context_study import add_context_cells  # noqa: PLC0415

        if learned is None:
            raise ValueError("the context study draws a learned face model's people into its photos: add --model NAME")
        datasets.append(real_train)
        ids, samples = sc.t3_syn
        from synface.train.config import PRESETS  # noqa: PLC0415

        epochs = int({**PRESETS[sc.preset], **sc.train}["epochs"])
        add_context_cells(lambda which: _synth_spec(ids, samples, True, None, model if which == "learned" else BUILTIN),
                          lambda spec: syn_step(spec), add_runs, study_name, real_train, train_images, epochs,
                          privacy_floor(model, ws), [eval_lfw], notes)
    else:  # figure4
        ids, samples = sc.f4_syn
        for varied in ("none", *FACTORS, "all"):
            for im in (False, True):
                s = syn(ids, samples, im, varied)
                add_runs(study_name, s.name, {"varied": varied, "im": im}, {"data": s.path}, s.images, [eval_lfw])
        notes.append("Figure 4 protocol: only the named factor is re-drawn per image, the others are drawn once "
                     "per identity and held ('none' = all held, 'all' = all re-drawn)")
    return Plan(name, scale, str(ws), str(lfw), seeds, datasets, runs, notes, model, model_version)


# ----------------------------------------------------------------------------- datasets


# ----------------------------------------------------------------------------- execution

ProgressFactory = Callable[[str, int], tuple[Callable[[int, int], None], Callable[[], None]]]


# ----------------------------------------------------------------------------- reports


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {**{k: v for k, v in asdict(plan).items() if k not in ("datasets", "runs")},
            "datasets": [asdict(d) for d in plan.datasets],
            "runs": [{"study": r.study, "label": r.label, "seed": r.seed, "key": r.key, "cell": r.cell} for r in plan.runs],
            "estimate_s": plan.estimate()}


# ----------------------------------------------------------------------------- background jobs (the app)


