"""Every service's configuration class, and the page that documents it (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from readmit_api.settings import Settings as ApiSettings
from readmit_core.settings import DataSettings, ReadmitSettings
from readmit_locust.settings import LocustSettings
from readmit_trainer.settings import TrainerSettings
from readmit_ui.settings import UiSettings

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
CLASSES = (ApiSettings, UiSettings, LocustSettings, TrainerSettings, DataSettings)


def variables(cls: type[ReadmitSettings]) -> list[str]:
    names = []
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        names.append(str(choices[0]) if choices else f"READMIT_{name.upper()}")
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("secret_file"):
            names.append(f"READMIT_{name.upper()}_FILE")
    return names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_variable_is_in_the_configuration_page(cls: type[ReadmitSettings]) -> None:
    missing = [v for v in variables(cls) if f"`{v}`" not in PAGE]
    assert not missing, f"{cls.__name__}: not documented in docs/configuration.md: {missing}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_says_what_it_is(cls: type[ReadmitSettings]) -> None:
    assert all(info.description for info in cls.model_fields.values())
