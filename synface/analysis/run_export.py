"""A run's results out of the workbench: the embeddings of an evaluation set, and the checkpoint.

Embeddings are what a researcher takes to their own analysis (other metrics, other plots): the
run's last checkpoint embeds every image of one of its evaluation sets exactly as evaluation
does (flip-summed, L2-normalised), pair-major, image 2i being side a of pair i and 2i+1 side b.

- `.npz`: `embeddings` (2N, D) float32, `pair`, `side` (0 = a, 1 = b) and `image` (path, or ''
  for images inside a .bin) per image; `issame`, `fold` and `score` (cosine) per pair; `meta` (a
  JSON string: run, set, checkpoint epoch). Strings are fixed-width unicode: np.load needs no pickle.
- `.parquet`: one row per image: pair, side ('a'/'b'), fold, issame, score, image, embedding.

The exported checkpoint keeps what inference needs (backbone weights, config, input size), so
`python -m synface eval --checkpoint out.pt` scores it; the margin head and the optimiser state
stay in the run folder, which `train --resume` uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from synface.base.files import atomic_path
from synface.runs.registry import find_run
from synface.runs.run import Run

__all__ = ["EMBEDDING_FORMATS", "eval_set_names", "export_embeddings", "export_checkpoint"]

EMBEDDING_FORMATS = (".npz", ".parquet")
_INFERENCE_KEYS = ("version", "model", "config", "input_size", "num_classes", "num_synthetic_classes", "epoch",
                   "epoch_step", "global_step")


def _run(run: Run | str | Path, root: str | Path | None) -> Run:
    return run if isinstance(run, Run) else find_run(run, root)


def _checkpoint(run: Run) -> Path:
    if not run.last_checkpoint.is_file():
        raise FileNotFoundError(f"run {run.id} has no checkpoint ({run.last_checkpoint}): it never finished an "
                                f"epoch or was stopped before its first save")
    return run.last_checkpoint


def _specs(run: Run) -> list[Any]:
    specs = run.config().get("eval_sets") or []
    return specs if isinstance(specs, list) else []


def eval_set_names(run: Run | str | Path, root: str | Path | None = None) -> list[str]:
    """The names of the evaluation sets a run's config lists (what `export_embeddings` can embed)."""
    from synface.data.eval_sets import spec_label  # noqa: PLC0415

    return [spec_label(s) for s in _specs(_run(run, root))]


def _pick_spec(run: Run, eval_set: str | None, pairs: str | Path | None) -> Any:
    """The spec to embed: an explicit `pairs` path, else the named (or the only) set of the config."""
    from synface.data.eval_sets import spec_label  # noqa: PLC0415

    if pairs is not None:
        return {"path": str(pairs), **({"name": eval_set} if eval_set else {})}
    specs = _specs(run)
    names = [spec_label(s) for s in specs]
    if not specs:
        raise ValueError(f"run {run.id} has evaluation off (no eval_sets in its config); give the pairs to "
                         f"embed (--pairs: an LFW-layout folder or a .bin file)")
    if eval_set is None:
        if len(specs) > 1:
            raise ValueError(f"run {run.id} has {len(specs)} evaluation sets ({', '.join(names)}); choose one")
        return specs[0]
    if eval_set not in names:
        raise ValueError(f"run {run.id} has no evaluation set {eval_set!r}; it has {', '.join(names)}")
    return specs[names.index(eval_set)]


def export_embeddings(run: Run | str | Path, out: str | Path, root: str | Path | None = None,
                      eval_set: str | None = None, pairs: str | Path | None = None, device: str = "cpu",
                      batch_size: int = 128, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Embed one evaluation set with the run's last checkpoint and write `out` (.npz or .parquet).

    `eval_set`: a set of the run's config (needed when it has several); `pairs`: any LFW-layout
    folder or .bin instead. `progress(done, total)` counts images. Returns what was written.
    """
    from synface.eval.run_eval import EvalSet  # noqa: PLC0415
    from synface.models.checkpoint import load_checkpoint_model  # noqa: PLC0415
    from synface.eval.verification import embed_pairs, pair_scores  # noqa: PLC0415

    out = Path(out)
    if out.suffix.lower() not in EMBEDDING_FORMATS:
        raise ValueError(f"embeddings file {out} must end in {' or '.join(EMBEDDING_FORMATS)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    run = _run(run, root)
    ckpt = _checkpoint(run)
    evalset = EvalSet.from_spec(_pick_spec(run, eval_set, pairs))  # a set without pairs fails here, before the model
    model, cfg = load_checkpoint_model(ckpt, device)
    emb_a, emb_b = embed_pairs(model, evalset.images(int(model.input_size)), len(evalset.pairs),
                               batch_size=batch_size, device=device, progress=progress)
    n, dim = emb_a.shape
    embeddings = np.empty((2 * n, dim), dtype=np.float32)
    embeddings[0::2], embeddings[1::2] = emb_a, emb_b
    p = evalset.pairs
    images = np.array([str(ref) if isinstance(ref, (str, Path)) else "" for i in range(n)
                       for ref in (p.images_a[i], p.images_b[i])], dtype=str)  # '' for bytes inside a .bin
    scores = pair_scores(emb_a, emb_b).astype(np.float32)
    meta = {"run": run.id, "eval_set": evalset.name, "checkpoint": str(ckpt), "backbone": cfg.get("backbone"),
            "input_size": int(model.input_size), "pairs": n, "dim": dim}
    pair_of, side = np.repeat(np.arange(n), 2), np.tile([0, 1], n)
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".npz":
            with open(tmp, "wb") as f:  # a file object: savez would otherwise append .npz to the temp name
                np.savez(f, embeddings=embeddings, pair=pair_of, side=side, image=images, issame=p.issame,
                         fold=p.folds, score=scores, meta=np.array(json.dumps(meta)))
        else:
            import pyarrow as pa  # noqa: PLC0415
            import pyarrow.parquet as pq  # noqa: PLC0415

            table = pa.table({
                "pair": pair_of, "side": np.where(side == 0, "a", "b"), "fold": p.folds[pair_of],
                "issame": p.issame[pair_of], "score": scores[pair_of], "image": images,
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), dim),
            })
            pq.write_table(table.replace_schema_metadata({"synface": json.dumps(meta)}), tmp)
    return {"path": str(out), "images": 2 * n, **meta}


def export_checkpoint(run: Run | str | Path, out: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Write the inference part of the run's last checkpoint (backbone, config, input size) to `out`."""
    from synface.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: PLC0415

    out = Path(out)
    run = _run(run, root)
    ckpt = load_checkpoint(_checkpoint(run), "cpu", require=("model", "config"))
    slim = {k: ckpt[k] for k in _INFERENCE_KEYS if k in ckpt}
    slim["exported_from"] = run.id
    save_checkpoint(slim, out)
    return {"path": str(out), "run": run.id, "bytes": out.stat().st_size, "epoch": slim.get("epoch")}
