"""The registry's backup, restore and migration (``readmit-registry``): a backup taken while a
real MLflow server serves and registers, restored into a new store a new server serves, a
corrupt or partial backup refused with the file that fails, and a registry made by an older
MLflow release migrated after a backup."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.project import ROOT, VENV_BIN, require
from support.servers import API_MODEL, client, start_mlflow, stop

from readmit_trainer.registry_backup import BackupError, read_backup, schema_head, write_backup

REGISTRY = VENV_BIN / "readmit-registry"
UV = ROOT / ".tools/uv/bin/uv"
# The last 2.x release: a registry one major release behind today's MLflow (with the
# SQLAlchemy of its day: it imports a pool 2.1 removed).
OLD_MLFLOW = ("mlflow==2.22.5", "sqlalchemy<2.1")


def registry(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REGISTRY), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def test_a_backup_taken_while_the_registry_serves_and_registers_is_whole(
    mlflow_store: Path, mlflow_server: str, api_model: dict[str, Any], tmp_path: Path
) -> None:
    """Alias checks (the api's) and registrations (a training run's) go on during three backups
    and none fails; each backup verifies and lists the model's versions and alias."""
    c = client(mlflow_server)
    source = f"models:/{API_MODEL}/{api_model['version']}"
    failures: list[str] = []
    registered: list[str] = []
    done = threading.Event()

    def work() -> None:
        while not done.is_set():
            try:
                c.get_model_version_by_alias(API_MODEL, "production")
                registered.append(c.copy_model_version(source, "registered-during-backup").version)
            except Exception as exc:  # every failure is the test's finding
                failures.append(repr(exc))

    worker = threading.Thread(target=work)
    worker.start()
    took = []
    try:
        while len(registered) < 2:  # the load is on before the first backup starts
            time.sleep(0.1)
        for i in range(3):
            started = time.monotonic()
            out = registry("backup", "--store", mlflow_store, "--to", tmp_path / f"{i}.tar")
            took.append(time.monotonic() - started)
            assert out.returncode == 0, out.stderr
    finally:
        done.set()
        worker.join(60)
    assert failures == []
    assert len(registered) >= 5
    for i in range(3):
        with (tmp_path / f"{i}.tar").open("rb") as f:
            manifest = read_backup(f, None)
        model = manifest["models"][API_MODEL]
        assert model["aliases"]["production"] == api_model["version"]
        assert api_model["version"] in [v["version"] for v in model["versions"]]
        assert manifest["schema_revision"] == schema_head()
    assert registry("verify", tmp_path / "2.tar").returncode == 0
    size = (tmp_path / "2.tar").stat().st_size
    print(
        f"backup of the test registry: {size / 1e6:.1f} MB, {max(took):.1f} s at most "
        f"while {len(registered)} versions were registered"
    )


def test_a_restore_brings_a_new_store_to_the_backed_up_state(
    mlflow_store: Path, mlflow_server: str, api_model: dict[str, Any], tmp_path: Path
) -> None:
    """Staged, then swapped in before a new server starts (the replaced registry kept): the
    same versions, alias, run metrics and files; a new version continues the numbers."""
    backup = tmp_path / "registry.tar"
    assert registry("backup", "--store", mlflow_store, "--to", backup).returncode == 0
    store = tmp_path / "restored"
    store.mkdir()
    (store / "mlflow.db").write_bytes(b"the registry this restore replaces")
    staged = registry("restore", "--store", store, "--from", backup)
    assert staged.returncode == 0, staged.stderr
    assert (store / "mlflow.db").read_bytes() == b"the registry this restore replaces"
    assert registry("prepare", "--store", store).returncode == 0
    assert [p.name for p in store.glob("replaced-*/mlflow.db")] == ["mlflow.db"]
    assert not (store / "restore-pending").exists()
    proc, url = start_mlflow(store)
    try:
        old, new = client(mlflow_server), client(url)
        version = api_model["version"]
        assert new.get_model_version_by_alias(API_MODEL, "production").version == version
        theirs = new.get_model_version(API_MODEL, version)
        ours = old.get_model_version(API_MODEL, version)
        assert (theirs.run_id, theirs.source) == (ours.run_id, ours.source)
        assert new.get_run(ours.run_id).data.metrics == old.get_run(ours.run_id).data.metrics
        listed = sorted(a.path for a in new.list_artifacts(ours.run_id))
        assert listed == sorted(a.path for a in old.list_artifacts(ours.run_id))
        assert listed
        names = [m.name for m in new.search_registered_models()]
        highest = max(int(v.version) for v in new.search_model_versions(f"name='{API_MODEL}'"))
        again = new.copy_model_version(f"models:/{API_MODEL}/{version}", API_MODEL)
        assert int(again.version) == highest + 1
        assert API_MODEL in names
    finally:
        stop(proc)


