"""The four images, run as the chart's pods run them (make e2e; needs `make images`).

The chart is rendered with the lab's values plus values/e2e.yaml, and every container is started
with podman from the rendered manifests (tests/pods.py): MLflow's server, the training Job (init
container, then the trainer on a sample of the data set from the claim), the api with the key
from the chart's Secret, the ui in Chromium, and Locust's master with two workers running a
bounded load through the master's own web API. Times to ready and memory go to
test-artifacts/containers.txt.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml
from conftest import ROOT, copy_chart, require, shows_a_risk
from pods import PODMAN_ENV, Manifests, PodRunner, podman, wait_until
from servers import ApiProcess, free_port, stop, wait_http

pytestmark = pytest.mark.e2e

HELM = ROOT / ".tools" / "bin" / "helm"
ARTIFACTS = ROOT / "test-artifacts"
RELEASE = "readmit"


def app_version() -> str:
    return str(yaml.safe_load((ROOT / "Chart.yaml").read_text())["appVersion"])


@dataclass
class Stack:
    runner: PodRunner
    manifests: Manifests
    names: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    ready_s: dict[str, float] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    job: subprocess.CompletedProcess[str] | None = None

    def report(self) -> str:
        lines = [f"{'container':<22} {'ready (s)':>9} {'memory (MiB)':>13}"]
        for key, name in self.names.items():
            memory = self.runner.memory_mib(name)
            lines.append(f"{key:<22} {self.ready_s.get(key, float('nan')):>9.1f} {memory:>13.0f}")
        if "train (exit)" in self.ready_s:  # the Job's container: its run, start to exit
            lines.append(f"{'train Job (to exit)':<22} {self.ready_s['train (exit)']:>9.1f}")
        return "\n".join(lines)

    def start(self, key: str, workload: str, container: str, replica: int = 0) -> None:
        self.started_at[key] = time.monotonic()
        self.names[key], _ = self.runner.run(workload, container, replica=replica)

    def wait_ready(self, key: str, url: str, timeout: float) -> None:
        """Time from the container's start until ``url`` answers 200; its log when it does not."""
        try:
            wait_until(lambda: requests.get(url, timeout=2).status_code == 200, timeout, url)
            self.ready_s[key] = time.monotonic() - self.started_at[key]
        except TimeoutError as e:
            raise AssertionError(f"{key}: {e}\n{self.runner.logs(self.names[key])}") from e


