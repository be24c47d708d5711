"""The calls a notebook needs, in one place: draw people, build sets, train, evaluate, embed, plot, reproduce.

    from synface import api
    gen = api.generator()                               # the built-in head (or a learned model by name)
    faces = api.draw_faces(8, seed=1, generator=gen)    # (8, 112, 112, 3) uint8
    strip = api.mixup_strip(*api.draw_identities(2, seed=1, generator=gen), generator=gen)
    synth = api.build_dataset(100, 10, im=True)         # a SynthSet in the workspace
    run = api.train(synth.folder, preset="cpu-quick", overrides={"epochs": 1})
    api.evaluate(run, ["lfw"])                          # a DataFrame, stored in the run too
    api.umap_figure([api.features(run, synth.folder), api.features(run, "lfw_folder")])

Every call returns plain objects (numpy arrays, `SynthSet`, `RealSet`, `Run`, `FeatureSet`), pandas
frames or plotly figures, never Streamlit; the app's pages draw with the same calls. Each takes
`workspace` (default $SYNFACE_HOME or ./workspace), as the command line's --root. Heavy packages
load on the first call that needs them, so `import synface.api` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from synface.analysis.features import FeatureSet
    from synface.data.realsets import RealSet
    from synface.data.synth_set import SynthSet
    from synface.face.coeffs import FaceCoeffs
    from synface.generator import FaceGenerator
    from synface.runs.run import Run

__all__ = ["generator", "draw_identities", "draw_faces", "render", "mixup_strip", "attribute_grid", "expressions",
           "compose", "image_grid", "require_notebook_extra",
           "build_dataset", "build_benchmark", "register_real", "train", "runs", "evaluate", "embed", "features",
           "feature_frame", "umap_figure", "class_stats", "table", "attribute_figure", "verdicts", "reproduce",
           "PHI_STRIP"]

#: the phi values of the IM strip (the paper's Figure 2): phi = 1 is identity A, 0 is B
PHI_STRIP = tuple(round(0.1 * i, 1) for i in range(11))
Progress = Callable[[int, int], None]


def require_notebook_extra() -> None:
    """The notebooks' first cell: refuse, naming the `notebooks` extra, when its packages
    (ipywidgets for the sliders) are missing."""
    from synface.base.extras import require_extra  # noqa: PLC0415

    require_extra("notebooks", ["ipywidgets"], "The notebooks")


# ----------------------------------------------------------------------------- faces


def generator(model: str = "builtin", device: str = "auto", workspace: str | Path | None = None) -> "FaceGenerator":
    """A FaceGenerator of face model `model` ("builtin" or a learned model of the workspace)."""
    from synface.face.catalog import load_model  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    return FaceGenerator(device=device, model=load_model(model, workspace))


def _gen(gen: "FaceGenerator | None") -> "FaceGenerator":
    return gen if gen is not None else generator()


def render(coeffs: "FaceCoeffs", generator: "FaceGenerator | None" = None) -> np.ndarray:
    """(N, 112, 112, 3) uint8 aligned faces of `coeffs`."""
    return _gen(generator).render(coeffs).images.cpu().numpy()


def draw_identities(n: int, seed: int = 0, generator: "FaceGenerator | None" = None) -> list["FaceCoeffs"]:
    """`n` new people, one FaceCoeffs each (identity and attributes from the prior, seeded)."""
    coeffs = _gen(generator).sample(n, seed)
    return [coeffs[i:i + 1] for i in range(n)]


def draw_faces(n: int, seed: int = 0, generator: "FaceGenerator | None" = None) -> np.ndarray:
    """Faces of `n` new people: (n, 112, 112, 3) uint8."""
    gen = _gen(generator)
    return render(gen.sample(n, seed), gen)


def mixup_strip(a: "FaceCoeffs", b: "FaceCoeffs", phis: Sequence[float] = PHI_STRIP,
                generator: "FaceGenerator | None" = None) -> np.ndarray:
    """Identity mixup (Figure 2): the identity phi * A + (1 - phi) * B for each phi, frontal and
    neutral, as (len(phis), 112, 112, 3) uint8 (`image_grid` lays them out as a strip)."""
    import torch  # noqa: PLC0415

    from synface.generator import FaceGenerator  # noqa: PLC0415

    gen = _gen(generator)
    mixed = gen.neutral(FaceGenerator.mix(a, b, torch.tensor([float(p) for p in phis])))
    return render(mixed, gen)


def attribute_grid(a: "FaceCoeffs", b: "FaceCoeffs | None" = None, phi: float = 1.0, n: int = 12, seed: int = 0,
                   generator: "FaceGenerator | None" = None) -> np.ndarray:
    """One identity (A, or A mixed with B at `phi`) under `n` poses, expressions and lights drawn
    from the prior: (n, 112, 112, 3) uint8."""
    from synface.face.coeffs import FaceCoeffs  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    gen = _gen(generator)
    mixed = FaceGenerator.mix(a, a if b is None else b, phi)
    attrs = gen.sample_attributes(n, seed)
    coeffs = FaceCoeffs(shape=mixed.shape.cpu().expand(n, -1), albedo=mixed.albedo.cpu().expand(n, -1), **attrs)
    return render(coeffs, gen)


def expressions(generator: "FaceGenerator | None" = None) -> list[str]:
    """The names of the face model's expression blendshapes (what `compose`'s `expression` takes)."""
    return [info.name for info in _gen(generator).model.expr_info]


def compose(a: "FaceCoeffs", b: "FaceCoeffs | None" = None, phi: float = 1.0, *, yaw: float = 0.0, pitch: float = 0.0,
            roll: float = 0.0, expression: dict[str, float] | None = None, light_yaw: float = 0.0,
            light_pitch: float = 17.0, intensity: float = 0.6, ambient: float = 0.55,
            generator: "FaceGenerator | None" = None) -> tuple[np.ndarray, list[str]]:
    """One face as the Generator page's sliders make it: identity phi * A + (1 - phi) * B, pose and
    light in degrees, expression weights by name (`expressions`). Returns the (112, 112, 3) image
    and a note per value clamped to the model's range."""
    from synface.face.controls import FaceControls  # noqa: PLC0415

    gen = _gen(generator)
    names = expressions(gen)
    unknown = sorted(set(expression or {}) - set(names))
    if unknown:
        raise ValueError(f"unknown expression(s) {unknown}; this face model has {', '.join(names)}")
    weights = tuple(float((expression or {}).get(n, 0.0)) for n in names)
    controls = FaceControls(pose_deg=(yaw, pitch, roll), expr=weights, light_yaw_deg=light_yaw,
                            light_pitch_deg=light_pitch, intensity=intensity, ambient=ambient)
    coeffs, notes = gen.compose(a, a if b is None else b, phi, controls)
    return render(coeffs, gen)[0], notes


