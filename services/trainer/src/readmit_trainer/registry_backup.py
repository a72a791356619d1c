"""``readmit-registry``: back up, verify and restore the registry's store, and prepare it for the
server (a staged restore applied, the schema migrated after a backup).

The store is one directory: MLflow's sqlite database ``mlflow.db`` and its proxied artifacts in
``artifacts/`` (the in-cluster server's PVC, mounted at ``/mlflow``). A backup is one tar
stream: the database copied with SQLite's online backup (a consistent snapshot while the server
writes), then every artifact, then ``manifest.json`` (MLflow's version, the schema revision, the
registered models' versions and aliases, and the SHA-256 and size of every file). The users'
database (``basic_auth.db``) is not in it: the server recreates its users and grants from the
release's Secrets at every start.

A restore never writes over a live database: ``restore`` verifies the backup while it stages it
in ``restore-pending/`` beside the store, and ``prepare``, run before the server starts (the
MLflow pod's init container), moves the replaced files to ``replaced-<time>/`` and the staged
ones in. ``prepare`` then brings the database to the installed MLflow's schema with ``mlflow db
upgrade``, after a backup to ``backups/pre-upgrade-<revision>-<time>.tar``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

DB = "mlflow.db"
ARTIFACTS = "artifacts"
MANIFEST = "manifest.json"
PENDING = "restore-pending"
BACKUPS = "backups"
FORMAT = 1
CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup that cannot be made, or one that is refused (the message names the file)."""


def say(message: str) -> None:
    print(f"readmit-registry: {message}", file=sys.stderr, flush=True)


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


def _migrations() -> ScriptDirectory:
    """The installed MLflow's schema migrations (alembic's script directory)."""
    import mlflow
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(mlflow.__file__).parent / "store" / "db_migrations"))


def schema_head() -> str:
    """The schema revision the installed MLflow's server expects."""
    return str(_migrations().get_current_head())


def known_revision(revision: str) -> bool:
    try:
        return _migrations().get_revision(revision) is not None
    except Exception:  # alembic's own error for a revision it has never heard of
        return False


def registry_contents(db: Path) -> dict[str, Any]:
    """The schema revision and each registered model's versions and aliases, read from ``db``."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        revision = con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        models: dict[str, dict[str, Any]] = {}
        for name, version, run_id, status in con.execute(
            "SELECT name, version, run_id, status FROM model_versions ORDER BY name, version"
        ):
            entry = models.setdefault(name, {"versions": [], "aliases": {}})
            entry["versions"].append({"version": str(version), "run_id": run_id, "status": status})
        for name, alias, version in con.execute(
            "SELECT name, alias, version FROM registered_model_aliases ORDER BY name, alias"
        ):
            entry = models.setdefault(name, {"versions": [], "aliases": {}})
            entry["aliases"][alias] = str(version)
    return {"schema_revision": revision, "models": models}


def snapshot(db: Path, into: Path) -> None:
    """``db`` copied with SQLite's online backup: one read transaction, so the copy is the
    database at one instant even while the server writes (its writers wait milliseconds)."""
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(into)
    try:
        source.backup(target)
        check = target.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"{db}: the copy fails SQLite's integrity check: {check}")
    finally:
        target.close()
        source.close()


class _Hashing(io.RawIOBase):
    """Reads exactly ``size`` bytes of ``raw`` and hashes what it read."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self.raw, self.left, self.sha = raw, size, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.raw.read(n)
        self.left -= len(data)
        self.sha.update(data)
        return data


def _add(tar: tarfile.TarFile, path: Path, name: str, files: dict[str, dict[str, Any]]) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = path.stat().st_size, int(path.stat().st_mtime), 0o640
    with path.open("rb") as raw:
        reader = _Hashing(raw, info.size)
        tar.addfile(info, reader)
    if reader.left:
        raise BackupError(f"{name}: shrank while it was read")
    files[name] = {"sha256": reader.sha.hexdigest(), "bytes": info.size}


