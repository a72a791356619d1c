"""The real node of scripts/cluster/cluster.py: containerd with runc and the CNI plugins, a kubelet,
kube-proxy and CoreDNS, a NetworkPolicy enforcer, plus a registry on 127.0.0.1:32000 as MicroK8s'
registry addon has.

Pods get addresses on a bridge (POD_CIDR), each in a network namespace of its own; Services are
iptables rules of kube-proxy's; NodePorts answer on 127.0.0.1 and the node's address. CoreDNS
runs as a process on the node's address (no ``forward``: no query leaves the machine) behind the
kube-dns Service. NetworkPolicies are enforced by SIG Network's kube-network-policies, a
DaemonSet (as MicroK8s runs Calico): it judges the first packet of every connection to or from a
pod against the policies. It asks for those packets with nftables' ``queue``, which this
machine's kernel lacks (CONFIG_NFT_QUEUE is off), so the node sends it the same packets with
iptables' NFQUEUE target instead, mirroring its own rules (POSTROUTING, before SNAT; root's own
traffic, e.g. the kubelet's probes, and established connections pass): the verdicts are all its
own. Everything ``up`` changes on the host is undone by ``down``: processes by pid, the pods'
containers and mounts, the bridge, kube-proxy's rules, the pods' egress fence, the queue rules
and the two sysctls it needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

POD_CIDR = "10.244.0.0/24"
CLUSTER_DNS = "10.96.0.10"
REGISTRY = "127.0.0.1:32000"
PAUSE_IMAGE = "localhost:32000/pause:3.10"
BRIDGE = "readmit0"
# kube-proxy: NodePorts on loopback need route_localnet; Service traffic between pods on one
# bridge must pass iptables. Their values before ``up`` are restored by ``down``.
SYSCTLS = ("net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables")
# Pods reach each other and the node; anything else they send is refused at once, on the host:
# nothing leaves the machine, and a connection to a Service kube-proxy has not programmed yet
# fails fast instead of a SYN dropped far away (a Locust worker then waited 2 min, the kernel's
# connect timeout, for its master).
FENCE = [
    "FORWARD",
    "-s",
    POD_CIDR,
    "!",
    "-d",
    POD_CIDR,
    "-j",
    "REJECT",
    "-m",
    "comment",
    "--comment",
    "readmit: pods reach nothing beyond this machine",
]
# The enforcer: its image (the static binary on scratch, pushed to the node's registry), and the
# queue its verdicts are asked on. No --queue-bypass: while it is not running, nothing to or
# from a pod gets through (it fails closed, as its own default).
ENFORCER = "kube-network-policies"
ENFORCER_IMAGE = "localhost:32000/kube-network-policies:v0.8.0"
ENFORCER_CONTAINERFILE = (
    "FROM scratch\nCOPY kube-network-policies /kube-network-policies\n"
    'ENTRYPOINT ["/kube-network-policies"]\n'
)
QUEUE = 100
QUEUE_CHAIN = "READMIT-POLICIES"
QUEUE_RULES = [
    ["-m", "owner", "--uid-owner", "0", "-j", "RETURN"],
    ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
    ["-s", POD_CIDR, "-j", "NFQUEUE", "--queue-num", str(QUEUE)],
    ["-d", POD_CIDR, "-j", "NFQUEUE", "--queue-num", str(QUEUE)],
]


@dataclass(frozen=True)
class Node:
    state: Path
    bin: Path
    node_name: str
    node_ip: str
    apiserver: str  # https://127.0.0.1:PORT

    @property
    def socket(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    def write_configs(self, ca: Path, node_token: str, admin_token: str) -> None:
        d = self.state
        for sub in ("containerd", "cni/net.d", "kubelet", "registry", "coredns"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "containerd/config.toml").write_text(f"""
version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj is refused and every sandbox fails
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:32000"]
    endpoint = ["http://{REGISTRY}"]
