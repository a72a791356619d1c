"""Progress lines on stderr (stdout is kept for the final JSON summary)."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(
        f"[readmit-train {time.monotonic() - _STARTED:6.1f}s] {message}",
        file=sys.stderr,
        flush=True,
    )
