"""A one-node Kubernetes cluster on this machine, for the chart's end-to-end tests.

``up`` starts etcd (Debian's), kube-apiserver, kube-controller-manager and kube-scheduler (v1.35,
built by scripts/cluster/build-tools.sh) and a real node (containerd, kubelet, kube-proxy,
CoreDNS, a NetworkPolicy enforcer and a registry on 127.0.0.1:32000; scripts/cluster/node.py).
The API server listens on the node's address, 10.250.0.1, added to ``lo`` for the cluster's
lifetime, which the ``kubernetes`` Service points at: pods reach it too (the Prometheus
operator, the enforcer). State lives in one directory (CLUSTER_DIR, default .local/cluster) with
the kubeconfig at ``kubeconfig``; ``up`` is idempotent; ``down`` stops exactly the processes
``up`` started, by pid, undoes what the node changed on the host, removes the address and the
state. One node per machine: ``up`` claims the host (CLUSTER_CLAIM names the state directory of
the node holding it) and refuses while another directory's node runs.

    python scripts/cluster/cluster.py up | down | status
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import node as cluster_node

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = os.environ.get("K8S_VERSION", "v1.35.4")
BIN = ROOT / ".tools" / f"k8s-{K8S_VERSION}" / "bin"
STATE = Path(os.environ.get("CLUSTER_DIR", ROOT / ".local" / "cluster")).resolve()
PIDS, LOGS, PKI = STATE / "pids", STATE / "logs", STATE / "pki"
KUBECONFIG = STATE / "kubeconfig"
APISERVER_PORT = int(os.environ.get("CLUSTER_APISERVER_PORT", "6443"))
ETCD_PORT = int(os.environ.get("CLUSTER_ETCD_PORT", "23790"))
# on lo while the cluster runs: the API server will not advertise 127.x
NODE_IP = os.environ.get("CLUSTER_NODE_IP", "10.250.0.1")
API_SERVER = f"https://{NODE_IP}:{APISERVER_PORT}"
SERVICE_CIDR = "10.96.0.0/16"
NODE_NAME = "readmit-node"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The node owns NODE_IP, the API server's and the registry's ports and the host's iptables: a
# second clone's ``up`` must not take them, nor its ``down`` undo them under a running node.
CLAIM = Path(os.environ.get("CLUSTER_CLAIM", "/run/readmit-cluster"))


def node(state: Path = STATE) -> cluster_node.Node:
    return cluster_node.Node(state, BIN, NODE_NAME, NODE_IP, API_SERVER)


def components() -> tuple[str, ...]:
    """What ``up`` starts, in order; ``down`` stops them in reverse."""
    return (*CONTROL_PLANE, *(name for name, _, _ in node().processes()))


@dataclass(frozen=True)
class Process:
    name: str
    command: list[str]
    ready: str | None = None  # an https/http URL that answers 200 once it serves


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


def start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot): a reused pid does not share it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid_file: Path) -> int | None:
    """The pid a pid file of ``up``'s records, if that very process still runs."""
    try:
        pid, started = pid_file.read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid) if start_time(int(pid)) == started else None


def pid_of(name: str) -> int | None:
    """The pid ``up`` recorded for a component, if that process still runs."""
    return alive(PIDS / f"{name}.pid")


def holder() -> Path | None:
    """The state directory of the node that claimed this machine, if any."""
    return Path(CLAIM.read_text().strip()) if CLAIM.exists() else None


def claim_host() -> None:
    """Claim the machine for this node: refused while another directory's node runs; what a
    dead one left on the host (its pods, mounts, iptables chains, sysctls) is cleared first."""
    other = holder()
    if other and other != STATE:
        running = sorted(f.stem for f in (other / "pids").glob("*.pid") if alive(f))
        if running:
            raise SystemExit(
                f"cluster: a node from {other} runs on this machine ({', '.join(running)}); "
                "one node per machine: stop that one first "
                f"(CLUSTER_DIR={other} python3 scripts/cluster/cluster.py down)"
            )
        log(f"clearing what a node from {other} left on the host (its processes are gone)")
        undo_host(other)
    CLAIM.write_text(f"{STATE}\n")


def undo_host(state: Path) -> None:
    """Undo what the node of ``state`` changed on the host, once its processes are stopped;
    nothing when another node has claimed the host since."""
    owner = holder()
    if owner not in (None, state):
        return
    if owner == state or (state / "sysctls.json").exists():
        node(state).cleanup()
    if (state / "added-address").exists() and has_address():
        subprocess.run(["ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo"], check=True)
    if owner == state:
        CLAIM.unlink()


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=PKI)


