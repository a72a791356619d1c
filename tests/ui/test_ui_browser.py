"""End to end in a real browser (Debian's Chromium driven by Playwright) on the real page, the
real api and a real model; the sign-in through a real OpenID provider (Dex) and the lab login.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.browser import UI_PASSWORD, UI_USER, dex_sign_in, open_page, sign_in, ui_login_env
from support.project import ARTIFACTS, require
from support.servers import (
    DEX_BIN,
    DEX_CLIENT,
    DEX_PASSWORD,
    DEX_SECRET,
    DEX_USER,
    ApiProcess,
    DexProcess,
    free_port,
    stop,
    wait_http,
)


def start_ui(
    api_url: str, log: Path, port: int | None = None, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """The page, signed in with the lab login unless ``env`` says otherwise."""
    port = port or free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "readmit-ui")],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            "READMIT_API_URL": api_url,
            "READMIT_UI_PORT": str(port),
            "READMIT_UI_ADDRESS": "127.0.0.1",
            **ui_login_env(),
            **env,
        },
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_stcore/health", 60, proc)
    return proc, url


@pytest.fixture(scope="module")
def ui(api: ApiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_ui(api.url, tmp_path_factory.mktemp("ui") / "ui.log")
    try:
        yield url
    finally:
        stop(proc)


def test_fill_the_form_and_read_the_risk(browser, ui: str) -> None:
    page = open_page(browser, ui)
    field = page.get_by_role("spinbutton", name="Inpatient stays (prior year)")
    field.fill("3")
    field.press("Enter")
    page.get_by_role("button", name="Predict readmission risk").click()
    result = page.get_by_text("Readmission risk within 30 days")
    result.wait_for()
    assert "%" in result.inner_text()
    page.get_by_text("Of 100 patients like this one").wait_for()
    # The reasons: a heading, a drawn bar chart (vega-embed renders it) and the caption naming
    # the fields; the 3 prior inpatient stays entered above are among the top factors.
    page.get_by_role("heading", name="What raised / lowered this risk").wait_for()
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for()
    assert "Inpatient stays (prior year)" in page.get_by_text("Raised most by").inner_text()
    assert page.get_by_role("button", name="Deploy").count() == 0  # packaged: no developer UI
    page.screenshot(path=str(ARTIFACTS / "ui-single.png"), full_page=True)
    page.close()


def test_upload_a_csv_with_one_bad_row(browser, ui: str, encounters, tmp_path: Path) -> None:
    frame = encounters.head(30).drop(columns=["target"]).copy()
    frame.loc[frame.index[4], "age"] = "[200-210)"
    upload = tmp_path / "encounters.csv"
    frame.fillna("?").to_csv(upload, index=False)
    page = open_page(browser, ui)
    page.get_by_role("tab", name="Batch (CSV)").click()
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_text("1 row(s) cannot be scored").wait_for()
    page.get_by_text("Scored 29 encounters").wait_for()
    page.screenshot(path=str(ARTIFACTS / "ui-batch.png"), full_page=True)
    page.close()


def test_an_upload_over_the_size_limit_is_refused(browser, ui: str, tmp_path: Path) -> None:
    """Streamlit refuses a file over READMIT_UI_MAX_UPLOAD_MB (5) before the page reads it: a
    190 MB CSV once took 92 s and 2.96 GB."""
    upload = tmp_path / "large.csv"
    upload.write_bytes(b"race,gender\n" + b"Caucasian,Female\n" * 400_000)  # 6.8 MB
    page = open_page(browser, ui)
    page.get_by_role("tab", name="Batch (CSV)").click()
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_text("File must be 5.0MB or smaller").wait_for()
    assert page.get_by_text("cannot be read").count() == 0  # the page never saw it
    page.close()


def test_api_down_shows_a_message(browser, tmp_path: Path) -> None:
    proc, url = start_ui(f"http://127.0.0.1:{free_port()}", tmp_path / "ui.log")
    try:
        page = open_page(browser, url)
        page.get_by_role("button", name="Predict readmission risk").click()
        page.get_by_text("cannot be reached").first.wait_for()
        # Streamlit streams a run's elements: the button may arrive just after the sentence
        page.get_by_role("button", name="Retry").first.wait_for(timeout=15_000)
        assert "Traceback" not in page.content()
        page.screenshot(path=str(ARTIFACTS / "ui-api-down.png"), full_page=True)
        page.close()
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def dex_ui(api: ApiProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Dex, and two pages signing in through it: one with an 8-hour session, one with 6 s."""
    require(DEX_BIN.exists(), f"{DEX_BIN} is missing: run `make tools`")
    tmp = tmp_path_factory.mktemp("dex")
    ports = {"ui": free_port(), "short": free_port()}
    uris = {k: f"http://127.0.0.1:{p}/oauth2callback" for k, p in ports.items()}
    dex = DexProcess(tmp, list(uris.values()))
    procs, urls = [], {}
    try:
        for name, session_s in (("ui", "28800"), ("short", "6")):
            proc, url = start_ui(
                api.url,
                tmp / f"{name}.log",
                ports[name],
                READMIT_UI_AUTH="oidc",
                READMIT_UI_OIDC_ISSUER=dex.issuer,
                READMIT_UI_OIDC_CLIENT_ID=DEX_CLIENT,
                READMIT_UI_OIDC_CLIENT_SECRET=DEX_SECRET,
                READMIT_UI_OIDC_REDIRECT_URI=uris[name],
                READMIT_UI_COOKIE_SECRET="cookie-" + "k" * 32,
                READMIT_UI_SESSION_S=session_s,
            )
            procs.append(proc)
            urls[name] = url
        yield {**urls, "issuer": dex.issuer}
    finally:
        for proc in procs:
            stop(proc)
        dex.close()