def image_grid(images: np.ndarray, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(N, H, W, 3) images -> one grid image, `cols` per row (a strip when N <= cols)."""
    n, h, w, c = images.shape
    rows = (n + cols - 1) // cols
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), fill, np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = img
    return out


# ----------------------------------------------------------------------------- data


def build_dataset(ids: int, samples: int, *, name: str | None = None, seed: int = 0, im: bool = False,
                  model: str = "builtin", out: str | Path | None = None, workspace: str | Path | None = None,
                  workers: int = 1, progress: Progress | None = None, device: str = "auto",
                  **options: Any) -> "SynthSet":
    """Render the synthetic set Syn_{ids}_{samples}[_IM] (or `name`) into the workspace's datasets/
    (or `out`), resumably; `options` are further SynthConfig fields (pose="fixed", phi_grid, ...).
    `workers` > 1 builds it with that many local processes (`synface.data.shards`)."""
    from synface.base.names import child_path  # noqa: PLC0415
    from synface.base.workspace import workspace_root  # noqa: PLC0415
    from synface.data.synth_set import SynthSet  # noqa: PLC0415
    from synface.data.synthetic import SynthConfig, build_dataset as build  # noqa: PLC0415

    config = SynthConfig(ids=ids, samples=samples, seed=seed, im=im, model=model, name=name or "", **options)
    folder = Path(out) if out is not None else child_path(workspace_root(workspace) / "datasets", config.name,
                                                           "dataset name")
    if workers > 1:
        from synface.data.shards import build_with_workers  # noqa: PLC0415

        build_with_workers(config, folder, workers, device=device, workspace=workspace, progress=progress)
    else:
        build(config, folder, generator(model, device, workspace), progress=progress, workspace=workspace)
    return SynthSet(folder)


def build_benchmark(folds: int = 10, pairs_per_fold: int = 300, seed: int = 0, out: str | Path | None = None,
                    workspace: str | Path | None = None, progress: Progress | None = None) -> Path:
    """The synthetic verification benchmark (LFW layout, pairs.txt, people.txt, identities disjoint
    from every training set): a stand-in for LFW where no real copy is at hand. Returns its folder."""
    from synface.base.workspace import workspace_root  # noqa: PLC0415
    from synface.data.benchmark import build_synthetic_benchmark  # noqa: PLC0415

    folder = Path(out) if out is not None else \
        workspace_root(workspace) / "benchmarks" / f"SynBench_{folds}x{pairs_per_fold}_s{seed}"
    return build_synthetic_benchmark(folder, folds=folds, pairs_per_fold=pairs_per_fold, seed=seed, progress=progress,
                                     workspace=workspace)


def register_real(path: str | Path, name: str | None = None, train_folds: Sequence[int] | str | None = None,
                  align: bool = True, workspace: str | Path | None = None, progress: Progress | None = None) -> "RealSet":
    """Register a real set (LFW copy, ImageFolder, .bin, RecordIO, IJB-B/C) once, as `real add`
    does. `train_folds` of an LFW copy: 1-based people.txt folds as text ('1-3', 'all', 'none') or
    0-based fold numbers."""
    from synface.data.realsets import lfw_fold_count, parse_train_folds, register_real_set  # noqa: PLC0415

    folds = parse_train_folds(train_folds, lfw_fold_count(path) or 0) if isinstance(train_folds, str) else train_folds
    return register_real_set(path, name, align=align, progress=progress, root=workspace, train_folds=folds)


# ----------------------------------------------------------------------------- runs


def train(data: str | Path | None = None, *, preset: str | None = "cpu-quick", overrides: dict[str, Any] | None = None,
          real: str | None = None, eval_sets: Sequence[str] = (), allow_overlap: bool = False, name: str | None = None,
          background: bool = False, workspace: str | Path | None = None, progress: Progress | None = None) -> "Run":
    """Train a recogniser on synthetic set `data` (a folder or a workspace dataset name) and/or
    registered real set `real`, scored on registered `eval_sets`; the config comes from `preset` and
    `overrides` as on the Train page (`synface.train.run_config`). In this process (the run is
    finished when this returns), or with `background` queued as the page queues it (it runs in its
    own process; follow it with `runs()`)."""
    from synface.runs.queue import launch, record_check  # noqa: PLC0415
    from synface.runs.registry import create_run, find_run  # noqa: PLC0415
    from synface.train.launch_checks import preflight  # noqa: PLC0415
    from synface.train.run_config import run_config  # noqa: PLC0415

    values = dict(overrides or {})
    if data is not None:
        values["data"] = str(data)
    cfg = run_config(preset, None, values, real=real, eval_names=eval_sets, allow_overlap=allow_overlap, root=workspace)
    # the launch checks the Train page runs, before a run folder is made: unreadable data or a real
    # subset the set cannot give, overlapping people, data smaller than a batch, checkpoint space
    report = preflight(cfg, workspace)
    if background:
        run_id, _ = launch(cfg, workspace, name, checked=report)
        return find_run(run_id, workspace)
    from synface.train.loop import train as train_run  # noqa: PLC0415

    run = create_run(cfg, name=name, root=workspace)
    record_check(run, report)
    result = train_run(cfg, run.path, progress=progress, make_folder=False)
    if result.get("status") != "finished":
        raise RuntimeError(f"run {run.id} {result.get('status')}: {result.get('message')}")
    return run


def runs(workspace: str | Path | None = None, include_archived: bool = False) -> "pd.DataFrame":
    """Every run with its scores, one row per (run, evaluation set): the Results page's table."""
    from synface.analysis.run_results import results_frame  # noqa: PLC0415

    return results_frame(workspace, include_archived)


def _checkpoint_of(ref: Any, workspace: str | Path | None) -> tuple["Run | None", Path]:
    """(its run or None, the checkpoint) of a Run, a run id or folder, or a checkpoint file."""
    from synface.runs.registry import find_run  # noqa: PLC0415
    from synface.runs.run import Run  # noqa: PLC0415

    if isinstance(ref, (str, Path)) and Path(ref).suffix == ".pt" and Path(ref).is_file():
        return None, Path(ref)
    run = ref if isinstance(ref, Run) else find_run(ref, workspace)
    if not run.last_checkpoint.is_file():
        raise FileNotFoundError(f"run {run.id} has no checkpoint yet ({run.last_checkpoint})")
    return run, run.last_checkpoint


def _model_of(model: Any, workspace: str | Path | None, device: str = "cpu") -> tuple[Any, "Run | None", Path | None]:
    """(backbone module, its run or None, its checkpoint or None) of a Run, run id, checkpoint path or module."""
    import torch  # noqa: PLC0415

    from synface.models.checkpoint import load_checkpoint_model  # noqa: PLC0415

    if isinstance(model, torch.nn.Module):
        return model.to(device).eval(), None, None
    run, checkpoint = _checkpoint_of(model, workspace)
    return load_checkpoint_model(checkpoint, device)[0], run, checkpoint


def evaluate(model: Any, sets: Sequence[str] = ("all",), workspace: str | Path | None = None, far: float = 1e-3,
             batch_size: int = 128, progress: Callable[[str, int, int], None] | None = None,
             device: str = "auto") -> "pd.DataFrame":
    """Verification of a run (its last checkpoint; results also stored in the run, as `eval --run`),
    a checkpoint file or a backbone on `sets`: registered set names ('all': every verification set)
    or folders / .bin files. One row per set: accuracy and std (%), TAR at FAR 1e-3 and 1e-4 (%),
    AUC, and every TAR the set keeps (IJB-B/C: 1e-6 .. 1e-1)."""
    import pandas as pd  # noqa: PLC0415

    from synface.data.realsets import eval_specs, list_real_sets  # noqa: PLC0415
    from synface.eval.run_eval import evaluate as score  # noqa: PLC0415
    from synface.eval.sets import open_eval_set  # noqa: PLC0415

    from synface.base.device import resolve_device  # noqa: PLC0415

    device = str(resolve_device(device))
    net, run, checkpoint = _model_of(model, workspace, device)
    registered = {s.name for s in list_real_sets(workspace)}
    specs: list[dict[str, Any]] = []
    for item in map(str, sets):
        if item == "all" or item in registered or not Path(item).exists():  # an unknown name: refused, named
            specs += eval_specs(None if item == "all" else [item], workspace)
        else:
            specs.append({"path": item, "name": Path(item).stem if Path(item).suffix else Path(item).name})
    rows = []
    for spec in specs:
        evalset = open_eval_set(spec)
        tick = None if progress is None else (lambda d, t, n=evalset.name: progress(n, d, t))
        result = score(net, evalset, device, batch_size, far, progress=tick)
        if run is not None:
            status = run.status()
            run.record_eval(evalset.name, result, epoch=int(status.get("epoch") or 0), step=int(status.get("step") or 0),
                            source={"scored_by": "api.evaluate", "checkpoint": str(checkpoint)})
        row = {"set": evalset.name, "pairs": evalset.num_pairs, "acc": 100 * result.mean_accuracy,
               "std": 100 * result.std_accuracy, "tar_1e-3": 100 * (result.tar_at(1e-3) or 0.0),
               "tar_1e-4": 100 * (result.tar_at(1e-4) or 0.0), "auc": result.auc}
        row.update({f"TAR@{k}": 100 * v for k, v in (result.exact_tars or {}).items() if float(k) not in (1e-3, 1e-4)})
        rows.append(row)
    return pd.DataFrame(rows)


def embed(model: Any, images: np.ndarray, workspace: str | Path | None = None, flip: bool = True,
          batch_size: int = 64, device: str = "auto") -> np.ndarray:
    """L2-normalised embeddings (N, D) of uint8 (N, H, W, 3) aligned crops under a run, checkpoint
    or backbone, as evaluation computes them (image + mirror, summed)."""
    import torch  # noqa: PLC0415

    from synface.eval.verification import embed_images  # noqa: PLC0415

    from synface.base.device import resolve_device  # noqa: PLC0415

    device = str(resolve_device(device))
    net, _, _ = _model_of(model, workspace, device)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).permute(0, 3, 1, 2)

    def load(start: int, stop: int) -> torch.Tensor:
        return x[start:stop].float().div(127.5).sub(1.0)

    return embed_images(net, load, len(x), batch_size=batch_size, device=device, flip=flip)


