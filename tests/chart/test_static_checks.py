"""Static checks of what is deployed and run: checkov on every rendered values file, hadolint on
the Dockerfile, shellcheck on the scripts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from support.charts import KUBE_VERSIONS, SCAN, VALUES, render, run
from support.project import ROOT, require

DIGEST = "sha256:" + "0" * 64
IMAGES = ("api", "ui", "locust", "mlflow")


def checkov(docs: list[dict], skips: set[str], tmp_path: Path) -> None:
    require((SCAN / "checkov").exists(), "checkov is not installed: run `make tools`")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    # --skip-check replaces the config file's list rather than adding to it
    out = subprocess.run(
        [
            SCAN / "checkov",
            "--config-file",
            ROOT / ".checkov.yaml",
            "-f",
            manifest,
            "--skip-check",
            ",".join(sorted(skips)),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", out.stdout), out.stdout


@pytest.mark.parametrize("values", VALUES)
def test_security_scan_of_the_rendered_chart(chart: Path, values: str, tmp_path: Path) -> None:
    """Every values file, NetworkPolicies included (on by default), with .checkov.yaml's skips;
    the lab as scripts/deploy.sh installs it (by digest), with the image-digest check on too."""
    common = set(yaml.safe_load((ROOT / ".checkov.yaml").read_text())["skip-check"])
    if values == "lab":
        sets = [f"{image}.image.digest={DIGEST}" for image in IMAGES]
        checkov(render(chart, values, KUBE_VERSIONS[0], *sets), common - {"CKV_K8S_43"}, tmp_path)
    else:
        checkov(render(chart, values), common, tmp_path)


def test_dockerfiles_pass_hadolint() -> None:
    require((SCAN / "hadolint").exists(), "hadolint is not installed: run `make tools`")
    run(SCAN / "hadolint", ROOT / "services/Dockerfile")


def test_shell_scripts_pass_shellcheck() -> None:
    require((SCAN / "shellcheck").exists(), "shellcheck is not installed: run `make tools`")
    scripts = [*sorted(ROOT.glob("scripts/**/*.sh")), ROOT / ".ci/run"]
    run(SCAN / "shellcheck", "--shell=bash", *scripts)