def test_sign_in_through_the_hospitals_provider(
    browser, dex_ui: dict[str, str], api: ApiProcess
) -> None:
    """Only the sign-in before it; the provider's own login page and its error for a wrong
    password; then a risk, served to the signed-in user (the api's audit record says who);
    signed out, the page is closed again."""
    page = open_page(browser, dex_ui["ui"], login=None)
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.get_by_text("30-day readmission risk").count() == 0
    assert page.get_by_role("button", name="Predict readmission risk").count() == 0
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(dex_ui["issuer"] + "/**")  # the provider's page, not ours
    dex_sign_in(page, "not-" + DEX_PASSWORD)
    page.get_by_text("Invalid Email Address and password").wait_for()
    page.screenshot(path=str(ARTIFACTS / "ui-provider-wrong-password.png"))
    dex_sign_in(page, DEX_PASSWORD)
    page.get_by_text("30-day readmission risk").first.wait_for()
    page.get_by_text(f"Signed in as {DEX_USER}").wait_for()
    page.get_by_role("button", name="Predict readmission risk").click()
    page.get_by_text("Readmission risk within 30 days").wait_for()
    page.screenshot(path=str(ARTIFACTS / "ui-provider-signed-in.png"), full_page=True)
    assert f'"user":"{DEX_USER}"' in api.log_text()  # the audit record names the clinician
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.reload()  # the sign-in cookie is gone, not only this tab's session
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.get_by_text("30-day readmission risk").count() == 0
    page.close()


def test_a_provider_session_expires(browser, dex_ui: dict[str, str]) -> None:
    page = open_page(browser, dex_ui["short"], login=None)
    page.get_by_role("button", name="Sign in").click()
    dex_sign_in(page, DEX_PASSWORD)
    page.get_by_text("30-day readmission risk").first.wait_for()
    page.wait_for_timeout(7_000)  # READMIT_UI_SESSION_S=6
    page.reload()
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.get_by_text("30-day readmission risk").count() == 0
    page.close()


def test_the_lab_login_refuses_a_wrong_password(browser, ui: str) -> None:
    page = open_page(browser, ui, login=None)
    assert page.get_by_text("30-day readmission risk").count() == 0
    sign_in(page, (UI_USER, "not-" + UI_PASSWORD))
    page.get_by_text("Wrong user name or password").wait_for()
    assert page.get_by_text("30-day readmission risk").count() == 0
    page.close()
