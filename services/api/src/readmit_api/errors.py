"""Every error is JSON, says what was wrong, and never echoes a field's value."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from readmit_core.schema import FIELDS_BY_NAME

JSON = "application/json"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        more_errors: int = 0,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.errors = status, detail, headers, errors
        self.more_errors = more_errors

    def described(self, noun: str) -> str:
        """The detail and each listed error in one line, for a protocol whose error body is a
        message: "1 invalid field: <noun> 'age' row 0: Input should be ..."."""
        if not self.errors:
            return self.detail
        listed = "; ".join(
            f"{noun} {e['field']!r}"
            + (f" row {e['index']}" if e["index"] is not None else "")
            + f": {e['message']}"
            for e in self.errors
        )
        return f"{self.detail}: {listed}"

    def response(self) -> Response:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
            body["more_errors"] = self.more_errors
        return json_response(body, self.status, self.headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type=JSON)


# A 422 lists this many errors, and says how many more there were.
MAX_ERRORS = 50
# An unknown field's name is echoed (never a value): no longer than this.
MAX_NAME = 64


class ErrorList:
    """The first MAX_ERRORS errors of a request, and the count of all of them."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.total = 0

    def add(self, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> None:
        self.total += exc.error_count()
        room = MAX_ERRORS - len(self.listed)
        if room > 0:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            self.listed += [_field_error({**e, "loc": (*prefix, *e["loc"])}) for e in errors[:room]]

    def problem(self) -> ApiError:
        detail = f"{self.total} invalid field{'s' if self.total != 1 else ''}"
        if self.total > len(self.listed):
            detail += f" (the first {len(self.listed)} listed)"
        return ApiError(422, detail, errors=self.listed, more_errors=self.total - len(self.listed))


def invalid_body(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> ApiError:
    """422 listing the invalid fields of one validation."""
    errors = ErrorList()
    errors.add(exc, prefix)
    return errors.problem()


def invalid_parameters(errors: Any) -> ApiError:
    """422 in the same shape as a body's for a bad query parameter (e.g. ?top=0), which FastAPI
    checks."""
    problems = [_field_error({**e, "loc": tuple(e["loc"])[1:]}) for e in errors[:MAX_ERRORS]]
    detail = f"{len(errors)} invalid parameter{'s' if len(errors) != 1 else ''}"
    return ApiError(422, detail, errors=problems, more_errors=len(errors) - len(problems))


def _field_error(error: Any) -> dict[str, Any]:
    loc, index = list(error["loc"]), None
    if len(loc) >= 2 and loc[0] == "encounters" and isinstance(loc[1], int):
        index, loc = loc[1], loc[2:]  # one encounter of a batch
    name = ".".join(str(p) for p in loc)[:MAX_NAME] or "body"
    field = FIELDS_BY_NAME.get(name)
    allowed = list(field.choices) if field is not None and field.choices else None
    return {
        "field": name,
        "index": index,
        "message": error["msg"],
        "type": error["type"],
        "allowed": allowed,
    }
