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
Runs carry a study.json tag (see synface.analysis.tables). No Streamlit here.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from synface.analysis import tables
from synface.data.errors import DataError
from synface.face.builtin import GENERATOR_MODEL_VERSION

__all__ = ["SCALES", "TABLES", "Plan", "DatasetStep", "RunStep", "make_plan", "execute", "write_report",
           "build_synthetic_benchmark", "prepare_lfw", "reproduce"]

TABLES = ("table1", "table2", "table3", "figure4")
FACTORS = ("pose", "expression", "illumination")

#: Throughput used by the time estimates, measured on the shared 2-core dev CPU (see README):
#: rendering to disk, cpu-quick training at 56x56 (~250 images/s free, 55-150 shared), dlib
#: alignment of LFW photos (2 workers), one evaluation of ~1,000 pairs at 56x56 (decode + flip).
RATES = {"cpu": {"render": 120.0, "train": 110.0, "align": 20.0, "eval_s_per_kpair": 12.0, "start_s": 6.0},
         "tiny": {"render": 120.0, "train": 110.0, "align": 20.0, "eval_s_per_kpair": 12.0, "start_s": 6.0},
         # one 8-GPU node, paper recipe (IResNet-50, 512 batch): ~4,800 images/s train
         "paper": {"render": 1500.0, "train": 4800.0, "align": 50.0, "eval_s_per_kpair": 2.0, "start_s": 60.0}}


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


