"""The dispatcher (synface/cli/main.py): every verb module is reachable, a bad verb or a missing one
is one `error:` line with exit code 2, and a Ctrl-C says how to resume (exit code 130)."""

from __future__ import annotations

import errno
import subprocess
import sys

from synface.cli import main as cli_main
from tests.support import REPO, cli_error

#: modules of synface/cli/ that are not verbs
NOT_VERBS = {"__init__", "main", "common"}


def test_every_verb_module_is_registered_with_the_dispatcher() -> None:
    modules = {p.stem for p in (REPO / "synface" / "cli").glob("*.py")} - NOT_VERBS
    assert modules == set(cli_main.VERB_MODULES), "a verb module main.py does not register, or one it lists is gone"
    verbs = next(a for a in cli_main.build_parser()._actions if a.dest == "verb").choices
    assert len(verbs) >= len(cli_main.VERB_MODULES)  # each module registers at least one verb
    assert {"generate", "train", "eval", "face-model"} <= set(verbs)


def test_an_unknown_or_missing_verb_is_one_line(capsys) -> None:
    cli_error(capsys, ["frobnicate"], "invalid choice", "'frobnicate'")
    cli_error(capsys, [], "required")


def test_an_interrupt_says_how_to_resume(monkeypatch, capsys) -> None:
    import synface.cli.runs as runs_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs_cli, "run_runs", interrupted)
    assert cli_main.main(["runs"]) == 130
    assert "re-run the same command to resume" in capsys.readouterr().err


def test_messages_are_one_line_and_name_both_files_of_a_rename() -> None:
    assert cli_main.one_line("bad YAML\n  line 2\n\n") == "bad YAML | line 2"
    exc = OSError(errno.EXDEV, "Invalid cross-device link", "/a/tmp", None, "/b/final")
    assert cli_main.os_error_message(exc) == "/a/tmp -> /b/final: Invalid cross-device link"
    assert cli_main.os_error_message(OSError("no file named")) == "no file named"


def test_python_dash_m_synface_runs_the_dispatcher() -> None:
    """The module entry point, in a fresh interpreter: a bad verb exits 2 with one line."""
    done = subprocess.run([sys.executable, "-m", "synface", "frobnicate"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
