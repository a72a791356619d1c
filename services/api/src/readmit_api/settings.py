"""All api configuration, from environment variables (one pydantic-settings class)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="READMIT_", extra="ignore")

    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "READMIT_MLFLOW_TRACKING_URI"),
        description="MLflow tracking/registry server the model is loaded from",
    )
    model_name: str = Field("diabetes-readmission", description="registered model name")
    model_alias: str = Field("production", description="registry alias to serve")
    model_uri: str | None = Field(
        None, description="load this local model directory instead of the registry (air-gapped)"
    )
    reload_interval_s: float = Field(
        30.0, ge=0, description="how often to check the alias for a new version; 0 = never"
    )
    load_retry_max_s: float = Field(
        30.0, gt=0, description="longest wait between attempts to load the first model"
    )
    max_batch: int = Field(1000, ge=1, description="most encounters in one /predict/batch")
    drift_window: int = Field(
        5000, ge=100, description="last encounters the drift metrics are computed over"
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="largest request body accepted (413 beyond)"
    )
    api_keys: SecretStr | None = Field(
        None, description="comma-separated keys; when set, /predict* and /model need a Bearer key"
    )
    api_keys_file: Path | None = Field(
        None, description="file with the keys (a mounted Secret); wins over READMIT_API_KEYS"
    )
    shutdown_drain_s: float = Field(
        0.0,
        ge=0,
        description="on SIGTERM, seconds to keep serving (not ready, Connection: close) before "
        "stopping, so a load balancer can route around the process first; 0 = stop at once",
    )
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = Field("info", pattern="^(debug|info|warning|error|critical)$")
    high_risk_band: float = Field(
        0.3, gt=0, lt=1, description="risk at or above which the band is 'high'"
    )

    @model_validator(mode="after")
    def _keys_file_is_readable(self) -> Settings:
        # Checked at start: a missing key file must stop the api, not fail its first request.
        if self.api_keys_file is not None and not self.api_keys_file.is_file():
            raise ValueError(f"READMIT_API_KEYS_FILE={self.api_keys_file} is not a readable file")
        return self

    @cached_property
    def keys(self) -> tuple[bytes, ...]:
        if self.api_keys_file is not None:
            raw = self.api_keys_file.read_text()
        elif self.api_keys is not None:
            raw = self.api_keys.get_secret_value()
        else:
            return ()
        return tuple(k.strip().encode() for k in raw.split(",") if k.strip())
