"""Run a rendered pod's containers with podman the way a kubelet would run them.

Everything comes from the rendered manifests: image, command/args, env (values, Secret and
ConfigMap references, envFrom, and the Service links a kubelet injects), Secret/ConfigMap files
with their modes, emptyDirs as tmpfs, claims as host directories, the user and groups,
read-only root filesystem, dropped capabilities, no privilege escalation and the memory limit.
Only the network differs: one podman network whose aliases are the Services' names.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "scripts/podman/containers.conf")}


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    out = subprocess.run(["podman", *args], capture_output=True, text=True, env=PODMAN_ENV,
                         timeout=timeout, check=False)  # fmt: skip
    if check and out.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {out.stderr.strip()[-2000:]}")
    return out.stdout


@dataclass
class Manifests:
    """The objects of one `helm template`, by kind and name."""

    docs: list[dict[str, Any]]
    namespace: str = "readmit"
    _cluster_ips: dict[str, str] = field(default_factory=dict)

    def named(self, kind: str, name: str) -> dict[str, Any]:
        for d in self.docs:
            if d["kind"] == kind and d["metadata"]["name"] == name:
                return d
        raise KeyError(f"{kind}/{name} is not in the render")

    def workload(self, name: str) -> dict[str, Any]:
        """A Deployment's or Job's pod spec."""
        for d in self.docs:
            if d["kind"] in ("Deployment", "Job") and d["metadata"]["name"] == name:
                return d["spec"]["template"]["spec"]
        raise KeyError(f"no Deployment or Job {name} in the render")

    def secret(self, name: str) -> dict[str, bytes]:
        s = self.named("Secret", name)
        data = {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}
        data |= {k: v.encode() for k, v in (s.get("stringData") or {}).items()}
        return data

    def configmap(self, name: str) -> dict[str, bytes]:
        return {k: str(v).encode() for k, v in self.named("ConfigMap", name)["data"].items()}

    def services(self) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == "Service"]

    def aliases(self, workload: str) -> tuple[str, ...]:
        """The names of the Services that select a workload's pods (its DNS names in the pod)."""
        (doc,) = [d for d in self.docs if d["kind"] in ("Deployment", "Job")
                  and d["metadata"]["name"] == workload]  # fmt: skip
        labels = doc["spec"]["template"]["metadata"].get("labels", {})
        return tuple(s["metadata"]["name"] for s in self.services()
                     if s["spec"].get("selector", {}).items() <= labels.items())  # fmt: skip

    def service_links(self) -> dict[str, str]:
        """The variables a kubelet injects for each Service in the namespace (service links)."""
        env: dict[str, str] = {}
        for i, svc in enumerate(self.services()):
            ip = self._cluster_ips.setdefault(svc["metadata"]["name"], f"10.96.0.{10 + i}")
            prefix = re.sub(r"[^A-Z0-9]", "_", svc["metadata"]["name"].upper())
            ports = svc["spec"]["ports"]
            env[f"{prefix}_SERVICE_HOST"] = ip
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
            env[f"{prefix}_PORT"] = f"tcp://{ip}:{ports[0]['port']}"
            for p in ports:
                proto = p.get("protocol", "TCP")
                if "name" in p:
                    env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(
                        p["port"]
                    )
                base = f"{prefix}_PORT_{p['port']}_{proto}"
                env[base] = f"{proto.lower()}://{ip}:{p['port']}"
                env[f"{base}_PROTO"] = proto.lower()
                env[f"{base}_PORT"] = str(p["port"])
                env[f"{base}_ADDR"] = ip
        return env


def memory_flag(quantity: str) -> str:
    number, unit = re.fullmatch(r"(\d+)([KMG]i)?", quantity).groups()  # type: ignore[union-attr]
    return f"{number}{(unit or 'b')[0].lower()}"


