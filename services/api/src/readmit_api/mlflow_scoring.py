"""MLflow's scoring protocol (``mlflow models serve``): ``/invocations`` takes a DataFrame as
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` JSON, or as CSV, and
answers ``{"predictions": [risk, ...]}`` — the body ``mlflow models serve`` gives for the same
registered version. The rows are the schema's columns and go through ``/predict/batch``'s own
validation, scoring and audit; errors are MLflow's ``{"error_code": ..., "message": ...}``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from starlette.responses import Response

from readmit_api import json_body, validation
from readmit_api.errors import ApiError
from readmit_api.prediction import Decoded
from readmit_core.schema import FIELDS_BY_NAME, example_encounter

CSV = "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# MLflow's error codes (its databricks protos) for the statuses the api answers with.
_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}

_EXAMPLE = example_encounter()
OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "description": "one of " + ", ".join(FORMATS)},
                "examples": {
                    "dataframe_split": {
                        "value": {
                            "dataframe_split": {
                                "columns": list(_EXAMPLE),
                                "data": [list(_EXAMPLE.values())],
                            }
                        }
                    },
                    "dataframe_records": {"value": {"dataframe_records": [_EXAMPLE]}},
                    "instances": {"value": {"instances": [_EXAMPLE]}},
                    "inputs": {"value": {"inputs": {k: [v] for k, v in _EXAMPLE.items()}}},
                },
            },
            CSV: {
                "schema": {"type": "string"},
                "description": "a header line of column names, then a "
                "row per encounter; an empty cell is missing",
            },
        },
    }
}


def error(exc: ApiError) -> Response:
    """MLflow's error body, naming each invalid column and row; an invalid request (400, 422
    here) is its 400 BAD_REQUEST."""
    status = 400 if exc.status in (400, 422) else exc.status
    body = {"error_code": _CODES.get(status, "BAD_REQUEST"), "message": exc.described("column")}
    return Response(orjson.dumps(body), status, exc.headers, media_type="application/json")


def predictions(risks: list[float]) -> Response:
    return Response(orjson.dumps({"predictions": risks}), media_type="application/json")


def decode(body: bytes, content_type: str, max_batch: int) -> Decoded:
    if content_type == CSV:
        rows = _csv_rows(body, max_batch)
    else:
        # slack: dataframe_split's columns; NaN: a missing value, as MLflow's clients write it
        parsed = json_body.parse(body, max_batch, json_body.MAX_MEMBERS, nan_is_missing=True)
        given = [k for k in FORMATS if isinstance(parsed, dict) and k in parsed]
        if len(given) != 1 or set(parsed) - {given[0], "params"}:
            raise ApiError(
                400,
                "the JSON body must hold exactly one of the keys "
                f"{', '.join(FORMATS)} (and optionally params)",
            )
        rows = _rows(given[0], parsed[given[0]])
    if not rows:
        raise ApiError(400, "no rows: a request holds at least one encounter")
    return Decoded(validation.encounters(rows, max_batch))


def _rows(form: str, value: Any) -> list[Any]:
    """The DataFrame's rows as objects keyed by column, whatever its JSON form."""
    if form == "dataframe_split":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("columns"), list)
            or not isinstance(value.get("data"), list)
        ):
            raise ApiError(400, "dataframe_split needs 'columns' and 'data' lists")
        columns = value["columns"]
        if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            raise ApiError(400, "dataframe_split's columns must be distinct names")
        rows = value["data"]
        if not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
            raise ApiError(400, f"each row of dataframe_split's data holds {len(columns)} values")
        return [dict(zip(columns, r, strict=True)) for r in rows]
    if isinstance(value, dict):  # instances/inputs as columns: {"age": [...], ...}
        if (
            not all(isinstance(v, list) for v in value.values())
            or len({len(v) for v in value.values()}) > 1
        ):
            raise ApiError(400, f"{form} as columns needs lists of one length")
        names = list(value)
        return [dict(zip(names, r, strict=True)) for r in zip(*value.values(), strict=True)]
    if not isinstance(value, list):
        raise ApiError(400, f"{form} must be a list of rows or an object of columns")
    return value


def _csv_rows(body: bytes, max_batch: int) -> list[dict[str, Any]]:
    """CSV with a header line: an empty cell is missing; a column that holds whole numbers in
    the schema is read as one (as pandas reads it)."""
    try:
        reader = csv.reader(io.StringIO(body.decode()))
        header = next(reader, None)
        if not header:
            raise ApiError(400, "the CSV has no header line of column names")
        if len(header) > json_body.MAX_MEMBERS:
            raise ApiError(
                422, f"{len(header)} columns; an encounter has at most {json_body.MAX_MEMBERS}"
            )
        rows = []
        for line in reader:
            if len(rows) == max_batch:
                raise ApiError(413, f"over {max_batch} rows: a request holds at most {max_batch}")
            if len(line) != len(header):
                raise ApiError(
                    400, f"CSV row {len(rows)} has {len(line)} cells, the header {len(header)}"
                )
            rows.append({name: _cell(name, cell) for name, cell in zip(header, line, strict=True)})
    except (UnicodeDecodeError, csv.Error):
        raise ApiError(400, "the body is not UTF-8 CSV") from None
    return rows


def _cell(name: str, cell: str) -> Any:
    if cell == "":
        return None
    field = FIELDS_BY_NAME.get(name)
    if field is not None and field.is_integer and cell.lstrip("-").isdigit() and len(cell) < 20:
        return int(cell)
    return cell
