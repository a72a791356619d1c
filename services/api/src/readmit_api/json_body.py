"""Request bodies as plain JSON, bounded before anything is validated.

Before parsing, the body's commas and opening brackets are counted (a bound on how many values
it holds): more than a full batch has is refused with 413 at once, whatever they are. Then the
standard library's C scanner parses it with a hook on every object: a key given twice is
refused (JSON leaves it undefined; parsers keep the first or the last, so two readers of one
body could see two different encounters), and so is an object with more members than an
encounter has — before pydantic builds an error per member (a 0.93 MB body of 100,000 unknown
keys once made an 11 MB answer and took 570 MB; 2.4 MB of empty objects, 1.7 GB).
``NaN`` and ``Infinity`` are not JSON and are refused too.
"""

from __future__ import annotations

import json
from typing import Any

from readmit_api.errors import MAX_NAME, ApiError
from readmit_core.schema import FIELDS

# An encounter's fields and a few to spare (an identifier, a misspelt field or two): an object
# with more is not an encounter, whatever its keys.
MAX_MEMBERS = len(FIELDS) + 16
_MALFORMED = "malformed JSON: the request body does not parse"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Every object of a body: at most MAX_MEMBERS members, each key once."""
    if len(pairs) > MAX_MEMBERS:
        raise ApiError(
            422, f"an object has {len(pairs)} members; an encounter has at most {MAX_MEMBERS}"
        )
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ApiError(400, f"duplicate key {key[:MAX_NAME]!r} in one JSON object")
            seen.add(key)
    return obj


def _not_json(constant: str) -> Any:
    raise ApiError(400, f"{constant} is not a JSON number")


def _nan_is_missing(constant: str) -> Any:
    if constant == "NaN":
        return None
    return _not_json(constant)


def parse(body: bytes, max_encounters: int, slack: int = 0, nan_is_missing: bool = False) -> Any:
    """The body's JSON value; 400 if it does not parse, 413/422 past the bounds. ``slack``: the
    values a protocol's own wrapping adds (a tensor per field, a list of column names).
    ``nan_is_missing``: ``NaN`` reads as null (what MLflow's clients write for a missing value
    of a DataFrame)."""
    # A value of an array or object is followed by a comma or opens a bracket: this counts them
    # all, and more (a bracket in a string: "[70-80)"). A full batch of encounters fits.
    values = body.count(b",") + body.count(b"{") + body.count(b"[")
    limit = max_encounters * (MAX_MEMBERS + 4) + 16 + slack
    if values > limit:
        raise ApiError(413, f"too many values in one request body (over {limit})")
    # A decoder per call: the scanner keeps state while it runs, and two threads parse at once.
    constant = _nan_is_missing if nan_is_missing else _not_json
    decoder = json.JSONDecoder(object_pairs_hook=_object, parse_constant=constant)
    try:
        return decoder.decode(body.decode())
    except (UnicodeDecodeError, RecursionError, ValueError):
        # ValueError: JSONDecodeError, or an integer of over 4,300 digits (Python's own limit)
        raise ApiError(400, _MALFORMED) from None
