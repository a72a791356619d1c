"""The chart as a package: strict lint of the umbrella and of each subchart on its own (with its
library), the helm-unittest suites, Chart.lock, and what `helm package` ships."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from support.charts import HELM_UNITTEST, KUBE_VERSIONS, SUBCHARTS, VALUES, run, standalone
from support.project import ROOT, require


@pytest.mark.parametrize("values", VALUES)
def test_umbrella_lints_strictly(helm: Path, chart: Path, values: str) -> None:
    extra = [] if values == "default" else ["-f", ROOT / "values" / f"{values}.yaml"]
    run(helm, "lint", "--strict", chart, "--kube-version", KUBE_VERSIONS[0], *extra)


@pytest.mark.parametrize("sub", SUBCHARTS)
def test_subchart_lints_strictly_on_its_own(helm: Path, sub: str, tmp_path: Path) -> None:
    run(helm, "lint", "--strict", standalone(sub, tmp_path), "--kube-version", KUBE_VERSIONS[0])


def test_unit_tests(helm: Path, tmp_path: Path) -> None:
    """Each subchart's suites on the subchart alone (with its library), the umbrella's without."""
    require(HELM_UNITTEST.exists(), "helm-unittest is not built: run `make tools`")
    for args, cwd in (
        (["--strict", *(standalone(s, tmp_path).name for s in SUBCHARTS)], tmp_path),
        (["--strict", "--with-subchart=false", "-f", "tests/chart/helm/*_test.yaml", "."], ROOT),
    ):
        out = run(HELM_UNITTEST, *args, cwd=cwd)
        (tests,) = [line for line in out.splitlines() if line.startswith("Tests:")]
        assert re.fullmatch(r"Tests:\s+\d+ passed, \d+ total", tests.strip()), out
    # every template of every chart is named by a suite
    for chart_dir, suites in [
        (ROOT / "charts" / s, f"charts/{s}/tests/*_test.yaml") for s in SUBCHARTS
    ] + [(ROOT, "tests/chart/helm/*_test.yaml")]:
        covered = {t for f in ROOT.glob(suites) for t in yaml.safe_load(f.read_text())["templates"]}
        templates = {
            f"templates/{t.name}"
            for t in (chart_dir / "templates").iterdir()
            if t.suffix in (".yaml", ".txt")
        }
        assert templates <= covered, (chart_dir.name, sorted(templates - covered))


def test_chart_lock_is_in_sync_with_chart_yaml() -> None:
    """The digest `helm dependency build` checks: sha256 of Go's JSON of [requirements, lock]."""
    deps = yaml.safe_load((ROOT / "Chart.yaml").read_text())["dependencies"]
    lock = yaml.safe_load((ROOT / "Chart.lock").read_text())
    fields = (
        "name",
        "version",
        "repository",
        "condition",
        "tags",
        "enabled",
        "import-values",
        "alias",
    )
    req = [
        {k: d.get(k, "") for k in fields if k in ("name", "repository") or d.get(k)} for d in deps
    ]
    locked = [
        {"name": d["name"], "version": d["version"], "repository": d.get("repository", "")}
        for d in deps
    ]
    data = json.dumps([req, locked], separators=(",", ":")).encode()
    assert lock["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert [{k: d[k] for k in ("name", "version", "repository")} for d in lock["dependencies"]] == (
        locked
    )
    kps = next(d for d in deps if d["name"] == "kube-prometheus-stack")
    assert kps["version"] == "88.5.3"
    assert kps["condition"] == "kube-prometheus-stack.enabled"


def test_package_ships_the_chart_only(helm: Path, tmp_path: Path) -> None:
    """.helmignore keeps sources, tests, scripts, values/ and local state out of the package."""
    tree = tmp_path / "readmit"
    heavy = shutil.ignore_patterns(
        ".venv*",
        ".tools",
        ".git",
        ".local",
        ".cache",
        "*.tgz",
        "__pycache__",
        "build",
        "test-artifacts",
    )
    shutil.copytree(ROOT, tree, ignore=heavy)
    stand_in = ROOT / "tests/chart/helm/kube-prometheus-stack"
    shutil.copytree(stand_in, tree / "charts/kube-prometheus-stack")
    run(helm, "package", tree, "-d", tmp_path)
    with tarfile.open(tmp_path / "readmit-0.1.0.tgz") as tgz:
        names = {n.split("/", 1)[1] for n in tgz.getnames()}
    top = {n.split("/")[0] for n in names}
    assert top == {
        "Chart.yaml",
        "Chart.lock",
        "values.yaml",
        "values.schema.json",
        "templates",
        "charts",
        "dashboards",
    }, top
    subcharts = {n.split("/")[1] for n in names if n.startswith("charts/")}
    assert subcharts == {*SUBCHARTS, "common", "kube-prometheus-stack"}  # the stand-in, added above
    assert not [n for n in names if "/tests/" in n or n.endswith("_test.yaml")]