SCALES: dict[str, Scale] = {
    "paper": Scale("paper", "paper", {}, (10_000, 50, False), (1_000, 2_000, 5_000, 10_000), (10, 20, 50),
                   (10_000, 50), (2_000, 10), (10_000, 50), (10, 300)),
    # Sized so each table finishes within ~90 min on the shared 2-core CPU (estimates in the plan).
    "cpu": Scale("cpu", "cpu-quick", {"eval_every": 5, "batch_size": 128}, (400, 20, True), (100, 300), (10, 20),
                 (400, 20), (100, 5), (200, 15), (10, 50)),
    # For tests: a few steps, a handful of images.
    "tiny": Scale("tiny", "cpu-quick", {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "warmup_epochs": 0.0,
                                        "milestones": [1], "eval_every": 1, "eval_batch_size": 16, "log_every": 1},
                  (4, 3, False), (4,), (3,), (4, 3), (2, 2), (4, 2), (2, 2), max_test_pairs_per_fold=2),
}


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
            return (p / "dataset.json").is_file()
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

    def estimate(self) -> dict[str, float]:
        """Seconds still to spend per stage (finished datasets and runs cost nothing)."""
        r = RATES[self.scale]
        done = _finished_runs(self.root)
        est = {"datasets": 0.0, "training": 0.0, "evaluation": 0.0}
        for d in self.datasets:
            if not d.exists():
                est["datasets"] += d.images / (r["align"] if d.kind.startswith("real") else r["render"])
        epochs = None
        for run in self.runs:
            if run.key in done:
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
        done = _finished_runs(self.root)
        est = self.estimate()
        lines = [f"reproduce {self.name} at scale '{self.scale}' ({self.seeds} training seed(s)); workspace {self.root}",
                 f"LFW: {self.lfw}", "", "datasets:"]
        for d in self.datasets:
            lines.append(f"  [{'done' if d.exists() else 'todo'}] {d.kind:11s} {d.name:28s} {d.images:7d} images  {d.path}")
        lines += ["", "runs:"]
        for run in self.runs:
            cfg = run.config
            lines.append(f"  [{'done' if run.key in done else 'todo'}] {run.study} {run.label:34s} seed {run.seed}  "
                         f"{run.train_images} images x {cfg['epochs']} epochs, {cfg['backbone']}, key {run.key}")
        lines += ["", "estimated time still to spend (s): " +
                  ", ".join(f"{k} {v:.0f}" for k, v in est.items()) + f"  (~{est['total'] / 60:.0f} min)"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _finished_runs(root: str | Path) -> dict[str, Path]:
    """key -> run folder of every tagged run that finished with evaluations."""
    base = Path(root) / "runs"
    out: dict[str, Path] = {}
    if not base.is_dir():
        return out
    for p in sorted(base.iterdir()):
        tag_path = p / tables.STUDY_FILE
        if not tag_path.is_file():
            continue
        try:
            tag = json.loads(tag_path.read_text())
            status = json.loads((p / "status.json").read_text()).get("status")
            evals = json.loads((p / "eval.json").read_text())
        except (OSError, ValueError):
            continue
        if status == "finished" and evals and tag.get("key"):
            out[tag["key"]] = p
    return out


def _any_run(root: str | Path, key: str) -> Path | None:
    base = Path(root) / "runs"
    if not base.is_dir():
        return None
    for p in sorted(base.iterdir(), reverse=True):
        try:
            if json.loads((p / tables.STUDY_FILE).read_text()).get("key") == key:
                return p
        except (OSError, ValueError):
            continue
    return None


def _syn_name(ids: int, samples: int, im: bool = False, varied: str | None = None) -> str:
    from synface.data.subsets import subset_name  # noqa: PLC0415

    name = subset_name(ids, samples, prefix="Syn") + ("_IM" if im else "")
    if varied is not None:
        name += f"_vary-{varied}"
    return name


def _synth_spec(ids: int, samples: int, im: bool, varied: str | None = None) -> dict:
    spec = {"ids": ids, "samples": samples, "im": im, "seed": 0}
    if varied is not None:  # Figure 4: only the chosen factor(s) are drawn per image
        for f in FACTORS:
            spec[f] = "vary" if varied == "all" or varied == f else "fixed"
    spec["name"] = _syn_name(ids, samples, im, varied)
    return spec


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
              seeds: int = 2) -> Plan:
    """Datasets and runs one table needs at one scale (nothing is created)."""
    from synface.base.workspace import workspace_root  # noqa: PLC0415
    from synface.train.config import config_from_dict  # noqa: PLC0415

    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose from {', '.join(TABLES)}")
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

    def syn(ids: int, samples: int, im: bool, varied: str | None = None) -> DatasetStep:
        spec = _synth_spec(ids, samples, im, varied)
        step = DatasetStep(spec["name"], "synthetic", str(ws / "datasets" / spec["name"]), ids * samples, spec)
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
        bench = DatasetStep(f"SynBench_{folds}x{n}", "benchmark", str(ws / "benchmarks" / f"SynBench_{folds}x{n}"),
                            folds * n * 2, {"folds": folds, "pairs_per_fold": n, "seed": 0})
        datasets.append(bench)
        bench_pairs = 2 * folds * n
        evals = [eval_lfw, {"path": bench.path, "name": tables.BENCH_SET}]
        ids, samples, im = sc.t1_syn
        s = syn(ids, samples, im)
        datasets.append(real_train)
        add_runs(name, s.name, {"train": "Syn", "train_set": s.name}, {"data": s.path}, s.images, evals)
        add_runs(name, "Real_LFW123", {"train": "Real", "train_set": f"Real (LFW people folds 1-{sc.train_people_folds})"},
                 {"real_root": real_train.path}, train_images, evals)
        notes.append(f"synthetic benchmark: {folds} folds x ({n} same + {n} different) pairs of benchmark-purpose identities")
    elif name == "table2":
        for ids in sc.t2_ids:
            for samples in sc.t2_samples:
                for im in (False, True):
                    s = syn(ids, samples, im)
                    add_runs(name, s.name, {"ids": ids, "samples": samples, "im": im}, {"data": s.path}, s.images,
                             [eval_lfw])
    elif name == "table3":
        ids, samples = sc.t3_syn
        r_id, k = sc.t3_real
        s = syn(ids, samples, True)
        datasets.append(real_train)
        from synface.data.subsets import subset_name  # noqa: PLC0415

        real_name = subset_name(r_id, k)
        add_runs(name, s.name, {"method": "Syn", "data": s.name}, {"data": s.path}, s.images, [eval_lfw])
        add_runs(name, real_name, {"method": "Real", "data": real_name},
                 {"real_root": real_train.path, "real_ids": r_id, "real_k": k}, r_id * k, [eval_lfw])
        add_runs(name, f"{s.name}+{real_name}-DM", {"method": "Mix (DM)", "data": f"{s.name} + {real_name}"},
                 {"data": s.path, "real_root": real_train.path, "real_ids": r_id, "real_k": k, "psi": "grid"},
                 s.images, [eval_lfw])
        notes.append(f"{real_name}: the first {r_id} LFW people (sorted) of folds 1-{sc.train_people_folds} "
                     f"with >= {k} images, {k} images each; DM oversamples it to the synthetic set's length")
    else:  # figure4
        ids, samples = sc.f4_syn
        for varied in ("none", *FACTORS, "all"):
            for im in (False, True):
                s = syn(ids, samples, im, varied)
                add_runs(name, s.name, {"varied": varied, "im": im}, {"data": s.path}, s.images, [eval_lfw])
        notes.append("Figure 4 protocol: only the named factor is re-drawn per image, the others are drawn once "
                     "per identity and held ('none' = all held, 'all' = all re-drawn)")
    return Plan(name, scale, str(ws), str(lfw), seeds, datasets, runs, notes)


