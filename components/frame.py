"""Keep every page inside the frame that app.py builds.

Streamlit 1.67 serves a folder named ``pages/`` next to the main script in
its older multipage mode until the main script has called ``st.navigation``
once on the server. So the first visitor of a fresh server who opens a page
address directly, such as ``/model``, runs that page without app.py: no
settings check, no page list, no sidebar. :func:`require_app_frame` sends
that visitor through app.py, which then opens the page asked for.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

__all__ = ["APP_FRAME_KEY", "REQUESTED_PAGE_KEY", "require_app_frame"]

# Session state key that app.py sets in every session it runs in.
APP_FRAME_KEY = "app_frame"
# Session state key of the page address to open once app.py runs.
REQUESTED_PAGE_KEY = "requested_page"


def require_app_frame(url_path: str) -> None:
    """Hand over to app.py when the page runs in the older multipage mode.

    ``url_path`` is the page's address in app.py's ``st.navigation``. A
    session in which app.py already ran is left alone: Streamlit's AppTest
    turns the older mode back on before each run, which a server never does.
    """
    # NOTE: PagesManager.uses_pages_directory is not public API. It is True
    # until st.navigation runs, in Streamlit 1.67; check it on upgrades.
    if PagesManager.uses_pages_directory and not st.session_state.get(APP_FRAME_KEY):
        st.session_state[REQUESTED_PAGE_KEY] = url_path
        st.switch_page("app.py")
