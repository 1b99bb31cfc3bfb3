"""Reports: the weekly reports the service writes every Monday, to read and download, and where
the release benchmark report comes from."""

import streamlit as st

from app import data
from app.widgets import evidence_link
from collectors.weekly_reports import list_reports

st.title("Reports")
st.caption(
    "Every Monday the collectors service writes a report of the week before (Monday 00:00 to "
    "Monday 00:00 UTC): the week's numbers, incidents, what changed, the latest release's "
    "verdict, the experiments' decisions and the improvement backlog. `workbench report "
    "--weekly FILE` writes one on demand."
)
evidence_link("benchmarks", "Release benchmark report: compare two releases and download it")

reports = list_reports(data.data_dir())
if not reports:
    st.info(
        "No weekly report yet: the service writes the last whole week's (Monday to Monday, "
        "UTC) shortly after its first publish, then one every Monday."
    )
    st.stop()

st.subheader("Weekly reports")
for i, report in enumerate(reports):
    c1, c2 = st.columns((3, 1))
    c1.markdown(f"**{report.title}**" + (" (latest)" if i == 0 else ""))
    c2.download_button(
        "Download (HTML)",
        report.path.read_bytes(),
        report.path.name,
        "text/html",
        key=f"weekly_{report.week_end:%Y%m%d}",
    )
