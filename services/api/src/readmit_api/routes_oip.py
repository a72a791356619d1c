"""Open Inference Protocol (KServe V2) routes: thin; the protocol is ``oip.py``, its error body
``oip.error`` (chosen by path in app.error_body). Health is open like /health and /ready;
metadata and inference need the API key, as /model and /predict do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from readmit_api import bodies, oip
from readmit_api.auth import require_key
from readmit_api.errors import json_response
from readmit_api.model_store import LoadedModel
from readmit_api.routes import caller

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe V2)"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OIP's error body for each status a route answers with."""
    said = {
        400: "Not an inference request of this model (input, datatype, shape, binary data)",
        401: "Missing or invalid API key (when keys are set)",
        403: "This client may not name a user (X-Readmit-User)",
        404: "Not the served model or version",
        413: "Body or rows past the limits",
        415: "Content type is not JSON or octet-stream",
        422: "Invalid values: each input and row",
        503: "No model loaded yet",
    }
    return {s: {"model": bodies.OipError, "description": said[s]} for s in statuses}


_MODEL = _errors(401, 404, 503)
Handler = Callable[..., Awaitable[Response]]


@router.get("/health/live", summary="Liveness", response_model=bodies.OipLive)
async def live() -> Response:
    return json_response({"live": True})


@router.get(
    "/health/ready",
    summary="Readiness: a model is loaded (503 while not)",
    response_model=bodies.OipReady,
    responses={503: {"model": bodies.OipReady, "description": "Not ready"}},
)
async def ready(request: Request) -> Response:
    up = request.app.state.store.current is not None and not request.app.state.draining.is_set()
    return json_response({"ready": up}, 200 if up else 503)


@router.get("", summary="Server metadata", response_model=bodies.OipServer, responses=_errors(401))
async def server(request: Request) -> Response:
    require_key(request)
    return json_response(oip.server_metadata(request.app.version))


def _served(request: Request, name: str, version: str | None) -> LoadedModel:
    """The served model, if the path names it (else 404; 503 while none is loaded)."""
    loaded = request.app.state.predictor.require_model()
    oip.check_model(loaded, name, version)
    return loaded


def _model_route(
    tail: str, summary: str, body: type, method: str = "get", **also: Any
) -> Callable[[Handler], Handler]:
    """/models/{name}<tail> and /models/{name}/versions/{version}<tail>: one handler (``also``:
    more of the route's OpenAPI, e.g. ``responses``, the model routes' errors by default)."""
    also.setdefault("responses", _MODEL)

    def register(handler: Handler) -> Handler:
        for path, said in (("", summary), ("/versions/{version}", f"{summary} (a version)")):
            handler = router.api_route(
                f"/models/{{name}}{path}{tail}",
                methods=[method.upper()],
                summary=said,
                response_model=body,
                **also,
            )(handler)
        return handler

    return register


@_model_route("", "Model metadata: one input tensor per encounter field", bodies.OipModel)
async def model(request: Request, name: str, version: str | None = None) -> Response:
    require_key(request)
    return json_response(oip.model_metadata(_served(request, name, version)))


@_model_route("/ready", "Model readiness", bodies.OipModelReady)
async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
    require_key(request)
    _served(request, name, version)
    return json_response({"name": name, "ready": True})


_INFER = {
    **_errors(400, 401, 403, 404, 413, 415, 422, 503),
    200: {
        "content": {oip.BINARY: {"schema": {"type": "string", "format": "binary"}}},
        "description": "The outputs: JSON, or the binary extension's layout",
    },
}


@_model_route(
    "/infer",
    "Inference: one row per encounter",
    bodies.OipResponse,
    "post",
    responses=_INFER,
    openapi_extra=oip.OPENAPI_BODY,
)
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    who = caller(request, "/v2/infer")  # the key (401) and the user it names (403)
    _served(request, name, version)
    body = await request.body()
    header = request.headers.get(oip.HEADER_LENGTH)
    predictor = request.app.state.predictor
    scored = await predictor.batch(
        lambda: oip.decode(body, header, predictor.max_batch), len(body), who
    )
    answer = oip.response(scored.loaded, scored.decoded.context, scored.predictions)
    answer.headers["X-Request-ID"] = who.request_id
    return answer
