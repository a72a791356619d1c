"""The lab rendered with the real kube-prometheus-stack chart (88.5.3, the version Chart.lock pins,
from ../shared/charts; copied into a temporary chart, never committed): what the lab's values
make of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chart_tools import render
from conftest import ROOT, copy_chart, require

KPS = ROOT.parent / "shared" / "charts" / "kube-prometheus-stack-88.5.3.tgz"


@pytest.fixture(scope="module")
def real_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(KPS.is_file(), f"the kube-prometheus-stack chart is not at {KPS}")
    chart = copy_chart(tmp_path_factory.mktemp("kps-chart") / "readmit")
    shutil.rmtree(chart / "charts" / "kube-prometheus-stack")  # the stand-in
    shutil.copy(KPS, chart / "charts")
    return chart


def test_grafanas_sidecars_read_configmaps_of_the_release_namespace_only(real_chart: Path
                                                                         ) -> None:  # fmt: skip
    """The stack's default lets the sidecars list every namespace through a ClusterRole that
    may read every Secret in the cluster."""
    docs = render(real_chart, "lab")
    kinds = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    rbac = [d for d in docs if d["kind"] in kinds and "grafana" in d["metadata"]["name"]]
    assert {d["kind"] for d in rbac} == {"Role", "RoleBinding"}
    (binding,) = (d for d in rbac if d["kind"] == "RoleBinding")
    (role,) = (d for d in rbac if d["kind"] == "Role")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "verbs": ["get", "watch", "list"]}]  # fmt: skip
    (grafana,) = (d for d in docs if d["kind"] == "Deployment"
                  and d["metadata"]["name"].endswith("-grafana"))  # fmt: skip
    sidecars = [c for c in grafana["spec"]["template"]["spec"]["containers"]
                if c["name"].startswith("grafana-sc-")]  # fmt: skip
    assert sidecars
    for c in sidecars:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert "NAMESPACE" not in env, c["name"]  # its own namespace, the release's
        assert env["RESOURCE"] == "configmap", c["name"]
