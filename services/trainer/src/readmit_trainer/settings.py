"""The trainer's configuration from the environment (readmit_core.settings' pattern); the CLI's
options override it."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from readmit_core.settings import RegistryLogin


class TrainerSettings(RegistryLogin):
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI (--tracking-uri), MLflow's own variable",
    )
