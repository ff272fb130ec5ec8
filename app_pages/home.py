"""Home: what BP, FA and FA_EX are, the compute device, and the datasets (with Fetch)."""

from __future__ import annotations

import streamlit as st

from fa_core.data import DATASETS, dataset_status
from app_pages.shared import device_summary, fetcher

st.title("FA Lab")
st.markdown(
    "Train networks with **backpropagation** and with **feedback alignment**, watch the forward "
    "weights *W* align with the fixed feedback *B*, and reproduce Konishi & Miura's results "
    "(locally connected CNNs and a denoising autoencoder trained with local rules)."
)

bp, fa, fa_ex = st.columns(3)
with bp:
    st.subheader("BP")
    st.markdown("Backpropagation sends each layer's error down through the transposed forward weights:")
    st.latex(r"\delta_l = \left(W_{l+1}^{\top}\,\delta_{l+1}\right) \odot f'(a_l)")
    st.latex(r"\Delta W_l = -\eta\,\delta_l\,x_{l}^{\top}")
    st.caption("Needs *weight transport*: the backward pass must know W exactly.")
with fa:
    st.subheader("FA")
    st.markdown("Feedback alignment replaces $W^\\top$ by a **fixed random** matrix $B$ of the same shape:")
    st.latex(r"\delta_l = \left(B_{l+1}^{\top}\,\delta_{l+1}\right) \odot f'(a_l)")
    st.latex(r"\Delta W_l = -\eta\,\delta_l\,x_{l}^{\top}")
    st.caption("The update stays local; learning works because W comes to align with B "
               "(the angle between them falls below 90°).")
with fa_ex:
    st.subheader("FA_EX-p%")
    st.markdown("Extreme FA: every entry of $B$ has the same magnitude, a fraction $p$ positive:")
    st.latex(r"B_{ij} = \begin{cases} +c & \text{(p\% of entries)}\\ -c & \text{otherwise}\end{cases}")
    st.latex(r"\delta_l = \left(B_{l+1}^{\top}\,\delta_{l+1}\right) \odot f'(a_l)")
    st.caption("FA_EX-100% feeds back a constant (c = 0.5): no per-synapse information at all.")

st.divider()
st.subheader("Compute")
info = device_summary()
d1, d2, d3, d4 = st.columns(4)
d1.metric("Device", info["device"])
d2.metric("CPU cores", info["cpu_cores"])
d3.metric("Torch threads per job", info["torch_threads"])
d4.metric("Jobs at once", info["max_jobs"])

st.divider()
st.subheader("Datasets")
st.caption("Each dataset is downloaded once, verified against pinned SHA-256 digests and cached in `data/`.")

fetches = fetcher()
running = bool(fetches.running())


def datasets_panel() -> None:
    for name, ds in DATASETS.items():
        fetch = fetches.state(name)
        status = dataset_status(name)
        c1, c2, c3 = st.columns([2, 3, 2], vertical_alignment="center")
        shape = "×".join(str(s) for s in ds.shape)
        c1.markdown(f"**{name}**  \n{shape}, {ds.train_size:,} train / {ds.test_size:,} test")
        with c2:
            if fetch.status == "running":
                st.progress(fetch.fraction, text=fetch.stage or "fetching…")
            elif status == "ready":
                st.success("ready", icon=":material/check_circle:")
            elif fetch.status == "failed":
                st.error(f"fetch failed: {fetch.error}")
            elif status == "corrupt":
                st.warning("cache is corrupt; fetch again to rebuild it")
            else:
                st.info("not downloaded")
        with c3:
            if status != "ready" and fetch.status != "running":
                if st.button("Fetch", key=f"fetch_{name}"):
                    fetches.start(name)
                    st.rerun()
    if running and not fetches.running():
        st.rerun()


st.fragment(datasets_panel, run_every=1.0 if running else None)()
