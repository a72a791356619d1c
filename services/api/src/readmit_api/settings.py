"""All api configuration, from environment variables (readmit_core.settings' pattern)."""

from __future__ import annotations

from functools import cached_property

from pydantic import AliasChoices, Field, SecretStr

from readmit_core.settings import MODEL_ALIAS, MODEL_NAME, ReadmitSettings, secret_field


class Settings(ReadmitSettings):
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "READMIT_MLFLOW_TRACKING_URI"),
        description="MLflow tracking/registry server the model is loaded from",
    )
    model_name: str = Field(MODEL_NAME, description="registered model name")
    model_alias: str = Field(MODEL_ALIAS, description="registry alias to serve")
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
    api_keys: SecretStr | None = secret_field(
        "comma-separated keys; when set, /predict* and /model need a Bearer key (or "
        "READMIT_API_KEYS_FILE: a file with them, e.g. a mounted Secret; it wins)"
    )
    mlflow_tracking_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_TOKEN"),
        description="Bearer token for the registry (MLflow's own variable)",
    )  # fmt: skip
    mlflow_tracking_username: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_USERNAME"),
        description="basic-auth user for the registry (MLflow's own variable)",
    )  # fmt: skip
    mlflow_tracking_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_PASSWORD"),
        description="basic-auth password for the registry (MLflow's own variable)",
    )  # fmt: skip
    shutdown_drain_s: float = Field(
        0.0,
        ge=0,
        description="on SIGTERM, seconds to keep serving (not ready, Connection: close) before "
        "stopping, so a load balancer can route around the process first; 0 = stop at once",
    )
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(8000, ge=1, le=65535, description="port to listen on")
    log_level: str = Field("info", pattern="^(debug|info|warning|error|critical)$",
                           description="level of the JSON logs on stderr")  # fmt: skip
    high_risk_band: float = Field(
        0.3, gt=0, lt=1, description="risk at or above which the band is 'high'"
    )

    @cached_property
    def keys(self) -> tuple[bytes, ...]:
        raw = self.reveal(self.api_keys) or ""
        return tuple(k.strip().encode() for k in raw.split(",") if k.strip())