def write_backup(store: Path, out: IO[bytes]) -> dict[str, Any]:
    """The backup of ``store`` as a tar stream on ``out``; returns its manifest."""
    db = store / DB
    if not db.is_file():
        raise BackupError(f"{db}: no registry database to back up")
    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="readmit-backup-") as tmp:
        copy = Path(tmp) / DB
        snapshot(db, copy)
        manifest = {
            "format": FORMAT,
            "created": stamp(),
            "mlflow_version": mlflow_version(),
            **registry_contents(copy),
            "files": files,
        }
        with tarfile.open(fileobj=out, mode="w|") as tar:
            _add(tar, copy, DB, files)
            # After the database: every file a version it lists needs was written before it.
            for path in sorted((store / ARTIFACTS).rglob("*")):
                if path.is_file():
                    _add(tar, path, path.relative_to(store).as_posix(), files)
            body = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(time.time()), 0o640
            tar.addfile(info, io.BytesIO(body))
    return manifest


def read_backup(source: IO[bytes], into: Path | None) -> dict[str, Any]:
    """Checks a backup stream against its manifest (extracting it into ``into`` if given);
    returns the manifest, or raises BackupError naming the first file that fails."""
    seen: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] | None = None
    try:
        with tarfile.open(fileobj=source, mode="r|") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or member.name.startswith("/") or ".." in parts:
                    raise BackupError(f"{member.name}: not a file a backup holds")
                data = tar.extractfile(member)
                assert data is not None  # a regular file
                if member.name == MANIFEST:
                    manifest = json.loads(data.read())
                    continue
                sha = hashlib.sha256()
                with _sink(into, member.name) as sink:
                    while chunk := data.read(CHUNK):
                        sha.update(chunk)
                        if sink is not None:
                            sink.write(chunk)
                seen[member.name] = {"sha256": sha.hexdigest(), "bytes": member.size}
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BackupError(
            f"the backup is not a whole tar stream ({exc}): partial or corrupt"
        ) from exc
    if manifest is None:
        raise BackupError(f"{MANIFEST}: missing, so the backup is partial")
    listed = manifest.get("files", {})
    for name, want in sorted(listed.items()):
        got = seen.get(name)
        if got is None:
            raise BackupError(f"{name}: in the manifest but not in the backup (partial)")
        if got != want:
            raise BackupError(f"{name}: its SHA-256 or size is not the manifest's (corrupt)")
    extra = sorted(set(seen) - set(listed))
    if extra:
        raise BackupError(f"{extra[0]}: in the backup but not in its manifest")
    if DB not in listed:
        raise BackupError(f"{DB}: the backup holds no registry database")
    return manifest


@contextmanager
def _sink(into: Path | None, name: str) -> Iterator[IO[bytes] | None]:
    if into is None:  # checked, not kept
        yield None
        return
    path = into / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        yield out


def stage_restore(store: Path, source: IO[bytes]) -> dict[str, Any]:
    """Verifies the backup while it stages it in ``store/restore-pending`` (applied by
    ``prepare`` before the server's next start); nothing is staged if it fails."""
    partial = store / f"{PENDING}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        manifest = read_backup(source, partial)
    except BackupError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(store / PENDING, ignore_errors=True)
    partial.rename(store / PENDING)
    return manifest


def apply_pending(store: Path) -> bool:
    """Swaps a staged restore in (the replaced files kept in ``replaced-<time>/``)."""
    pending = store / PENDING
    if not pending.is_dir():
        return False
    replaced = store / f"replaced-{stamp()}"
    for name in (DB, ARTIFACTS):
        if (store / name).exists():
            replaced.mkdir(exist_ok=True)
            (store / name).rename(replaced / name)
    for name in (DB, ARTIFACTS):
        if (pending / name).exists():
            (pending / name).rename(store / name)
    shutil.rmtree(pending)
    kept = f"; the replaced files are in {replaced}" if replaced.exists() else ""
    say(f"restored the staged backup{kept}")
    return True


