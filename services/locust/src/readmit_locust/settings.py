"""All load-test configuration, from environment variables (readmit_core.settings' pattern)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from readmit_core.settings import API_URL, ReadmitSettings, secret_field


class LocustSettings(ReadmitSettings):
    api_url: str = Field(API_URL, description="the api's base URL (readmit-loadtest --host)")
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
