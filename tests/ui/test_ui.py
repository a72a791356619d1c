"""The clinicians' page, run by Streamlit's AppTest against the real api (and with it down)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.browser import UI_PASSWORD, UI_USER, ui_login_env
from support.project import ROOT
from support.servers import ApiProcess, free_port

APP = ROOT / "services" / "ui" / "src" / "readmit_ui" / "app.py"


def signed_out(monkeypatch: pytest.MonkeyPatch, api_url: str, **env: str) -> AppTest:
    for name, value in {**ui_login_env(), "READMIT_API_URL": api_url, **env}.items():
        monkeypatch.setenv(name, value)
    return AppTest.from_file(str(APP), default_timeout=60).run()


def sign_in(at: AppTest, password: str = UI_PASSWORD, user: str = UI_USER) -> AppTest:
    at.text_input[0].input(user)
    at.text_input[1].input(password)
    return next(b for b in at.button if b.label == "Sign in").click().run()


def page(monkeypatch: pytest.MonkeyPatch, api_url: str) -> AppTest:
    """The page, signed in with the lab login."""
    return sign_in(signed_out(monkeypatch, api_url))


def submit(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Predict readmission risk").click().run()


def test_form_is_built_from_the_schema(monkeypatch: pytest.MonkeyPatch, api: ApiProcess) -> None:
    from readmit_core.schema import FIELDS

    at = page(monkeypatch, api.url)
    assert not at.exception
    assert at.title[0].value == "30-day readmission risk"
    assert [e.label for e in at.expander] == [
        "Patient",
        "Admission",
        "Diagnoses",
        "Lab results",
        "Diabetes medications",
    ]
    labels = {w.label for kind in (at.selectbox, at.number_input, at.text_input) for w in kind}
    assert {f.label for f in FIELDS if f.model_input} <= labels
    assert not {f.label for f in FIELDS if not f.model_input} & labels  # race, payer: not asked
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
    assert any(
        "Inpatient stays (prior year)" in c.value and "Raised most by" in c.value
        for c in at.caption
    )
    assert f'"user":"{UI_USER}"' in api.log_text()  # the page names its user to the api


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


def test_nothing_but_the_sign_in_before_it(
    monkeypatch: pytest.MonkeyPatch, api: ApiProcess
) -> None:
    at = signed_out(monkeypatch, api.url)
    assert not at.exception
    assert [t.value for t in at.title] == ["Readmission risk"]
    assert not at.expander
    assert not at.tabs
    at = sign_in(at, "not-" + UI_PASSWORD)
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    assert not at.expander
    at = sign_in(at, UI_PASSWORD, user="someone-else")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    at = sign_in(at)
    assert at.title[0].value == "30-day readmission risk"
    assert any(f"Signed in as **{UI_USER}**" in c.value for c in at.sidebar.caption)
    at = next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    assert [t.value for t in at.title] == ["Readmission risk"]
    assert not at.expander


def test_wrong_passwords_lock_the_user_out(
    monkeypatch: pytest.MonkeyPatch, api: ApiProcess
) -> None:
    at = signed_out(monkeypatch, api.url, READMIT_UI_LOGIN_MAX_FAILURES="3")
    for _ in range(3):
        at = sign_in(at, "guess")
        assert [e.value for e in at.error] == ["Wrong user name or password."]
    at = sign_in(at)  # the right password, too late
    assert at.error[0].value.startswith("Too many wrong passwords for this user: try again in")
    assert not at.expander
    # another browser session is locked out too: the count is the process's
    fresh = signed_out(monkeypatch, api.url, READMIT_UI_LOGIN_MAX_FAILURES="3")
    assert sign_in(fresh).error[0].value.startswith("Too many wrong passwords")


def test_the_session_ends(monkeypatch: pytest.MonkeyPatch, api: ApiProcess) -> None:
    at = sign_in(signed_out(monkeypatch, api.url, READMIT_UI_SESSION_S="1"))
    assert at.title[0].value == "30-day readmission risk"
    time.sleep(1.5)
    at = at.run()
    assert [i.value for i in at.info] == ["Your session has ended: sign in again."]
    assert not at.expander


def test_the_page_does_not_start_without_a_login() -> None:
    """Fail closed: no password hash and no provider, no page."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("READMIT_UI")}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "readmit-ui")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "READMIT_UI_AUTH=password needs READMIT_UI_LOGIN_PASSWORD_HASH" in run.stderr
    oidc = subprocess.run(
        [str(Path(sys.executable).parent / "readmit-ui")],
        timeout=60,
        env={**env, "READMIT_UI_AUTH": "oidc"},
        capture_output=True,
        text=True,
    )
    assert "READMIT_UI_OIDC_ISSUER" in oidc.stderr
