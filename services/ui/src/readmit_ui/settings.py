"""All ui configuration, from environment variables (readmit_core.settings' pattern)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from readmit_core.settings import API_URL, ReadmitSettings, secret_field


class UiSettings(ReadmitSettings):
    api_url: str = Field(API_URL, description="the api's base URL")
    api_key: SecretStr | None = secret_field(
        "Bearer key for the api, when it needs one (or READMIT_API_KEY_FILE: a file with it)"
    )
    api_timeout_s: float = Field(10.0, gt=0, description="seconds to wait for the api")
    ui_port: int = Field(8501, ge=1, le=65535, description="port the page is served on")
    ui_address: str = Field("0.0.0.0", description="address the page is served on")
    ui_max_upload_mb: int = Field(
        5, ge=1, description="largest CSV a clinician may upload, MB (Streamlit refuses more)"
    )
    ui_max_rows: int = Field(
        5000, ge=1, description="most encounters in one uploaded CSV (a larger one is refused)"
    )
