"""``readmit-ui``: serve the page with Streamlit (headless; extra arguments go to streamlit)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")


def main() -> None:
    port = os.environ.get("READMIT_UI_PORT", "8501")
    address = os.environ.get("READMIT_UI_ADDRESS", "0.0.0.0")
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
        # Clinicians get the page, not Streamlit's developer menu or its "Deploy" button.
        "--client.toolbarMode",
        "minimal",
        *sys.argv[1:],
    ]
    os.execv(Path(sys.executable).parent / "streamlit", args)


if __name__ == "__main__":
    main()
