"""The api's registry client (plain REST) against a real MLflow server, and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.servers import API_MODEL, use_mlflow

from readmit_api.registry import Registry, RegistryError, auth_headers
from readmit_core import artifact


def test_the_alias_and_its_files_as_mlflows_own_client_sees_them(
    mlflow_server: str, api_model: dict[str, Any], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    registry = Registry(mlflow_server)
    found = registry.version_by_alias(API_MODEL, "production")
    theirs = MlflowClient(mlflow_server, mlflow_server).get_model_version_by_alias(
        API_MODEL, "production"
    )
    assert (found.version, found.run_id) == (str(theirs.version), theirs.run_id)
    where = registry.download_uri(API_MODEL, found.version)
    ours = artifact.load(registry.download(where, tmp_path / "ours"))
    use_mlflow(mlflow_server)
    reference = artifact.load_from_mlflow(f"models:/{API_MODEL}/{found.version}")
    assert ours.threshold == reference.threshold
    assert ours.scorer.to_data() == reference.scorer.to_data()


def test_a_missing_alias_and_a_down_registry_say_so(mlflow_server: str) -> None:
    with pytest.raises(RegistryError, match="alias no-such-alias not found"):
        Registry(mlflow_server).version_by_alias(API_MODEL, "no-such-alias")
    with pytest.raises(RegistryError, match="unreachable"):
        Registry("http://127.0.0.1:9", timeout_s=2).version_by_alias(API_MODEL, "production")


def test_stores_it_cannot_read_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="http"):
        Registry("sqlite:///mlflow.db")
    with pytest.raises(RegistryError, match="--serve-artifacts"):
        Registry("http://127.0.0.1:9").download("s3://bucket/models/m-1/artifacts", tmp_path)


def test_credentials_are_sent_as_mlflows_client_sends_them(monkeypatch) -> None:
    """MLflow's own variables, read by the api's Settings, become the same headers."""
    from readmit_api.settings import Settings

    def headers() -> dict[str, str]:
        s = Settings()
        return auth_headers(
            s.reveal(s.mlflow_tracking_token),
            s.mlflow_tracking_username,
            s.reveal(s.mlflow_tracking_password),
        )

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    assert headers() == {"Authorization": "Basic cmVhZGVyOnMzY3JldA=="}
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    assert headers() == {"Authorization": "Bearer tok"}
