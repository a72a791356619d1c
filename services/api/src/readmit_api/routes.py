"""HTTP routes: thin; the work is in prediction.py, model_store.py and friends."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from readmit_api import audit, bodies
from readmit_api.auth import require_key
from readmit_api.errors import ApiError, json_response
from readmit_api.prediction import RETRY_AFTER_S
from readmit_core.encounter import Encounter
from readmit_core.explain import FACTORS

router = APIRouter()

Explain = Annotated[bool, Query(description="add the factors behind each risk")]
Top = Annotated[int, Query(ge=1, le=len(FACTORS), description="how many factors to list")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": bodies.Problem, "description": "Malformed JSON"},
    401: {
        "model": bodies.Problem,
        "description": "Missing or invalid API key (when keys are set)",
    },
    403: {
        "model": bodies.Problem,
        "description": f"This client may not name a user ({audit.USER_HEADER})",
    },
    413: {"model": bodies.Problem, "description": "Body or batch too large"},
    415: {"model": bodies.Problem, "description": "Content type is not application/json"},
    422: {"model": bodies.ValidationProblem, "description": "Invalid encounter: field by field"},
    503: {"model": bodies.Problem, "description": "No model loaded yet (see Retry-After)"},
}


def _body(model: type, example: Any) -> dict[str, Any]:
    """OpenAPI request body for a route that parses its raw body itself (fast, strict JSON)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
                    "example": example,
                }
            },
        }
    }


@router.post(
    "/predict",
    response_model=bodies.Prediction,
    responses=_ERRORS,
    summary="Risk of readmission within 30 days",
    openapi_extra=_body(Encounter, bodies.EXAMPLE_ENCOUNTER),
)
async def predict(request: Request, explain: Explain = False, top: Top = 5) -> Response:
    who = caller(request, "/predict")
    answer = await request.app.state.predictor.one(await request.body(), who, top if explain else 0)
    return json_response(answer, headers={"X-Request-ID": who.request_id})


@router.post(
    "/predict/batch",
    response_model=bodies.BatchPrediction,
    responses=_ERRORS,
    summary="Risks for many encounters, in order",
    openapi_extra=_body(bodies.BatchRequest, {"encounters": [bodies.EXAMPLE_ENCOUNTER] * 2}),
)
async def predict_batch(request: Request, explain: Explain = False, top: Top = 5) -> Response:
    who = caller(request, "/predict/batch")
    answer = await request.app.state.predictor.many(
        await request.body(), who, top if explain else 0
    )
    return json_response(answer, headers={"X-Request-ID": who.request_id})


def caller(request: Request, route: str) -> audit.Caller:
    """The key's client (401 without a valid key) and the user it names (403 if it may not)."""
    client = require_key(request)
    trusted = request.app.state.settings.user_header_client_ids
    return audit.Caller(route, client, audit.caller_user(request, client, trusted))


@router.get("/health", response_model=bodies.Health, summary="Liveness: the process serves")
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/ready",
    response_model=bodies.Readiness,
    summary="Readiness: a model is loaded and the process is not shutting down",
    responses={
        503: {
            "model": bodies.Readiness,
            "description": "No model loaded, or shutting down, and why",
        }
    },
)
async def ready(request: Request) -> Response:
    store = request.app.state.store
    loaded = store.current
    if request.app.state.draining.is_set():
        body = {"status": "not ready", "reason": "shutting down"}
        return json_response(body, 503)
    if loaded is None:
        body = {"status": "not ready", "reason": store.not_ready_reason}
        return json_response(body, 503, {"Retry-After": RETRY_AFTER_S})
    return json_response({"status": "ready", "model": loaded.ref()})


@router.get(
    "/model",
    summary="The served model and its input schema",
    responses={401: _ERRORS[401], 503: _ERRORS[503]},
)
async def model(request: Request) -> Response:
    require_key(request)
    loaded = request.app.state.predictor.require_model()
    return json_response({**loaded.describe(), "input_schema": request.app.state.input_schema})


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics, on READMIT_METRICS_PORT only (404 on the api's own port)."""
    if request.scope["server"][1] != request.app.state.settings.metrics_port:
        raise ApiError(404, "Not Found")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
