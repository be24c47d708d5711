"""SynFace Studio: `streamlit run app.py`.

A thin client of the `synface` library: six pages over one shared sidebar (device, workspace,
LFW folder). Heavy kernels (the renderer's numba code, UMAP's JIT) are warmed in a background
thread at start-up so the first slider move and the first UMAP are fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402

from pages import common  # noqa: E402

st.set_page_config(page_title="SynFace Studio", page_icon=":material/face:", layout="wide")

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

# A page file missing from a partial checkout is left out of the menu instead of breaking the app.
present = [p for p in PAGES if (ROOT / p[0]).is_file()]
page = st.navigation([st.Page(ROOT / f, title=t, icon=i, url_path=u, default=(u == "generator"))
                      for f, t, i, u in present])
missing = [t for f, t, _, _ in PAGES if (ROOT / f).is_file() is False]
if missing:
    st.sidebar.caption("Pages not installed: " + ", ".join(missing))
with common.page_errors("Start-up"):
    common.start_warmup()
    common.sidebar()
page.run()
