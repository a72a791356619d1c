"""Open Inference Protocol (KServe V2) routes: thin; the protocol is ``oip.py``. Health is open
like /health and /ready; metadata and inference need the API key, as /model and /predict do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from readmit_api import oip
from readmit_api.auth import require_key
from readmit_api.errors import ApiError, json_response
from readmit_api.model_store import LoadedModel
from readmit_api.routes import caller

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe V2)"])
_ERRORS = {401: {"description": "Missing or invalid API key: {\"error\": ...}"},
           404: {"description": "Not the served model or version"},
           503: {"description": "No model loaded yet"}}  # fmt: skip


async def _answer(work: Callable[[], Awaitable[Response]]) -> Response:
    """The protocol's error body for every refusal of these routes."""
    try:
        return await work()
    except ApiError as exc:
        return oip.error(exc)


@router.get("/health/live", summary="Liveness")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready", summary="Readiness: a model is loaded (503 while not)")
async def ready(request: Request) -> Response:
    up = request.app.state.store.current is not None and not request.app.state.draining.is_set()
    return json_response({"ready": up}, 200 if up else 503)


@router.get("", summary="Server metadata", responses={401: _ERRORS[401]})
async def server(request: Request) -> Response:
    async def work() -> Response:
        require_key(request)
        return json_response(oip.server_metadata(request.app.version))

    return await _answer(work)


def _served(request: Request, name: str, version: str | None) -> LoadedModel:
    loaded = request.app.state.predictor.require_model()
    oip.check_model(loaded, name, version)
    return loaded


@router.get("/models/{name}", summary="Model metadata: one input tensor per encounter field",
            responses=_ERRORS)  # fmt: skip
@router.get("/models/{name}/versions/{version}", summary="Model metadata (a version)",
            responses=_ERRORS)  # fmt: skip
async def model(request: Request, name: str, version: str | None = None) -> Response:
    async def work() -> Response:
        require_key(request)
        return json_response(oip.model_metadata(_served(request, name, version)))

    return await _answer(work)


@router.get("/models/{name}/ready", summary="Model readiness", responses=_ERRORS)
@router.get("/models/{name}/versions/{version}/ready", summary="Model readiness (a version)",
            responses=_ERRORS)  # fmt: skip
async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
    async def work() -> Response:
        require_key(request)
        _served(request, name, version)
        return json_response({"name": name, "ready": True})

    return await _answer(work)


@router.post("/models/{name}/infer", summary="Inference: one row per encounter",
             responses=_ERRORS, openapi_extra=oip.OPENAPI_BODY)  # fmt: skip
@router.post("/models/{name}/versions/{version}/infer", summary="Inference (a version)",
             responses=_ERRORS, openapi_extra=oip.OPENAPI_BODY)  # fmt: skip
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    async def work() -> Response:
        who = caller(request, "/v2/infer")  # the key (401) and the user it names (403)
        _served(request, name, version)
        body = await request.body()
        header = request.headers.get(oip.HEADER_LENGTH)
        predictor = request.app.state.predictor
        scored = await predictor.batch(lambda: oip.decode(body, header, predictor.max_batch),
                                       len(body), who)  # fmt: skip
        answer = oip.response(scored.loaded, scored.decoded.context, scored.predictions)
        answer.headers["X-Request-ID"] = who.request_id
        return answer

    return await _answer(work)
