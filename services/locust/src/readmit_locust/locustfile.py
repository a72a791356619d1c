"""Locust load test of the readmit api with real encounters.

Tasks, weighted like clinical use: single predictions (most), small batches, the model
description and the liveness probe. Every response is checked (status, shape, risk in [0, 1]):
a wrong body counts as a failure. READMIT_API_KEY (or the file READMIT_API_KEY_FILE names) is
sent as a Bearer key when set, and only to READMIT_API_URL's origin.
"""

from __future__ import annotations

import random

from locust import HttpUser, between, events, task
from locust.runners import WorkerRunner

from readmit_locust import access, exporter
from readmit_locust.payloads import check_prediction, real_encounters, status_problem
from readmit_locust.retry import connect_retry
from readmit_locust.settings import LocustSettings

SETTINGS = LocustSettings()
ENCOUNTERS = real_encounters(SETTINGS.locust_encounters)
BATCH_SIZE = SETTINGS.locust_batch_size


@events.init.add_listener
def _on_master(environment, **_kwargs) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        exporter.start(environment)
        if environment.web_ui is not None:
            access.install(environment, SETTINGS)


class ClinicianUser(HttpUser):
    wait_time = between(SETTINGS.locust_wait_min_s, SETTINGS.locust_wait_max_s)

    def on_start(self) -> None:
        self.client.adapters["http://"].max_retries = connect_retry()  # as the ui does
        key = SETTINGS.reveal(SETTINGS.api_key)
        if key:
            self.client.auth = access.ApiKeyAuth(key, SETTINGS.api_url)

    @task(10)
    def predict(self) -> None:
        with self.client.post(
            "/predict", json=random.choice(ENCOUNTERS), catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(status_problem(response))
                return
            problem = check_prediction(response.json())
            if problem:
                response.failure(problem)

    @task(2)
    def predict_batch(self) -> None:
        batch = random.sample(ENCOUNTERS, min(BATCH_SIZE, len(ENCOUNTERS)))
        with self.client.post(
            "/predict/batch", json={"encounters": batch}, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(status_problem(response))
                return
            body = response.json()
            predictions = body.get("predictions") if isinstance(body, dict) else None
            if not isinstance(predictions, list) or len(predictions) != len(batch):
                response.failure("not one prediction per encounter")
                return
            problem = next(filter(None, map(check_prediction, predictions)), None)
            if problem:
                response.failure(problem)

    @task(1)
    def model(self) -> None:
        with self.client.get("/model", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(status_problem(response))
            elif "version" not in response.json():
                response.failure("no model version")

    @task(1)
    def health(self) -> None:
        with self.client.get("/health", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(status_problem(response))
