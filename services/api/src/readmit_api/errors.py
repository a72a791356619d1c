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
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.errors = status, detail, headers, errors

    def response(self) -> Response:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
        return json_response(body, self.status, self.headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type=JSON)


def invalid_body(exc: ValidationError) -> ApiError:
    """400 for JSON that does not parse; otherwise 422 listing every invalid field."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return ApiError(400, "malformed JSON: the request body does not parse")
    problems = [_field_error(e) for e in errors]
    detail = f"{len(problems)} invalid field{'s' if len(problems) != 1 else ''}"
    return ApiError(422, detail, errors=problems)


def invalid_parameters(errors: Any) -> ApiError:
    """422 in the same shape for a bad query parameter (e.g. ?top=0), which FastAPI checks."""
    problems = [_field_error({**e, "loc": tuple(e["loc"])[1:]}) for e in errors]
    detail = f"{len(problems)} invalid parameter{'s' if len(problems) != 1 else ''}"
    return ApiError(422, detail, errors=problems)


def _field_error(error: Any) -> dict[str, Any]:
    loc, index = list(error["loc"]), None
    if len(loc) >= 2 and loc[0] == "encounters" and isinstance(loc[1], int):
        index, loc = loc[1], loc[2:]  # one encounter of a batch
    name = ".".join(str(p) for p in loc) or "body"
    field = FIELDS_BY_NAME.get(name)
    allowed = list(field.choices) if field is not None and field.choices else None
    return {
        "field": name,
        "index": index,
        "message": error["msg"],
        "type": error["type"],
        "allowed": allowed,
    }
