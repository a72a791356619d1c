"""The Open Inference Protocol (KServe V2) over REST, for the clients of KServe, Seldon and Triton.

One input tensor per schema field, named as the field, one row per encounter: BYTES for text
(categories, ICD-9 codes; an empty string is "not recorded" in a nullable field), INT64 for whole
numbers (counts, coded ids). Outputs: ``readmission_risk`` (FP64), ``readmitted_within_30_days``
(BOOL), ``risk_band`` (BYTES). Bodies are JSON tensors or Triton's binary tensor extension (a JSON
header of ``Inference-Header-Content-Length`` bytes, then the tensors' raw bytes): what
``tritonclient`` and KServe's clients send by default. The records then go through the same
validation, scoring and audit as ``/predict/batch``.
Spec: github.com/kserve/open-inference-protocol, specification/protocol/inference_rest.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from readmit_api import json_body, validation
from readmit_api.errors import MAX_NAME, ApiError
from readmit_api.model_store import LoadedModel
from readmit_api.prediction import Decoded
from readmit_core.schema import ENCOUNTER_ID, FIELDS, example_encounter

SERVER = "readmit-api"
EXTENSIONS = ("binary_tensor_data",)
HEADER_LENGTH = "inference-header-content-length"
BINARY = "application/octet-stream"
# Input name -> datatype; nullable inputs (and the caller's own encounter id) may be left out.
INPUTS: dict[str, str] = {
    **{f.name: "INT64" if f.is_integer else "BYTES" for f in FIELDS},
    ENCOUNTER_ID: "BYTES",
}
OPTIONAL = frozenset({f.name for f in FIELDS if f.nullable} | {ENCOUNTER_ID})
OUTPUTS: dict[str, str] = {
    "readmission_risk": "FP64",
    "readmitted_within_30_days": "BOOL",
    "risk_band": "BYTES",
}


def _example() -> dict[str, Any]:
    encounter = example_encounter()
    return {
        "id": "example-1",
        "inputs": [
            {"name": n, "datatype": t, "shape": [1], "data": [encounter[n]]}
            for n, t in INPUTS.items()
            if encounter.get(n) is not None
        ],
    }


_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string", "description": "a field of the encounter schema"},
        "datatype": {"type": "string", "enum": ["BYTES", "INT64"]},
        "shape": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "[rows] or [rows, 1]",
        },
        "data": {"type": "array", "description": "one value per row (absent with binary data)"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
    },
}
OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "example": _example(),
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "inputs": {"type": "array", "items": _TENSOR},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string", "enum": list(OUTPUTS)},
                                    "parameters": {
                                        "type": "object",
                                        "properties": {"binary_data": {"type": "boolean"}},
                                    },
                                },
                            },
                        },
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data_output": {"type": "boolean"}},
                        },
                    },
                },
            },
            BINARY: {
                "schema": {"type": "string", "format": "binary"},
                "description": (
                    f"Triton's binary tensor extension: a JSON header of {HEADER_LENGTH} bytes,"
                    " then each binary input's bytes in order"
                ),
            },
        },
    }
}


def error(exc: ApiError) -> Response:
    """OIP's error body, ``{"error": "..."}``, naming each invalid input and row."""
    return Response(
        orjson.dumps({"error": exc.described("input")}),
        exc.status,
        exc.headers,
        media_type="application/json",
    )


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": SERVER, "version": version, "extensions": list(EXTENSIONS)}


def model_metadata(loaded: LoadedModel) -> dict[str, Any]:
    return {
        "name": loaded.name,
        "versions": [loaded.version],
        "platform": f"readmit-{loaded.model.algorithm}",
        "inputs": [{"name": n, "datatype": t, "shape": [-1]} for n, t in INPUTS.items()],
        "outputs": [{"name": n, "datatype": t, "shape": [-1]} for n, t in OUTPUTS.items()],
    }


