"""Loading the UCI "Diabetes 130-US hospitals for years 1999-2008" data set.

Source order: an explicit path (``--data`` / ``READMIT_DATA``; the UCI zip or the bare csv), then
the cache (``READMIT_CACHE_DIR``, default ``~/.cache/readmit``), then a download from UCI into the
cache. Whatever is read is verified by the SHA-256 of ``diabetic_data.csv`` (the zip's own hash
is checked first when it is the known zip, since UCI may repackage it).

Strack et al. 2014, https://doi.org/10.1155/2014/781670 — UCI ML Repository id 296, CC BY 4.0.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from readmit_core.schema import (
    DISCHARGE_EXCLUDED,
    FIELDS,
    ICD9_PATTERN,
    TARGET_COLUMN,
    TARGET_POSITIVE,
    Kind,
)
from readmit_core.settings import DataSettings

if TYPE_CHECKING:
    import pandas as pd

DATA_URL = (
    "https://archive.ics.uci.edu/static/public/296/"
    "diabetes+130-us+hospitals+for+years+1999-2008.zip"
)
ZIP_SHA256 = "3a17a3b55b6dd4a1926703185c0ad8e2ed30bc8e2f9b927cdd1000b733d1de8e"
CSV_SHA256 = "0689e7ec031237dc63031b938805c48377748761a3b26acab621567afa24df97"
CSV_NAME = "diabetic_data.csv"
CACHE_FILE = "diabetes-130-us-hospitals.zip"
DOWNLOAD_TIMEOUT_S = 60


class DataError(RuntimeError):
    """The data set could not be read or is not the expected file."""


def cache_dir() -> Path:
    return DataSettings().cache_dir


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _csv_members(archive: zipfile.ZipFile) -> Iterator[bytes]:
    """The bytes of every diabetic_data.csv in a zip, looking inside nested zips too."""
    for name in archive.namelist():
        if name.endswith("/" + CSV_NAME) or name == CSV_NAME:
            yield archive.read(name)
        elif name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(archive.read(name))) as inner:
                yield from _csv_members(inner)


def read_verified_csv(path: Path) -> bytes:
    """The verified bytes of diabetic_data.csv from a zip or a csv file at ``path``."""
    if not path.is_file():
        raise DataError(f"data set not found: {path} is not a file")
    raw = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(raw)):
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            candidates = list(_csv_members(archive))
        if not candidates:
            raise DataError(f"{path} is a zip without {CSV_NAME}")
    else:
        candidates = [raw]
    known_zip = _sha256(raw) == ZIP_SHA256
    for csv in candidates:
        if known_zip or _sha256(csv) == CSV_SHA256:
            return csv
    got = ", ".join(_sha256(c) for c in candidates)
    raise DataError(
        f"checksum mismatch for {CSV_NAME} in {path}: expected SHA-256 {CSV_SHA256}, got {got}. "
        "The file is corrupt or not the UCI data set."
    )


def _download(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading the data set from {DATA_URL} ...", file=sys.stderr, flush=True)
    with urllib.request.urlopen(DATA_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
        payload = response.read()
    # Write beside the target and rename, so an interrupted download never poisons the cache.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(payload)
    Path(tmp.name).replace(target)


def locate(path: str | os.PathLike[str] | None = None) -> Path:
    """Where to read the data set from: the given path, READMIT_DATA, the cache, or a download."""
    explicit = path or DataSettings().data
    if explicit:
        return Path(explicit).expanduser()
    cached = cache_dir() / CACHE_FILE
    if not cached.is_file():
        try:
            _download(cached)
        except OSError as exc:
            raise DataError(
                f"no data set given (--data PATH or READMIT_DATA) and the download from UCI "
                f"failed: {exc}. Download it from https://archive.ics.uci.edu/dataset/296 and "
                "pass its path."
            ) from exc
    return cached


def read_raw(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """All 101,766 encounters as the csv has them ("?" -> missing; the text "None" kept)."""
    import pandas as pd

    csv = read_verified_csv(locate(path))
    # Text stays text ("250.83" is a code, not a float); coded ids and counts are integers.
    dtypes = {f.name: "int64" if f.is_integer else str for f in FIELDS}
    return pd.read_csv(
        io.BytesIO(csv), na_values=["?"], keep_default_na=False, dtype=dtypes, low_memory=False
    )


def load_encounters(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Encounters in scope (not ending in death or hospice) with a 0/1 ``target`` column."""
    raw = read_raw(path)
    frame = raw[~raw["discharge_disposition_id"].isin(list(DISCHARGE_EXCLUDED))].reset_index(
        drop=True
    )
    frame["target"] = (frame[TARGET_COLUMN] == TARGET_POSITIVE).astype(np.int8)
    return frame


def schema_violations(frame: pd.DataFrame) -> dict[str, int]:
    """Per field, how many rows of ``frame`` the schema would reject (empty when all pass)."""
    bad: dict[str, int] = {}
    for f in FIELDS:
        col = frame[f.name]
        missing = col.isna()
        if f.kind is Kind.CATEGORY:
            wrong = ~col.isin(list(f.choices)) & ~missing
        elif f.kind is Kind.INTEGER:
            wrong = ~col.between(f.minimum, f.maximum) & ~missing
        else:
            wrong = ~col.astype("string").str.fullmatch(ICD9_PATTERN[1:-1]).fillna(True)
        wrong |= missing & (not f.nullable)
        if int(wrong.sum()):
            bad[f.name] = int(wrong.sum())
    return bad


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as api-ready dicts: the schema's fields only, native Python types, None for missing."""
    columns = [f.name for f in FIELDS]
    subset = frame[columns].astype(object)
    subset = subset.where(subset.notna(), None)
    return [
        {
            k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in zip(columns, row, strict=True)
        }
        for row in subset.itertuples(index=False, name=None)
    ]


def patient_split(
    patient_ids: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
) -> np.ndarray:
    """Assign each row to train (0), validation (1) or test (2) by a hash of its patient id.

    All encounters of a patient land in the same part. The hash is fixed (not seeded), so a
    patient keeps its part across runs and subsamples: a registered model can be compared with
    a new one on the new run's validation set without having trained on it.
    """
    x = np.asarray(patient_ids, dtype=np.uint64)
    # splitmix64 finaliser: a well-mixed, platform-independent hash of the id.
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    u = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    cuts = np.cumsum(fractions)[:-1]
    return np.searchsorted(cuts, u, side="right").astype(np.int8)
