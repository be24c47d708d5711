"""User-given names stay one folder inside the workspace: check_name, child_path, the CLI and the Datasets page."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synface.base.names import MAX_NAME_LENGTH, check_name, child_path
from tests.support import REPO

GOOD = ["Syn_1K_50_IM", "Syn_1K_20_fixed-pose", "a", "A.b-c_d", "lfw", "20250101-120000-im_dm", "x" * MAX_NAME_LENGTH,
        "v1.2", "a..b"]
BAD = ["../escape", "../../escape", "a/b", "/abs", "x\x00y", "..", ".", "", "a" * (MAX_NAME_LENGTH + 1), "\n",
       "name\n", "tab\there", "del\x7f", "a\\b", "C:\\x", "-rf", ".hidden", "two words", "naïve", "semi;colon",
       "star*", "~", "$HOME", "a/../b", "./a"]


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass_unchanged(name):
    assert check_name(name, "dataset name") == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_with_one_line_naming_the_value(name):
    with pytest.raises(ValueError) as info:
        check_name(name, "dataset name")
    message = str(info.value)
    assert message.startswith("dataset name ") and "is not allowed" in message
    assert "\n" not in message and "\x00" not in message and "\x7f" not in message
    shown = repr(name) if len(name) <= MAX_NAME_LENGTH + 20 else repr(name[:MAX_NAME_LENGTH])
    assert shown in message


def test_the_message_says_what_and_why():
    with pytest.raises(ValueError, match=r"^run id '\.\./escape' is not allowed \(it contains a path separator\): "
                                         r"use letters, digits"):
        check_name("../escape", "run id")
    with pytest.raises(ValueError, match=r"^name '' is not allowed \(it is empty\)"):
        check_name("")
    with pytest.raises(ValueError, match="not a string"):
        check_name(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(3000 characters\)"):
        check_name("a" * 3000)


def test_child_path_stays_directly_inside(tmp_path):
    assert child_path(tmp_path / "datasets", "Syn_2_1", "dataset name") == tmp_path / "datasets" / "Syn_2_1"
    for bad in ("../escape", "..", "a/b", "/etc", ""):
        with pytest.raises(ValueError, match="dataset name"):
            child_path(tmp_path / "datasets", bad, "dataset name")
    # a dataset folder the user replaced by a symlink to another disk is still a name inside the workspace
    (tmp_path / "datasets").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "datasets" / "big").symlink_to(tmp_path / "elsewhere")
    assert child_path(tmp_path / "datasets", "big") == tmp_path / "datasets" / "big"


def test_library_entry_points_refuse_bad_names(tmp_path):
    from synface.data.errors import DataError
    from synface.data.realsets import register_real_set
    from synface.data.synthetic import SynthConfig
    from synface.runs.registry import create_run, find_run

    with pytest.raises(DataError, match=r"dataset name '\.\./escape' is not allowed"):
        SynthConfig(ids=2, samples=1, name="../escape")
    assert SynthConfig(ids=2, samples=1).name == "Syn_2_1"  # the default name is safe
    run = create_run({"epochs": 1}, name="../../escape", root=tmp_path / "ws")  # a run name is a label: slugged
    assert run.path.parent == tmp_path / "ws" / "runs" and run.id.endswith("-escape")
    for ref in ("../escape", "..", ""):
        with pytest.raises((ValueError, FileNotFoundError)):
            find_run(ref, tmp_path / "ws")
    assert find_run(run.id, tmp_path / "ws").path == run.path
    src = tmp_path / "src" / "person"
    src.mkdir(parents=True)
    with pytest.raises(DataError):
        register_real_set(src.parent, "../escape", align=False, root=tmp_path / "ws")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "ws"]
    assert not (tmp_path / "ws" / "escape").exists() and not (tmp_path / "ws" / "real").exists()


@pytest.mark.parametrize("name", ["../escape", "../../escape"])
def test_generate_cli_refuses_an_escaping_name(tmp_path, name):
    ws = tmp_path / "ws"
    env = dict(os.environ, SYNFACE_HOME=str(ws))
    proc = subprocess.run([sys.executable, "-m", "synface", "generate", "--ids", "2", "--samples", "1", "--name", name,
                           "--root", str(ws), "--device", "cpu"],
                          check=False, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: dataset name {name!r} is not allowed"), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] in ([], ["ws"])  # nothing beside the workspace ...
    assert not ws.exists() or not any(ws.rglob("*"))  # ... and nothing in it


def test_datasets_page_refuses_an_escaping_name(monkeypatch, tmp_path):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    at = AppTest.from_file(str(REPO / "pages" / "datasets.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    at.number_input(key="ds.ids").set_value(2).run()
    at.number_input(key="ds.samples").set_value(1).run()
    assert not at.error
    for name in ("../escape", "../../escape"):
        at.text_input(key="ds.name").set_value("fine_name").run()
        assert not at.error and at.button(key="btn.ds.build")
        # typed and clicked at once, as in the browser: the click's run sees the new name
        at.text_input(key="ds.name").set_value(name)
        at.button(key="btn.ds.build").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.error and any(f"dataset name {name!r} is not allowed" in e.value for e in at.error)
        assert not [b for b in at.button if b.key == "btn.ds.build"]
        assert not at.success
        assert [p.name for p in tmp_path.iterdir()] == ["ws"]
        assert not any(p.name == "escape" for p in tmp_path.rglob("*"))
        assert not (home / "datasets").exists() or not any((home / "datasets").iterdir())
