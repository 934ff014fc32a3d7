"""Entry point of the fraud workbench: the page router and the common frame.

Run it with ``streamlit run app.py``. The pages in ``pages/`` are registered
here with ``st.navigation``, which turns off Streamlit's automatic listing of
that folder.
"""

import streamlit as st

from components.frame import APP_FRAME_KEY, REQUESTED_PAGE_KEY
from pipeline.settings import SettingsError, get_settings

st.set_page_config(page_title="Fraud workbench", page_icon="🛡️", layout="wide")

try:
    settings = get_settings()
except SettingsError as exc:
    settings_error = exc

    def show_settings_error() -> None:
        st.error(
            f"The workbench cannot start because a setting is invalid. {settings_error} "
            "Fix the environment variable and restart Streamlit."
        )

    # The only page, so that any address (/queue, /model) shows this message
    # instead of a page that would fail on the same setting.
    st.navigation([st.Page(show_settings_error, title="Settings error", url_path="settings-error")]).run()
    st.stop()

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/pipeline.py", title="Pipeline", icon=":material/play_circle:"),
    st.Page("pages/frauds.py", title="Fraud queue", icon=":material/report:", url_path="queue"),
    st.Page("pages/model.py", title="Model", icon=":material/model_training:"),
]
page = st.navigation(pages)
st.session_state[APP_FRAME_KEY] = True

# A page opened before this script ever ran requests itself here; see
# components/frame.py.
requested = st.session_state.pop(REQUESTED_PAGE_KEY, None)
for candidate in pages:
    if requested is not None and candidate.url_path == requested and candidate != page:
        st.switch_page(candidate)

with st.sidebar:
    with st.expander("Settings", icon=":material/settings:"):
        described = settings.describe()
        st.code(
            "\n".join(f"{name}={value}" for name, value in described.items() if value),
            language=None,
            wrap_lines=True,
        )
        st.caption("Set by environment variables. Passwords are shown as ***.")
    st.link_button("Open Grafana", settings.grafana_url, icon=":material/monitoring:")

page.run()