def make_pki() -> str:
    """A CA, the API server's serving certificate, the aggregation layer's CA and client
    certificate, the service-account key pair, and a token."""
    PKI.mkdir(parents=True)
    sans = ",".join(
        [
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
            "IP:127.0.0.1",
            f"IP:{NODE_IP}",
            "IP:10.96.0.1",
        ]
    )
    (PKI / "san.ext").write_text(f"subjectAltName={sans}\n")
    for args in (
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 "
        "-subj /CN=readmit-e2e-ca",
        "req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr "
        "-subj /CN=kube-apiserver",
        "x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt "
        "-days 30 -extfile san.ext",
        # the API server's client certificate for the kubelets (logs, exec, port-forward)
        "req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr "
        "-subj /CN=kube-apiserver",
        "x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out kubelet-client.crt -days 30",
        # the aggregation layer's: the API server proves itself to an API it proxies (the
        # metrics adapter's custom.metrics.k8s.io) with a client certificate of a CA of its own
        "req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out "
        "front-proxy-ca.crt -days 30 -subj /CN=readmit-e2e-front-proxy-ca",
        "req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -out "
        "front-proxy-client.csr -subj /CN=front-proxy-client",
        "x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey "
        "front-proxy-ca.key -CAcreateserial -out front-proxy-client.crt -days 30",
    ):
        openssl(*args.split())
    openssl("genrsa", "-out", "sa.key", "2048")
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    token, node_token = os.urandom(16).hex(), os.urandom(16).hex()
    (PKI / "tokens.csv").write_text(
        f'{token},admin,admin,"system:masters"\n'
        # the Node authorizer knows a kubelet by this user and group
        f'{node_token},system:node:{NODE_NAME},kubelet,"system:nodes"\n'
    )
    (PKI / "node-token").write_text(node_token)
    return token


def write_kubeconfig(token: str) -> None:
    server = API_SERVER
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "readmit-e2e",
                "cluster": {"server": server, "certificate-authority": str(PKI / "ca.crt")},
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {"name": "readmit-e2e", "context": {"cluster": "readmit-e2e", "user": "admin"}}
        ],
        "current-context": "readmit-e2e",
    }
    KUBECONFIG.write_text(json.dumps(config, indent=2))
    KUBECONFIG.chmod(0o600)


