"""All ui configuration, from environment variables (readmit_core.settings' pattern)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

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

    # Who may see the page (readmit_ui.signin).
    ui_auth: Literal["password", "oidc"] = Field(
        "password",
        description="oidc: the hospital's OpenID Connect provider; password: one "
        "generated login (the lab's default)",
    )
    ui_session_s: float = Field(
        8 * 3600, gt=0, description="seconds a sign-in lasts (a shift), then the page asks again"
    )
    ui_login_user: str = Field("clinician", min_length=1, description="the lab login's user")
    ui_login_password_hash: SecretStr | None = secret_field(
        "bcrypt hash of the lab login's password (or READMIT_UI_LOGIN_PASSWORD_HASH_FILE)"
    )
    ui_login_max_failures: int = Field(
        5, ge=1, description="wrong passwords for one user within the lockout before it is locked"
    )
    ui_login_lockout_s: float = Field(
        900, gt=0, description="seconds a user name stays locked after too many wrong passwords"
    )
    ui_oidc_issuer: str | None = Field(
        None, description="the provider's issuer URL (its /.well-known/openid-configuration)"
    )
    ui_oidc_client_id: str | None = Field(None, description="this page's client id there")
    ui_oidc_client_secret: SecretStr | None = secret_field(
        "this page's client secret there (or READMIT_UI_OIDC_CLIENT_SECRET_FILE)"
    )
    ui_oidc_redirect_uri: str | None = Field(
        None, description="the page's public URL + /oauth2callback, as registered there"
    )
    ui_cookie_secret: SecretStr | None = secret_field(
        "key that signs the sign-in cookie (or READMIT_UI_COOKIE_SECRET_FILE)"
    )

    @model_validator(mode="after")
    def _complete(self) -> UiSettings:
        if self.ui_auth == "oidc":
            needed = {
                "READMIT_UI_OIDC_ISSUER": self.ui_oidc_issuer,
                "READMIT_UI_OIDC_CLIENT_ID": self.ui_oidc_client_id,
                "READMIT_UI_OIDC_CLIENT_SECRET": self.ui_oidc_client_secret,
                "READMIT_UI_OIDC_REDIRECT_URI": self.ui_oidc_redirect_uri,
                "READMIT_UI_COOKIE_SECRET": self.ui_cookie_secret,
            }
        else:
            needed = {"READMIT_UI_LOGIN_PASSWORD_HASH": self.ui_login_password_hash}
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"READMIT_UI_AUTH={self.ui_auth} needs {', '.join(missing)}")
        return self