""")
        (d / "cni/net.d/10-readmit.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "readmit",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": f"{d}/cni/ipam",
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {"server": self.apiserver, "certificate-authority": str(ca)},
                }
            ],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "u"}}],
            "current-context": "e2e",
        }
        for name, token in (("kubelet", node_token), ("admin", admin_token)):
            (d / f"kubelet/{name}.kubeconfig").write_text(
                json.dumps({**kubeconfig, "users": [{"name": "u", "user": {"token": token}}]})
            )
        (d / "kubelet/resolv.conf").write_text("")  # pods on the host's DNS ask no one
        (d / "kubelet/config.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    # this machine's cgroups are v1 (hybrid): kubelet 1.35 refuses them unless told
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    "address": self.node_ip,
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(ca)},
                    },
                    "authorization": {"mode": "Webhook"},
                    "clusterDNS": [CLUSTER_DNS],
                    "clusterDomain": "cluster.local",
                    "resolvConf": str(d / "kubelet/resolv.conf"),
                    "failSwapOn": False,
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                        "nodefs.inodesFree": "1%",
                    },
                    # loaded images are never collected: nothing could pull them again
                    "imageGCHighThresholdPercent": 100,
                    "serializeImagePulls": False,
                }
            )
        )
        (d / "kubelet/proxy.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    "hostnameOverride": self.node_name,
                    "bindAddress": "127.0.0.1",
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    "nodePortAddresses": ["127.0.0.1/32", f"{self.node_ip}/32"],
                    "conntrack": {"maxPerCore": 0},
                    "clientConnection": {"kubeconfig": str(d / "kubelet/admin.kubeconfig")},
                }
            )
        )
        (d / "registry/config.yml").write_text(
            f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {d}/registry/data}}\n"
            f"  delete: {{enabled: true}}\nhttp:\n  addr: {REGISTRY}\n"
        )
        (d / "coredns/Corefile").write_text(f"""
