"""Static checks of what is deployed and run: checkov on every rendered values file, hadolint on
the Dockerfile, shellcheck on the scripts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_tools import ROOT, SCAN, VALUES, render, run
from conftest import require

# Skips for one values file only, each with its reason (the rest are in .checkov.yaml).
# CKV2_K8S_6 (pods without a NetworkPolicy) in the defaults and the lab: a single node whose
# browser reaches the NodePorts from the host and whose bundled Prometheus scrapes in-namespace;
# the production values turn NetworkPolicies on and pass it.
CHECKOV_SKIPS = {"default": {"CKV2_K8S_6"}, "lab": {"CKV2_K8S_6"}}


@pytest.mark.parametrize("values", VALUES)
def test_security_scan_of_the_rendered_chart(chart: Path, values: str, tmp_path: Path) -> None:
    require((SCAN / "checkov").exists(), "checkov is not installed: run `make tools`")
    manifest = tmp_path / f"{values}.yaml"
    manifest.write_text(yaml.safe_dump_all(render(chart, values)))
    # --skip-check replaces the config file's list rather than adding to it
    common = yaml.safe_load((ROOT / ".checkov.yaml").read_text())["skip-check"]
    skips = ",".join(sorted({*common, *CHECKOV_SKIPS.get(values, ())}))
    out = subprocess.run([SCAN / "checkov", "--config-file", ROOT / ".checkov.yaml", "-f",
                          manifest, "--skip-check", skips], capture_output=True, text=True,
                         check=False, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", out.stdout), out.stdout


def test_dockerfiles_pass_hadolint() -> None:
    require((SCAN / "hadolint").exists(), "hadolint is not installed: run `make tools`")
    run(SCAN / "hadolint", ROOT / "services/Dockerfile")


def test_shell_scripts_pass_shellcheck() -> None:
    require((SCAN / "shellcheck").exists(), "shellcheck is not installed: run `make tools`")
    scripts = [*sorted(ROOT.glob("scripts/**/*.sh")), ROOT / ".ci/run"]
    run(SCAN / "shellcheck", "--shell=bash", *scripts)
