"""``readmit-ui``: serve the page with Streamlit (headless; extra arguments go to streamlit)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from readmit_ui.settings import UiSettings

APP = Path(__file__).with_name("app.py")


def main() -> None:
    settings = UiSettings()
    port, address = str(settings.ui_port), settings.ui_address
    args = [
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        address,
        "--server.port",
        port,
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        # A 190 MB CSV once took 92 s and 2.96 GB: a few MB (thousands of encounters) at most.
        "--server.maxUploadSize",
        str(settings.ui_max_upload_mb),
        # Clinicians get the page, not Streamlit's developer menu or its "Deploy" button.
        "--client.toolbarMode",
        "minimal",
        *sys.argv[1:],
    ]
    os.execv(Path(sys.executable).parent / "streamlit", args)


if __name__ == "__main__":
    main()
