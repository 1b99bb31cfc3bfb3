"""Voice quality (placeholder until issue 3 lands)."""

import streamlit as st

st.title("Voice quality")
st.info("Placeholder: this page arrives with issue 3. The data it needs is already collected.")
