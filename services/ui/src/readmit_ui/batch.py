"""CSV upload in the data set's own column format: validate every row, score in chunks."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from readmit_core.encounter import Encounter, encounter_record
from readmit_core.schema import ENCOUNTER_ID, FIELDS_BY_NAME, MODEL_INPUTS, example_encounter

# The columns a file must have: the model's inputs. Race and payer may be there too (the data
# set's own files hold them) and are sent on; encounter_id, when there, goes to the api's audit
# record beside each risk.
REQUIRED = tuple(f.name for f in MODEL_INPUTS)

CHUNK = 200  # encounters per /predict/batch call


@dataclass
class ParsedCsv:
    valid: list[tuple[int, dict[str, Any]]]  # (row number in the file, record)
    invalid: list[tuple[int, str]]  # (row number, why)
    # Per valid row, its other columns (e.g. encounter_id, patient_nbr): shown beside the risk
    # so the reader knows whose it is; of them only encounter_id is sent to the api.
    ids: list[dict[str, str]] = field(default_factory=list)


def template_csv() -> str:
    """A header in the data set's format (its id, the model's inputs) and one example row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=(ENCOUNTER_ID, *REQUIRED))
    writer.writeheader()
    example = {k: "?" if v is None else v for k, v in example_encounter().items()}
    writer.writerow({ENCOUNTER_ID: "2278392", **{k: example[k] for k in REQUIRED}})
    return out.getvalue()


def _typed(name: str, text: str) -> Any:
    """A csv cell as the schema's type: "?" or blank is missing; ids and counts are integers."""
    text = text.strip()
    if text in ("", "?"):
        return None
    field = FIELDS_BY_NAME[name]
    if field.is_integer:
        try:
            return int(text)
        except ValueError:
            return text  # validation reports it, naming the field
    return text


def parse_csv(data: bytes, max_rows: int) -> ParsedCsv:
    """Rows of a csv with the schema's columns; other columns (e.g. encounter_id) are kept
    apart, for the reader. More than ``max_rows`` rows: ValueError, before any is validated."""
    text = data.decode("utf-8-sig")
    if sum(1 for _ in csv.reader(io.StringIO(text))) - 1 > max_rows:  # the header aside
        raise ValueError(
            f"it holds more than {max_rows} encounters; split it into files of "
            f"at most {max_rows} rows"
        )
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    missing = [n for n in REQUIRED if n not in columns]
    if missing:
        raise ValueError(
            f"the file lacks the column(s) {', '.join(missing)}; "
            "download the template for the format"
        )
    sent = [n for n in columns if n in FIELDS_BY_NAME]
    others = [n for n in columns if n not in FIELDS_BY_NAME and n]
    parsed = ParsedCsv([], [])
    for number, row in enumerate(reader, start=2):  # row 1 is the header
        record = {name: _typed(name, row[name] or "") for name in sent}
        if (row.get(ENCOUNTER_ID) or "").strip():
            record[ENCOUNTER_ID] = row[ENCOUNTER_ID].strip()
        try:
            parsed.valid.append((number, encounter_record(Encounter.model_validate(record))))
            parsed.ids.append({name: row[name] or "" for name in others})
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            parsed.invalid.append((number, reasons))
    return parsed


def predict_in_chunks(
    predict_batch: Callable[[list[dict[str, Any]]], dict[str, Any]],
    records: list[dict[str, Any]],
    progress: Callable[[float], None],
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for start in range(0, len(records), CHUNK):
        answer = predict_batch(records[start : start + CHUNK])
        results.extend(answer["predictions"])
        progress(min(1.0, (start + CHUNK) / len(records)))
    return results
