"""API keys, one per client: ``Authorization: Bearer <key>`` on /predict* and /model.

Each client (the ui, Locust, a person, a script) has a key id and its own key(s), so any one of
them can be rotated or revoked alone, and an answer can say which client asked. Keys come from
READMIT_API_KEYS (``id=key,...``) or from a directory (READMIT_API_KEYS_DIR, a mounted
Secret: each file's name is a key id, its lines that client's keys; two lines while a key is
rotated). The directory is read again every READMIT_API_KEYS_RELOAD_S, so a changed Secret
reaches a running pod without a restart (the kubelet updates the mounted files).

Fail closed: keys that were asked for but none usable (an empty file, ``" , "``, a key shorter
than MIN_KEY_LENGTH) stop the start with the reason; at run time a client whose entry no longer
holds a usable key is refused, never let in.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from pathlib import Path

from fastapi import Request

from readmit_api.errors import ApiError
from readmit_api.settings import Settings

log = logging.getLogger("readmit.auth")

MIN_KEY_LENGTH = 16
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: what a Bearer header carries


class KeyConfigError(ValueError):
    """Keys that were asked for cannot be used, and why (never the key itself)."""


Ring = tuple[tuple[bytes, str], ...]  # (key, key id)


def ring_of(entries: dict[str, list[str]]) -> tuple[Ring, list[str]]:
    """The usable keys, and a sentence for each entry that is not usable."""
    ring: list[tuple[bytes, str]] = []
    problems = []
    for key_id, keys in sorted(entries.items()):
        if not KEY_ID.fullmatch(key_id):
            problems.append(f"key id {key_id[:64]!r} is not a name (letters, digits, . _ -)")
            continue
        usable = [k for k in keys if KEY.fullmatch(k) and len(k) >= MIN_KEY_LENGTH]
        if len(usable) != len(keys) or not keys:
            problems.append(
                f"client {key_id!r} has a key that is empty, shorter than "
                f"{MIN_KEY_LENGTH} characters or not printable ASCII"
            )
        ring += [(k.encode(), key_id) for k in usable]
    return tuple(ring), problems


def from_pairs(text: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        key_id, _, key = pair.strip().partition("=")
        entries.setdefault(key_id.strip(), []).append(key.strip())
    return entries


def from_dir(directory: Path) -> dict[str, list[str]]:
    """A mounted Secret: one file per client (the kubelet's own ``..data`` entries skipped)."""
    return {
        path.name: [line.strip() for line in path.read_text().splitlines() if line.strip()]
        for path in directory.iterdir()
        if not path.name.startswith(".") and path.is_file()
    }


class ApiKeys:
    """The current keys; ``check`` names the client a presented key belongs to."""

    def __init__(self, settings: Settings) -> None:
        self.directory = settings.api_keys_dir
        self.reload_s = settings.api_keys_reload_s
        self.enabled = self.directory is not None or settings.api_keys is not None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.directory is not None:
            where = f"READMIT_API_KEYS_DIR={self.directory}"
            try:
                entries = from_dir(self.directory)
            except OSError as exc:
                raise KeyConfigError(f"{where} cannot be read: {exc.strerror}") from None
        else:
            where = "READMIT_API_KEYS"
            entries = from_pairs(settings.reveal(settings.api_keys) or "")
        self.ring, problems = ring_of(entries)
        self._seen = entries
        if self.enabled and (problems or not self.ring):
            reasons = "; ".join(problems) or "it holds no key"
            raise KeyConfigError(
                f"{where}: no API key can be used as given ({reasons}); refusing "
                "to start with authentication off"
            )
        if self.enabled:
            log.info("api keys loaded", extra={"clients": sorted({i for _, i in self.ring})})
        else:
            log.warning("no API keys: /predict and /model are open to anyone who reaches the api")

    def check(self, presented: bytes) -> str | None:
        """The key id of the presented key, or None. Every key is compared, matched or not: the
        time taken says nothing about which, or whether, one matched."""
        found = None
        for key, key_id in self.ring:
            if hmac.compare_digest(presented, key):
                found = key_id
        return found

    def start(self) -> None:
        if self.directory is not None:
            self._thread = threading.Thread(target=self._watch, name="api-keys", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        assert self.directory is not None
        while not self._stop.wait(self.reload_s):
            try:
                entries = from_dir(self.directory)
            except OSError:  # mid-update by the kubelet: read it again next time
                continue
            if entries == self._seen:
                continue
            self._seen = entries
            self.ring, problems = ring_of(entries)
            clients = sorted({i for _, i in self.ring})
            if problems or not self.ring:
                log.error(
                    "api keys reloaded with entries refused",
                    extra={"clients": clients, "problems": problems or ["no key at all"]},
                )
            else:
                log.info("api keys reloaded", extra={"clients": clients})


def require_key(request: Request) -> str | None:
    """The calling client's key id (None when keys are off); 401 without a valid key.

    Called at the top of each protected route rather than as a FastAPI dependency: dependency
    resolution cost ~80 µs a request (a sync one also hops to a worker thread)."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled:
        return None
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    key_id = keys.check(presented.strip().encode())
    if scheme.lower() != "bearer" or key_id is None:
        raise ApiError(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
    return key_id
