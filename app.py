"""SynFace Studio: `streamlit run app.py`.

A thin client of the `synface` library: six pages over one shared sidebar (device, workspace,
LFW folder).

This file plays two roles. `streamlit run app.py` first imports it as a module, finds the
`st.App` below and serves it; that import starts building and warming the face generator
(torch, the model, the renderer's numba kernels) in a background thread and the server answers
at once, so the browser opens while the kernels load and the Generator page shows its
first face as soon as they are ready. Each session then runs this same file as the page script
(`__name__ == "__main__"`), which draws the navigation. UMAP's JIT is warmed when the Features
page opens.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import common

ROOT = Path(__file__).resolve().parent
#: (file, title, icon, url path) of every page, in menu order
PAGES = [
    ("pages/generator.py", "Generator", ":material/face:", "generator"),
    ("pages/datasets.py", "Datasets", ":material/photo_library:", "datasets"),
    ("pages/train.py", "Train", ":material/model_training:", "train"),
    ("pages/features.py", "Features", ":material/scatter_plot:", "features"),
    ("pages/attributes.py", "Attributes", ":material/tune:", "attributes"),
    ("pages/results.py", "Results", ":material/table_chart:", "results"),
]


def main() -> None:
    """The page script every session runs."""
    st.set_page_config(page_title="SynFace Studio", page_icon=":material/face:", layout="wide")
    if not common.access_gate():  # with a password set, nothing else draws until it is given
        return
    # A page file missing from a partial checkout is left out of the menu instead of breaking the app.
    present = [p for p in PAGES if (ROOT / p[0]).is_file()]
    page = st.navigation([st.Page(ROOT / f, title=t, icon=i, url_path=u, default=(u == "generator"))
                          for f, t, i, u in present])
    missing = [t for f, t, _, _ in PAGES if not (ROOT / f).is_file()]
    if missing:
        st.sidebar.caption("Pages not installed: " + ", ".join(missing))
    common.network_warning()
    with common.page_errors("Start-up"):
        common.sidebar()
    page.run()


if __name__ == "__main__":
    main()
else:
    # Started at import, before the server itself: torch's import overlaps the server's start-up,
    # and a daemon thread never holds the server back.
    common.use_navigation_only()
    common.start_warmup()
    app = st.App(__file__)