# ----------------------------------------------------------------------------- datasets


def build_synthetic_benchmark(out: str | Path, folds: int = 10, pairs_per_fold: int = 300, seed: int = 0,
                              progress: Callable[[int, int], None] | None = None, generator: Any = None) -> Path:
    """An LFW-layout verification set of synthetic people (the analogue of the paper's Syn-LFW).

    Writes `<out>/<Name>/<Name>_%04d.jpg` (two images per person, attributes drawn per image),
    benchmark.bin (the same pairs in insightface's format), pairs.txt (`folds`, each `pairs_per_fold` same + `pairs_per_fold` different pairs) and people.txt
    (each fold its own people, so folds are identity-disjoint). Identities come from
    SynthConfig(purpose="benchmark"), whose seeds are odd: never a training identity. Skips the
    work when `<out>/benchmark.json` records the same settings.
    """
    from PIL import Image  # noqa: PLC0415

    from synface.data.synthetic import SynthConfig, SyntheticSpec  # noqa: PLC0415
    from synface.data.verification import Pair, write_pairs  # noqa: PLC0415
    from synface.base.files import atomic_path  # noqa: PLC0415
    from synface.face.coeffs import FaceCoeffs  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    if folds < 1 or pairs_per_fold < 2:
        raise ValueError(f"need folds >= 1 and pairs_per_fold >= 2, got {folds} and {pairs_per_fold}")
    out = Path(out)
    settings = {"folds": folds, "pairs_per_fold": pairs_per_fold, "seed": seed, "version": 1}
    card = out / "benchmark.json"
    if card.is_file():
        try:
            if {k: json.loads(card.read_text()).get(k) for k in settings} == settings:
                return out
        except ValueError:
            pass
        raise DataError(f"{out} holds a different benchmark; choose another folder", path=out)
    n_ids = folds * pairs_per_fold
    config = SynthConfig(ids=n_ids, samples=2, seed=seed, purpose="benchmark")
    gen = generator or FaceGenerator()
    spec = SyntheticSpec(config, gen)
    names = [f"SynBench_{i:05d}" for i in range(n_ids)]
    batch = 64
    for start in range(0, n_ids, batch):
        ids = range(start, min(n_ids, start + batch))
        todo = [i for i in ids if not (out / names[i] / f"{names[i]}_0002.jpg").is_file()]
        if todo:
            coeffs = FaceCoeffs.cat([spec.identity_batch(i)[0] for i in todo])
            images = gen.render(coeffs).images.cpu().numpy()
            for j, i in enumerate(todo):
                folder = out / names[i]
                folder.mkdir(parents=True, exist_ok=True)
                for k in range(2):
                    with atomic_path(folder / f"{names[i]}_{k + 1:04d}.jpg") as tmp:
                        Image.fromarray(images[2 * j + k]).save(tmp, format="JPEG", quality=95)
        if progress:
            progress(min(n_ids, start + batch), n_ids)
    rng = np.random.default_rng(seed)
    pairs, people = [], []
    for f in range(folds):
        members = list(range(f * pairs_per_fold, (f + 1) * pairs_per_fold))
        people.append(members)
        pairs += [Pair(f, names[i], 1, names[i], 2, True) for i in members]
        shift = 1 + rng.permutation(pairs_per_fold - 1)[: pairs_per_fold]  # a derangement by rotation
        rot = int(shift[0])
        pairs += [Pair(f, names[members[j]], 1 + (j % 2), names[members[(j + rot) % pairs_per_fold]], 2 - (j % 2), False)
                  for j in range(pairs_per_fold)]
    write_pairs(out / "pairs.txt", pairs, folds, pairs_per_fold)
    lines = [str(folds)]
    for members in people:
        lines.append(str(len(members)))
        lines += [f"{names[i]}\t2" for i in members]
    with atomic_path(out / "people.txt") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    # the same pairs as an insightface .bin, so .bin-only evaluators read the benchmark too
    from synface.data.lfw import lfw_verification_pairs  # noqa: PLC0415
    from synface.data.verification_bin import write_bin  # noqa: PLC0415

    write_bin(out / "benchmark.bin", lfw_verification_pairs(out))
    with atomic_path(card) as tmp:
        tmp.write_text(json.dumps({**settings, "identities": n_ids, "images": 2 * n_ids,
                                   "synth_config": config.to_dict()}, indent=1))
    return out


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


