"""The clinicians' page, run by Streamlit's AppTest against the real api (and with it down)."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import ApiProcess, free_port
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "services" / "ui" / "src" / "readmit_ui" / "app.py"


def page(monkeypatch: pytest.MonkeyPatch, api_url: str) -> AppTest:
    monkeypatch.setenv("READMIT_API_URL", api_url)
    return AppTest.from_file(str(APP), default_timeout=60).run()


def submit(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Predict readmission risk").click().run()


def test_form_is_built_from_the_schema(monkeypatch: pytest.MonkeyPatch, api: ApiProcess) -> None:
    from readmit_core.schema import FIELDS

    at = page(monkeypatch, api.url)
    assert not at.exception
    assert at.title[0].value == "30-day readmission risk"
    assert [e.label for e in at.expander] == [
        "Patient", "Admission", "Diagnoses", "Lab results", "Diabetes medications"
    ]  # fmt: skip
    labels = {w.label for kind in (at.selectbox, at.number_input, at.text_input) for w in kind}
    assert {f.label for f in FIELDS} <= labels
    admission = at.selectbox(key="field-admission_type_id")
    assert admission.format_func(admission.value) == "Emergency"  # names, not ids


def test_predict_shows_risk_band_threshold_and_model(
    monkeypatch: pytest.MonkeyPatch, api: ApiProcess
) -> None:
    at = page(monkeypatch, api.url)
    at.number_input(key="field-number_inpatient").set_value(4)
    at = submit(at)
    assert not at.exception
    shown = [m.value for m in (*at.success, *at.warning, *at.error)]
    assert any("Readmission risk within 30 days" in v for v in shown), shown
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Risk"].endswith("%")
    assert metrics["Model"].startswith("api-test v")
    assert any("Of 100 patients like this one" in c.value for c in at.caption)
    assert "What raised / lowered this risk" in [h.value for h in at.subheader]
    assert any("Inpatient stays (prior year)" in c.value and "Raised most by" in c.value
               for c in at.caption)  # fmt: skip


def test_invalid_diagnosis_code_is_explained(
    monkeypatch: pytest.MonkeyPatch, api: ApiProcess
) -> None:
    at = page(monkeypatch, api.url)
    at.text_input(key="field-diag_1").input("heart")
    at = submit(at)
    assert not at.exception
    assert any("diag_1" in e.value and "not accepted" in e.value for e in at.error)


def test_api_down_gives_a_readable_message_and_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(monkeypatch, f"http://127.0.0.1:{free_port()}")
    at = submit(at)
    assert not at.exception
    assert any("cannot be reached" in e.value for e in at.error)
    assert any(b.label == "Retry" for b in at.button)


def test_model_tab_shows_version_and_metrics(
    monkeypatch: pytest.MonkeyPatch, api: ApiProcess
) -> None:
    at = page(monkeypatch, api.url)
    text = " ".join(m.value for m in at.markdown)
    assert "**api-test** version" in text
    assert "trained 20" in text  # an ISO date from the trainer
    assert "Flag threshold" in text
    assert "What the model weighs most" in [h.value for h in at.subheader]