def check_model(loaded: LoadedModel, name: str, version: str | None) -> None:
    """404 unless the path names the served model (and, if given, its registry version)."""
    if name != loaded.name or (version is not None and version != loaded.version):
        served = f"{loaded.name} version {loaded.version}"
        raise ApiError(
            404,
            f"model {name[:MAX_NAME]!r}"
            + (f" version {version[:MAX_NAME]!r}" if version is not None else "")
            + f" is not served here (this server serves {served})",
        )


@dataclass(frozen=True)
class Request:
    """What an inference request asks beyond its rows: its id, and the outputs it wants, each
    as JSON or as binary data."""

    id: str | None
    outputs: tuple[tuple[str, bool], ...]


def decode(body: bytes, header_length: str | None, max_batch: int) -> Decoded:
    """An inference request's body -> its validated encounter records (400 for a request that
    is not OIP's, 413 past ``max_batch`` rows, 422 naming each invalid field and row)."""
    size = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > size:
            raise ApiError(
                400,
                f"{HEADER_LENGTH} must be the JSON header's size in bytes "
                f"(at most the body's {size})",
            )
        size = int(header_length)
    # a tensor's own members and brackets, per input and output, besides its rows' values
    header = json_body.parse(body[:size], max_batch, 16 * (len(INPUTS) + len(OUTPUTS)) + 16)
    if not isinstance(header, dict):
        raise ApiError(400, "an inference request is a JSON object")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ApiError(400, "'inputs' must be a non-empty list of tensors")
    binary = memoryview(body)[size:]
    columns: dict[str, list[Any]] = {}
    offset = 0
    for tensor in inputs:
        name, values, used = _input(tensor, binary[offset:])
        if name in columns:
            raise ApiError(400, f"input {name!r} is given twice")
        columns[name], offset = values, offset + used
    if offset != len(binary):
        raise ApiError(400, f"{len(binary) - offset} bytes of binary data belong to no input")
    missing = [n for n in INPUTS if n not in columns and n not in OPTIONAL]
    if missing:
        raise ApiError(
            400,
            f"missing input{'s' if len(missing) > 1 else ''}: "
            f"{', '.join(missing)} (GET /v2/models/{{name}} lists them)",
        )
    rows = {len(v) for v in columns.values()}
    if len(rows) != 1:
        raise ApiError(400, "every input must hold the same number of rows (one per encounter)")
    n = rows.pop()
    if n == 0:
        raise ApiError(400, "no rows: a request holds at least one encounter")
    if n > max_batch:
        raise ApiError(413, f"{n} rows: a request holds at most {max_batch}")
    names = list(columns)
    items = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return Decoded(validation.encounters(items, max_batch), _request(header))


def _input(tensor: Any, binary: memoryview) -> tuple[str, list[Any], int]:
    """(name, values, binary bytes used) of one input tensor."""
    if type(tensor) is not dict or type(tensor.get("name")) is not str:
        raise ApiError(400, "each input is an object with a 'name', 'datatype', 'shape' and data")
    name = tensor["name"]
    expected = INPUTS.get(name)
    if expected is None:
        raise ApiError(
            400,
            f"unknown input {name[:MAX_NAME]!r}: the inputs are the encounter's "
            "fields (GET /v2/models/{name} lists them)",
        )
    if tensor.get("datatype") != expected:
        raise ApiError(400, f"input {name!r}: datatype must be {expected}")
    shape = tensor.get("shape")
    if (
        type(shape) is not list
        or len(shape) not in (1, 2)
        or shape[1:] not in ([], [1])
        or type(shape[0]) is not int
        or shape[0] < 0
    ):
        raise ApiError(400, f"input {name!r}: shape must be [rows] or [rows, 1]")
    rows = shape[0]
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if type(parameters) is dict else None
    data = tensor.get("data")
    if size is not None:
        if type(size) is not int or not 0 <= size <= len(binary):
            raise ApiError(400, f"input {name!r}: binary_data_size runs past the body")
        values, used = _from_binary(name, expected, binary[:size], rows), size
    elif type(data) is list:
        # row-major: flat, or nested as its shape ([[v], [v], ...])
        values, used = (
            ([_one(name, v) for v in data] if data and type(data[0]) is list else data),
            0,
        )
    else:
        raise ApiError(400, f"input {name!r} has no data (a 'data' list or binary_data_size)")
    if len(values) != rows:
        raise ApiError(400, f"input {name!r}: {len(values)} values for shape {shape}")
    if name in OPTIONAL and expected == "BYTES":  # "" and null: not recorded
        values = [None if v == "" else v for v in values]
    return name, values, used


