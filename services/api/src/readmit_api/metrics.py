"""Prometheus metrics. Dashboards and alerts are built on these names: keep them stable."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# *_created series double the output and no dashboard uses them.
disable_created_metrics()

# Latency buckets for a ~1 ms service, up to the multi-second tail of an overloaded one.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "readmit_http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "readmit_http_request_duration_seconds",
    "HTTP request duration by route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("readmit_requests_in_flight", "HTTP requests being served")
HTTP_REFUSED = Counter(
    "readmit_http_refused_total",
    "Connections and requests refused before the application (limits on connections, headers, "
    "time to send them, requests in flight)",
    ["reason"],
)
INFERENCE_DURATION = Histogram(
    "readmit_inference_duration_seconds",
    "Model call duration (one micro-batch, or the explained rows of one request)",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "readmit_batch_size",
    "Encounters per model call (micro-batches and /predict/batch)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000),
)
PREDICTIONS = Counter(
    "readmit_predictions_total",
    "Predictions by outcome (flagged at the model's threshold)",
    ["outcome"],
)
PREDICTION_RISK = Histogram(
    "readmit_prediction_risk",
    "Predicted readmission risk (for drift)",
    buckets=(0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0),
)
MODEL_INFO = Gauge("readmit_model_info", "The model being served (1)", ["name", "version", "alias"])
MODEL_LOADED = Gauge("readmit_model_loaded", "1 when a model is loaded and serving")
MODEL_LOAD_FAILURES = Counter(
    "readmit_model_load_failures_total", "Model versions that failed to load (the served one kept)"
)
ALIAS_CHECK_FAILURES = Counter(
    "readmit_model_alias_check_failures_total",
    "Failed lookups of the alias in the registry (unreachable, or no such alias)",
)
MODEL_LAST_LOAD = Gauge(
    "readmit_model_last_load_timestamp_seconds", "Unix time of the last successful model load"
)

# The two outcome series exist (at 0) before the first prediction, and are looked up once.
FLAGGED = PREDICTIONS.labels("readmitted_within_30_days")
NOT_FLAGGED = PREDICTIONS.labels("not_readmitted_within_30_days")
# The load the autoscaler reads (the metrics adapter's rate of these) is 0 for a pod that has
# served no prediction yet, not missing: the HPA takes a missing pod's load as the target's
# on a scale-in, and keeps an idle pod.
HTTP_REQUESTS.labels("POST", "/predict", "200")
HTTP_DURATION.labels("POST", "/predict")


def observe_inference(seconds: float, rows: int) -> None:
    INFERENCE_DURATION.observe(seconds)
    BATCH_SIZE.observe(rows)
