"""Loader and split against the real data set."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from readmit_core import data
from readmit_core.encounter import Encounter


def test_real_data_set_counts(encounters) -> None:
    assert len(encounters) == 99_343
    assert encounters["patient_nbr"].nunique() == 69_990
    assert round(float(encounters["target"].mean()), 3) == 0.114
    assert not encounters["discharge_disposition_id"].isin(list(data.DISCHARGE_EXCLUDED)).any()
    # the text "None" means "not measured", not missing
    assert (encounters["max_glu_serum"] == "None").sum() > 90_000
    assert encounters["max_glu_serum"].notna().all()


def test_every_real_encounter_fits_the_schema(encounters) -> None:
    assert data.schema_violations(encounters) == {}
    for record in data.to_records(encounters.sample(500, random_state=1)):
        Encounter.model_validate(record)


def test_bare_csv_and_zip_read_the_same(data_path: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(data_path) as archive:
        member = next(n for n in archive.namelist() if n.endswith("diabetic_data.csv"))
        csv = archive.read(member)
    (tmp_path / "diabetic_data.csv").write_bytes(csv)
    assert data.read_verified_csv(tmp_path / "diabetic_data.csv") == csv
    assert data.read_verified_csv(data_path) == csv
    assert hashlib.sha256(csv).hexdigest() == data.CSV_SHA256


def test_repackaged_zip_is_verified_by_its_csv(data_path: Path, tmp_path: Path) -> None:
    """UCI's own download is packaged differently: the csv inside is what is checked."""
    with zipfile.ZipFile(data_path) as archive:
        member = next(n for n in archive.namelist() if n.endswith("diabetic_data.csv"))
        csv = archive.read(member)
    repacked = tmp_path / "uci.zip"
    with zipfile.ZipFile(repacked, "w") as out:
        out.writestr("diabetes+130-us+hospitals/diabetic_data.csv", csv)
    assert data.read_verified_csv(repacked) == csv


def test_checksum_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    tampered = tmp_path / "diabetic_data.csv"
    tampered.write_text("encounter_id,patient_nbr\n1,2\n")
    with pytest.raises(data.DataError, match=r"checksum mismatch.*expected SHA-256 0689e7"):
        data.read_verified_csv(tampered)
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("README.txt", "no data here")
    with pytest.raises(data.DataError, match=r"zip without diabetic_data\.csv"):
        data.read_verified_csv(archive)


def test_missing_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(data.DataError, match="data set not found"):
        data.read_raw(tmp_path / "nope.zip")
    monkeypatch.setenv("READMIT_DATA", str(tmp_path / "nope.csv"))
    with pytest.raises(data.DataError, match=r"nope\.csv is not a file"):
        data.read_raw()


def test_failed_download_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("READMIT_DATA", raising=False)
    monkeypatch.setenv("READMIT_CACHE_DIR", str(tmp_path / "cache"))
    # An unroutable URL fails at once, as any download does on a machine without internet.
    monkeypatch.setattr(data, "DATA_URL", "http://127.0.0.1:9/unreachable.zip")
    with pytest.raises(data.DataError, match=r"--data PATH or READMIT_DATA.*download"):
        data.locate()
    assert not (tmp_path / "cache" / data.CACHE_FILE).exists()


def test_split_keeps_each_patient_in_one_part(encounters) -> None:
    part = data.patient_split(encounters["patient_nbr"].to_numpy())
    parts_per_patient = encounters.assign(part=part).groupby("patient_nbr")["part"].nunique()
    assert parts_per_patient.max() == 1
    shares = np.bincount(part) / len(part)
    assert np.allclose(shares, [0.70, 0.15, 0.15], atol=0.01)


def test_split_is_stable_across_subsamples(encounters) -> None:
    full = data.patient_split(encounters["patient_nbr"].to_numpy())
    sample = encounters.sample(3000, random_state=3)
    assert np.array_equal(data.patient_split(sample["patient_nbr"].to_numpy()), full[sample.index])
