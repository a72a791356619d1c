"""The FastAPI application: wiring only (settings, model store, predictor, middleware, routes)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.responses import Response

from readmit_api import bodies, drift_metrics, mlflow_scoring, oip, routes_mlflow, routes_oip
from readmit_api.auth import ApiKeys
from readmit_api.drift_metrics import DriftWindow
from readmit_api.errors import ApiError, invalid_parameters
from readmit_api.middleware import Guarded, RequestGuard
from readmit_api.model_store import ModelStore
from readmit_api.prediction import Predictor
from readmit_api.routes import router
from readmit_api.settings import Settings
from readmit_core.encounter import Encounter

_JSON = frozenset({b"application/json"})
_ROUTES = {
    "/predict": Guarded("/predict", _JSON),
    "/predict/batch": Guarded("/predict/batch", _JSON),
    "/invocations": Guarded("/invocations", _JSON | {mlflow_scoring.CSV.encode()}),
}
# tritonclient sends its binary requests with no content type at all
_INFER = Guarded("/v2/models/{name}/infer", _JSON | {oip.BINARY.encode(), b""})
_MLFLOW_ROUTES = frozenset({"/ping", "/version", "/invocations"})


def error_body(path: str) -> Callable[[ApiError], Response]:
    """Each protocol answers a refusal in its own body: OIP's under /v2, MLflow's on its routes,
    this api's elsewhere (for the routes' errors and the middleware's alike)."""
    if path == "/v2" or path.startswith("/v2/"):
        return oip.error
    if path in _MLFLOW_ROUTES:
        return mlflow_scoring.error
    return ApiError.response


def guarded_route(path: str) -> Guarded | None:
    """The bounded POST routes (every route that reads a body)."""
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return _INFER
    return _ROUTES.get(path)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; raises auth.KeyConfigError when API keys were asked for but none can be used."""
    settings = settings or Settings()
    api_keys = ApiKeys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ModelStore(settings)
        app.state.store = store
        window = DriftWindow(settings.drift_window)
        predictor = Predictor(store, settings.max_batch, settings.high_risk_band, window)
        app.state.predictor = predictor
        drift_metrics.COLLECTOR.attach(
            window,
            lambda: store.current and store.current.model.info.get("drift_baseline"),
            settings.drift_min_encounters,
        )
        store.start()
        api_keys.start()
        try:
            yield
        finally:
            api_keys.stop()
            store.stop()
            predictor.close()

    # /docs and /redoc from the package's own copies of Swagger UI and ReDoc: no CDN, so they
    # work in a cluster without internet and load no third-party script into the page.
    app = FastAPIOffline(
        title="readmit inference api",
        version="0.1.0",
        description="30-day readmission risk of diabetic patients, from the model registered in "
        "MLflow under an alias. Every error is JSON; no request content is ever logged.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_keys = api_keys
    # Set on SIGTERM (shutdown.py): not ready, and every response closes its connection.
    app.state.draining = threading.Event()
    app.state.input_schema = Encounter.model_json_schema(by_alias=True)
    app.include_router(router)
    app.include_router(routes_oip.router)
    app.include_router(routes_mlflow.router)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        draining=app.state.draining,
        guarded=guarded_route,
        error_body=error_body,
        max_in_flight=settings.max_in_flight,
        unlimited=frozenset(
            {"/health", "/ready", "/metrics", "/ping", "/v2/health/live", "/v2/health/ready"}
        ),
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_body(request.url.path)(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_: Request, exc: RequestValidationError) -> Response:
        return invalid_parameters(exc.errors()).response()

    original_openapi = app.openapi

    def openapi() -> dict:  # type: ignore[type-arg]
        """Add the request bodies parsed by hand (Encounter, BatchRequest) to the components."""
        if app.openapi_schema is None:
            spec = original_openapi()
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (Encounter, bodies.BatchRequest):
                defs = model.model_json_schema(
                    by_alias=True, ref_template="#/components/schemas/{model}"
                )
                components.update(defs.pop("$defs", {}))
                components[model.__name__] = defs
            # the OIP's {name} is the one model this process serves (another: 404)
            for path, operations in spec["paths"].items():
                for operation in operations.values() if path.startswith("/v2/models/") else ():
                    for parameter in operation.get("parameters", ()):
                        if parameter["name"] == "name":
                            parameter["schema"]["enum"] = [settings.model_name]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
