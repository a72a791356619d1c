"""All api configuration, from environment variables (readmit_core.settings' pattern)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator

from readmit_core.settings import MODEL_ALIAS, MODEL_NAME, RegistryLogin


class Settings(RegistryLogin):
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
    drift_min_encounters: int = Field(
        100,
        ge=1,
        description="encounters the window must hold before its shares are published "
        "(fewer say too much about each patient)",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="largest request body accepted (413 beyond)"
    )
    max_in_flight: int = Field(
        64, ge=1, description="requests served at once, probes aside (503 with Retry-After beyond)"
    )
    max_connections: int = Field(
        1024, ge=1, description="open connections (the next is answered 503 and closed)"
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="request line and headers together (431 beyond)"
    )
    max_headers: int = Field(64, ge=8, description="headers of one request (431 beyond)")
    header_timeout_s: float = Field(
        5.0, gt=0, description="seconds a connection has to send a request's headers"
    )
    keep_alive_s: float = Field(
        5.0, gt=0, description="seconds an idle kept-alive connection stays open"
    )
    api_keys: SecretStr | None = Field(
        None,
        description="client=key pairs, comma-separated; when keys are set, /predict* and "
        "/model need a Bearer key",
    )
    api_keys_dir: Path | None = Field(
        None,
        description="a directory of key files, one per client (the file's name is the "
        "client's key id, its lines that client's keys), e.g. a mounted Secret; watched; wins over "
        "READMIT_API_KEYS",
    )
    api_keys_reload_s: float = Field(
        5.0, gt=0, description="how often READMIT_API_KEYS_DIR is read again for changed keys"
    )
    user_header_clients: str = Field(
        "ui",
        description="key ids (comma-separated) that may name the signed-in user in "
        "X-Readmit-User, for the audit record: the ui's; another client naming one gets 403",
    )
    mlflow_tracking_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_TOKEN"),
        description="Bearer token for the registry (MLflow's own variable)",
    )
    shutdown_drain_s: float = Field(
        0.0,
        ge=0,
        description="on SIGTERM, seconds to keep serving (not ready, Connection: close) before "
        "stopping, so a load balancer can route around the process first; 0 = stop at once",
    )
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(8000, ge=1, le=65535, description="port to listen on")
    metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="port of /metrics (on its own: only Prometheus is let "
        "reach it); 0 = no metrics server",
    )
    log_level: str = Field(
        "info",
        pattern="^(debug|info|warning|error|critical)$",
        description="level of the JSON logs on stderr",
    )
    high_risk_band: float = Field(
        0.3, gt=0, lt=1, description="risk at or above which the band is 'high'"
    )

    @cached_property  # read on every /predict*: parsed once
    def user_header_client_ids(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.user_header_clients.split(",") if c.strip())

    @model_validator(mode="after")
    def _metrics_apart(self) -> Settings:
        if self.metrics_port == self.port:
            raise ValueError("READMIT_METRICS_PORT must differ from READMIT_PORT (or be 0)")
        return self
