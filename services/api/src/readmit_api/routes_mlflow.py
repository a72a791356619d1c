"""MLflow's scoring protocol: the routes ``mlflow models serve`` answers, so its clients (and
SageMaker-style probes) work unchanged; errors in MLflow's body (``mlflow_scoring.error``, chosen
by path in app.error_body). /ping is open like /health; /version and /invocations
need the API key when keys are set."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from readmit_api import bodies, mlflow_scoring
from readmit_api.auth import require_key
from readmit_api.routes import caller

router = APIRouter(tags=["MLflow scoring protocol"])
VERSION = version("readmit-api")
_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    said = {
        400: "Not a DataFrame of encounters, or invalid values (each column and row)",
        401: "Missing or invalid API key (when keys are set)",
        403: "This client may not name a user (X-Readmit-User)",
        413: "Body or rows past the limits",
        415: "Content type is not JSON or CSV",
        503: "No model loaded yet",
    }
    return {s: {"model": bodies.MlflowError, "description": said[s]} for s in statuses}


# MLflow answers these with text in an application/json response; text/plain here
@router.get(
    "/ping",
    summary="Health as mlflow models serve answers it (503 while no model)",
    responses={
        200: {**_TEXT, "description": "A model is loaded"},
        503: {**_TEXT, "description": "No model loaded yet"},
    },
)
async def ping(request: Request) -> Response:
    up = request.app.state.store.current is not None
    return Response("\n", 200 if up else 503, media_type="text/plain")


@router.get(
    "/version",
    summary="The server's version (readmit-api's)",
    responses={200: {**_TEXT, "description": "The version"}, **_errors(401)},
)
async def server_version(request: Request) -> Response:
    require_key(request)
    return Response(VERSION, media_type="text/plain")


@router.post(
    "/invocations",
    summary='Risks of a DataFrame\'s rows: {"predictions": [...]}',
    response_model=bodies.MlflowPredictions,
    responses=_errors(400, 401, 403, 413, 415, 503),
    openapi_extra=mlflow_scoring.OPENAPI_BODY,
)
async def invocations(request: Request) -> Response:
    who = caller(request, "/invocations")
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    predictor = request.app.state.predictor
    scored = await predictor.batch(
        lambda: mlflow_scoring.decode(body, kind, predictor.max_batch), len(body), who
    )
    answer = mlflow_scoring.predictions([p["readmission_risk"] for p in scored.predictions])
    answer.headers["X-Request-ID"] = who.request_id
    return answer