@dataclass
class PodRunner:
    """Starts containers of rendered pods on one podman network."""

    manifests: Manifests
    network: str
    workdir: Path
    claims: dict[str, Path]  # claimName -> host directory
    started: list[str] = field(default_factory=list)

    def _volume_args(self, pod: dict[str, Any], container: dict[str, Any], name: str) -> list[str]:
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        fs_group = (pod.get("securityContext") or {}).get("fsGroup")
        args: list[str] = []
        for mount in container.get("volumeMounts", []):
            vol = volumes[mount["name"]]
            target = mount["mountPath"]
            read_only = mount.get("readOnly", False)
            if "emptyDir" in vol:
                args += ["--mount", f"type=tmpfs,destination={target},tmpfs-mode=1777"]
                continue
            if "persistentVolumeClaim" in vol:
                host = self.claims[vol["persistentVolumeClaim"]["claimName"]]
                read_only = read_only or vol["persistentVolumeClaim"].get("readOnly", False)
            elif "secret" in vol or "configMap" in vol:
                host = self._projected(vol, name, fs_group)
                read_only = True
            else:
                raise NotImplementedError(f"volume {vol}")
            args += ["-v", f"{host}:{target}:{'ro' if read_only else 'rw'}"]
        return args

    def _projected(self, vol: dict[str, Any], name: str, fs_group: int | None) -> Path:
        """A Secret's or ConfigMap's keys as files, with the volume's mode, group fsGroup."""
        if "secret" in vol:
            source = vol["secret"]
            data = self.manifests.secret(source["secretName"])
        else:
            source = vol["configMap"]
            data = self.manifests.configmap(source["name"])
        directory = self.workdir / f"{name}-{vol['name']}"
        directory.mkdir(parents=True, exist_ok=True)
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            path = directory / item["path"]
            path.write_bytes(data[item["key"]])
            path.chmod(item.get("mode", source.get("defaultMode", 0o644)))
            if fs_group is not None:
                os.chown(path, 0, fs_group)
        return directory

    def _env_args(self, pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
        env: dict[str, str] = {}
        if pod.get("enableServiceLinks", True):
            env |= self.manifests.service_links()
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = self.manifests.configmap(source["configMapRef"]["name"])
            else:
                data = self.manifests.secret(source["secretRef"]["name"])
            env |= {k: v.decode() for k, v in data.items()}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            ref = var["valueFrom"]
            if "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                env[var["name"]] = self.manifests.secret(r["name"])[r["key"]].decode()
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                env[var["name"]] = self.manifests.configmap(r["name"])[r["key"]].decode()
            else:
                raise NotImplementedError(f"env {var}")
        return [a for k, v in env.items() for a in ("-e", f"{k}={v}")]

    def _security_args(self, pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
        psc = pod.get("securityContext") or {}
        csc = container.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        gid = csc.get("runAsGroup", psc.get("runAsGroup"))
        args: list[str] = []
        if csc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            assert uid not in (None, 0), "runAsNonRoot needs a numeric non-root runAsUser"
        if uid is not None:
            args += ["--user", f"{uid}:{gid if gid is not None else uid}"]
        for group in [psc.get("fsGroup"), *psc.get("supplementalGroups", [])]:
            if group is not None:
                args += ["--group-add", str(group)]
        if csc.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        caps = csc.get("capabilities") or {}
        args += [a for c in caps.get("drop", []) for a in ("--cap-drop", c)]
        args += [a for c in caps.get("add", []) for a in ("--cap-add", c)]
        if csc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        assert seccomp in (None, "RuntimeDefault"), seccomp  # podman's default profile
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit:
            args += ["--memory", memory_flag(limit)]
        return args

    def run(self, workload: str, container_name: str, *, init: bool = False, replica: int = 0,
            detach: bool = True,
            timeout: float = 600,
            ) -> tuple[str, subprocess.CompletedProcess[str] | None]:  # fmt: skip
        """Start one container of a workload, reachable by its Services' names; a detached one
        returns its name, a foreground one (a Job's, an init container) returns when it exits."""
        pod = self.manifests.workload(workload)
        (container,) = [c for c in pod.get("initContainers" if init else "containers", [])
                        if c["name"] == container_name]  # fmt: skip
        name = f"{self.network}-{workload}-{container_name}-{replica}"
        # a kubelet ignores an image's HEALTHCHECK: the pod's probes decide
        args = [
            "run",
            "--name",
            name,
            "--network",
            self.network,
            "--hostname",
            workload,
            "--no-healthcheck",
        ]
        if not init:
            for alias in self.manifests.aliases(workload):
                args += ["--network-alias", alias]
        args += self._security_args(pod, container)
        args += self._env_args(pod, container)
        args += self._volume_args(pod, container, name)
        for port in container.get("ports", []):
            args += ["-p", f"127.0.0.1::{port['containerPort']}"]
        if "workingDir" in container:
            args += ["-w", container["workingDir"]]
        if "command" in container:
            args += ["--entrypoint", json.dumps(container["command"])]
        args += ["-d"] if detach else []
        args += [container["image"], *container.get("args", [])]
        self.started.append(name)
        if detach:
            podman(*args)
            return name, None
        out = subprocess.run(["podman", *args], capture_output=True, text=True, env=PODMAN_ENV,
                             timeout=timeout, check=False)  # fmt: skip
        return name, out

    def port(self, name: str, container_port: int) -> int:
        out = podman("port", name, f"{container_port}/tcp").strip()
        return int(out.rsplit(":", 1)[1])

    def memory_mib(self, name: str) -> float:
        """The container's memory use now (its cgroup's usage), in MiB."""
        stats = json.loads(podman("stats", "--no-stream", "--format", "json", name))
        used = stats[0]["mem_usage"].split("/")[0].strip()
        number, unit = re.fullmatch(r"([\d.]+)\s*([kMG]?B)", used).groups()  # type: ignore[union-attr]
        return float(number) * {"B": 1 / 2**20, "kB": 1 / 1024, "MB": 1, "GB": 1024}[unit]

    def logs(self, name: str) -> str:
        """The container's output, stdout and stderr (the services log to stderr)."""
        out = subprocess.run(["podman", "logs", name], capture_output=True, text=True,
                             env=PODMAN_ENV, timeout=60, check=False)  # fmt: skip
        return (out.stdout + out.stderr)[-4000:]

    def stop_all(self) -> None:
        for name in reversed(self.started):
            podman("rm", "-f", "-t", "10", name, check=False)


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.3) -> float:
    """Poll ``check()`` until it is truthy; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout} s")
