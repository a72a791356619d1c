"""/predict, /predict/batch, /model, /metrics and /docs of a real api process."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import requests
from support.servers import API_MODEL, ApiProcess, use_mlflow


@pytest.fixture(scope="module")
def records(encounters) -> list[dict[str, Any]]:
    from readmit_core.data import to_records

    return to_records(encounters.sample(300, random_state=5))


@pytest.fixture(scope="module")
def reference(api: ApiProcess, records: list[dict[str, Any]], mlflow_server: str):
    """The registered model loaded in this process: what the api must reproduce."""

    from readmit_core.artifact import load_from_mlflow

    use_mlflow(mlflow_server)
    return load_from_mlflow(f"models:/{API_MODEL}@production")


def test_predict_one(api: ApiProcess, example: dict[str, Any], api_model: dict[str, Any]) -> None:
    r = requests.post(f"{api.url}/predict", json=example, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "readmission_risk",
        "readmitted_within_30_days",
        "risk_band",
        "threshold",
        "model",
    }
    assert 0.0 < body["readmission_risk"] < 1.0
    assert body["threshold"] == pytest.approx(api_model["threshold"])
    assert body["readmitted_within_30_days"] == (body["readmission_risk"] >= body["threshold"])
    assert body["model"] == {
        "name": API_MODEL,
        "version": api_model["version"],
        "alias": "production",
    }


def test_explain_lists_the_factors_that_add_up_to_the_risk(
    api: ApiProcess, records: list[dict[str, Any]], reference
) -> None:
    """?explain=true: the top factors by size, named by schema field with the encounter's own
    value; base + factors + the rest is the risk's log-odds (to 1e-6), also in a batch."""
    from readmit_core.explain import FACTORS

    record = records[0]
    r = requests.post(f"{api.url}/predict?explain=true&top=4", json=record, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    why = body["explanation"]
    risk = body["readmission_risk"]
    log_odds = np.log(risk / (1 - risk))
    assert why["log_odds"] == pytest.approx(log_odds, abs=1e-6)
    total = why["base_log_odds"] + sum(f["contribution"] for f in why["factors"])
    assert total + why["other_factors"] == pytest.approx(log_odds, abs=1e-6)
    sizes = [abs(f["contribution"]) for f in why["factors"]]
    assert len(sizes) == 4
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > 0
    for factor in why["factors"]:
        assert factor["field"] in FACTORS
        assert factor["label"]
        if factor["field"] in record:
            assert factor["value"] == record[factor["field"]]
    # Everything the trees split on, grouped to fields: the ICD-9 value and group are one.
    every = requests.post(
        f"{api.url}/predict?explain=true&top={len(FACTORS)}", json=record, timeout=10
    ).json()["explanation"]
    assert every["other_factors"] == 0
    assert len({f["field"] for f in every["factors"]}) == len(FACTORS)
    assert not any(f["field"].endswith(("_value", "_group")) for f in every["factors"])

    batch = requests.post(
        f"{api.url}/predict/batch?explain=true", timeout=30, json={"encounters": records[:50]}
    ).json()
    risks = np.array([p["readmission_risk"] for p in batch["predictions"]])
    odds = np.array([p["explanation"]["log_odds"] for p in batch["predictions"]])
    np.testing.assert_allclose(odds, np.log(risks / (1 - risks)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(risks, reference.predict_records(records[:50]), rtol=0, atol=1e-12)
    assert (
        requests.post(f"{api.url}/predict?explain=true&top=0", json=record, timeout=10).status_code
        == 422
    )


def test_race_and_payer_are_accepted_and_change_nothing(
    api: ApiProcess, records: list[dict[str, Any]]
) -> None:
    """Schema 3: clients that send race and payer keep working; the risks and the reasons are
    the same whatever they say, and no reason names them."""
    from readmit_core.explain import FACTORS

    def served(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        r = requests.post(
            f"{api.url}/predict/batch?explain=true&top={len(FACTORS)}",
            json={"encounters": batch},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()["predictions"]

    batch = records[:40]
    as_sent = served(batch)
    changed = served([{**r, "race": "Asian", "payer_code": "BC"} for r in batch])
    left_out = served(
        [{k: v for k, v in r.items() if k not in ("race", "payer_code")} for r in batch]
    )
    assert as_sent == changed == left_out
    named = {f["field"] for p in as_sent for f in p["explanation"]["factors"]}
    assert not named & {"race", "payer_code"}
    assert not {"race", "payer_code"} & set(FACTORS)


def test_drift_metrics_compare_the_window_with_the_served_models_baseline(
    api: ApiProcess, records: list[dict[str, Any]]
) -> None:
    """The model's own validation baseline is exported; a batch of very old patients moves the
    age input's PSI far up, and the window counts them."""
    from readmit_core.drift import INPUTS

    info = requests.get(f"{api.url}/model", timeout=5).json()["training"]
    assert api.metric("readmit_drift_baseline_flagged_share") == pytest.approx(
        info["validation"]["flagged_share"]
    )
    for spec in INPUTS:
        shares = [
            api.metric("readmit_drift_baseline_share", input=spec.name, bin=b) for b in spec.labels
        ]
        assert sum(shares) == pytest.approx(1.0)
    before = api.metric("readmit_drift_psi", input="age")
    seen = api.metric("readmit_drift_window_encounters")
    old = [{**r, "age": "[90-100)"} for r in (records * 4)[:1000]]
    r = requests.post(f"{api.url}/predict/batch", json={"encounters": old}, timeout=30)
    assert r.status_code == 200, r.text
    assert api.metric("readmit_drift_window_encounters") == min(seen + 1000, 5000)
    assert api.metric("readmit_drift_live_share", input="age", bin="[90-100)") >= 0.2
    after = api.metric("readmit_drift_psi", input="age")
    assert after > max(1.0, before), (before, after)
    assert api.metric("readmit_drift_psi", input="a1c_result") < after


def test_risk_bands_follow_the_threshold(api: ApiProcess, records: list[dict[str, Any]]) -> None:
    body = requests.post(
        f"{api.url}/predict/batch", json={"encounters": records}, timeout=30
    ).json()
    t = body["threshold"]
    for p in body["predictions"]:
        risk = p["readmission_risk"]
        expected = "high" if risk >= max(0.3, t) else "medium" if risk >= t else "low"
        assert p["risk_band"] == expected
    assert {p["risk_band"] for p in body["predictions"]} >= {"low", "medium"}


def test_batch_keeps_order_and_equals_single_predictions(
    api: ApiProcess, records: list[dict[str, Any]], reference
) -> None:
    batch = requests.post(f"{api.url}/predict/batch", json={"encounters": records}, timeout=30)
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["count"] == len(records) == len(body["predictions"])
    risks = np.array([p["readmission_risk"] for p in body["predictions"]])
    np.testing.assert_allclose(risks, reference.predict_records(records), rtol=0, atol=1e-12)
    singles = [
        requests.post(f"{api.url}/predict", json=r, timeout=10).json()["readmission_risk"]
        for r in records[:20]
    ]
    np.testing.assert_allclose(singles, risks[:20], rtol=0, atol=1e-12)


def test_concurrent_micro_batched_requests_equal_unbatched(
    api: ApiProcess, records: list[dict[str, Any]], reference
) -> None:
    calls_before = api.metric("readmit_batch_size_count")

    def post(record: dict[str, Any]) -> float:
        r = requests.post(f"{api.url}/predict", json=record, timeout=30)
        assert r.status_code == 200, r.text
        return float(r.json()["readmission_risk"])

    with ThreadPoolExecutor(32) as pool:
        risks = list(pool.map(post, records))
    np.testing.assert_allclose(risks, reference.predict_records(records), rtol=0, atol=1e-12)
    model_calls = api.metric("readmit_batch_size_count") - calls_before
    assert 0 < model_calls <= len(records)


def test_model_endpoint_describes_the_served_model(
    api: ApiProcess, api_model: dict[str, Any]
) -> None:
    body = requests.get(f"{api.url}/model", timeout=10).json()
    assert body["name"] == API_MODEL
    assert body["version"] == api_model["version"]
    assert body["alias"] == "production"
    assert body["run_id"] == api_model["run_id"]
    assert body["threshold"] == pytest.approx(api_model["threshold"])
    assert body["training"]["validation"]["roc_auc"] == pytest.approx(
        api_model["validation"]["roc_auc"]
    )
    assert body["loaded_at"]
    assert body["training"]["trained_at"].startswith("20")
    assert "time_in_hospital" in body["input_schema"]["properties"]


def test_metrics_are_exported_and_move(api: ApiProcess, example: dict[str, Any]) -> None:
    labels = {"method": "POST", "route": "/predict", "status": "200"}
    before = api.metric("readmit_http_requests_total", **labels)
    risk_before = api.metric("readmit_prediction_risk_count")
    for _ in range(3):
        requests.post(f"{api.url}/predict", json=example, timeout=10)
    assert api.metric("readmit_http_requests_total", **labels) == before + 3
    assert api.metric("readmit_prediction_risk_count") == risk_before + 3
    text = requests.get(api.metrics_url, timeout=5).text
    exported = (
        "readmit_http_request_duration_seconds_bucket",
        "readmit_inference_duration_seconds",
        "readmit_batch_size",
        "readmit_predictions_total",
        "readmit_model_info",
        "readmit_model_loaded 1.0",
        "readmit_model_load_failures_total",
        "readmit_model_last_load_timestamp_seconds",
        "readmit_requests_in_flight",
    )
    for name in exported:
        assert name in text, name


def test_route_labels_are_templates_not_raw_paths(api: ApiProcess) -> None:
    for path in ("/no/such/path/1", "/no/such/path/2", "/predict/../x"):
        requests.get(f"{api.url}{path}", timeout=5)
    text = requests.get(api.metrics_url, timeout=5).text
    assert "/no/such" not in text
    assert 'route="unmatched"' in text


def test_the_docs_pages_load_nothing_from_the_internet(api: ApiProcess) -> None:
    """/docs and /redoc take Swagger UI and ReDoc from the api itself (a cluster without
    internet, and no third-party script in the page)."""
    for page in ("/docs", "/redoc"):
        html = requests.get(f"{api.url}{page}", timeout=5).text
        scripts = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert scripts, html
        for url in scripts:
            assert url.startswith("/"), url  # served by the api, never a CDN
            asset = requests.get(f"{api.url}{url}", timeout=5)
            assert asset.status_code == 200, url
    bundle = requests.get(f"{api.url}/static-offline-docs/swagger-ui-bundle.js", timeout=5)
    assert len(bundle.content) > 500_000


def test_openapi_documents_every_body_with_examples(api: ApiProcess) -> None:
    spec = requests.get(f"{api.url}/openapi.json", timeout=5).json()
    assert requests.get(f"{api.url}/docs", timeout=5).status_code == 200
    for path in ("/predict", "/predict/batch"):
        op = spec["paths"][path]["post"]
        assert op["requestBody"]["content"]["application/json"]["example"]
        assert {"200", "400", "413", "415", "422", "503"} <= set(op["responses"])
    components = spec["components"]["schemas"]
    assert {"Encounter", "BatchRequest", "Prediction", "ValidationProblem"} <= set(components)
    assert components["Encounter"]["additionalProperties"] is False


def test_readme_example_body_is_the_schema_example(
    api: ApiProcess, example: dict[str, Any]
) -> None:
    """The file the README curls (scripts/example-encounter.json) is valid and current."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "example-encounter.json"
    body = path.read_bytes()
    assert json.loads(body) == example
    r = requests.post(
        f"{api.url}/predict", data=body, timeout=10, headers={"content-type": "application/json"}
    )
    assert r.status_code == 200