def prepare_lfw(step: DatasetStep, lfw: str | Path, progress: Callable[[int, int], None] | None = None,
                workers: int = 2) -> Path:
    """Aligned real data: the training people (ImageFolder) or the test pairs (LFW layout), resumably."""
    from synface.data.align import align_folder  # noqa: PLC0415
    from synface.data.lfw import LFWLayout, people_of_folds, read_pairs, read_people  # noqa: PLC0415
    from synface.data.verification import Pair, write_pairs  # noqa: PLC0415
    from synface.base.files import atomic_path  # noqa: PLC0415

    lfw = Path(lfw).resolve()
    _check_source(step, lfw)
    layout = LFWLayout(lfw)
    people = read_people(layout.people_file)
    out = Path(step.path)
    staging = out.parent / f"_src_{out.name}"
    if step.kind == "real-train":
        names = people_of_folds(people, step.spec["people_folds"])
        _link_people(layout.images_root, names, staging)
        align_folder(staging, out, progress=progress, workers=workers)
    else:
        test_folds = step.spec["pairs_folds"]
        cap = step.spec.get("max_pairs_per_fold")
        pairs = read_pairs(layout.pairs_file)
        chosen: list[Pair] = []
        per = None
        for new, f in enumerate(test_folds):
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
        assert not overlap, f"test pairs share identities with the training people: {sorted(overlap)[:5]}"
        _link_people(layout.images_root, sorted(test_people), staging)
        align_folder(staging, out / "images", progress=progress, workers=workers)
        write_pairs(out / "pairs.txt", chosen, len(test_folds), per)
        lines = [str(len(test_folds))]
        for f in test_folds:
            fold_people = [(n, c) for n, c in people[f] if n in test_people]
            lines += [str(len(fold_people))] + [f"{n}\t{c}" for n, c in fold_people]
        with atomic_path(out / "people.txt") as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out / "source.json") as tmp:
        tmp.write_text(json.dumps({"lfw": str(lfw), **step.spec, "kind": step.kind}, indent=1))
    return out


