"""The Results page as a workbench, driven headlessly with AppTest on real tiny runs: the runs table
with TAR@FAR, filters, an ROC chart, a side-by-side comparison, archive, delete and export."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.results_support import results_workspace, template_datasets  # noqa: E402
from tests.support import REPO  # noqa: E402


@pytest.fixture
def home(monkeypatch, tmp_path_factory, tmp_path):
    ws = tmp_path / "ws"
    ids = results_workspace(tmp_path_factory, ws)
    monkeypatch.setenv("SYNFACE_HOME", str(ws))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    return ws, ids


def _page() -> AppTest:
    return AppTest.from_file(str(REPO / "pages" / "results.py"), default_timeout=120)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _runs(at: AppTest):
    """The runs table (the page's first dataframe: AppTest does not expose a dataframe's key)."""
    return at.dataframe[0].value


def _diff(at: AppTest):
    return [d.value for d in at.dataframe if "key" in d.value.columns][0]


def _charts(at: AppTest) -> dict[str, dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def test_runs_table_roc_and_comparison(home):
    ws, ids = home
    at = _page().run()
    _ok(at)
    runs = _runs(at).set_index("run")
    assert {"TAR@FAR=1e-3 (%)", "TAR@FAR=1e-4 (%)", "accuracy (%)", "FAR floor"} <= set(runs.columns)
    assert ids["stopped"] not in runs.index  # the status filter starts at 'finished'
    assert runs.loc[ids["off"], "accuracy (%)"] == "evaluation off"
    assert runs.loc[ids["a"], "TAR@FAR=1e-3 (%)"] >= 0
    # the two newest evaluated runs are compared by default: ROC overlaid on a log FAR axis
    assert sorted(at.multiselect(key="res.sel").value) == sorted([ids["a"], ids["b"]])
    charts = _charts(at)
    roc = charts["ROC"]
    assert roc["layout"]["xaxis"]["type"] == "log" and len(roc["data"]) == 2
    assert {"training loss", "verification accuracy (%)"} <= set(charts)
    diff = _diff(at).set_index("key")
    assert {"lr", "psi"} <= set(diff.index) and "backbone" not in diff.index
    assert any(b.label == "Download CSV" for b in at.get("download_button"))

    at.multiselect(key="res.sel").set_value([ids["a"]]).run()
    _ok(at)
    assert len(_charts(at)["ROC"]["data"]) == 1 and "training loss" not in _charts(at)  # one run: no side by side
    at.multiselect(key="res.sel").set_value([ids["a"], ids["b"]]).run()
    at.multiselect(key="res.f.psi").set_value(["0.8"]).run()
    _ok(at)
    assert list(_runs(at)["run"]) == [ids["b"]]
    assert at.multiselect(key="res.sel").value == [ids["b"]]  # the filtered-out run is hidden ...
    at.multiselect(key="res.f.psi").set_value([]).run()
    assert sorted(at.multiselect(key="res.sel").value) == sorted([ids["a"], ids["b"]])  # ... not forgotten
    at.multiselect(key="res.f.status").set_value([]).run()
    _ok(at)
    shown = _runs(at).set_index("run")
    assert shown.loc[ids["stopped"], "accuracy (%)"] == "not evaluated yet"
    assert shown.loc[ids["stopped"], "status"] == "stopped"
    assert any("tiny (smoke test:" in o for o in at.selectbox(key="res.scale").options)


def test_archive_delete_and_export(home):
    ws, ids = home
    before = {str(p) for p in template_datasets()}
    at = _page().run()
    at.selectbox(key="res.act.run").set_value(ids["b"]).run()
    at.button(key="btn.res.archive").click().run()
    _ok(at)
    assert any("Archived" in s.value for s in at.success)
    assert ids["b"] not in list(_runs(at)["run"])
    assert ids["b"] not in at.multiselect(key="res.sel").value  # a compared run that left the list: no crash
    assert any(ids["b"] in c.value and "deleted or archived" in c.value for c in at.caption)
    at.toggle(key="res.archived").set_value(True).run()
    _ok(at)
    assert ids["b"] in list(_runs(at)["run"])
    at.toggle(key="res.archived").set_value(False).run()

    # delete needs the confirmation; a running run is refused with a message, not a traceback
    at.selectbox(key="res.act.run").set_value(ids["a"]).run()
    assert at.button(key="btn.res.delete").disabled
    from synface.runs.run import Run
    import os
    import socket

    run = Run(ws / "runs" / ids["a"])
    run.write_status(status="running", pid=os.getpid(), host=socket.gethostname())
    at.checkbox(key="res.act.sure").check().run()
    at.button(key="btn.res.delete").click().run()
    assert not at.exception and at.error and "is running" in at.error[0].value and run.path.is_dir()
    run.write_status(status="finished")
    at = _page().run()
    at.selectbox(key="res.act.run").set_value(ids["a"]).run()
    at.button(key="btn.res.emb").click().run()
    _ok(at)
    assert (ws / "exports" / f"{ids['a']}-toy.npz").is_file()
    at.button(key="btn.res.ckpt").click().run()
    _ok(at)
    assert (ws / "exports" / f"{ids['a']}.pt").is_file()
    assert {b.label for b in at.get("download_button")} >= {f"Download {ids['a']}-toy.npz", f"Download {ids['a']}.pt"}
    at.checkbox(key="res.act.sure").check().run()
    at.button(key="btn.res.delete").click().run()
    _ok(at)
    assert not (ws / "runs" / ids["a"]).exists() and any("Deleted" in s.value for s in at.success)
    assert ids["a"] not in list(_runs(at)["run"])
    assert {str(p) for p in template_datasets()} == before


def test_paper_tables_carry_verdicts_with_intervals(monkeypatch, tmp_path):
    """A Table 2 whose IM cells beat their no-IM twins on every seed x fold: the paper-tables tab
    says the trend holds, with its 95% interval and how many seeds would resolve it."""
    from tests.analysis.test_verdicts import _run

    for seed in range(3):
        base = [0.60 + 0.01 * seed, 0.70 + 0.01 * seed]
        _run(tmp_path, f"t2-n{seed}", "table2", {"ids": 100, "samples": 10, "im": False}, seed, base)
        _run(tmp_path, f"t2-i{seed}", "table2", {"ids": 100, "samples": 10, "im": True}, seed,
             [x + 0.02 + 0.005 * seed for x in base])
    monkeypatch.setenv("SYNFACE_HOME", str(tmp_path))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    at = _page()
    at.run()
    _ok(at)
    text = "\n".join(m.value for m in at.markdown)
    assert "Identity mixup helps at 100 ids x 10 samples" in text and "95% CI" in text and "-> holds" in text
    assert any("seed(s)" in c.value for c in at.caption)


def test_smoke_runs_are_hidden_and_a_report_shows_only_at_its_own_scale(home):
    """A smoke-test run leaves the runs table unless asked for; a smoke test's Figure 4 (scale tiny)
    is never shown at scale cpu, where the shipped CPU figure stays."""
    from synface.runs.run import Run

    ws, ids = home
    Run(ws / "runs" / ids["off"]).tag_study("table2", {"ids": 5}, key="smoke", seed=0, scale="tiny", smoke=True)
    results = ws / "results"
    results.mkdir()
    (results / "figure4.md").write_text("# Figure 4 (scale `tiny`)\n\nsmoke test\n")
    (results / "figure4.png").write_bytes((REPO / "results" / "figure4.png").read_bytes())
    at = _page().run()
    _ok(at)
    assert ids["off"] not in set(_runs(at)["run"])
    at.toggle(key="res.smoke").set_value(True).run()
    assert ids["off"] in set(_runs(at)["run"])
    labels = [e.label for e in at.expander]
    assert at.selectbox(key="res.scale").value == "cpu"
    assert not [label for label in labels if "your reproduce run" in label]
    assert sum("shipped with the repository, scale cpu" in label for label in labels) == 4
    at.selectbox(key="res.scale").set_value("tiny").run()
    labels = [e.label for e in at.expander]
    assert [label for label in labels if "your reproduce run, scale tiny" in label] == ["Report (your reproduce run, scale tiny)"]
    assert not [label for label in labels if "shipped" in label]