def _one(name: str, row: Any) -> Any:
    if type(row) is not list or len(row) != 1:
        raise ApiError(400, f"input {name!r}: nested data must hold one value per row")
    return row[0]


def _from_binary(name: str, datatype: str, raw: memoryview, rows: int) -> list[Any]:
    if datatype == "INT64":
        if len(raw) != 8 * rows:
            raise ApiError(400, f"input {name!r}: INT64 data is 8 bytes a row")
        return np.frombuffer(raw, "<i8").tolist()
    values: list[Any] = []
    at = 0
    try:
        while at < len(raw):  # BYTES: each element a 4-byte little-endian length, then itself
            (length,) = struct.unpack_from("<I", raw, at)
            end = at + 4 + length
            if end > len(raw) or len(values) == rows:
                raise struct.error
            values.append(bytes(raw[at + 4 : end]).decode())
            at = end
    except (struct.error, UnicodeDecodeError):
        raise ApiError(
            400, f"input {name!r}: BYTES data must be {rows} length-prefixed UTF-8 strings"
        ) from None
    return values


def _request(header: dict[str, Any]) -> Request:
    given = header.get("id")
    parameters = header.get("parameters")
    all_binary = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    asked = header.get("outputs")
    if asked is None:
        return Request(_id(given), tuple((n, all_binary) for n in OUTPUTS))
    if not isinstance(asked, list):
        raise ApiError(400, "'outputs' must be a list")
    outputs = []
    for output in asked:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise ApiError(400, f"unknown output: the outputs are {', '.join(OUTPUTS)}")
        options = output.get("parameters") or {}
        binary = options.get("binary_data", all_binary) if isinstance(options, dict) else False
        outputs.append((name, binary is True))
    return Request(_id(given), tuple(outputs))


def _id(given: Any) -> str | None:
    if given is not None and not isinstance(given, str):
        raise ApiError(400, "'id' must be a string")
    return given[:128] if given else None


def response(loaded: LoadedModel, request: Request, predictions: list[dict[str, Any]]) -> Response:
    """The inference response: JSON tensors, or the binary extension's layout when an output
    was asked for as binary data."""
    n = len(predictions)
    outputs, blobs = [], []
    for name, binary in request.outputs:
        values = [p[name] for p in predictions]
        tensor: dict[str, Any] = {"name": name, "datatype": OUTPUTS[name], "shape": [n]}
        if binary:
            blob = _to_binary(OUTPUTS[name], values)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values
        outputs.append(tensor)
    body: dict[str, Any] = {"model_name": loaded.name, "model_version": loaded.version}
    if request.id is not None:
        body["id"] = request.id
    body["parameters"] = {"threshold": loaded.model.threshold}
    body["outputs"] = outputs
    header = orjson.dumps(body)
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(
        b"".join((header, *blobs)), media_type=BINARY, headers={HEADER_LENGTH: str(len(header))}
    )


def _to_binary(datatype: str, values: list[Any]) -> bytes:
    if datatype == "FP64":
        return np.asarray(values, "<f8").tobytes()
    if datatype == "BOOL":
        return np.asarray(values, np.bool_).tobytes()
    encoded = [v.encode() for v in values]
    return b"".join(struct.pack("<I", len(e)) + e for e in encoded)
