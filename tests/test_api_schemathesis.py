"""Property-based: the schemathesis CLI generates requests from the api's own OpenAPI schema;
none may get a 5xx, and every response must conform to the schema (status, content, body)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servers import ApiProcess


def test_api_conforms_to_its_openapi_schema(api: ApiProcess, tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "schemathesis"
    out = subprocess.run(
        [str(cli), "run", f"{api.url}/openapi.json", "--checks", "all", "--max-examples", "40",
         "--seed", "1", "--workers", "1", "--no-color", "--report", "junit",
         "--report-junit-path", str(tmp_path / "schemathesis.xml")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-6000:]
    assert "No issues found" in out.stdout
