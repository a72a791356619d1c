"""All load-test configuration, from environment variables (readmit_core.settings' pattern)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from readmit_core.settings import API_URL, ReadmitSettings, secret_field


class LocustSettings(ReadmitSettings):
    api_url: str = Field(
        API_URL,
        description="the api's base URL (readmit-loadtest --host): the only host a run "
        "may target, and the only one the key is sent to",
    )
    api_key: SecretStr | None = secret_field(
        "Bearer key for the api, when it needs one (or READMIT_API_KEY_FILE: a file with it)"
    )
    locust_encounters: int = Field(
        2000, ge=1, description="real encounters the users cycle through"
    )
    locust_batch_size: int = Field(20, ge=1, description="encounters per /predict/batch task")
    locust_wait_min_s: float = Field(0.1, ge=0, description="shortest wait between a user's tasks")
    locust_wait_max_s: float = Field(1.0, ge=0, description="longest wait between a user's tasks")
    locust_metrics_port: int = Field(
        9646, ge=1, le=65535, description="the master's Prometheus exporter port"
    )
    locust_metrics_addr: str = Field("0.0.0.0", description="the exporter's listen address")
    locust_web_user: str = Field("admin", min_length=1, description="the web UI's login user")
    locust_web_password: SecretStr | None = secret_field(
        "the web UI's login password (or READMIT_LOCUST_WEB_PASSWORD_FILE); needed with --web-login"
    )
    locust_max_users: int = Field(
        200, ge=1, description="most users a run started from the web UI may have"
    )
    locust_max_spawn_rate: float = Field(
        50.0, gt=0, description="fastest spawn rate (users/s) a run from the web UI may have"
    )
