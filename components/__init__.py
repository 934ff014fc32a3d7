"""Streamlit building blocks that the pages in ``pages/`` share: UI only, no SQL."""
