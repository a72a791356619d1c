"""The load test's own numbers as Prometheus metrics, on the master (or a standalone run).

Read from Locust's statistics at scrape time, so Grafana shows users, request and failure rates
and response times per endpoint next to the api's own metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from readmit_locust.settings import LocustSettings

QUANTILES = (0.5, 0.95, 0.99)
STATES = ("ready", "spawning", "running", "cleanup", "stopping", "stopped", "missing")


class LocustCollector:
    def __init__(self, environment: Any) -> None:
        self.environment = environment

    def collect(self) -> Iterator[Metric]:
        runner = self.environment.runner
        if runner is None:
            return
        yield GaugeMetricFamily("locust_users", "Simulated users", value=runner.user_count)
        workers = getattr(runner, "worker_count", None)
        if workers is not None:
            yield GaugeMetricFamily("locust_workers", "Connected workers", value=workers)
        state = GaugeMetricFamily("locust_state", "Runner state (1 = current)", labels=["state"])
        for s in STATES:
            state.add_metric([s], 1.0 if runner.state == s else 0.0)
        yield state

        labels = ["method", "name"]
        requests = CounterMetricFamily("locust_requests", "Requests sent", labels=labels)
        failures = CounterMetricFamily("locust_failures", "Requests failed", labels=labels)
        rps = GaugeMetricFamily("locust_requests_per_second", "Current request rate", labels=labels)
        fps = GaugeMetricFamily("locust_failures_per_second", "Current failure rate", labels=labels)
        times = GaugeMetricFamily(
            "locust_response_time_seconds",
            "Response time percentiles since the run started",
            labels=[*labels, "quantile"],
        )
        stats = self.environment.stats
        for entry in [*stats.entries.values(), stats.total]:
            key = [entry.method or "", entry.name]
            requests.add_metric(key, entry.num_requests)
            failures.add_metric(key, entry.num_failures)
            rps.add_metric(key, entry.current_rps or 0.0)
            fps.add_metric(key, entry.current_fail_per_sec or 0.0)
            for q in QUANTILES:
                ms = entry.get_response_time_percentile(q) if entry.num_requests else 0
                times.add_metric([*key, str(q)], (ms or 0) / 1000)
        yield from (requests, failures, rps, fps, times)


def start(environment: Any) -> None:
    """Serve /metrics on READMIT_LOCUST_METRICS_PORT (default 9646) on the master."""
    settings = LocustSettings()
    REGISTRY.register(LocustCollector(environment))
    start_http_server(settings.locust_metrics_port, addr=settings.locust_metrics_addr)
