"""Results: Tables 1-3 and Figure 4 assembled from the run registry, with CSV downloads and the saved plots."""

from __future__ import annotations

import streamlit as st

from pages import common

TITLES = {
    "table1": "Table 1: cross-domain (trained on synthetic or real, tested on LFW and the synthetic benchmark)",
    "table2": "Table 2: identities x samples per identity, without and with identity mixup",
    "table3": "Table 3: synthetic only, real subset only, and both with domain mixup",
    "figure4": "Figure 4: which factors vary per image",
}


def main() -> None:
    from synface.analysis.tables import build_table
    from synface.studies.report import results_dir

    st.title("Results")
    st.caption("Accuracy (%) on the test pairs: mean ± std over folds x training seeds, from each run's eval.json. "
               "Fill the tables with `python -m synface reproduce <table> --scale cpu --lfw DIR`.")
    scale = st.selectbox("Scale", ["cpu", "paper", "tiny", "any"], key="res.scale")
    own_dir, shipped_dir = results_dir(common.workspace()), common.REPO_ROOT / "results"
    for name, title in TITLES.items():
        st.subheader(title)
        with common.page_errors(name):
            df = build_table(name, scale=None if scale == "any" else scale)
            if df.empty:
                st.info("No finished runs for this table yet.")
            else:
                st.dataframe(df, hide_index=True)
                st.download_button("Download CSV", df.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                                   key=f"res_dl_{name}")
            # the user's own reproduce report first; else the one shipped with the repository
            folder = own_dir if (own_dir / f"{name}.png").is_file() else shipped_dir
            label = "your reproduce run" if folder == own_dir else "shipped with the repository"
            png, md = folder / f"{name}.png", folder / f"{name}.md"
            if png.is_file():
                st.image(str(png), caption=f"{png} ({label})")
            if md.is_file():
                with st.expander(f"Report ({label})"):
                    st.markdown(md.read_text(encoding="utf-8"))


with common.page_errors("Results"):
    main()
