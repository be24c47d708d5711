"""A workspace of real tiny training runs for the Results workbench tests (library, CLI and app).

Built with the library the way a user's runs are: a synthetic set with its card, a toy .bin
verification set made of its images, and runs created in the registry and trained for a few steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.train.test_train import make_real, make_synthetic, tiny


def toy_bin(synthetic: Path, out: Path, pairs: int = 20) -> Path:
    """A .bin of same / different identity pairs of the synthetic images."""
    from synface.data.verification_bin import write_bin

    by_id: dict[str, list[Path]] = {}
    for p in sorted(synthetic.glob("*/*.jpg")):
        by_id.setdefault(p.parent.name, []).append(p)
    ids = sorted(by_id)
    images, issame = [], []
    for n in range(pairs):
        a = ids[n % len(ids)]
        same = n % 2 == 0
        b = a if same else ids[(n + 1) % len(ids)]
        images += [by_id[a][0].read_bytes(), by_id[b][1 + n % 4].read_bytes()]
        issame.append(same)
    write_bin(out, images, issame)
    return out


def make_results_workspace(ws: Path) -> dict[str, str]:
    """Runs in `ws`: 'a' and 'b' (evaluated on the toy set; 'b' mixes in real images with psi 0.8 and
    another lr; 'a' is tagged as a reproduce run at scale tiny),
    'off' (evaluation off) and 'stopped' (stopped after one step). Returns name -> run id."""
    from synface.runs.registry import create_run
    from synface.runs.run import Run
    from synface.train.loop import train

    syn = make_synthetic(ws / "datasets" / "Syn_5_6_IM")
    (syn / "dataset.json").write_text(json.dumps({"name": "Syn_5_6_IM", "num_identities": 5, "model": "builtin",
                                                  "config": {"ids": 5, "samples": 6, "im": True, "model": "builtin"}}))
    real = make_real(ws / "real" / "lfw_like")
    evals = [{"path": str(toy_bin(syn, ws / "toy.bin")), "name": "toy"}]
    ids = {}
    plans = {"a": tiny(syn, epochs=2, steps_per_epoch=1, eval_sets=evals, lr=0.05),
             "b": tiny(syn, epochs=2, steps_per_epoch=1, eval_sets=evals, lr=0.02, psi=0.8,
                  real_root=str(real)),
             "off": tiny(syn, epochs=1, steps_per_epoch=1),
             "stopped": tiny(syn, epochs=2, steps_per_epoch=3, eval_sets=evals)}
    for name, cfg in plans.items():
        run = create_run(cfg, name=name, root=ws)
        steps = {"n": 0}
        train(cfg, run.path, progress=lambda d, t, s=steps: s.__setitem__("n", d),
              stop_flag=(lambda s=steps: s["n"] >= 1) if name == "stopped" else None)
        ids[name] = run.id
    Run(ws / "runs" / ids["a"]).tag_study("table2", {"ids": 5, "samples": 6, "im": True}, scale="tiny", seed=0,
                                           key="a")
    return ids


_TEMPLATE: dict[str, object] = {}


def results_workspace(tmp_path_factory, into: Path) -> dict[str, str]:
    """A copy of the session's results workspace (trained once) in `into` (beside runs already there):
    tests may delete and archive its runs. Configs still name the template's datasets, which nothing
    here may remove."""
    if "ws" not in _TEMPLATE:
        ws = tmp_path_factory.mktemp("results_template")
        _TEMPLATE["ids"], _TEMPLATE["ws"] = make_results_workspace(ws), ws
    shutil.copytree(Path(_TEMPLATE["ws"]) / "runs", into / "runs", dirs_exist_ok=True)
    from synface.runs.run import Run

    for run_id in _TEMPLATE["ids"].values():  # they trained in this test process: a copy forgets its pid,
        Run(into / "runs" / run_id).write_status(pid=None)  # so no clean-up ever signals the process
    return dict(_TEMPLATE["ids"])


def template_datasets() -> list[Path]:
    """The dataset files of the session's template workspace (to check that nothing deleted them)."""
    ws = Path(_TEMPLATE["ws"])
    return sorted(p for sub in ("datasets", "real") for p in (ws / sub).rglob("*") if p.is_file())
