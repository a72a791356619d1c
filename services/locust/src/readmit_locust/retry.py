"""The Locust users' retry rule: the ui's, in urllib3's terms."""

from __future__ import annotations

from urllib3.util import Retry

from readmit_core.settings import CONNECT_RETRIES


def connect_retry() -> Retry:
    """Refused connections only (readmit_core.settings.CONNECT_RETRIES). urllib3 waits
    factor * 2**(n-1) before retry n > 1, so 0.25 gives httpcore's 0, 0.5, 1, 2 s; status codes
    and reads are not retried."""
    return Retry(
        total=CONNECT_RETRIES,
        connect=CONNECT_RETRIES,
        read=False,
        status=0,
        other=0,
        redirect=False,
        backoff_factor=0.25,
    )
