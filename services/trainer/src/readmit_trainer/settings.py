"""The trainer's configuration from the environment (readmit_core.settings' pattern); the CLI's
options override it."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from readmit_core.settings import ReadmitSettings, secret_field


class TrainerSettings(ReadmitSettings):
    mlflow_tracking_uri: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI (--tracking-uri), MLflow's own variable",
    )  # fmt: skip
    mlflow_tracking_username: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_USERNAME"),
        description="basic-auth user for the registry (MLflow's own variable)",
    )  # fmt: skip
    mlflow_tracking_password: SecretStr | None = secret_field(
        "basic-auth password for the registry (MLflow's own variable; or "
        "READMIT_MLFLOW_TRACKING_PASSWORD_FILE: a file with it, e.g. a mounted Secret)",
        "MLFLOW_TRACKING_PASSWORD",
    )
