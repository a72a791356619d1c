"""The one encounter schema: valid records pass, each kind of invalid record names its field."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from readmit_core.encounter import Encounter, encounter_record
from readmit_core.schema import (
    DISCHARGE_EXCLUDED,
    FIELD_NAMES,
    FIELDS,
    FIELDS_BY_NAME,
    MEDICATIONS,
    Kind,
    example_encounter,
)


def errors(record: dict[str, Any], as_json: bool = False) -> list[dict[str, Any]]:
    validate = Encounter.model_validate_json if as_json else Encounter.model_validate
    with pytest.raises(ValidationError) as info:
        validate(json.dumps(record) if as_json else record)
    return info.value.errors()


def test_example_is_valid_and_round_trips() -> None:
    record = example_encounter()
    assert encounter_record(Encounter.model_validate(record)) == record
    assert encounter_record(Encounter.model_validate_json(json.dumps(record))) == record


def test_schema_covers_the_clinical_columns_and_nothing_else() -> None:
    assert len(MEDICATIONS) == 23
    assert set(MEDICATIONS) <= set(FIELD_NAMES)
    for excluded in ("encounter_id", "patient_nbr", "readmitted"):
        assert excluded not in FIELD_NAMES
    for f in FIELDS:
        assert f.label, f.name
        assert f.description, f.name
        if f.kind is Kind.CATEGORY:  # weight's example is "not recorded", as for most
            assert f.example in f.choices or (f.nullable and f.example is None), f.name
        elif f.kind is Kind.INTEGER:
            assert f.minimum <= f.example <= f.maximum, f.name


def test_nullable_fields_accept_null_or_absence() -> None:
    record = example_encounter()
    nullable = [f.name for f in FIELDS if f.nullable]
    assert nullable == [
        "race",
        "weight",
        "payer_code",
        "medical_specialty",
        "diag_1",
        "diag_2",
        "diag_3",
    ]
    for name in nullable:
        assert getattr(Encounter.model_validate({**record, name: None}), name) is None
    trimmed = {k: v for k, v in record.items() if k not in nullable}
    assert encounter_record(Encounter.model_validate(trimmed))["diag_1"] is None


@pytest.mark.parametrize(
    ("field", "value", "error_type"),
    [
        ("time_in_hospital", "3", "int_type"),  # no "3" for an int
        ("time_in_hospital", True, "int_type"),  # no true for a number
        ("time_in_hospital", 3.5, "int_type"),
        ("time_in_hospital", 15, "less_than_equal"),
        ("num_lab_procedures", -1, "greater_than_equal"),
        ("admission_type_id", "1", "int_type"),
        ("admission_type_id", True, "int_type"),
        ("admission_type_id", 1.5, "int_type"),
        ("admission_type_id", 99, "literal_error"),
        ("discharge_disposition_id", 11, "literal_error"),  # expired: out of scope
        ("race", "Martian", "literal_error"),
        ("metformin", "Sometimes", "literal_error"),
        ("age", 75, "literal_error"),
        ("diag_1", "heart", "string_pattern_mismatch"),
        ("diag_1", 428, "string_type"),
        ("gender", None, "literal_error"),  # not nullable
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["python", "json"])
def test_invalid_values_fail_naming_the_field(
    field: str, value: Any, error_type: str, as_json: bool
) -> None:
    (error,) = errors({**example_encounter(), field: value}, as_json)
    assert error["loc"] == (field,)
    assert error["type"] == error_type


def test_integral_json_numbers_are_the_integers_they_equal() -> None:
    """As JSON Schema says: 3.0 is the integer 3 (no other type is turned into a number)."""
    record = {**example_encounter(), "time_in_hospital": 3.0, "admission_type_id": 2.0}
    validated = encounter_record(Encounter.model_validate_json(json.dumps(record)))
    assert validated["time_in_hospital"] == 3
    assert type(validated["time_in_hospital"]) is int
    assert validated["admission_type_id"] == 2
    assert type(validated["admission_type_id"]) is int


def test_unknown_category_message_lists_the_allowed_values() -> None:
    (error,) = errors({**example_encounter(), "A1Cresult": "high"})
    for choice in FIELDS_BY_NAME["A1Cresult"].choices:
        assert repr(choice) in error["msg"]


def test_unknown_and_missing_fields_are_rejected() -> None:
    (unknown,) = errors({**example_encounter(), "patient_nbr": 1})
    assert (unknown["loc"], unknown["type"]) == (("patient_nbr",), "extra_forbidden")
    # the caller's encounter id is the one extra key, as text (the audit record's reference)
    (number,) = errors({**example_encounter(), "encounter_id": 1})
    assert (number["loc"], number["type"]) == (("encounter_id",), "string_type")
    valid = Encounter.model_validate({**example_encounter(), "encounter_id": "2278392"})
    assert encounter_record(valid)["encounter_id"] == "2278392"
    assert "encounter_id" not in encounter_record(Encounter.model_validate(example_encounter()))
    record = example_encounter()
    del record["age"]
    (missing,) = errors(record)
    assert (missing["loc"], missing["type"]) == (("age",), "missing")


def test_hyphenated_columns_keep_their_data_set_names() -> None:
    record = example_encounter()
    python_style = {k.replace("-", "_"): v for k, v in record.items()}
    assert {e["loc"][0] for e in errors(python_style)} >= {
        "glyburide-metformin",
        "glyburide_metformin",
    }


def test_json_schema_documents_labels_groups_and_examples() -> None:
    props = Encounter.model_json_schema(by_alias=True)["properties"]
    assert list(props) == [*FIELD_NAMES, "encounter_id"]  # the caller's reference, last
    assert "x-group" not in props.pop("encounter_id")
    audit_only = {n for n, p in props.items() if p.get("x-model-input") is False}
    assert audit_only == {"race", "payer_code"}
    assert props["admission_type_id"]["x-choice-labels"]["1"] == "Emergency"
    assert props["discharge_disposition_id"]["enum"] == list(
        FIELDS_BY_NAME["discharge_disposition_id"].choices
    )
    assert all("examples" in p and "x-group" in p and "title" in p for p in props.values())


def test_coded_labels_match_the_data_sets_ids_mapping(data_path: Path) -> None:
    """The human names in the schema are those of IDs_mapping.csv in the real zip."""
    with zipfile.ZipFile(data_path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("IDs_mapping.csv"))
        text = archive.read(name).decode()
    tables: dict[str, dict[int, str]] = {}
    current = None
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            current = None
        elif current is None:
            current = row[0]
            tables[current] = {}
        else:
            tables[current][int(row[0])] = row[1]
    assert set(tables) == {"admission_type_id", "discharge_disposition_id", "admission_source_id"}
    for column, mapping in tables.items():
        field = FIELDS_BY_NAME[column]
        for code, label in mapping.items():
            if column == "discharge_disposition_id" and code in DISCHARGE_EXCLUDED:
                assert code not in field.choices
                continue
            assert code in field.choices, (column, code)
            assert field.choice_labels[code] == label.strip().rstrip(".").strip(), (column, code)