@pytest.fixture(scope="module")
def stack(data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require(shutil.which("podman") is not None, "podman is not installed")
    require(HELM.exists(), "helm is not built: run `make tools`")
    images = [
        f"localhost:32000/readmit-{s}:{app_version()}" for s in ("api", "ui", "locust", "trainer")
    ]
    missing = [i for i in images if subprocess.run(["podman", "image", "exists", i], env=PODMAN_ENV,
                                                   check=False).returncode]  # fmt: skip
    require(not missing, f"{missing} not built: run `make images`")
    work = tmp_path_factory.mktemp("containers")
    chart = copy_chart(work / "readmit")
    out = subprocess.run(
        [str(HELM), "template", RELEASE, str(chart), "-n", "readmit", "--kube-version", "1.35.0",
         "-f", str(ROOT / "values/lab.yaml"), "-f", str(ROOT / "values/e2e.yaml")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    manifests = Manifests([d for d in yaml.safe_load_all(out) if d])
    # The claims: the registry's volume (group-owned like an fsGroup volume) and the data set.
    store, data = work / "mlflow-volume", work / "uci-data"
    store.mkdir()
    os.chown(store, 0, 10001)
    store.chmod(0o2775)  # after chown, and not through mkdir (which drops the setgid bit)
    data.mkdir()
    shutil.copy(data_path, data / "dataset_diabetes.zip")
    network = f"readmit-e2e-{os.getpid()}"
    podman("network", "create", network)
    runner = PodRunner(manifests, network, work / "files",
                       {"readmit-mlflow": store, "readmit-uci-data": data})  # fmt: skip
    s = Stack(runner, manifests)
    try:
        s.start("mlflow", "readmit-mlflow", "mlflow")
        s.urls["mlflow"] = f"http://127.0.0.1:{runner.port(s.names['mlflow'], 5000)}"
        s.wait_ready("mlflow", f"{s.urls['mlflow']}/health", 180)

        (job,) = [d["metadata"]["name"] for d in manifests.docs if d["kind"] == "Job"
                  and d["metadata"]["name"].startswith(f"{RELEASE}-mlflow-train")]  # fmt: skip
        _, wait = runner.run(job, "wait-for-mlflow", init=True, detach=False, timeout=120)
        assert wait is not None
        assert wait.returncode == 0, wait.stdout + wait.stderr
        start = time.monotonic()
        _, s.job = runner.run(job, "train", detach=False, timeout=900)
        s.ready_s["train (exit)"] = time.monotonic() - start

        s.start("api", "readmit-api", "api")
        s.urls["api"] = f"http://127.0.0.1:{runner.port(s.names['api'], 8000)}"
        s.wait_ready("api", f"{s.urls['api']}/ready", 180)

        s.start("ui", "readmit-ui", "ui")
        s.urls["ui"] = f"http://127.0.0.1:{runner.port(s.names['ui'], 8501)}"
        s.wait_ready("ui", f"{s.urls['ui']}/_stcore/health", 120)

        s.start("locust master", "readmit-locust-master", "master")
        s.urls["locust"] = f"http://127.0.0.1:{runner.port(s.names['locust master'], 8089)}"
        s.urls["exporter"] = f"http://127.0.0.1:{runner.port(s.names['locust master'], 9646)}"
        for i in (1, 2):
            s.start(f"locust worker {i}", "readmit-locust-worker", "worker", replica=i)
        s.wait_ready("locust master", s.urls["locust"], 120)
        yield s
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(RuntimeError):  # a container that died has no stats
            (ARTIFACTS / "containers.txt").write_text(s.report() + "\n")
        runner.stop_all()
        podman("network", "rm", "-f", network, check=False)


def api_key(stack: Stack) -> str:
    return stack.manifests.secret(f"{RELEASE}-api-keys")["api-key"].decode()


def test_the_training_job_registers_the_model_under_the_alias(stack: Stack) -> None:
    assert stack.job is not None
    assert stack.job.returncode == 0, stack.job.stdout[-2000:] + stack.job.stderr[-3000:]
    alias = requests.get(f"{stack.urls['mlflow']}/api/2.0/mlflow/registered-models/alias",
                         params={"name": "diabetes-readmission", "alias": "production"},
                         timeout=10)  # fmt: skip
    assert alias.status_code == 200, alias.text
    assert alias.json()["model_version"]["version"] == "1"


def test_the_api_serves_the_same_risk_as_a_local_api(stack: Stack, example: dict,
                                                     tmp_path: Path) -> None:  # fmt: skip
    url = f"{stack.urls['api']}/predict"
    assert requests.post(url, json=example, timeout=10).status_code == 401
    answer = requests.post(url, json=example, timeout=10,
                           headers={"Authorization": f"Bearer {api_key(stack)}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    local = ApiProcess(tmp_path / "api.log", MLFLOW_TRACKING_URI=stack.urls["mlflow"])
    try:
        local.wait_ready()
        expected = requests.post(f"{local.url}/predict", json=example, timeout=10).json()
    finally:
        local.close()
    assert answer.json()["model"]["version"] == expected["model"]["version"] == "1"
    assert answer.json()["readmission_risk"] == pytest.approx(
        expected["readmission_risk"], abs=1e-9
    )


def test_the_ui_shows_a_risk_in_chromium(stack: Stack, browser) -> None:
    shows_a_risk(browser, stack.urls["ui"], "ui-container.png")


def exporter_value(stack: Stack, metric: str) -> float:
    total = 0.0
    for line in requests.get(f"{stack.urls['exporter']}/metrics", timeout=5).text.splitlines():
        if line.startswith(metric) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_locust_master_and_two_workers_run_a_load_with_no_failures(stack: Stack) -> None:
    web = stack.urls["locust"]
    wait_until(lambda: exporter_value(stack, "locust_workers") == 2, 120, "2 Locust workers")
    run = {"user_count": 10, "spawn_rate": 10, "run_time": "30s"}
    started = requests.post(f"{web}/swarm", data=run, timeout=10)
    assert started.json()["success"], started.text
    wait_until(lambda: requests.get(f"{web}/stats/requests", timeout=5).json()["state"]
               == "stopped", 90, "the 30 s run to stop", interval=1)  # fmt: skip
    stats = requests.get(f"{web}/stats/requests", timeout=5).json()
    total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
    assert total["num_requests"] > 50, total
    assert total["num_failures"] == 0, stats.get("errors")
    assert exporter_value(stack, "locust_requests_total") >= total["num_requests"]
    assert exporter_value(stack, "locust_failures_total") == 0


REGISTRY_CONFIG = """
version: 0.1
storage:
  filesystem: {{rootdirectory: {root}}}
http:
  addr: 127.0.0.1:{port}
"""


def test_a_push_records_the_digests_that_deploy_passes_to_helm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real push (Debian's docker-registry, as MicroK8s' registry addon on localhost:32000):
    the digest build-images.sh records is the registry's, the chart deploys that digest, and
    deploy.sh passes the file."""
    registry_bin = shutil.which("docker-registry")
    require(
        registry_bin is not None,
        "docker-registry is not installed (apt-get install docker-registry)",
    )
    require(HELM.exists(), "helm is not built: run `make tools`")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(REGISTRY_CONFIG.format(root=tmp_path / "blobs", port=port))
    registry = subprocess.Popen([registry_bin, "serve", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    values = tmp_path / "images.generated.yaml"
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", 30, registry)
        out = subprocess.run(["scripts/build-images.sh"], cwd=ROOT, capture_output=True, text=True,
                             timeout=900, check=False,
                             env={**PODMAN_ENV, "REGISTRY": f"127.0.0.1:{port}", "PUSH": "1",
                                  "SERVICES": "api", "IMAGES_VALUES": str(values)})  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        head = requests.head(
            f"http://127.0.0.1:{port}/v2/readmit-api/manifests/{app_version()}", timeout=10,
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )  # fmt: skip
        digest = head.headers["Docker-Content-Digest"]
    finally:
        stop(registry)
    recorded = yaml.safe_load(values.read_text())
    assert recorded == {"api": {"image": {"registry": f"127.0.0.1:{port}", "digest": digest}}}
    chart = copy_chart(tmp_path / "readmit")
    rendered = subprocess.run(
        [str(HELM), "template", RELEASE, str(chart), "--kube-version", "1.35.0", "-f", str(values),
         "--show-only", "charts/api/templates/deployment.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (container,) = yaml.safe_load(rendered)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"127.0.0.1:{port}/readmit-api@{digest}"
    monkeypatch.setenv("IMAGES_VALUES", str(values))
    monkeypatch.setenv("DRY_RUN", "1")
    plan = subprocess.run(["bash", "scripts/deploy.sh", "lab"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    assert f"--values values/lab.yaml --values {values} --wait" in plan
