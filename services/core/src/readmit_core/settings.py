"""Configuration from the environment: one pattern for every service.

Each service has one pydantic-settings class derived from ``ReadmitSettings``. A field ``x`` is
read from ``READMIT_X`` (a few keep their standard names, e.g. ``MLFLOW_TRACKING_URI``), and a
field made with ``secret_field`` also from the file ``READMIT_X_FILE`` names (a mounted
Kubernetes Secret, which stays out of the process environment): the file wins, and a file that
cannot be read is an error, never "no secret".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MODEL_NAME = "diabetes-readmission"  # the registered model
MODEL_ALIAS = "production"  # the alias the api serves and the trainer moves
API_URL = "http://127.0.0.1:8000"  # where the ui and Locust find the api by default
# How the api's clients (the ui and Locust) ride over an api pod that just died.
# A refused connection sent nothing, so retrying it is safe; a request that was sent is never
# retried. A killed pod stays in the Service until the kubelet sees the death (it relists every
# 1 s), the EndpointSlice marks it not ready and kube-proxy resyncs (at most once a second), and
# each retry may be routed to the dead pod again. Four retries wait 0, 0.5, 1 and 2 s (httpcore's
# fixed schedule, which Locust's urllib3 Retry copies): 3.5 s, past the window the e2e's faults
# measure (tests/e2e/test_e2e_faults.py; its faults file: "dead pod listed ready").
CONNECT_RETRIES = 4


def secret_field(description: str, variable: str | None = None) -> Any:
    """A secret read from READMIT_<FIELD> (or ``variable``) or from the file READMIT_<FIELD>_FILE
    names."""
    alias = AliasChoices(variable) if variable else None
    return Field(
        None,
        description=description,
        validation_alias=alias,
        json_schema_extra={"secret_file": True},
    )


class ReadmitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="READMIT_", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra
            if not (isinstance(extra, dict) and extra.get("secret_file")):
                continue
            variable = f"READMIT_{name.upper()}_FILE"
            path = data.pop(f"{name}_file", None) or os.environ.get(variable)
            if not path:
                continue
            alias = info.validation_alias
            key = str(alias.choices[0]) if isinstance(alias, AliasChoices) else name
            try:
                data[key] = Path(path).read_text().strip() or None
            except OSError as exc:
                reason = exc.strerror
                raise ValueError(f"{variable}={path} is not a readable file: {reason}") from None
        return data

    @staticmethod
    def reveal(secret: SecretStr | None) -> str | None:
        return secret.get_secret_value() if secret is not None else None


class RegistryLogin(ReadmitSettings):
    """An authenticated MLflow's login as MLflow's own client reads it (api and trainer)."""

    mlflow_tracking_username: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_USERNAME"),
        description="basic-auth user for the registry (MLflow's own variable)",
    )
    mlflow_tracking_password: SecretStr | None = secret_field(
        "basic-auth password for the registry (MLflow's own variable; or "
        "READMIT_MLFLOW_TRACKING_PASSWORD_FILE: a file with it, e.g. a mounted Secret)",
        "MLFLOW_TRACKING_PASSWORD",
    )


class DataSettings(ReadmitSettings):
    """Where the data set is (readmit_core.data; the trainer and Locust read it there)."""

    data: str | None = Field(
        None,
        description="the UCI zip or diabetic_data.csv; unset: "
        "download from UCI (SHA-256 verified) into the cache",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "readmit", description="where a downloaded data set is kept"
    )
