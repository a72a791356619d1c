"""CSV upload parsing: the data set's own format, every row validated, bad rows explained."""

from __future__ import annotations

import csv
import io

import pytest

from readmit_core.schema import FIELD_NAMES, example_encounter
from readmit_ui.batch import parse_csv, predict_in_chunks, template_csv


def data_set_csv(encounters, bad_row: int | None = None) -> bytes:
    """Rows as diabetic_data.csv writes them: all 50 columns, "?" for missing."""
    frame = encounters.drop(columns=["target"]).copy()
    if bad_row is not None:
        frame.loc[frame.index[bad_row], "race"] = "Martian"
    return frame.fillna("?").to_csv(index=False).encode()


def test_real_rows_parse_and_a_bad_row_is_explained(encounters) -> None:
    parsed = parse_csv(data_set_csv(encounters.head(50), bad_row=3), 5000)
    assert [n for n, _ in parsed.valid] == [n for n in range(2, 52) if n != 5]
    ((row, reason),) = parsed.invalid
    assert row == 5
    assert reason.startswith("race: Input should be")
    assert "Martian" not in reason
    # The rows' own identifiers stay beside them (for the reader); of them only encounter_id
    # is sent (the api's audit record), never patient_nbr.
    first = encounters.iloc[0]
    assert set(parsed.valid[0][1]) == {*FIELD_NAMES, "encounter_id"}
    assert parsed.valid[0][1]["encounter_id"] == str(first["encounter_id"])
    assert len(parsed.ids) == len(parsed.valid)
    assert parsed.ids[0]["encounter_id"] == str(first["encounter_id"])
    assert parsed.ids[0]["patient_nbr"] == str(first["patient_nbr"])
    assert "patient_nbr" not in parsed.valid[0][1]


def test_template_is_one_valid_example_row() -> None:
    rows = list(csv.DictReader(io.StringIO(template_csv())))
    assert len(rows) == 1
    assert not {"race", "payer_code"} & set(rows[0])  # not model inputs: not asked
    parsed = parse_csv(template_csv().encode(), 5000)
    assert parsed.invalid == []
    expected = {**example_encounter(), "race": None, "payer_code": None}  # left out: unknown
    assert parsed.valid[0][1] == {**expected, "encounter_id": "2278392"}


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match=r"lacks the column\(s\) age, .*download the template"):
        parse_csv(b"race,gender\nCaucasian,Female\n", 5000)


def test_chunks_keep_order_and_report_progress() -> None:
    seen: list[float] = []
    records = [{"i": i} for i in range(450)]

    def fake_batch(chunk):
        return {"predictions": [{"i": r["i"]} for r in chunk]}

    out = predict_in_chunks(fake_batch, records, seen.append)
    assert [r["i"] for r in out] == list(range(450))
    assert seen == [200 / 450, 400 / 450, 1.0]


def test_a_file_over_the_row_cap_is_refused_before_any_row_is_read() -> None:
    rows = template_csv().splitlines()
    text = "\n".join([rows[0], *[rows[1]] * 11]) + "\n"
    assert len(parse_csv(text.encode(), 11).valid) == 11
    with pytest.raises(ValueError, match="more than 10 encounters; split it"):
        parse_csv(text.encode(), 10)