# ----------------------------------------------------------------------------- figures and tables


def features(model: Any, dataset: str | Path, max_images: int | None = 1000, workspace: str | Path | None = None,
             progress: Progress | None = None) -> "FeatureSet":
    """Unit-length features of (up to `max_images` of, whole identities) a synthetic set, an
    ImageFolder or an LFW folder under a run, checkpoint or "dlib" (the real-face reference), cached
    in the workspace: what the Features page plots."""
    import torch  # noqa: PLC0415

    from synface.analysis.features import DLIB, extract_features  # noqa: PLC0415

    if model != DLIB and not isinstance(model, torch.nn.Module):
        model = str(_checkpoint_of(model, workspace)[1])  # a run stands for its last checkpoint
    return extract_features(model, dataset, max_images, progress=progress, root=workspace)


def feature_frame(feature_sets: Sequence[Any]) -> "pd.DataFrame":
    """One row per image of the feature sets (or their cache files): path, identity, phi, attributes."""
    from synface.analysis.figures import feature_frame as frame  # noqa: PLC0415

    return frame(feature_sets)


def umap_figure(feature_sets: Sequence[Any], colour: str = "dataset", dims: int = 2, neighbours: int = 15,
                min_dist: float = 0.1, coords: np.ndarray | None = None):
    """Figure 3: the UMAP (seeded) of the feature sets together, coloured by `colour`; `coords`
    when already computed. A plotly figure."""
    from synface.analysis.features import FeatureSet  # noqa: PLC0415
    from synface.analysis.figures import feature_frame as frame, umap_figure as figure  # noqa: PLC0415

    sets = [FeatureSet.load(s) if isinstance(s, (str, Path)) else s for s in feature_sets]
    if coords is None:
        from synface.analysis.umap_embed import embed_umap  # noqa: PLC0415

        coords = embed_umap(np.concatenate([s.features for s in sets]), dims, neighbours, min_dist, seed=0)
    return figure(frame(sets), coords, colour)


