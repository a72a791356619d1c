"""API keys from the environment or from a file (a mounted Kubernetes Secret)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from readmit_api.settings import Settings
from readmit_ui.settings import UiSettings


def test_secret_from_the_variable_or_the_file_it_names(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:  # fmt: skip
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


def test_a_missing_secret_file_is_an_error_not_no_secret(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("READMIT_API_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match=r"READMIT_API_KEY_FILE=.*absent is not a readable"):
        UiSettings()


def test_api_keys_from_the_variable_or_a_file(tmp_path: Path) -> None:
    assert Settings(api_keys="a, b,,").keys == (b"a", b"b")
    key_file = tmp_path / "keys"
    key_file.write_text("from-file\n")
    assert Settings(api_keys="a", api_keys_file=str(key_file)).keys == (b"from-file",)
    assert Settings().keys == ()


def test_the_api_refuses_to_start_with_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"READMIT_API_KEYS_FILE=.* is not a readable file"):
        Settings(api_keys_file=str(tmp_path / "absent"))