def build_step(step: DatasetStep, lfw: str | Path, progress: Callable[[int, int], None] | None = None,
               generator: Any = None) -> None:
    if step.exists():
        return
    if step.kind == "synthetic":
        from synface.data.synthetic import SynthConfig, build_dataset  # noqa: PLC0415

        build_dataset(SynthConfig.from_dict(step.spec), step.path, generator=generator, progress=progress)
    elif step.kind == "benchmark":
        build_synthetic_benchmark(step.path, step.spec["folds"], step.spec["pairs_per_fold"], step.spec["seed"],
                                  progress=progress, generator=generator)
    else:
        prepare_lfw(step, lfw, progress)


# ----------------------------------------------------------------------------- execution

ProgressFactory = Callable[[str, int], tuple[Callable[[int, int], None], Callable[[], None]]]


def _null_progress(desc: str, total: int):
    return (lambda done, total_now: None), (lambda: None)


def execute_run(run: RunStep, plan: Plan, progress: ProgressFactory = _null_progress) -> Path:
    """Train and evaluate one run unless an identical finished one exists; returns its folder."""
    from synface.runs import Run, create_run  # noqa: PLC0415
    from synface.train.loop import train  # noqa: PLC0415

    root = Path(plan.root)
    tag = {"key": run.key, "seed": run.seed, "scale": plan.scale, "label": run.label}
    done = _finished_runs(root).get(run.key)
    if done is not None:
        tables.write_study_tag(done, run.study, run.cell, **tag)
        return done
    existing = _any_run(root, run.key)
    resume = existing is not None and Run(existing).last_checkpoint.is_file()
    if existing is None:
        existing = create_run(run.config, name=run.config["name"], root=root).path
    tables.write_study_tag(existing, run.study, run.cell, **tag)
    update, close = progress(f"{run.study} {run.label} s{run.seed}", 0)
    try:
        result = train(run.config, existing, resume=resume, progress=update)
    finally:
        close()
    if result["status"] != "finished":
        raise RuntimeError(f"run {existing.name} ended '{result['status']}': {result['message']}")
    return existing


def execute(plan: Plan, progress: ProgressFactory = _null_progress, generator: Any = None) -> list[Path]:
    """Build every dataset, then train/evaluate every run (resumable); returns the run folders."""
    for step in plan.datasets:
        if not step.exists():
            update, close = progress(f"dataset {step.name}", step.images)
            try:
                build_step(step, plan.lfw, update, generator)
            finally:
                close()
    return [execute_run(run, plan, progress) for run in plan.runs]


# ----------------------------------------------------------------------------- reports


