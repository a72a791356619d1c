"""The api, as the page sees it: every failure becomes one readable sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from readmit_core.settings import CONNECT_RETRIES
from readmit_ui.settings import UiSettings


class ApiCallError(Exception):
    """Something a clinician can read: what went wrong and what to do."""


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    api_key: str | None = None
    timeout_s: float = 10.0
    # The signed-in clinician, sent as X-Readmit-User for the api's audit record (the api
    # trusts it from this page's key only).
    user: str | None = None

    @classmethod
    def from_settings(cls, s: UiSettings, user: str | None) -> ApiClient:
        return cls(s.api_url.rstrip("/"), s.reveal(s.api_key), s.api_timeout_s, user)

    def predict(self, record: dict[str, Any], explain_top: int = 0) -> dict[str, Any]:
        """The risk; with ``explain_top`` > 0, also that many factors behind it."""
        path = f"/predict?explain=true&top={explain_top}" if explain_top else "/predict"
        return self._call("POST", path, record)

    def predict_batch(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/predict/batch", {"encounters": records})

    def model(self) -> dict[str, Any]:
        return self._call("GET", "/model")

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if self.user:
            headers["X-Readmit-User"] = self.user
        try:
            # Only refused connections are retried (CONNECT_RETRIES says why and how long).
            transport = httpx.HTTPTransport(retries=CONNECT_RETRIES)
            with httpx.Client(transport=transport) as client:
                r = client.request(
                    method, self.base_url + path, json=body, headers=headers, timeout=self.timeout_s
                )
        except httpx.TimeoutException:
            raise ApiCallError(
                f"The prediction service at {self.base_url} did not answer within "
                f"{self.timeout_s:.0f} s. It may be overloaded; try again."
            ) from None
        except httpx.HTTPError:
            raise ApiCallError(
                f"The prediction service at {self.base_url} cannot be reached. "
                "It may be restarting; try again in a minute, or tell IT."
            ) from None
        if r.status_code == 200:
            return r.json()
        detail = _detail(r)
        if r.status_code == 503:
            raise ApiCallError(
                f"The prediction service has no model loaded yet ({detail}). Try again in a minute."
            )
        if r.status_code == 401:
            raise ApiCallError(
                "The prediction service refused this page's API key (READMIT_API_KEY). Tell IT."
            )
        if r.status_code == 422:
            raise ApiCallError(
                "Some values were not accepted: "
                + "; ".join(f"{e['field']}: {e['message']}" for e in r.json().get("errors", []))
            )
        raise ApiCallError(f"The prediction service answered {r.status_code}: {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.reason_phrase))
    except ValueError:
        return response.reason_phrase
