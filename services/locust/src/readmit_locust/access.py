"""Who may drive this Locust, what they may start, and where the api key may go.

- A login for the web UI and its HTTP API (Locust's ``--web-login``, with the user and password
  of READMIT_LOCUST_WEB_USER / READMIT_LOCUST_WEB_PASSWORD(_FILE)): every page and call but the
  login page itself needs the session a correct login gives. The session cookie is HttpOnly and
  SameSite=Strict, so another site's page cannot start a run in a logged-in browser.
- A run may target only the configured api (READMIT_API_URL): a start form naming another host
  is refused, and so are more users or a faster spawn rate than READMIT_LOCUST_MAX_USERS and
  READMIT_LOCUST_MAX_SPAWN_RATE allow. The workers send the api key only to that api as well
  (``ApiKeyAuth``), whatever host they are given.
"""

from __future__ import annotations

import hmac
import os
from typing import Any
from urllib.parse import urlsplit

from flask import jsonify, redirect, request, session, url_for
from flask_login import UserMixin, login_user
from requests import PreparedRequest
from requests.auth import AuthBase

from readmit_locust.settings import LocustSettings


def origin(url: str) -> tuple[str, str, int | None]:
    """scheme, host and port of a URL, as a browser compares origins."""
    parts = urlsplit(url.strip())
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or ""), parts.port or default


class ApiKeyAuth(AuthBase):
    """The Bearer key, on requests to the configured api only: a run pointed at another host
    (the web UI's form once let anyone pick one, and the key went there) sends it nothing."""

    def __init__(self, key: str, api_url: str) -> None:
        self.header = f"Bearer {key}"
        self.origin = origin(api_url)

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        if origin(request.url or "") == self.origin:
            request.headers["Authorization"] = self.header
        return request


class Operator(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


def refusal(settings: LocustSettings, form: Any) -> str | None:
    """Why a /swarm form may not start a run, or None."""
    host = form.get("host")
    if host and origin(host) != origin(settings.api_url):
        return f"this Locust only loads {settings.api_url}"
    try:
        users = int(form.get("user_count", 0))
        rate = float(form.get("spawn_rate", 0))
    except ValueError:
        return None  # Locust's own check answers that
    if users > settings.locust_max_users:
        return f"at most {settings.locust_max_users} users (READMIT_LOCUST_MAX_USERS)"
    if rate > settings.locust_max_spawn_rate:
        return f"a spawn rate of at most {settings.locust_max_spawn_rate}/s"
    return None


def install(environment: Any, settings: LocustSettings) -> None:
    """On the master's web UI: the run limits always, the login when --web-login is on."""
    web = environment.web_ui
    app = web.app
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")

    @app.before_request
    def limits() -> Any:
        if request.method == "POST" and request.path.rstrip("/").endswith("/swarm"):
            why = refusal(settings, request.form)
            if why:
                return jsonify({"success": False, "message": why, "host": environment.host}), 400
        return None

    if not web.web_login:
        return
    password = settings.reveal(settings.locust_web_password)
    if not password:
        raise SystemExit("readmit-locust: --web-login needs READMIT_LOCUST_WEB_PASSWORD(_FILE)")
    app.config["SECRET_KEY"] = os.urandom(32)  # sessions end with the master
    web.auth_args = {"username_password_callback": "/login_submit"}

    @web.login_manager.user_loader
    def load_user(name: str) -> Operator | None:
        return Operator(name) if name == settings.locust_web_user else None

    @app.route("/login_submit", methods=["POST"])
    def login_submit() -> Any:
        user = request.form.get("username", "")
        given = request.form.get("password", "")
        # both compared, matched or not: the time taken says nothing about which was wrong
        right = hmac.compare_digest(user.encode(), settings.locust_web_user.encode())
        right &= hmac.compare_digest(given.encode(), password.encode())
        if right:
            login_user(Operator(user))
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Wrong user name or password"
        return redirect(url_for("locust.login"))
