"""IJB-B/C 1:1 verification in insightface's layout: a tiny crafted set (rendered people as loose crops
with their 5 landmarks), registered with `real add`, scored by `eval` into a run; its TAR at FAR
1e-6 .. 1e-1 equals a reference computed here by hand (loops, no library code); bad meta files are
named with their line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synface.cli.main import main
from synface.data.ijb import read_ijb
from synface.eval.ijb import IJB_FARS, ijb_result, template_features, template_scores
from synface.face.coeffs import FaceCoeffs
from synface.models.backbones import build_backbone
from synface.render.camera import ARCFACE_TEMPLATE
from tests.support import cli_error

PEOPLE = 4
#: a loose crop: the aligned render scaled by SCALE and placed at OFFSET on a CANVAS-sized grey image
SCALE, OFFSET, CANVAS = 1.25, (15, 22), 180


def _faces_of(i: int) -> list[tuple[int, int]]:
    """(template, media) of person i's 7 face images: template A holds media 1 (two images) and 2;
    template B holds media 3, media 4 (two images) and media 2 again (another frame of it)."""
    a, b = 100 + 2 * i, 101 + 2 * i
    m = 1000 + 10 * i
    return [(a, m + 1), (a, m + 1), (a, m + 2), (b, m + 3), (b, m + 4), (b, m + 4), (b, m + 2)]


def make_ijb(root: Path, gen) -> Path:
    """A crafted IJB-C folder: 4 people, 2 templates each, 4 same-person and 12 different-person pairs."""
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    faces, marks = [], []
    landmarks = ARCFACE_TEMPLATE.numpy().astype(np.float64) * SCALE + np.asarray(OFFSET, np.float64)
    for i in range(PEOPLE):
        person = gen.sample(1, seed=40 + i)
        attrs = gen.sample_attributes(7, 900 + i, pose_scale=0.6)
        coeffs = FaceCoeffs(shape=person.shape.cpu().expand(7, -1), albedo=person.albedo.cpu().expand(7, -1), **attrs)
        images = gen.render(coeffs).images.cpu().numpy()
        for k, (template, media) in enumerate(_faces_of(i)):
            name = f"{len(faces) + 1}.jpg"
            canvas = Image.new("RGB", (CANVAS, CANVAS), (118, 118, 118))
            side = round(112 * SCALE)
            canvas.paste(Image.fromarray(images[k]).resize((side, side), Image.BILINEAR), OFFSET)
            canvas.save(root / "loose_crop" / name, quality=95)
            faces.append(f"{name} {template} {media}")
            marks.append(name + " " + " ".join(f"{v:.3f}" for v in landmarks.ravel()) + " 0.99")
    pairs = [f"{100 + 2 * i} {101 + 2 * i} 1" for i in range(PEOPLE)]
    pairs += [f"{100 + 2 * i} {101 + 2 * j} 0" for i in range(PEOPLE) for j in range(PEOPLE) if i != j]
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text("\n".join(faces) + "\n")
    (root / "meta" / "ijbc_template_pair_label.txt").write_text("\n".join(pairs) + "\n")
    (root / "meta" / "ijbc_name_5pts_score.txt").write_text("\n".join(marks) + "\n")
    return root


@pytest.fixture(scope="module")
def ijb_dir(tmp_path_factory, gen) -> Path:
    return make_ijb(tmp_path_factory.mktemp("ijb") / "IJBC", gen)


def _reference_tars(features: dict[str, np.ndarray], root: Path) -> dict[float, float]:
    """TAR at each IJB FAR, computed the long way from the meta files and per-image features."""
    templates: dict[int, dict[int, list[np.ndarray]]] = {}
    for line in (root / "meta" / "ijbc_face_tid_mid.txt").read_text().split("\n"):
        if line:
            name, t, m = line.split()
            templates.setdefault(int(t), {}).setdefault(int(m), []).append(features[name])
    feature = {}
    for t, medias in templates.items():
        means = [sum(v) / len(v) for v in medias.values()]
        mean = sum(means) / len(means)
        feature[t] = mean / math.sqrt(float(mean @ mean))
    genuine, impostor = [], []
    for line in (root / "meta" / "ijbc_template_pair_label.txt").read_text().split("\n"):
        if line:
            a, b, label = (int(x) for x in line.split())
            (genuine if label == 1 else impostor).append(float(feature[a] @ feature[b]))
    out = {}
    for far in IJB_FARS:
        allowed = math.floor(far * len(impostor) + 1e-9)  # false accepts the FAR allows
        ranked = sorted(impostor, reverse=True)
        threshold = ranked[allowed] if allowed < len(ranked) else -math.inf
        out[far] = sum(g > threshold for g in genuine) / len(genuine)
    return out


def test_template_features_average_media_first() -> None:
    """Template 7: media 1 holds two images along x, media 2 one along y: the mean of media means is
    (0.5, 0.5), not the mean of images (2/3, 1/3); normalised, both axes 1/sqrt(2)."""
    feats = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ids, out = template_features(feats, np.array([7, 7, 7, 9]), np.array([1, 1, 2, 5]))
    assert ids.tolist() == [7, 9]
    assert np.allclose(out[0], [2 ** -0.5, 2 ** -0.5]) and np.allclose(out[1], [0.0, 1.0])
    scores = template_scores(ids, out, np.array([[7, 9], [9, 9]]))
    assert np.allclose(scores, [2 ** -0.5, 1.0])
    # 10 impostors: FAR 0.1 allows one false accept (threshold: the second-highest impostor, 0.8)
    scores = np.array([0.95, 0.85, 0.75, 0.5, *np.linspace(0.0, 0.8, 9), 0.9])
    labels = np.array([True] * 4 + [False] * 10)
    tars = ijb_result(scores, labels).exact_tars
    assert tars["0.1"] == pytest.approx(0.5) and tars["1e-06"] == pytest.approx(0.25)
    assert tars["0.01"] == pytest.approx(0.25)  # fewer impostors than 1/FAR: no false accept allowed


def test_register_and_evaluate_an_ijb_set(ijb_dir, tmp_path, monkeypatch, capsys) -> None:
    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    assert main(["real", "add", str(ijb_dir), "--name", "ijbc", "--workers", "1", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert entry["format"] == "ijb" and entry["images"] == 7 * PEOPLE and entry["pairs"] == 16
    aligned = read_ijb(entry["aligned"])
    assert aligned.aligned and len(aligned.names) == 28
    crop = np.asarray(Image.open(aligned.image_path(0)))
    assert crop.shape == (112, 112, 3)

    from synface.runs.registry import create_run

    cfg = {"data": str(tmp_path / "nowhere"), "backbone": "compact", "embedding_dim": 16, "name": "ijb"}
    run = create_run(cfg, root=home)
    torch.manual_seed(0)
    model = build_backbone("compact", 16).eval()
    torch.save({"model": model.state_dict(), "config": cfg, "input_size": 56}, run.last_checkpoint)
    run.write_status(status="finished", epoch=1, step=4)
    assert main(["eval", "--run", run.id, "--sets", "ijbc", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    assert result["set"] == "ijbc" and result["pairs"] == 16
    stored = json.loads((home / "runs" / run.id / "eval.json").read_text())["ijbc"]
    assert {float(k) for k in stored["tar_at_fars"]} >= set(IJB_FARS)

    crops = np.stack([aligned.load_face(j, 56) for j in range(len(aligned.names))])
    with torch.no_grad():  # image + mirror, summed, normalised: the protocol's image feature
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
        f = (model(x) + model(torch.flip(x, dims=[3]))).double().numpy()
    features = {name: f[j] / np.linalg.norm(f[j]) for j, name in enumerate(aligned.names)}
    reference = _reference_tars(features, ijb_dir)
    for far, tar in reference.items():
        assert stored["tar_at_fars"][f"{far:g}"] == pytest.approx(tar, abs=1e-9), far
    assert len(set(reference.values())) > 1 or 0 < reference[0.1] < 1  # the model separates some, not all

    from synface.analysis.run_results import results_frame, tar_frame

    row = results_frame(home).query("eval_set == 'ijbc'").iloc[0]
    assert row["num_pairs"] == 16 and row["num_impostor"] == 12
    tars = tar_frame([run.id], home)
    assert list(tars.columns) == ["run_id", "eval_set", *[f"TAR@{f:g}" for f in IJB_FARS]]
    assert tars.iloc[0]["TAR@0.1"] == pytest.approx(100 * reference[0.1])


def test_an_unaligned_ijb_folder_scores_directly(ijb_dir, tmp_path, capsys) -> None:
    """`eval --ijb DIR` on the loose crops aligns each face from its landmarks as it reads it."""
    cfg = {"backbone": "compact", "embedding_dim": 16}
    ckpt = tmp_path / "last.pt"
    torch.manual_seed(0)
    torch.save({"model": build_backbone("compact", 16).state_dict(), "config": cfg, "input_size": 56}, ckpt)
    assert main(["eval", "--checkpoint", str(ckpt), "--ijb", str(ijb_dir), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["pairs"] == 16 and set(result["tar_at_fars"]) >= {f"{f:g}" for f in IJB_FARS}


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("file, text, needles", [
    ("ijbc_template_pair_label.txt", None, ["ijbc_template_pair_label.txt", "missing IJB meta file"]),
    ("ijbc_template_pair_label.txt", "100 101 1\n100 103 0\n100 999 0\n", ["ijbc_template_pair_label.txt line 3",
                                                                           "template 999"]),
    ("ijbc_template_pair_label.txt", "100 101 1\n\n100 103 2\n", ["ijbc_template_pair_label.txt line 3", "label"]),
    ("ijbc_template_pair_label.txt", "100 101 1\n100 103\n", ["ijbc_template_pair_label.txt line 2", "3 fields"]),
    ("ijbc_template_pair_label.txt", "100 101 1\n102 103 1\n", ["both same-person (1) and different-person (0)"]),
    ("ijbc_face_tid_mid.txt", "1.jpg 100 1001\n2.jpg x 1001\n", ["ijbc_face_tid_mid.txt line 2", "integer"]),
    ("ijbc_face_tid_mid.txt", "1.jpg 100 1001\n../2.jpg 100 1001\n", ["ijbc_face_tid_mid.txt line 2", "file name"]),
    ("ijbc_face_tid_mid.txt", "1.jpg 100 1001\n1.jpg 101 1001\n", ["line 2", "listed twice (first on line 1)"]),
    ("ijbc_name_5pts_score.txt", "1.jpg 1 2 3\n", ["ijbc_name_5pts_score.txt line 1", "12 fields"]),
])
def test_bad_meta_files_are_named_with_their_line(ijb_dir, tmp_path, capsys, file, text, needles) -> None:
    folder = _copy(ijb_dir, tmp_path / "bad")
    path = folder / "meta" / file
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    cli_error(capsys, ["real", "--root", tmp_path / "ws", "add", folder, "--workers", "1"], *needles)
    assert not (tmp_path / "ws" / "real_sets.json").exists()
