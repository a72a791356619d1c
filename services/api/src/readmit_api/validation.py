"""From a parsed body (``json_body``) to validated encounter records, with a bounded error list.

Each encounter is validated on its own, so a batch's errors are counted without building them
all: a 422 lists the first ``errors.MAX_ERRORS`` and says how many more there were.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from readmit_api.errors import ApiError, ErrorList, invalid_body
from readmit_core.encounter import Encounter, encounter_record


class _Batch(BaseModel):
    """The batch's own object; its encounters are validated one by one (``records``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    encounters: list[Any] = Field(min_length=1)


def record(value: Any) -> dict[str, Any]:
    """One encounter's record, or a 422 naming every invalid field."""
    try:
        return encounter_record(Encounter.model_validate(value))
    except ValidationError as exc:
        raise invalid_body(exc) from None


def records(value: Any, max_batch: int) -> list[dict[str, Any]]:
    """A batch's records in order; 413 past ``max_batch`` encounters, 422 with every encounter's
    invalid fields (``index`` says which)."""
    try:
        batch = _Batch.model_validate(value)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    return encounters(batch.encounters, max_batch)


def encounters(items: list[Any], max_batch: int) -> list[dict[str, Any]]:
    """Encounters given as a list (a batch's, or rows another protocol sent) -> their records;
    413 past ``max_batch``, 422 naming each invalid field and its encounter's index."""
    n = len(items)
    if n > max_batch:
        raise ApiError(413, f"{n} encounters: a batch holds at most {max_batch}")
    errors, valid = ErrorList(), []
    for index, encounter in enumerate(items):
        try:
            valid.append(encounter_record(Encounter.model_validate(encounter)))
        except ValidationError as exc:
            errors.add(exc, ("encounters", index))
    if errors.total:
        raise errors.problem()
    return valid
