"""The deploy and image scripts, dry-run: they run what docs/deploy.md says and build every image
the chart deploys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.charts import VALUES, pod_specs, render, run
from support.project import ROOT


def dry_run(script: str, *args: str) -> list[str]:
    out = run("bash", ROOT / "scripts" / script, *args, cwd=ROOT)
    return [line.removeprefix("+ ") for line in out.splitlines() if line.startswith("+ ")]


def test_deploy_script_runs_what_the_deploy_page_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRY_RUN", "1")
    page = (ROOT / "docs" / "deploy.md").read_text()
    block = page.split("<!-- deploy.sh lab -->\n```bash\n", 1)[1].split("```", 1)[0]
    assert dry_run("deploy.sh", "lab") == block.strip().splitlines()
    production = dry_run("deploy.sh", "production")
    addons = "dns registry hostpath-storage observability metrics-server"
    assert f"microk8s enable {addons}" in production
    assert production[-1].endswith(
        "--values values/production.yaml --values values/images.generated.yaml --wait --timeout 15m"
    )


def test_deploy_stops_without_image_digests(tmp_path: Path) -> None:
    """Tags can be pushed again: without the digests build-images.sh records, no deploy (the
    cluster's own tools are not even asked)."""
    import os
    import subprocess

    env = {
        **os.environ,
        "IMAGES_VALUES": str(tmp_path / "none.yaml"),
        "MICROK8S": "",
        "HELM": "false",
        "KUBECTL": "true",
    }
    out = subprocess.run(
        ["bash", ROOT / "scripts/deploy.sh", "lab"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 1
    assert "no image digests" in out.stderr
    assert "READMIT_IMAGE_TAGS=1" in out.stderr


def test_build_images_builds_every_image_the_chart_deploys(
    chart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRY_RUN", "1")
    monkeypatch.setenv("DOCKER", "docker")
    commands = dry_run("build-images.sh")
    pushed = {c.split()[-1] for c in commands if c.startswith("docker push")}
    deployed = {
        c["image"]
        for values in VALUES
        for _, t in pod_specs(render(chart, values))
        for c in t["spec"]["containers"]
    }
    deployed -= {"registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0"}  # upstream's
    assert deployed <= pushed
    # one image per final target of the one Dockerfile, each built from that target
    dockerfile = (ROOT / "services/Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, re.M))
    targets = stages - {"deps", "build", "runtime"}
    built = {re.search(r"--target (\w+)", c)[1] for c in commands if c.startswith("docker build")}
    assert built == targets == {"api", "ui", "locust", "trainer"}