def migrate(store: Path) -> str | None:
    """Brings ``mlflow.db`` to the installed MLflow's schema after a backup; returns the backup's
    path, or None when there was nothing to do."""
    db = store / DB
    if not db.is_file():
        return None
    current = registry_contents(db)["schema_revision"]
    head = schema_head()
    if current == head:
        return None
    if not known_revision(current):
        raise BackupError(
            f"{db}: schema revision {current} is newer than MLflow "
            f"{mlflow_version()} knows (its head is {head}): use that MLflow's "
            "image, or restore a backup made with this one"
        )
    backup = store / BACKUPS / f"pre-upgrade-{current}-{stamp()}.tar"
    write_file_backup(store, backup)
    say(f"schema {current} -> {head}: backed up to {backup}, now `mlflow db upgrade`")
    mlflow = Path(sys.executable).with_name("mlflow")
    done = subprocess.run(
        [str(mlflow), "db", "upgrade", f"sqlite:///{db}"],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(
            f"mlflow db upgrade failed (the backup is {backup}): {done.stderr.strip()[-2000:]}"
        )
    return str(backup)


def write_file_backup(store: Path, path: Path, keep: int = 0) -> dict[str, Any]:
    """A backup written to ``path`` (whole or not at all), keeping the newest ``keep`` backups
    beside it (0: all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        manifest = write_backup(store, out)
    partial.rename(path)
    if keep:
        for old in sorted(path.parent.glob("readmit-registry-*.tar"))[:-keep]:
            old.unlink()
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    files = manifest["files"]
    size = sum(f["bytes"] for f in files.values())
    models = ", ".join(
        f"{n} v{len(m['versions'])} {m['aliases']}" for n, m in manifest["models"].items()
    )
    return (
        f"{len(files)} files, {size / 1e6:.1f} MB, MLflow {manifest['mlflow_version']} "
        f"schema {manifest['schema_revision']}; models: {models or 'none'}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="readmit-registry", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backup", help="a backup of the store: to a file, a directory, or stdout")
    b.add_argument("--store", type=Path, required=True)
    where = b.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", help="a file, or - for stdout")
    where.add_argument("--into", type=Path, help="a directory: readmit-registry-<time>.tar in it")
    b.add_argument("--keep", type=int, default=0, help="with --into: keep the newest N (0: all)")
    v = sub.add_parser("verify", help="check a backup against its manifest")
    v.add_argument("backup", help="a file, or - for stdin")
    r = sub.add_parser("restore", help="verify and stage a backup for the server's next start")
    r.add_argument("--store", type=Path, required=True)
    r.add_argument("--from", dest="source", required=True, help="a file, or - for stdin")
    pr = sub.add_parser(
        "prepare",
        help="before the server starts: apply a staged restore, migrate the schema after a backup",
    )
    pr.add_argument("--store", type=Path, required=True)
    return p.parse_args(argv)


@contextmanager
def _reading(name: str) -> Iterator[IO[bytes]]:
    """The file ``name``, or standard input for ``-``."""
    if name == "-":
        yield sys.stdin.buffer
        return
    with open(name, "rb") as f:
        yield f


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "backup" and args.into:
            target = args.into / f"readmit-registry-{stamp()}.tar"
            manifest = write_file_backup(args.store, target, args.keep)
            say(f"backed up to {target}: {summary(manifest)}")
        elif args.command == "backup":
            if args.to == "-":
                manifest = write_backup(args.store, sys.stdout.buffer)
            else:
                manifest = write_file_backup(args.store, Path(args.to))
            say(f"backed up: {summary(manifest)}")
        elif args.command == "verify":
            with _reading(args.backup) as source:
                say(f"verified: {summary(read_backup(source, None))}")
        elif args.command == "restore":
            with _reading(args.source) as source:
                manifest = stage_restore(args.store, source)
            say(
                f"verified and staged: {summary(manifest)}; it replaces the registry at the "
                "server's next start"
            )
        else:
            apply_pending(args.store)
            migrate(args.store)
    except (BackupError, OSError, sqlite3.Error) as exc:
        sys.exit(f"readmit-registry: {args.command} refused: {exc}")
    say(f"{args.command} took {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