def processes() -> list[Process]:
    kc = str(KUBECONFIG)
    api = API_SERVER
    control_plane = [
        Process(
            "etcd",
            [
                "etcd",
                "--name=readmit-e2e",
                f"--data-dir={STATE / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
                f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
                f"--listen-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
                f"--initial-cluster=readmit-e2e=http://127.0.0.1:{ETCD_PORT + 1}",
            ],
            f"http://127.0.0.1:{ETCD_PORT}/health",
        ),
        Process(
            "kube-apiserver",
            [
                str(BIN / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
                f"--bind-address={NODE_IP}",
                f"--secure-port={APISERVER_PORT}",
                f"--advertise-address={NODE_IP}",
                f"--cert-dir={PKI}",
                f"--tls-cert-file={PKI / 'apiserver.crt'}",
                f"--tls-private-key-file={PKI / 'apiserver.key'}",
                f"--client-ca-file={PKI / 'ca.crt'}",
                f"--token-auth-file={PKI / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={PKI / 'sa.pub'}",
                f"--service-account-signing-key-file={PKI / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-node-port-range=30000-32767",
                f"--kubelet-client-certificate={PKI / 'kubelet-client.crt'}",
                f"--kubelet-client-key={PKI / 'kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--requestheader-client-ca-file={PKI / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={PKI / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={PKI / 'front-proxy-client.key'}",
            ],
            f"{api}/readyz",
        ),
        # A busy machine delays the node's heartbeat past the default 50 s grace period, and the
        # node-lifecycle controller's taint then made `helm install --wait` time out: 5 min. (The
        # controller stays on: it lifts the not-ready taint a new node is created with.)
        Process(
            "kube-controller-manager",
            [
                str(BIN / "kube-controller-manager"),
                f"--kubeconfig={kc}",
                "--leader-elect=false",
                # no HTTPS endpoint (nothing here reads it; no port to collide with another cluster)
                "--secure-port=0",
                "--node-monitor-grace-period=5m",
                f"--service-account-private-key-file={PKI / 'sa.key'}",
                f"--root-ca-file={PKI / 'ca.crt'}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        ),
        Process(
            "kube-scheduler",
            [
                str(BIN / "kube-scheduler"),
                f"--kubeconfig={kc}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
        ),
    ]
    return [*control_plane, *(Process(*p) for p in node().processes())]


def wait_url(url: str, token: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cluster: {url}'s process exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(request, timeout=2, context=context) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"cluster: {url} not ready in {timeout:.0f} s")


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(BIN / "kubectl"), f"--kubeconfig={KUBECONFIG}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def has_address() -> bool:
    out = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True
    ).stdout
    return f" {NODE_IP}/32 " in out


# podman's settings for this kind of machine, unless the caller has its own (the Makefile's)
PODMAN_ENV = {"CONTAINERS_CONF": str(ROOT / "scripts/podman/containers.conf"), **os.environ}
PAUSE_CONTAINERFILE = 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'


def push_image(binary: str, image: str, containerfile: str) -> None:
    """An image of one binary compiled by build-tools.sh (FROM scratch), into the registry."""
    context = STATE / f"{binary}-image"
    context.mkdir()
    shutil.copy(BIN / binary, context / binary)
    (context / "Containerfile").write_text(containerfile)
    for args in (
        ["build", "-q", "-t", image, str(context)],
        ["push", "-q", "--tls-verify=false", image],
    ):
        subprocess.run(["podman", *args], check=True, capture_output=True, env=PODMAN_ENV)


def wait_enforcer(timeout: float) -> None:
    """The NetworkPolicy enforcer's pod Ready: until then no pod could reach anything."""
    deadline = time.monotonic() + timeout
    name = cluster_node.ENFORCER
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError):
            status = json.loads(
                kubectl("-n", "kube-system", "get", "daemonset", name, "-o", "json")
            )["status"]
            if status.get("numberReady") == 1:
                return
        time.sleep(0.5)
    raise SystemExit(f"cluster: {name} not Ready in {timeout:.0f} s; see its pod's log")


def wait_node(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError):
            node = json.loads(kubectl("get", "node", NODE_NAME, "-o", "json"))
            conditions = node["status"].get("conditions", [])
            ready = [c["status"] for c in conditions if c["type"] == "Ready"]
            # schedulable once Ready and the not-ready taint it was created with is lifted
            if ready == ["True"] and not node["spec"].get("taints"):
                return
        time.sleep(0.5)
    raise SystemExit(f"cluster: node {NODE_NAME} not Ready in {timeout:.0f} s; logs in {LOGS}")


def up() -> None:
    wanted = components()
    running = [name for name in wanted if pid_of(name)]
    if running == list(wanted) and KUBECONFIG.exists():
        log(f"already running ({KUBECONFIG})")
        return
    if running:
        log(f"partly running ({', '.join(running)}): stopping it first")
        down()
    binaries = [
        "kube-apiserver",
        "kubectl",
        "kubelet",
        "kube-proxy",
        "coredns",
        "pause",
        cluster_node.ENFORCER,
    ]
    missing = [b for b in binaries if not (BIN / b).exists()]
    tools = ["etcd", "containerd", "runc", "docker-registry", "podman"]
    missing += [t for t in tools if not shutil.which(t)]
    if missing:
        raise SystemExit(
            f"cluster: missing {missing}: run `make cluster-tools` (and .ci/run's apt packages)"
        )
    claim_host()
    # A fresh etcd every time: old NodePorts and pods would collide with the new ones.
    shutil.rmtree(STATE, ignore_errors=True)
    for d in (PIDS, LOGS):
        d.mkdir(parents=True)
    token = make_pki()
    write_kubeconfig(token)
    if not has_address():
        subprocess.run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"], check=True)
        (STATE / "added-address").touch()
    n = node()
    n.write_configs(PKI / "ca.crt", (PKI / "node-token").read_text(), token)
    n.record_netns()
    n.set_sysctls()
    n.fence_pods()
    n.queue_to_enforcer()
    started = time.monotonic()
    for p in processes():
        with (LOGS / f"{p.name}.log").open("wb") as out:
            proc = subprocess.Popen(
                p.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (PIDS / f"{p.name}.pid").write_text(f"{proc.pid} {start_time(proc.pid)}")
        if p.ready:
            wait_url(p.ready, token, 60, proc)
        log(f"{p.name} started (pid {proc.pid})")
        if p.name == "registry":
            push_image("pause", cluster_node.PAUSE_IMAGE, PAUSE_CONTAINERFILE)
            push_image(
                cluster_node.ENFORCER,
                cluster_node.ENFORCER_IMAGE,
                cluster_node.ENFORCER_CONTAINERFILE,
            )
    # `kubectl logs/exec`: the API server's client certificate may use the kubelet's API
    kubectl(
        "create",
        "clusterrolebinding",
        "apiserver-kubelet",
        "--clusterrole=system:kubelet-api-admin",
        "--user=kube-apiserver",
    )
    for obj in [*n.dns_objects(), *n.enforcer_objects()]:
        kubectl("apply", "-f", "-", stdin=json.dumps(obj))
    wait_node(120)
    wait_enforcer(120)
    log(f"ready in {time.monotonic() - started:.1f} s: export KUBECONFIG={KUBECONFIG}")


def stop_pid(name: str, pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # reap it when it is our child (`up` and `down` in one process)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    log(f"{name} (pid {pid}) ignored SIGTERM: killing it")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def down() -> None:
    for name in reversed(components()):
        pid = pid_of(name)
        if pid:
            stop_pid(name, pid)
            log(f"{name} stopped (pid {pid})")
    undo_host(STATE)
    shutil.rmtree(STATE, ignore_errors=True)


def status() -> int:
    for name in components():
        pid = pid_of(name)
        print(f"{name:<24} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0 if all(pid_of(name) for name in components()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    action = parser.parse_args().action
    if action == "up":
        up()
    elif action == "down":
        down()
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()
