"""One e2e node per machine: a second clone's ``cluster.py up`` is refused while the first's node
runs, and that clone's ``down`` leaves the running node's host alone (CI once cleared a running
node's iptables chains so). Its processes are known by pid and start time, not pid alone."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from support.project import ROOT


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def cluster_script(monkeypatch: pytest.MonkeyPatch, claim: Path, state: Path) -> ModuleType:
    """scripts/cluster/cluster.py as imported by a clone whose state directory is ``state``."""
    monkeypatch.setenv("CLUSTER_CLAIM", str(claim))
    monkeypatch.setenv("CLUSTER_DIR", str(state))
    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "cluster"))
    monkeypatch.delitem(sys.modules, "cluster", raising=False)
    return importlib.import_module("cluster")


def test_a_second_node_is_refused_while_the_first_runs_and_its_down_leaves_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[bytes]
) -> None:
    claim, first = tmp_path / "claim", tmp_path / "first"
    (first / "pids").mkdir(parents=True)
    cluster = cluster_script(monkeypatch, claim, tmp_path / "second")
    (first / "pids" / "etcd.pid").write_text(f"{sleeper.pid} {cluster.start_time(sleeper.pid)}")
    claim.write_text(f"{first}\n")

    with pytest.raises(SystemExit, match=f"a node from {first} runs on this machine \\(etcd\\)"):
        cluster.claim_host()
    # what make e2e runs after a failed up: nothing of the first node's may be undone
    undone: list[Path] = []
    monkeypatch.setattr(cluster.cluster_node.Node, "cleanup", lambda n: undone.append(n.state))
    cluster.down()
    assert undone == []
    assert cluster.holder() == first


def test_a_pid_file_names_its_process_only_while_that_very_process_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[bytes]
) -> None:
    cluster = cluster_script(monkeypatch, tmp_path / "claim", tmp_path / "state")
    pid_file = tmp_path / "etcd.pid"
    started = cluster.start_time(sleeper.pid)
    pid_file.write_text(f"{sleeper.pid} {started}")
    assert cluster.alive(pid_file) == sleeper.pid
    pid_file.write_text(f"{sleeper.pid} {int(started) - 1}")  # the pid, reused by another
    assert cluster.alive(pid_file) is None
    pid_file.write_text(f"{sleeper.pid} {started}")
    sleeper.kill()
    sleeper.wait()
    assert cluster.alive(pid_file) is None
