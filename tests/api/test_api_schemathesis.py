"""Property-based: the schemathesis CLI generates requests from the api's own OpenAPI schema;
none may get a 5xx, and every response must conform to the schema (status, content, body).

The ecosystem's protocols (KServe V2, MLflow's scoring server) are run apart: their request
bodies (tensors, DataFrames) cannot say in a schema which ones hold valid encounters, so a
schema-valid one may rightly be refused there (``positive_data_acceptance`` is left out); every
other check holds for them too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.servers import ApiProcess

PROTOCOLS = "^/(v2|invocations|ping|version)"


@pytest.mark.parametrize(
    ("routes", "options"),
    [
        ("own", ["--exclude-path-regex", PROTOCOLS]),
        (
            "protocols",
            ["--include-path-regex", PROTOCOLS, "--exclude-checks", "positive_data_acceptance"],
        ),
    ],
)
def test_api_conforms_to_its_openapi_schema(
    api: ApiProcess, tmp_path: Path, routes: str, options: list[str]
) -> None:
    cli = Path(sys.executable).parent / "schemathesis"
    out = subprocess.run(
        [
            str(cli),
            "run",
            f"{api.url}/openapi.json",
            "--checks",
            "all",
            *options,
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(tmp_path / f"schemathesis-{routes}.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-6000:]
    assert "No issues found" in out.stdout, out.stdout[-3000:]