def class_stats(feature_sets: Sequence[Any]) -> "pd.DataFrame":
    """Intra- and inter-class cosine similarity per feature set (Figure 3's class statistics)."""
    from synface.analysis.class_stats import class_statistics, class_table  # noqa: PLC0415
    from synface.analysis.features import FeatureSet  # noqa: PLC0415

    sets = [FeatureSet.load(s) if isinstance(s, (str, Path)) else s for s in feature_sets]
    return class_table({s.dataset: class_statistics(s.features, s.labels) for s in sets})


def table(name: str, scale: str | None = None, model: str | None = None,
          workspace: str | Path | None = None) -> "pd.DataFrame":
    """Table 1, 2, 3 or Figure 4 ('table1' ... 'figure4') from the runs `reproduce` tagged (but
    those trained on an earlier build of their set)."""
    from synface.analysis.tables import build_table  # noqa: PLC0415
    from synface.studies.staleness import current_rows  # noqa: PLC0415

    return build_table(name, workspace, scale, model, rows=current_rows(workspace, scale)[0])


def attribute_figure(frame: "pd.DataFrame"):
    """Figure 4's bar chart of `table('figure4', ...)`: a plotly figure."""
    from synface.analysis.figures import attribute_figure as figure  # noqa: PLC0415

    return figure(frame)