def synthetic_store(root: Path) -> Path:
    """A store with the tables a manifest reads and two artifact files (no server needed)."""
    root.mkdir()
    with sqlite3.connect(root / "mlflow.db") as con:
        con.executescript("""
            CREATE TABLE alembic_version (version_num TEXT);
            INSERT INTO alembic_version VALUES ('abc123');
            CREATE TABLE model_versions (name TEXT, version INT, run_id TEXT, status TEXT);
            INSERT INTO model_versions VALUES ('m', 1, 'r1', 'READY'), ('m', 2, 'r2', 'READY');
            CREATE TABLE registered_model_aliases (name TEXT, alias TEXT, version INT);
            INSERT INTO registered_model_aliases VALUES ('m', 'production', 2);
        """)
    for name, body in (
        ("1/r2/artifacts/model/model.lgb", b"trees" * 1000),
        ("1/r2/artifacts/model_card.md", b"# card\n"),
    ):
        (root / "artifacts" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "artifacts" / name).write_bytes(body)
    return root


def rewritten(backup: bytes, change: Any, extra: str = "") -> bytes:
    """The backup's members through ``change(name, data)`` (None drops a member), and an
    ``extra`` member first."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(backup)) as src,
        tarfile.open(fileobj=out, mode="w") as dst,
    ):
        if extra:
            dst.addfile(tarfile.TarInfo(extra), io.BytesIO(b""))
        for member in src:
            data = change(member.name, src.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
    return out.getvalue()


def test_a_corrupt_or_partial_backup_is_refused_naming_the_file(tmp_path: Path) -> None:
    store = synthetic_store(tmp_path / "store")
    whole = io.BytesIO()
    manifest = write_backup(store, whole)
    assert manifest["models"] == {
        "m": {
            "versions": [
                {"version": "1", "run_id": "r1", "status": "READY"},
                {"version": "2", "run_id": "r2", "status": "READY"},
            ],
            "aliases": {"production": "2"},
        }
    }
    assert sorted(manifest["files"]) == [
        "artifacts/1/r2/artifacts/model/model.lgb",
        "artifacts/1/r2/artifacts/model_card.md",
        "mlflow.db",
    ]
    card = "artifacts/1/r2/artifacts/model_card.md"
    flipped = rewritten(
        whole.getvalue(), lambda n, d: d.replace(b"card", b"cart") if n == card else d
    )
    dropped = rewritten(whole.getvalue(), lambda n, d: None if n == card else d)
    with tarfile.open(fileobj=io.BytesIO(whole.getvalue())) as t:
        assert t.getnames()[-1] == "manifest.json"  # written last: a cut stream lacks it
    cases = {
        f"{card}: its SHA-256 or size is not the manifest's (corrupt)": flipped,
        f"{card}: in the manifest but not in the backup (partial)": dropped,
        "artifacts/planted: in the backup but not in its manifest": rewritten(
            whole.getvalue(), lambda n, d: d, extra="artifacts/planted"
        ),
        "manifest.json: missing, so the backup is partial": rewritten(
            whole.getvalue(), lambda n, d: None if n == "manifest.json" else d
        ),
        "partial or corrupt": whole.getvalue()[: len(whole.getvalue()) // 2],
    }
    target = synthetic_store(tmp_path / "target")
    before = (target / "mlflow.db").read_bytes()
    for reason, data in cases.items():
        (tmp_path / "bad.tar").write_bytes(data)
        out = registry("restore", "--store", target, "--from", tmp_path / "bad.tar")
        assert out.returncode == 1
        assert reason in out.stderr, out.stderr
        assert not (target / "restore-pending").exists()
        assert not (target / "restore-pending.partial").exists()
        assert (target / "mlflow.db").read_bytes() == before
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as t:
        t.addfile(tarfile.TarInfo("../outside"), io.BytesIO(b""))
    with pytest.raises(BackupError, match="not a file a backup holds"):
        read_backup(io.BytesIO(evil.getvalue()), tmp_path / "x")
    assert not (tmp_path / "outside").exists()


OLD_REGISTRY = """
import sys
from pathlib import Path
from mlflow import MlflowClient
store = Path(sys.argv[1])
uri = f"sqlite:///{store / 'mlflow.db'}"
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
exp = c.create_experiment("old", artifact_location=(store / "artifacts" / "1").as_uri())
run = c.create_run(exp)
c.log_metric(run.info.run_id, "roc_auc", 0.68)
c.log_text(run.info.run_id, "# the old release's card", "model_card.md")
c.set_terminated(run.info.run_id)
c.create_registered_model("old-model")
v = c.create_model_version("old-model", run.info.artifact_uri, run.info.run_id)
c.set_registered_model_alias("old-model", "production", v.version)
print(run.info.run_id)
"""


@pytest.mark.slow  # a scratch venv with the old release
def test_a_registry_an_older_mlflow_made_is_migrated_after_a_backup(tmp_path: Path) -> None:
    """MLflow 2.22 in a scratch venv makes a registry; ``prepare`` backs it up and migrates it,
    and today's server serves it. (Today's server alone would migrate this one in place with
    no backup, as its tables are missing; one with all tables at an older revision it refuses
    to open: "out-of-date database schema".)"""
    require(UV.exists(), f"{UV} is missing: run `make install`")
    venv = tmp_path / "old-mlflow"
    for cmd in (
        [str(UV), "venv", "--quiet", "--python", "python3.11", str(venv)],
        [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin/python"), *OLD_MLFLOW],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    store = tmp_path / "store"
    store.mkdir()
    made = subprocess.run(
        [str(venv / "bin/python"), "-c", OLD_REGISTRY, str(store)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    run_id = made.stdout.strip().splitlines()[-1]
    with sqlite3.connect(store / "mlflow.db") as con:
        old_revision = con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert old_revision != schema_head()
    prepared = registry("prepare", "--store", store)
    assert prepared.returncode == 0, prepared.stderr
    backups = list((store / "backups").glob(f"pre-upgrade-{old_revision}-*.tar"))
    assert len(backups) == 1
    with backups[0].open("rb") as f:
        assert read_backup(f, None)["schema_revision"] == old_revision
    with sqlite3.connect(store / "mlflow.db") as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == schema_head()
    assert registry("prepare", "--store", store).returncode == 0  # nothing more to do
    assert len(list((store / "backups").glob("*.tar"))) == 1
    proc, url = start_mlflow(store)
    try:
        c = client(url)
        version = c.get_model_version_by_alias("old-model", "production")
        assert version.run_id == run_id
        assert c.get_run(run_id).data.metrics == {"roc_auc": 0.68}
        card = Path(c.download_artifacts(run_id, "model_card.md", str(tmp_path)))
        assert card.read_text() == "# the old release's card"
    finally:
        stop(proc)
    print(json.dumps({"migrated": f"{old_revision} -> {schema_head()}", "from": OLD_MLFLOW[0]}))
