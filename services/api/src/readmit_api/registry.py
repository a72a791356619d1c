"""The MLflow model registry over its REST API: which version an alias names, and its files.

Plain HTTP (the standard library): importing the mlflow client costs ~3.5 s of start-up here and
~55 MB of image, for two GETs and a few file downloads. Files come through the tracking server's
artifact proxy (``mlflow-artifacts:`` URIs, the default of ``mlflow server``), or from a local
path the server shares with the api; other artifact stores are refused with the reason.
Credentials as MLflow's own client takes them: MLFLOW_TRACKING_TOKEN, or
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlparse
from urllib.request import Request, urlopen

MAX_FILES = 200  # a model directory holds a dozen; more is not a model


class RegistryError(RuntimeError):
    """The registry could not answer the question, and why."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    run_id: str | None


class Registry:
    def __init__(
        self, tracking_uri: str, timeout_s: float = 10.0, headers: dict[str, str] | None = None
    ) -> None:
        if urlparse(tracking_uri).scheme not in ("http", "https"):
            raise RegistryError(f"the registry must be an http(s) MLflow server: {tracking_uri}")
        self.base = tracking_uri.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = headers or {}

    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        found = self._get_json(
            "/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias}
        )["model_version"]
        return ModelVersion(str(found["version"]), found.get("run_id") or None)

    def download_uri(self, name: str, version: str) -> str:
        """Where a version's files are (asked only when that version is to be loaded)."""
        return self._get_json(
            "/api/2.0/mlflow/model-versions/get-download-uri", {"name": name, "version": version}
        )["artifact_uri"]

    def download(self, artifact_uri: str, dest: Path) -> Path:
        """Copy the files under ``artifact_uri`` into ``dest``; returns ``dest``."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme == "mlflow-artifacts":
            root = PurePosixPath(parsed.path.lstrip("/"))
            for count, relative in enumerate(self._walk(root, PurePosixPath())):
                if count >= MAX_FILES:
                    raise RegistryError(f"{artifact_uri} holds over {MAX_FILES} files")
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                url = f"/api/2.0/mlflow-artifacts/artifacts/{quote(str(root / relative))}"
                with self._open(url) as response, target.open("wb") as out:
                    shutil.copyfileobj(response, out)
            return dest
        if parsed.scheme in ("", "file"):
            shutil.copytree(parsed.path, dest, dirs_exist_ok=True)
            return dest
        raise RegistryError(
            f"artifact store {parsed.scheme}: is not supported; run the MLflow server with its "
            "artifact proxy (--serve-artifacts) or set READMIT_MODEL_URI"
        )

    def _walk(self, root: PurePosixPath, sub: PurePosixPath) -> Any:
        listing = self._get_json("/api/2.0/mlflow-artifacts/artifacts", {"path": str(root / sub)})
        for entry in listing.get("files", []):
            name = PurePosixPath(entry["path"]).name
            if name in ("", ".", ".."):
                raise RegistryError(f"bad artifact name {entry['path']!r}")
            if entry.get("is_dir"):
                yield from self._walk(root, sub / name)
            else:
                yield sub / name

    def _get_json(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        with self._open(f"{path}?{urlencode(params)}") as response:
            return json.load(response)

    def _open(self, path: str) -> Any:
        try:
            return urlopen(Request(self.base + path, headers=self.headers), timeout=self.timeout_s)
        except HTTPError as exc:
            detail = exc.read(500).decode(errors="replace")
            raise RegistryError(f"{exc.code} from the registry: {detail}") from None
        except (URLError, OSError) as exc:
            raise RegistryError(f"registry unreachable: {exc}") from None


def auth_headers(token: str | None, user: str | None, password: str | None) -> dict[str, str]:
    """How MLflow's own client authenticates: a Bearer token, else basic auth."""
    if token:
        return {"Authorization": f"Bearer {token}"}
    if user and password:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    return {}