def verdicts(name: str, scale: str | None = None, model: str | None = None,
             workspace: str | Path | None = None) -> "pd.DataFrame":
    """Each paper trend of table `name`: the difference, its 95 % CI and the verdict (holds,
    reversed, not resolved at this scale), one row per trend; `line` says it in words."""
    import pandas as pd  # noqa: PLC0415

    from synface.analysis.verdicts import table_verdicts  # noqa: PLC0415
    from synface.studies.staleness import current_rows  # noqa: PLC0415

    rows = current_rows(workspace, scale)[0]
    return pd.DataFrame([v.to_dict() for v in table_verdicts(name, workspace, scale, model, rows=rows)])


def reproduce(name: str, scale: str = "tiny", lfw: str | Path | None = None, seeds: int = 1,
              workspace: str | Path | None = None, out_dir: str | Path | None = None,
              model: str = "builtin") -> dict[str, Path]:
    """Run one of the paper's studies end to end (datasets, runs, evaluations, report), resumably:
    `table1` ... `table3`, `figure4`. `lfw`: an LFW-layout folder (people.txt folds) whose first
    folds train and the rest test. Returns the report's files."""
    from synface.studies.run import reproduce as run_study  # noqa: PLC0415

    _, paths = run_study(name, scale, lfw, workspace, seeds=seeds, out_dir=out_dir, model=model)
    return paths or {}