def _trend(name: str, df) -> list[str]:
    """Plain statements of whether the paper's trend holds in these numbers."""
    out: list[str] = []

    def verdict(ok: bool) -> str:
        return "holds" if ok else "does NOT hold"

    if df.empty:
        return ["No finished runs: no trend to check."]
    if name == "table1" and {f"{tables.LFW_SET} acc", f"{tables.BENCH_SET} acc"} <= set(df.columns):
        syn = df[df["train"] == "Syn"]
        real = df[df["train"] == "Real"]
        if len(syn) and len(real):
            s_l, s_b = float(syn[f"{tables.LFW_SET} acc"].iloc[0]), float(syn[f"{tables.BENCH_SET} acc"].iloc[0])
            r_l, r_b = float(real[f"{tables.LFW_SET} acc"].iloc[0]), float(real[f"{tables.BENCH_SET} acc"].iloc[0])
            out.append(f"Domain gap (paper: the synthetic model scores far higher on synthetic than on real faces): "
                       f"Syn {s_b:.2f} on SynBench vs {s_l:.2f} on LFW -> {verdict(s_b > s_l)}.")
            out.append(f"Real data generalises better to LFW (paper: RealFace > SynFace on LFW): "
                       f"Real {r_l:.2f} vs Syn {s_l:.2f} -> {verdict(r_l > s_l)}.")
            out.append(f"Cross-domain: Real on SynBench {r_b:.2f}, Syn on LFW {s_l:.2f}.")
    elif name == "table2" and {"IM acc", "no IM acc"} <= set(df.columns):
        gains = df["IM gain"].dropna()
        out.append(f"Identity mixup helps (paper: +3 points at Syn_10K_50): IM gain > 0 in {int((gains > 0).sum())} "
                   f"of {len(gains)} cells (mean {gains.mean():+.2f}) -> {verdict(len(gains) > 0 and (gains > 0).mean() > 0.5)}.")
        for col in ("no IM acc", "IM acc"):
            by_ids = df.groupby("ids")[col].mean()
            by_s = df.groupby("samples")[col].mean()
            if len(by_ids) > 1:
                out.append(f"More identities help ({col[:-4]}): {', '.join(f'{k}: {v:.2f}' for k, v in by_ids.items())} "
                           f"-> {verdict(bool(np.all(np.diff(by_ids.to_numpy()) > 0)))}.")
            if len(by_s) > 1:
                out.append(f"More samples per identity help ({col[:-4]}): {', '.join(f'{k}: {v:.2f}' for k, v in by_s.items())} "
                           f"-> {verdict(bool(np.all(np.diff(by_s.to_numpy()) > 0)))}.")
    elif name == "table3" and f"{tables.LFW_SET} acc" in df.columns:
        acc = dict(zip(df["method"], df[f"{tables.LFW_SET} acc"]))
        if {"Syn", "Real", "Mix (DM)"} <= set(acc):
            out.append(f"Domain mixup beats both sources alone (paper: IM+DM 95.78 vs 91.97 Syn at 2K x 10 real): "
                       f"Mix {acc['Mix (DM)']:.2f}, Syn {acc['Syn']:.2f}, Real {acc['Real']:.2f} -> "
                       f"{verdict(acc['Mix (DM)'] > max(acc['Syn'], acc['Real']))}.")
    elif name == "figure4" and {"IM acc", "no IM acc"} <= set(df.columns):
        d = df.set_index("varied")
        if "none" in d.index:
            for f in (*FACTORS, "all"):
                if f in d.index:
                    out.append(f"Varying {f} vs holding everything (no IM): {d.loc[f, 'no IM acc']:.2f} vs "
                               f"{d.loc['none', 'no IM acc']:.2f} -> variation helps: {verdict(d.loc[f, 'no IM acc'] > d.loc['none', 'no IM acc'])}.")
        gains = (d["IM acc"] - d["no IM acc"]).dropna()
        out.append(f"IM helps in {int((gains > 0).sum())} of {len(gains)} settings -> {verdict((gains > 0).mean() > 0.5)}.")
    if not out:
        out.append("Not enough finished cells to check the paper's trend.")
    return out


def _plot_series(name: str, df) -> tuple[list[str], list[tuple[str, list[float], list[float]]], str]:
    """(group labels, [(series name, values, errors)], title) of a table's grouped bar chart."""
    if df.empty:
        return [], [], name
    if name == "table1":
        groups = [str(s) for s in df["train_set"]]
        sets = [c[:-4] for c in df.columns if c.endswith(" acc")]
        return groups, [(s, df[f"{s} acc"].tolist(), df[f"{s} std"].tolist()) for s in sets], "Table 1: cross-domain accuracy (%)"
    if name == "table3":
        groups = [str(m) for m in df["method"]]
        return groups, [(tables.LFW_SET, df[f"{tables.LFW_SET} acc"].tolist(), df[f"{tables.LFW_SET} std"].tolist())], \
            "Table 3: synthetic, real and domain mixup, LFW accuracy (%)"
    if name == "table2":
        groups = [f"{i} ids x {s}" for i, s in zip(df["ids"], df["samples"])]
        title = "Table 2: identities x samples, LFW accuracy (%)"
    else:
        groups = [str(v) for v in df["varied"]]
        title = "Figure 4: factors varied per image, LFW accuracy (%)"
    series = [(s, df[f"{s} acc"].tolist(), df[f"{s} std"].tolist()) for s in ("no IM", "IM") if f"{s} acc" in df]
    return groups, series, title


