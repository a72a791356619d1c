"""Debian's Chromium driven by Playwright, and the clinician's ways through the page."""

from __future__ import annotations

import functools
from pathlib import Path

from support.project import ARTIFACTS
from support.servers import DEX_USER

# Debian's Chromium, driven by Playwright (no browser download).
CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps dialling Google's hosts, refused here.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
TIMEOUT_MS = 30_000

UI_USER, UI_PASSWORD = "clinician", "test-" + "p" * 16


@functools.cache
def ui_login_env() -> dict[str, str]:
    import bcrypt

    hashed = bcrypt.hashpw(UI_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    return {
        "READMIT_UI_AUTH": "password",
        "READMIT_UI_LOGIN_USER": UI_USER,
        "READMIT_UI_LOGIN_PASSWORD_HASH": hashed,
    }


def shows_a_risk(
    browser, url: str, screenshot: str, login: tuple[str, str] = (UI_USER, UI_PASSWORD)
) -> None:
    """The page at ``url`` signs in, predicts the default encounter and shows a risk (a
    screenshot of it goes to test-artifacts/)."""
    page = open_page(browser, url, login)
    page.get_by_role("button", name="Predict readmission risk").click()
    result = page.get_by_text("Readmission risk within 30 days")
    result.wait_for()
    assert "%" in result.inner_text()
    result.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / screenshot))
    page.close()


def sign_in(page, login: tuple[str, str]) -> None:
    """The lab login's form: nothing else of the page is there before it."""
    page.get_by_role("textbox", name="User name").fill(login[0])
    page.get_by_role("textbox", name="Password").fill(login[1])
    page.get_by_role("button", name="Sign in").click()


def dex_sign_in(page, password: str) -> None:
    """Dex's own login page (the tests' provider, tests/support/servers.py), as its user."""
    page.get_by_label("Email Address").fill(DEX_USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Login").click()


def open_page(browser, url: str, login: tuple[str, str] | None = (UI_USER, UI_PASSWORD)):
    """A new page at ``url``, signed in with the lab login (``login``; None: as it comes)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    if login is not None:
        sign_in(page, login)
        page.get_by_text("30-day readmission risk").first.wait_for()
    return page
