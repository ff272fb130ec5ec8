"""FA Lab: the Streamlit app. Run with ``streamlit run app.py``.

A thin multipage shell: ``st.navigation`` over the pages in ``app_pages/``, and a shared sidebar
listing this browser session's jobs. All logic lives in ``fa_core``; training runs in the job
manager's background threads (see ``app_pages/shared.py``).

The page folder must not be called ``pages/``: Streamlit checks for a ``pages/`` folder beside the
main script when the server starts and, until some session has run ``st.navigation``, serves a
deep link such as ``/train`` in the old folder-based mode (the page runs without this script, and
every file in the folder, helpers included, shows up in the navigation).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="FA Lab", page_icon=":material/science:", layout="wide")

from app_pages.shared import HOME_PAGE, TRAIN_PAGE, render_sidebar  # noqa: E402

navigation = st.navigation(
    [
        st.Page(HOME_PAGE, title="Home", icon=":material/home:", default=True),
        st.Page(TRAIN_PAGE, title="Train", icon=":material/model_training:"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page("app_pages/runs_page.py", title="Runs", icon=":material/history:", url_path="runs"),
        st.Page("app_pages/inspect_page.py", title="Inspect", icon=":material/biotech:", url_path="inspect"),
        st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:"),
        st.Page("app_pages/denoise.py", title="Denoise", icon=":material/blur_on:"),
        st.Page("app_pages/reproduce.py", title="Reproduce", icon=":material/table_chart:", url_path="reproduce"),
    ]
)
st.sidebar.markdown("### FA Lab")
render_sidebar()
navigation.run()
