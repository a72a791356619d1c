"""Who may see the page: the hospital's OpenID Connect provider (Streamlit's ``st.login``), or,
when none is configured, one generated login (the lab's default).

Nothing of the page renders before ``signed_in_user`` returns. Either way a session ends after
``READMIT_UI_SESSION_S`` from the sign-in (Streamlit's own cookie would live 30 days), or with
"Sign out". The lab login's password is kept as a bcrypt hash only (the chart generates it
with Helm's ``htpasswd``), and a user name is locked for ``READMIT_UI_LOGIN_LOCKOUT_S`` after
``READMIT_UI_LOGIN_MAX_FAILURES`` wrong passwords in that time.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import bcrypt
import streamlit as st

from readmit_ui.settings import UiSettings

SESSION = "signed-in"  # st.session_state key of the lab login's session: (user, since)
# A hash to compare against when the user name is wrong, so both take a bcrypt's time.
_DUMMY = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=10))


@dataclass
class LoginLimiter:
    """Wrong passwords per user name, in the process (every browser session shares it)."""

    max_failures: int
    lockout_s: float
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def locked_for(self, user: str, now: float) -> float:
        """Seconds until ``user`` may try again (0: now)."""
        with self._lock:
            recent = self._failures.get(user, deque())
            while recent and now - recent[0] > self.lockout_s:
                recent.popleft()
            if len(recent) < self.max_failures:
                return 0.0
            return self.lockout_s - (now - recent[0])

    def failed(self, user: str, now: float) -> None:
        with self._lock:
            self._failures.setdefault(user, deque()).append(now)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(user, None)


@st.cache_resource
def _limiter(max_failures: int, lockout_s: float) -> LoginLimiter:
    return LoginLimiter(max_failures, lockout_s)


def password_matches(settings: UiSettings, user: str, password: str) -> bool:
    hashed = (settings.reveal(settings.ui_login_password_hash) or "").encode()
    right_user = hmac.compare_digest(user.encode(), settings.ui_login_user.encode())
    try:
        ok = bcrypt.checkpw(password.encode(), hashed if right_user else _DUMMY)
    except ValueError:  # not a bcrypt hash: nobody signs in
        return False
    return ok and right_user


def signed_in_user(settings: UiSettings) -> str:
    """The signed-in user's name; otherwise draws the sign-in and stops the script."""
    if settings.ui_auth == "oidc":
        return _provider_user(settings)
    return _lab_user(settings)


def sign_out_button(settings: UiSettings, user: str) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{user}**")
        if st.button("Sign out"):
            if settings.ui_auth == "oidc":
                st.logout()  # the browser goes to /auth/logout, which clears the cookie
            else:
                st.session_state.pop(SESSION, None)
                st.rerun()


def _provider_user(settings: UiSettings) -> str:
    if not st.user.is_logged_in:
        st.title("Readmission risk")
        st.write("Sign in with your hospital account to see patients' risks.")
        st.button("Sign in", type="primary", on_click=st.login)
        st.stop()
    issued = st.user.get("iat")
    if not isinstance(issued, int | float) or time.time() - issued > settings.ui_session_s:
        st.logout()  # the session is over: back to the provider
        st.stop()
    name = st.user.get("email") or st.user.get("preferred_username") or st.user.get("sub")
    return str(name)


def _lab_user(settings: UiSettings) -> str:  # noqa: RET503 (st.stop() ends the script)
    session = st.session_state.get(SESSION)
    now = time.time()
    if session is not None:
        user, since = session
        if now - since <= settings.ui_session_s:
            return str(user)
        del st.session_state[SESSION]
        st.info("Your session has ended: sign in again.")
    st.title("Readmission risk")
    with st.form("sign-in"):
        user = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        limiter = _limiter(settings.ui_login_max_failures, settings.ui_login_lockout_s)
        wait = limiter.locked_for(user, now)
        if wait > 0:
            st.error(f"Too many wrong passwords for this user: try again in {wait / 60:.0f} min.")
        elif password_matches(settings, user, password):
            limiter.succeeded(user)
            st.session_state[SESSION] = (user, now)
            st.rerun()
        else:
            limiter.failed(user, now)
            st.error("Wrong user name or password.")
    st.stop()
