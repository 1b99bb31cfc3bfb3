"""Experiments (placeholder until issue 4 lands)."""

import streamlit as st

st.title("Experiments")
st.info("Placeholder: this page arrives with issue 4. The data it needs is already collected.")
