"""A synthetic verification benchmark in LFW layout (and insightface .bin): people who can never be training identities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from synface.data.errors import DataError

#: an interrupted build's settings (the card, benchmark.json, replaces it when the build ends)
STATE = "build_state.json"


def build_synthetic_benchmark(out: str | Path, folds: int = 10, pairs_per_fold: int = 300, seed: int = 0,
                              progress: Callable[[int, int], None] | None = None, generator: Any = None,
                              model: str = "builtin", workspace: str | Path | None = None) -> Path:
    """An LFW-layout verification set of synthetic people (the analogue of the paper's Syn-LFW).

    Writes `<out>/<Name>/<Name>_%04d.jpg` (two images per person, attributes drawn per image),
    benchmark.bin (the same pairs in insightface's format), pairs.txt (`folds`, each `pairs_per_fold` same + `pairs_per_fold` different pairs) and people.txt
    (each fold its own people, so folds are identity-disjoint). Identities come from
    SynthConfig(purpose="benchmark"), whose seeds are odd: never a training identity. Skips the
    work when `<out>/benchmark.json` records the same settings. Resumable: an interrupted build
    (its settings in `build_state.json`) continues only with the same settings, naming what differs
    otherwise, and re-renders images that do not decode. `model` names the face model
    (a learned one of `workspace`); `generator` is used when it renders that model.
    """

    from synface.base.files import atomic_path, check_free_space  # noqa: PLC0415
    from synface.data.synth_model import generator_for  # noqa: PLC0415
    from synface.data.imageio import write_image  # noqa: PLC0415
    from synface.data.synthetic import SynthConfig, SyntheticSpec, sweep_temp_files, whole_image  # noqa: PLC0415
    from synface.data.verification import Pair, write_pairs  # noqa: PLC0415
    from synface.face.coeffs import FaceCoeffs  # noqa: PLC0415

    if folds < 2 or pairs_per_fold < 2:  # k-fold verification picks each fold's threshold on the others
        raise ValueError(f"need folds >= 2 and pairs_per_fold >= 2, got {folds} and {pairs_per_fold}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError("is a file, not a folder; choose another --out", path=out)
    settings: dict[str, Any] = {"folds": folds, "pairs_per_fold": pairs_per_fold, "seed": seed, "version": 1}
    if model not in (None, "", "builtin"):  # benchmarks of the built-in head keep their old settings
        settings["model"] = model
    card, state = out / "benchmark.json", out / STATE
    wanted = {**settings, "model": model or "builtin"}
    if card.is_file():
        differ = _differences(_read_settings(card), wanted)
        if not differ:
            return out
        raise DataError(f"{out} holds a different benchmark ({differ}); choose another folder", path=out)
    resumed = state.is_file()
    if resumed:  # an interrupted build: only the same settings may continue it
        differ = _differences(_read_settings(state), wanted)
        if differ:
            raise DataError(f"an interrupted benchmark build of other settings is in this folder ({differ}); resume it "
                            f"with those settings or choose another folder", path=out)
    elif out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out} is not empty and holds no benchmark build ({STATE} or benchmark.json); "
                        "choose another folder", path=out)
    n_ids = folds * pairs_per_fold
    config = SynthConfig(ids=n_ids, samples=2, seed=seed, purpose="benchmark", model=model or "builtin")
    if not out.exists():  # the images, and the same images again inside benchmark.bin
        check_free_space(out, 2 * config.estimated_bytes(), f"benchmark of {2 * n_ids:,} images")
    gen = generator_for(config.model, generator, workspace=workspace)
    spec = SyntheticSpec(config, gen)
    if resumed:
        drawn_by = _read_settings(state).get("generator")
        if drawn_by != gen.version:  # a finished card stays valid; half a set is not finished by another renderer
            raise DataError(f"an interrupted benchmark build drawn by generator {drawn_by!r} is in this folder; this "
                            f"one is {gen.version!r}: delete the folder to rebuild", path=out)
        sweep_temp_files(out)  # temp files of images a kill interrupted
    if not resumed:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(state) as tmp:
            tmp.write_text(json.dumps({**wanted, "generator": gen.version}, indent=1))
    names = [f"SynBench_{i:05d}" for i in range(n_ids)]
    batch = 64

    def whole(i: int) -> bool:  # both images there and decoding (a resume re-renders damaged ones)
        return resumed and all(whole_image(out / names[i] / f"{names[i]}_{k:04d}.jpg", "jpg") for k in (1, 2))

    for start in range(0, n_ids, batch):
        ids = range(start, min(n_ids, start + batch))
        todo = [i for i in ids if not whole(i)]
        if todo:
            coeffs = FaceCoeffs.cat([spec.identity_batch(i)[0] for i in todo])
            images = gen.render(coeffs).images.cpu().numpy()
            for j, i in enumerate(todo):
                folder = out / names[i]
                folder.mkdir(parents=True, exist_ok=True)
                for k in range(2):
                    write_image(folder / f"{names[i]}_{k + 1:04d}.jpg", images[2 * j + k], "JPEG", quality=95)
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
        tmp.write_text(json.dumps({**settings, "identities": n_ids, "images": 2 * n_ids, "model": config.model,
                                   "generator_version": gen.version, "synth_config": config.to_dict()}, indent=1))
    state.unlink(missing_ok=True)  # the card now says what the folder holds
    return out


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        held = None
    if not isinstance(held, dict):
        raise DataError("unreadable benchmark settings; delete the folder to rebuild", path=path)
    return held


def _differences(held: dict[str, Any], wanted: dict[str, Any]) -> str:
    """'seed 0 there, 1 now; ...' for the settings that differ ('' when none does)."""
    held = {**held, "model": held.get("model") or "builtin"}
    keys = [k for k in wanted if held.get(k) != wanted[k]]
    return "; ".join(f"{'face model' if k == 'model' else k} {held.get(k)!r} there, {wanted[k]!r} now" for k in keys)
