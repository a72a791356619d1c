"""Optional API keys: ``Authorization: Bearer <key>`` on /predict* and /model when keys are set."""

from __future__ import annotations

import hmac

from fastapi import Request

from readmit_api.errors import ApiError


def require_key(request: Request) -> None:
    # Called at the top of each protected route rather than as a FastAPI dependency: dependency
    # resolution cost ~80 µs a request (a sync one also hops to a worker thread).
    keys: tuple[bytes, ...] = request.app.state.settings.keys
    if not keys:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    token = presented.strip().encode()
    # Compare against every key, without stopping early: the time taken says nothing.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    if scheme.lower() != "bearer" or not matched:
        raise ApiError(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
