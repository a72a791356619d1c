"""The audit trail: one JSON line per risk served, on stdout under the ``readmit.audit`` logger.

HIPAA's audit controls (45 CFR 164.312(b)) ask who saw what. Each line says when, which request,
who asked (the api key's client, and the signed-in user when the ui asked), for which encounter
(the caller's ``encounter_id``, when it sent one), which model version answered, the risk, its
band and whether it was explained, and nothing else of the patient. The other logs go to stderr,
so the cluster's log pipeline can route and keep this stream apart (docs/api.md, "Audit records").

The user comes from the ``X-Readmit-User`` header, which only the clients named in
``READMIT_USER_HEADER_CLIENTS`` (the ui) may send: the ui signs clinicians in and holds its key
server-side, so a request that names a user with that key was made by the ui for that user.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request

from readmit_api.errors import ApiError
from readmit_core.schema import ENCOUNTER_ID

LOGGER = "readmit.audit"
USER_HEADER = "x-readmit-user"
# What an IdP names a user by (an e-mail, a subject id, a login name): printable, bounded.
_USER = re.compile(r"[\x21-\x7e]{1,128}")
# Every key an audit line may hold: the test checks that no other (no patient field) appears.
KEYS = (
    "time",
    "logger",
    "event",
    "request_id",
    "route",
    "client",
    "user",
    "index",
    "encounter_id",
    "model_name",
    "model_version",
    "risk",
    "band",
    "explained",
)

log = logging.getLogger(LOGGER)


class _Lines(logging.Formatter):
    """The message is already the JSON lines: written as they are."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def configure() -> None:
    """Audit lines to stdout, apart from the other logs (stderr), always at INFO."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Lines())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def caller_user(request: Request, client: str | None, trusted: frozenset[str]) -> str | None:
    """The signed-in user the request names, if its client may name one; 403 if it may not.

    Without api keys (a developer's local stack) nobody is authenticated and the header is
    recorded as sent."""
    user = request.headers.get(USER_HEADER)
    if user is None:
        return None
    if client is not None and client not in trusted:
        raise ApiError(403, f"client {client!r} may not name a user ({USER_HEADER})")
    if not _USER.fullmatch(user):
        raise ApiError(400, f"{USER_HEADER}: 1 to 128 printable characters, no spaces")
    return user


@dataclass(frozen=True)
class Caller:
    """Who asked, on which route; ``request_id`` is also the response's X-Request-ID."""

    route: str
    client: str | None
    user: str | None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def record(
    caller: Caller,
    records: list[dict[str, Any]],
    predictions: list[dict[str, Any]],
    model: dict[str, Any],
    explained: bool,
) -> None:
    """One line per prediction, written in one call (a 1,000-encounter batch: one write)."""
    head = {
        "time": datetime.now(UTC).isoformat(),
        "logger": LOGGER,
        "event": "risk_served",
        "request_id": caller.request_id,
        "route": caller.route,
        "client": caller.client,
        "user": caller.user,
    }
    lines = [
        orjson.dumps(
            {
                **head,
                "index": i,
                "encounter_id": r.get(ENCOUNTER_ID),
                "model_name": model["name"],
                "model_version": model["version"],
                "risk": p["readmission_risk"],
                "band": p["risk_band"],
                "explained": explained,
            }
        )
        for i, (r, p) in enumerate(zip(records, predictions, strict=True))
    ]
    log.info(b"\n".join(lines).decode())
