"""MLflow's scoring protocol: the routes ``mlflow models serve`` answers, so its clients (and
SageMaker-style probes) work unchanged. /ping is open like /health; /version and /invocations
need the API key when keys are set."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, Request
from starlette.responses import Response

from readmit_api import mlflow_scoring
from readmit_api.auth import require_key
from readmit_api.errors import ApiError
from readmit_api.routes import caller

router = APIRouter(tags=["MLflow scoring protocol"])
VERSION = version("readmit-api")


@router.get("/ping", summary="Health as mlflow models serve answers it (503 while no model)")
async def ping(request: Request) -> Response:
    up = request.app.state.store.current is not None
    return Response("\n", 200 if up else 503, media_type="application/json")


@router.get("/version", summary="The server's version (readmit-api's)")
async def server_version(request: Request) -> Response:
    try:
        require_key(request)
    except ApiError as exc:
        return mlflow_scoring.error(exc)
    return Response(VERSION, media_type="application/json")


@router.post("/invocations", summary="Risks of a DataFrame's rows: {\"predictions\": [...]}",
             openapi_extra=mlflow_scoring.OPENAPI_BODY)  # fmt: skip
async def invocations(request: Request) -> Response:
    try:
        who = caller(request, "/invocations")
        body = await request.body()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        predictor = request.app.state.predictor
        scored = await predictor.batch(
            lambda: mlflow_scoring.decode(body, kind, predictor.max_batch), len(body), who
        )
    except ApiError as exc:
        return mlflow_scoring.error(exc)
    answer = mlflow_scoring.predictions([p["readmission_risk"] for p in scored.predictions])
    answer.headers["X-Request-ID"] = who.request_id
    return answer