def plot_png(groups: list[str], series: list[tuple[str, list[float], list[float]]], title: str, path: str | Path,
             size: tuple[int, int] = (900, 500)) -> None:
    """A grouped bar chart with error bars, drawn with PIL (no browser or kaleido needed)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    from synface.base.files import atomic_path  # noqa: PLC0415

    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, 20, 40, 90
    draw.text((left, 12), title, fill="black")
    vals = [v + (e if e == e else 0) for _, vs, es in series for v, e in zip(vs, es) if v == v]
    lo = 50.0 if all(v >= 50 for v in vals) else 0.0
    hi = max([lo + 1.0, *vals])
    hi = min(100.0, np.ceil(hi / 5) * 5) if hi <= 100 else hi
    y = lambda v: top + (h - top - bottom) * (1 - (v - lo) / max(hi - lo, 1e-9))  # noqa: E731
    for t in np.linspace(lo, hi, 6):
        draw.line([(left, y(t)), (w - right, y(t))], fill=(225, 225, 225))
        draw.text((8, y(t) - 6), f"{t:.0f}", fill="black")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    n_g, n_s = max(1, len(groups)), max(1, len(series))
    slot = (w - left - right) / n_g
    bar = slot * 0.8 / n_s
    for gi, g in enumerate(groups):
        x0 = left + gi * slot + slot * 0.1
        for si, (_, vs, es) in enumerate(series):
            v, e = vs[gi], es[gi]
            if v != v:  # NaN: missing cell
                continue
            xa = x0 + si * bar
            draw.rectangle([xa, y(max(v, lo)), xa + bar - 2, y(lo)], fill=colours[si % len(colours)])
            if e == e and e > 0:
                cx = xa + bar / 2 - 1
                draw.line([(cx, y(min(v + e, hi))), (cx, y(max(v - e, lo)))], fill="black", width=2)
            draw.text((xa, y(max(v, lo)) - 12), f"{v:.1f}", fill="black")
        draw.text((x0, h - bottom + 8), g[:24], fill="black")
    for si, (s, _, _) in enumerate(series):
        draw.rectangle([left + si * 140, h - 30, left + si * 140 + 12, h - 18], fill=colours[si % len(colours)])
        draw.text((left + si * 140 + 18, h - 31), s, fill="black")
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def plot_html(groups: list[str], series: list[tuple[str, list[float], list[float]]], title: str, path: str | Path) -> None:
    """The same chart as a self-contained plotly HTML (plotly.js embedded: works offline)."""
    import plotly.graph_objects as go  # noqa: PLC0415

    from synface.base.files import atomic_path  # noqa: PLC0415

    fig = go.Figure([go.Bar(name=s, x=groups, y=vs, error_y={"type": "data", "array": es}) for s, vs, es in series])
    fig.update_layout(title=title, barmode="group", yaxis_title="accuracy (%)")
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)


def write_report(plan: Plan, out_dir: str | Path, elapsed_s: float | None = None) -> dict[str, Path]:
    """results/<name>.md, .csv, .html and .png from the registry (the plan's scale only)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = tables.build_table(plan.name, plan.root, plan.scale)
    paths = {ext: out_dir / f"{plan.name}.{ext}" for ext in ("md", "csv", "html", "png")}
    df.to_csv(paths["csv"], index=False)
    groups, series, title = _plot_series(plan.name, df)
    plot_html(groups, series, title, paths["html"])
    plot_png(groups, series, title, paths["png"])
    sc = SCALES[plan.scale]
    lines = [f"# {title.split(':')[0]} (scale `{plan.scale}`)", "",
             f"Accuracy in % as mean ± std over the test folds of {plan.seeds} training seed(s) pooled "
             f"(the `seeds` column is the number of finished seeds per cell). Verification is k-fold over the test "
             f"pairs' own folds (threshold chosen on the other folds).", "", tables.to_markdown(df),
             "## Does the paper's trend hold?", ""]
    lines += [f"- {t}" for t in _trend(plan.name, df)]
    lines += ["", "## Setup", ""]
    lines += [f"- {n}" for n in plan.notes]
    lines += [f"- training preset `{sc.preset}`, overrides {sc.train}; backbone "
              f"`{plan.runs[0].config['backbone'] if plan.runs else '-'}`, {plan.runs[0].config['epochs'] if plan.runs else '-'} epochs",
              "- datasets: " + ", ".join(f"{d.name} ({d.images} images)" for d in plan.datasets),
              f"- face generator `{GENERATOR_MODEL_VERSION}` (synthetic sets refuse to resume under another version)"]
    if elapsed_s is not None:
        lines.append(f"- wall time of this reproduce call: {elapsed_s / 60:.1f} min")
    lines += ["", f"![{plan.name}]({plan.name}.png)", "", f"Interactive chart: [{plan.name}.html]({plan.name}.html)", ""]
    if plan.scale != "paper":
        lines.append("_Small-scale reproduction: absolute accuracies are far below the paper's (tiny sets, a compact "
                     "56x56 network, minutes of CPU training); only the direction of the differences is comparable._")
    from synface.base.files import atomic_path  # noqa: PLC0415

    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def reproduce(name: str, scale: str = "cpu", lfw: str | Path | None = None, root: str | Path | None = None,
              seeds: int = 2, out_dir: str | Path = "results", dry_run: bool = False,
              progress: ProgressFactory = _null_progress) -> tuple[Plan, dict[str, Path] | None]:
    """Plan, then (unless dry_run) execute and write the report."""
    plan = make_plan(name, scale, lfw, root, seeds)
    if dry_run:
        return plan, None
    t0 = time.time()
    execute(plan, progress)
    return plan, write_report(plan, out_dir, time.time() - t0)


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {**{k: v for k, v in asdict(plan).items() if k not in ("datasets", "runs")},
            "datasets": [asdict(d) for d in plan.datasets],
            "runs": [{"study": r.study, "label": r.label, "seed": r.seed, "key": r.key, "cell": r.cell} for r in plan.runs],
            "estimate_s": plan.estimate()}


# ----------------------------------------------------------------------------- background jobs (the app)


def _job_paths(name: str, scale: str, root: str | Path | None) -> tuple[Path, Path]:
    from synface.base.workspace import workspace_root  # noqa: PLC0415

    base = workspace_root(root) / "reproduce"
    return base / f"{name}-{scale}.log", base / f"{name}-{scale}.json"


def launch_reproduce(name: str, scale: str, lfw: str | Path, root: str | Path | None = None,
                     out_dir: str | Path = "results", seeds: int = 2) -> dict[str, Any]:
    """Start `reproduce` as a detached process (survives app reruns); refuses a second live one."""
    from synface.base.processes import pid_alive, spawn_detached, synface_argv  # noqa: PLC0415
    from synface.base.workspace import workspace_root  # noqa: PLC0415

    make_plan(name, scale, lfw, root, seeds)  # validate arguments before starting anything
    status = reproduce_status(name, scale, root)
    if status.get("alive"):
        return status
    log, meta = _job_paths(name, scale, root)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = synface_argv("reproduce", name, "--scale", scale, "--lfw", str(lfw), "--root", str(workspace_root(root)),
                        "--out", str(out_dir), "--seeds", str(seeds), "--no-progress")
    proc = spawn_detached(argv, log)
    meta.write_text(json.dumps({"pid": proc.pid, "argv": argv, "started": time.time()}))
    return {"pid": proc.pid, "alive": pid_alive(proc.pid), "log": str(log)}


def reproduce_status(name: str, scale: str, root: str | Path | None = None) -> dict[str, Any]:
    """pid, whether it is alive, and the log's last lines of a background reproduce job."""
    from synface.base.processes import pid_alive  # noqa: PLC0415

    log, meta = _job_paths(name, scale, root)
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {"alive": False}
    tail = ""
    try:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
    except OSError:
        pass
    return {"pid": info.get("pid"), "alive": pid_alive(info.get("pid")), "log": str(log), "tail": tail}
