"""Secrets from the environment or from a file (a mounted Kubernetes Secret), and the api's keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from support.browser import ui_login_env

from readmit_api.auth import ApiKeys, KeyConfigError
from readmit_api.settings import Settings
from readmit_ui.settings import UiSettings


@pytest.fixture(autouse=True)
def _ui_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page needs a login to start (readmit_ui.signin): the tests' own."""
    for name, value in ui_login_env().items():
        monkeypatch.setenv(name, value)


def test_secret_from_the_variable_or_the_file_it_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The one implementation of NAME / NAME_FILE (readmit_core.settings), as the ui uses it."""
    monkeypatch.delenv("READMIT_API_KEY", raising=False)
    monkeypatch.delenv("READMIT_API_KEY_FILE", raising=False)
    assert UiSettings().api_key is None
    monkeypatch.setenv("READMIT_API_KEY", "from-env")
    assert UiSettings().reveal(UiSettings().api_key) == "from-env"
    key_file = tmp_path / "api-key"
    key_file.write_text("from-file\n")  # Secrets often end in a newline
    monkeypatch.setenv("READMIT_API_KEY_FILE", str(key_file))
    assert UiSettings().reveal(UiSettings().api_key) == "from-file"
    assert "from-file" not in repr(UiSettings())  # a secret is never printed
    key_file.write_text("")
    assert UiSettings().api_key is None


def test_a_missing_secret_file_is_an_error_not_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("READMIT_API_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match=r"READMIT_API_KEY_FILE=.*absent is not a readable"):
        UiSettings()


def test_api_keys_name_their_clients(tmp_path: Path) -> None:
    keys = ApiKeys(Settings(api_keys="ui=ui-key-0123456789abcdef, alice=alice-key-0123456789"))
    assert keys.check(b"ui-key-0123456789abcdef") == "ui"
    assert keys.check(b"alice-key-0123456789") == "alice"
    assert keys.check(b"ui-key-0123456789abcde") is None
    # a mounted Secret: a file per client, two lines while a key is rotated; the kubelet's own
    # entries (..data, ..2026_...) are not clients
    directory = tmp_path / "keys"
    (directory / "..data").mkdir(parents=True)
    (directory / "ui").write_text("old-ui-key-0123456789\nnew-ui-key-0123456789\n")
    keys = ApiKeys(Settings(api_keys_dir=directory, api_keys="ignored=when-a-directory-is-set"))
    assert keys.check(b"old-ui-key-0123456789") == keys.check(b"new-ui-key-0123456789") == "ui"
    assert keys.check(b"when-a-directory-is-set") is None
    assert not ApiKeys(Settings()).enabled  # nothing asked for: the api is open (and says so)


@pytest.mark.parametrize(
    "given",
    [
        " , ",
        "",
        "ui=",
        "ui=short-key",
        "=a-key-without-a-client",
        "ui=a key with spaces in it",
        "ui",
    ],
)
def test_keys_asked_for_but_not_usable_stop_the_start(given: str) -> None:
    """Fail closed: keys that were asked for but cannot be used never turn authentication off."""
    with pytest.raises(KeyConfigError, match="refusing to start with authentication off"):
        ApiKeys(Settings(api_keys=given))


def test_an_empty_or_missing_key_directory_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="holds no key"):
        ApiKeys(Settings(api_keys_dir=tmp_path))
    (tmp_path / "ui").write_text("\n")
    with pytest.raises(KeyConfigError, match="client 'ui' has a key that is empty"):
        ApiKeys(Settings(api_keys_dir=tmp_path))
    with pytest.raises(KeyConfigError, match="cannot be read"):
        ApiKeys(Settings(api_keys_dir=tmp_path / "absent"))
