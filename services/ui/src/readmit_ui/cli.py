"""``readmit-ui``: serve the page with Streamlit (headless; extra arguments go to streamlit)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from readmit_ui.settings import UiSettings

APP = Path(__file__).with_name("app.py")


def auth_secrets(settings: UiSettings) -> Path:
    """Streamlit's ``[auth]`` section for ``st.login``, in a file only this user can read (it
    holds the client secret and the cookie key). TOML's basic strings are JSON's."""
    values = {
        "redirect_uri": settings.ui_oidc_redirect_uri,
        "cookie_secret": settings.reveal(settings.ui_cookie_secret),
        "client_id": settings.ui_oidc_client_id,
        "client_secret": settings.reveal(settings.ui_oidc_client_secret),
        "server_metadata_url": f"{str(settings.ui_oidc_issuer).rstrip('/')}"
        "/.well-known/openid-configuration",
    }
    path = Path(tempfile.mkdtemp(prefix="readmit-ui-")) / "secrets.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("[auth]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return path


def main() -> None:
    try:
        settings = UiSettings()
    except ValidationError as exc:
        sys.exit(f"readmit-ui: {exc.errors()[0]['msg']}")
    port, address = str(settings.ui_port), settings.ui_address
    signin = ["--secrets.files", str(auth_secrets(settings))] if settings.ui_auth == "oidc" else []
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
        *signin,
        *sys.argv[1:],
    ]
    os.execv(Path(sys.executable).parent / "streamlit", args)


if __name__ == "__main__":
    main()