.:53 {{
    bind {self.node_ip}
    errors
    health 127.0.0.1:18080
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {d}/kubelet/admin.kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
""")

    def processes(self) -> list[tuple[str, list[str], str | None]]:
        """(name, command, ready URL) in start order, after the control plane."""
        d = self.state
        return [
            (
                "registry",
                ["docker-registry", "serve", str(d / "registry/config.yml")],
                f"http://{REGISTRY}/v2/",
            ),
            ("containerd", ["containerd", "--config", str(d / "containerd/config.toml")], None),
            (
                "kubelet",
                [
                    str(self.bin / "kubelet"),
                    f"--config={d}/kubelet/config.yaml",
                    f"--kubeconfig={d}/kubelet/kubelet.kubeconfig",
                    f"--root-dir={d}/kubelet/root",
                    f"--cert-dir={d}/kubelet/pki",
                    f"--hostname-override={self.node_name}",
                    f"--node-ip={self.node_ip}",
                ],
                None,
            ),
            (
                "kube-proxy",
                [str(self.bin / "kube-proxy"), f"--config={d}/kubelet/proxy.yaml"],
                "http://127.0.0.1:10256/healthz",
            ),
            (
                "coredns",
                [str(self.bin / "coredns"), "-conf", str(d / "coredns/Corefile")],
                "http://127.0.0.1:18080/health",
            ),
        ]

    def dns_objects(self) -> list[dict]:
        """kube-dns: a Service without selector whose endpoint is the CoreDNS process."""
        ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
        return [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {
                    "clusterIP": CLUSTER_DNS,
                    "ports": [
                        {"name": n, "protocol": p, "port": 53, "targetPort": 53} for n, p in ports
                    ],
                },
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kube-dns-node",
                    "namespace": "kube-system",
                    "labels": {"kubernetes.io/service-name": "kube-dns"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.node_ip], "conditions": {"ready": True}}],
                "ports": [{"name": n, "protocol": p, "port": 53} for n, p in ports],
            },
        ]

    def set_sysctls(self) -> None:
        saved = {}
        for key in SYSCTLS:
            path = Path("/proc/sys") / key.replace(".", "/")
            saved[key] = path.read_text().strip()
            path.write_text("1")
        (self.state / "sysctls.json").write_text(json.dumps(saved))

    def fence_pods(self) -> None:
        if subprocess.run(["iptables", "-C", *FENCE], capture_output=True).returncode != 0:
            subprocess.run(["iptables", "-I", *FENCE], check=True)

    def queue_to_enforcer(self) -> None:
        """Every new connection to or from a pod goes to the enforcer's queue first."""
        iptables = ["iptables", "-t", "mangle"]
        # emptied if a node killed before its ``down`` left it
        if subprocess.run([*iptables, "-N", QUEUE_CHAIN], capture_output=True).returncode:
            subprocess.run([*iptables, "-F", QUEUE_CHAIN], check=True)
        for rule in QUEUE_RULES:
            subprocess.run([*iptables, "-A", QUEUE_CHAIN, *rule], check=True)
        jump = ["POSTROUTING", "-j", QUEUE_CHAIN]
        if subprocess.run([*iptables, "-C", *jump], capture_output=True).returncode:
            subprocess.run([*iptables, "-I", *jump], check=True)

    def enforcer_objects(self) -> list[dict]:
        """kube-network-policies as a DaemonSet of kube-system, with what it may read."""
        meta = {"name": ENFORCER, "namespace": "kube-system"}
        labels = {"app": ENFORCER}
        return [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": ENFORCER},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["pods", "namespaces", "nodes"],
                        "verbs": ["list", "watch"],
                    },
                    {
                        "apiGroups": ["networking.k8s.io"],
                        "resources": ["networkpolicies"],
                        "verbs": ["list", "watch"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": ENFORCER},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": ENFORCER,
                },
                "subjects": [{"kind": "ServiceAccount", **meta}],
            },
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": meta,
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "hostNetwork": True,
                            "serviceAccountName": ENFORCER,
                            "priorityClassName": "system-node-critical",
                            "tolerations": [{"operator": "Exists"}],
                            "containers": [
                                {
                                    "name": ENFORCER,
                                    "image": ENFORCER_IMAGE,
                                    "args": [
                                        f"--hostname-override={self.node_name}",
                                        f"--nfqueue-id={QUEUE}",
                                        "--disable-nri",
                                        # kernel 6.12+ has the conntrack fix it works around
                                        "--netfilter-bug-1766-fix=false",
                                        f"--metrics-bind-address={self.node_ip}:9080",
                                        "--v=2",
                                    ],
                                    "readinessProbe": {
                                        "httpGet": {"path": "/metrics", "port": 9080},
                                        "periodSeconds": 2,
                                    },
                                    "resources": {
                                        "requests": {"cpu": "10m", "memory": "32Mi"},
                                        "limits": {"memory": "128Mi"},
                                    },
                                    # root with NET_ADMIN only: netlink for the queue's verdicts
                                    "securityContext": {
                                        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
                                        "readOnlyRootFilesystem": True,
                                    },
                                }
                            ],
                        },
                    },
                },
            },
        ]

    def record_netns(self) -> None:
        (self.state / "netns-before.json").write_text(json.dumps(sorted(netns_names())))

    def cleanup(self) -> None:
        """After the kubelet and containerd are stopped: what they leave on the host."""
        # the containers' shims outlive containerd: kill this node's (they name its socket)
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                cmdline = (proc / "cmdline").read_bytes()
                if b"containerd-shim" in cmdline and str(self.socket).encode() in cmdline:
                    os.kill(int(proc.name), 9)
        kill_pods()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.state))), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        subprocess.run(
            [str(self.bin / "kube-proxy"), "--cleanup"], capture_output=True, check=False
        )
        remove_kubelet_chains()
        subprocess.run(["iptables", "-D", *FENCE], capture_output=True, check=False)
        mangle = ["iptables", "-t", "mangle"]
        subprocess.run(
            [*mangle, "-D", "POSTROUTING", "-j", QUEUE_CHAIN], capture_output=True, check=False
        )
        for flag in ("-F", "-X"):
            subprocess.run([*mangle, flag, QUEUE_CHAIN], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        saved = self.state / "sysctls.json"
        if saved.exists():
            for key, value in json.loads(saved.read_text()).items():
                (Path("/proc/sys") / key.replace(".", "/")).write_text(value)
        before_file = self.state / "netns-before.json"
        before = set(json.loads(before_file.read_text())) if before_file.exists() else set()
        for name in netns_names() - before:
            if name.startswith("cni-"):  # the pods' namespaces containerd made
                subprocess.run(["ip", "netns", "del", name], check=False)


def kill_pods() -> None:
    """Every process of every pod (the containers outlive their shims), found in the kubelet's
    cgroups (cgroupfs driver: `kubepods` in each controller), then those cgroups."""
    roots = [root for root in Path("/sys/fs/cgroup").glob("*/kubepods") if root.is_dir()]
    roots += [root for root in [Path("/sys/fs/cgroup/kubepods")] if root.is_dir()]  # cgroup v2
    for _ in range(50):
        pids = {
            int(pid)
            for root in roots
            for procs in root.rglob("cgroup.procs")
            for pid in procs.read_text().split()
        }
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.1)
    for root in roots:
        for group in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                group.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def remove_kubelet_chains() -> None:
    """The kubelet's own iptables chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT),
    which ``kube-proxy --cleanup`` leaves: the jumps to them, then the chains."""
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            saved = subprocess.run(
                [f"{tool}-save", "-t", table], capture_output=True, text=True, check=False
            ).stdout
            for line in saved.splitlines():
                if (
                    line.startswith("-A ")
                    and not line.split()[1].startswith("KUBE-")
                    and ("-j KUBE-" in line)
                ):
                    subprocess.run([tool, "-t", table, "-D", *shlex.split(line)[1:]], check=False)
            chains = [
                line[1:].split()[0] for line in saved.splitlines() if line.startswith(":KUBE-")
            ]
            for flag in ("-F", "-X"):
                for chain in chains:
                    subprocess.run(
                        [tool, "-t", table, flag, chain], capture_output=True, check=False
                    )


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
