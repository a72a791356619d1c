"""Pydantic v2 models derived from ``readmit_core.schema.FIELDS``.

Strict: unknown fields are rejected and nothing is coerced (no ``true`` for a number, no ``"3"``
for an integer, no ``3`` for a category written as text). A JSON number with no fraction (``3.0``)
is the integer it equals, as in JSON Schema; ``3.5`` is not an integer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, create_model
from pydantic import Field as PydanticField
from pydantic_core import PydanticCustomError

from readmit_core.schema import (
    ENCOUNTER_ID,
    ENCOUNTER_ID_PATTERN,
    FIELDS,
    ICD9_PATTERN,
    Field,
    Kind,
)


def _json_integer(value: Any) -> Any:
    """JSON has one number type: 3.0 is the integer 3 (as JSON Schema says), 3.5 is not.

    Anything else goes on unchanged to strict validation: ``true`` and ``"3"`` are rejected.
    """
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _exact_int(value: Any) -> Any:
    # Literal[1, 2] would accept True (True == 1): a coded category is an integer id, nothing else.
    value = _json_integer(value)
    if type(value) is not int:
        raise PydanticCustomError("int_type", "Input should be a valid integer id")
    return value


def _annotation(f: Field) -> Any:
    if f.kind is Kind.CATEGORY:
        base: Any = Literal[f.choices]  # type: ignore[valid-type]
        if f.is_integer:
            base = Annotated[base, BeforeValidator(_exact_int)]
    elif f.kind is Kind.INTEGER:
        base = Annotated[
            int, PydanticField(ge=f.minimum, le=f.maximum), BeforeValidator(_json_integer)
        ]
    else:
        base = Annotated[str, StringConstraints(pattern=ICD9_PATTERN)]
    return base | None if f.nullable else base


def _field_info(f: Field) -> Any:
    extra: dict[str, Any] = {"x-group": f.group.value}
    if f.choice_labels:
        extra["x-choice-labels"] = {str(k): v for k, v in f.choice_labels.items()}
    if not f.model_input:
        extra["x-model-input"] = False  # accepted, audited by group, never scored
    return PydanticField(
        # Nullable fields may be left out: null means "unknown / not recorded".
        default=None if f.nullable else ...,
        alias=f.name,
        title=f.label,
        description=f.description,
        examples=[f.example],
        json_schema_extra=extra,
    )


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, validate_by_alias=True, validate_by_name=False
    )


def python_name(column: str) -> str:
    """Attribute name of a column ("glyburide-metformin" -> "glyburide_metformin")."""
    return column.replace("-", "_")


Encounter: type[BaseModel] = create_model(
    "Encounter",
    __base__=_Strict,
    __doc__="One patient encounter at discharge, as the api accepts it.",
    **{python_name(f.name): (_annotation(f), _field_info(f)) for f in FIELDS},
    encounter_id=(
        Annotated[str, StringConstraints(pattern=ENCOUNTER_ID_PATTERN)] | None,
        PydanticField(
            default=None,
            alias=ENCOUNTER_ID,
            title="Encounter id",
            description="Your own id of this encounter (e.g. the visit number): not a model "
            "input; kept in the audit record of the risk served for it.",
            examples=["2278392"],
        ),
    ),
)


def encounter_record(encounter: BaseModel) -> dict[str, Any]:
    """The validated encounter as a plain dict keyed by column name (``encounter_id`` only when
    given: it is the caller's reference, not an encounter field)."""
    record = encounter.model_dump(by_alias=True)
    if record[ENCOUNTER_ID] is None:
        del record[ENCOUNTER_ID]
    return record
