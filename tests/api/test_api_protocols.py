"""The ecosystem's protocols on the api: the Open Inference Protocol (KServe V2, JSON and Triton's
binary tensors) and MLflow's scoring protocol — in-process on a tiny model for the protocol's
edges, and against the real api process with the protocols' own clients (tritonclient, MLflow's
ScoringServerClient) and beside a real `mlflow models serve` of the same registered version."""

from __future__ import annotations

import csv
import io
import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from readmit_api.app import create_app
from readmit_api.oip import INPUTS, OUTPUTS
from readmit_api.settings import Settings
from readmit_core.schema import FIELDS, example_encounter

KEY = "protocols-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def tensors(encounters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OIP input tensors for encounters: one per field given in any of them."""
    names = [n for n in INPUTS if any(n in e for e in encounters)]
    return [
        {
            "name": n,
            "datatype": INPUTS[n],
            "shape": [len(encounters)],
            "data": [e.get(n) for e in encounters],
        }
        for n in names
    ]


def binary_request(
    encounters: list[dict[str, Any]], outputs_binary: bool = True
) -> tuple[bytes, dict[str, str]]:
    """Triton's binary tensor extension, built by hand (tritonclient builds it in the server
    tests): INT64 little-endian, BYTES length-prefixed, "" for a missing value."""
    inputs, blobs = [], []
    for t in tensors(encounters):
        if t["datatype"] == "INT64":
            blob = np.asarray(t["data"], "<i8").tobytes()
        else:
            parts = [("" if v is None else v).encode() for v in t["data"]]
            blob = b"".join(struct.pack("<I", len(p)) + p for p in parts)
        inputs.append(
            {
                "name": t["name"],
                "datatype": t["datatype"],
                "shape": t["shape"],
                "parameters": {"binary_data_size": len(blob)},
            }
        )
        blobs.append(blob)
    options = {"binary_data_output": outputs_binary}
    header = json.dumps({"inputs": inputs, "parameters": options}).encode()
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def read_binary(body: bytes, header_length: int) -> dict[str, list[Any]]:
    header = json.loads(body[:header_length])
    out, at = {}, header_length
    for t in header["outputs"]:
        size = t["parameters"]["binary_data_size"]
        raw, at = body[at : at + size], at + size
        if t["datatype"] == "FP64":
            out[t["name"]] = np.frombuffer(raw, "<f8").tolist()
        elif t["datatype"] == "BOOL":
            out[t["name"]] = np.frombuffer(raw, np.bool_).tolist()
        else:
            values, i = [], 0
            while i < len(raw):
                (n,) = struct.unpack_from("<I", raw, i)
                values.append(raw[i + 4 : i + 4 + n].decode())
                i += 4 + n
            out[t["name"]] = values
    return out


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[TestClient]:
    settings = Settings(
        model_uri=str(tiny_model), reload_interval_s=0, max_batch=5, api_keys=f"tester={KEY}"
    )
    with TestClient(create_app(settings)) as c:
        for _ in range(200):
            if c.get("/ready").status_code == 200:
                break
            time.sleep(0.02)
        yield c


def encounters() -> list[dict[str, Any]]:
    base = example_encounter()
    return [{**base, "number_inpatient": k, "race": None} for k in (0, 2, 5)]


def batch_risks(client: TestClient, rows: list[dict[str, Any]]) -> list[float]:
    r = client.post("/predict/batch", json={"encounters": rows}, headers=AUTH)
    return [p["readmission_risk"] for p in r.json()["predictions"]]


def test_oip_health_metadata_and_keys(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    # metadata and inference are behind the api key, with OIP's error body
    r = client.get("/v2")
    assert (r.status_code, list(r.json())) == (401, ["error"])
    assert client.get("/v2", headers=AUTH).json()["extensions"] == ["binary_tensor_data"]
    name = client.get("/model", headers=AUTH).json()["name"]
    meta = client.get(f"/v2/models/{name}", headers=AUTH).json()
    assert [i["name"] for i in meta["inputs"]] == [f.name for f in FIELDS] + ["encounter_id"]
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert (
        types["age"],
        types["time_in_hospital"],
        types["admission_type_id"],
        types["diag_1"],
    ) == ("BYTES", "INT64", "INT64", "BYTES")
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == OUTPUTS
    assert all(i["shape"] == [-1] for i in meta["inputs"])
    version = meta["versions"][0]
    assert client.get(f"/v2/models/{name}/versions/{version}/ready", headers=AUTH).json()["ready"]
    other = client.get(f"/v2/models/{name}/versions/999", headers=AUTH)
    assert other.status_code == 404
    assert "999" in other.json()["error"]
    assert client.get("/v2/models/another/ready", headers=AUTH).status_code == 404
    stranger = client.post(f"/v2/models/{name}/infer", json={"inputs": tensors(encounters())})
    assert stranger.status_code == 401
    assert "error" in stranger.json()


def test_oip_infer_json_and_binary_equal_predict(client: TestClient) -> None:
    rows = encounters()
    expected = batch_risks(client, rows)
    name = client.get("/model", headers=AUTH).json()["name"]
    r = client.post(
        f"/v2/models/{name}/infer", headers=AUTH, json={"id": "req-1", "inputs": tensors(rows)}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_name"], body["id"]) == (name, "req-1")
    out = {t["name"]: t for t in body["outputs"]}
    assert out["readmission_risk"]["data"] == expected
    assert out["readmission_risk"]["shape"] == [3]
    assert out["readmitted_within_30_days"]["datatype"] == "BOOL"
    assert out["risk_band"]["data"][0] in ("low", "medium", "high")
    # [rows, 1] shapes and nested data are the same request
    nested = [{**t, "shape": [3, 1], "data": [[v] for v in t["data"]]} for t in tensors(rows)]
    r = client.post(f"/v2/models/{name}/infer", headers=AUTH, json={"inputs": nested})
    assert r.json()["outputs"][0]["data"] == expected

    content, headers = binary_request(rows)
    r = client.post(
        f"/v2/models/{name}/infer",
        content=content,
        headers={**AUTH, **headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    decoded = read_binary(r.content, int(r.headers["inference-header-content-length"]))
    assert decoded["readmission_risk"] == expected
    assert decoded["risk_band"] == out["risk_band"]["data"]
    # binary in, one output asked for as JSON
    header_len = int(headers["Inference-Header-Content-Length"])
    request = json.loads(content[:header_len])
    request["outputs"] = [{"name": "readmission_risk", "parameters": {"binary_data": False}}]
    header = json.dumps(request).encode()
    r = client.post(
        f"/v2/models/{name}/infer",
        content=header + content[header_len:],
        headers={**AUTH, "Inference-Header-Content-Length": str(len(header))},
    )
    assert r.json()["outputs"] == [
        {"name": "readmission_risk", "datatype": "FP64", "shape": [3], "data": expected}
    ]


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (
            lambda t: [
                *t,
                {"name": "colour", "datatype": "BYTES", "shape": [3], "data": ["a"] * 3},
            ],
            400,
            "unknown input 'colour'",
        ),
        (lambda t: [x for x in t if x["name"] != "age"], 400, "missing input: age"),
        (
            lambda t: [{**x, "datatype": "FP32"} if x["name"] == "age" else x for x in t],
            400,
            "datatype must be BYTES",
        ),
        (
            lambda t: [
                {**x, "data": [4, 4, 99]} if x["name"] == "time_in_hospital" else x for x in t
            ],
            422,
            "input 'time_in_hospital' row 2",
        ),
        (
            lambda t: [
                {**x, "data": ["[70-80)", "old", "x"]} if x["name"] == "age" else x for x in t
            ],
            422,
            "input 'age' row 1",
        ),
        (
            lambda t: [{**x, "shape": [2]} if x["name"] == "age" else x for x in t],
            400,
            "3 values for shape [2]",
        ),
        (lambda t: [{**x, "shape": [6], "data": x["data"] * 2} for x in t], 413, "at most 5"),
    ],
)
def test_oip_errors_name_the_field(
    client: TestClient, change: Any, status: int, words: str
) -> None:
    name = client.get("/model", headers=AUTH).json()["name"]
    r = client.post(
        f"/v2/models/{name}/infer", headers=AUTH, json={"inputs": change(tensors(encounters()))}
    )
    assert r.status_code == status, r.text
    assert list(r.json()) == ["error"]
    assert words in r.json()["error"]


def test_oip_malformed_binary_and_bodies(client: TestClient) -> None:
    name = client.get("/model", headers=AUTH).json()["name"]
    url = f"/v2/models/{name}/infer"
    content, headers = binary_request(encounters())
    for bad in (content[:-3], content + b"xx"):  # cut short, or bytes left over
        r = client.post(url, content=bad, headers={**AUTH, **headers})
        assert r.status_code == 400
        assert "error" in r.json()
    r = client.post(url, content=content, headers={**AUTH, "Inference-Header-Content-Length": "9"})
    assert r.status_code == 400
    r = client.post(url, content=b"{", headers={**AUTH, "Content-Type": "application/json"})
    assert (r.status_code, list(r.json())) == (400, ["error"])
    r = client.post(url, content=b"a,b", headers={**AUTH, "Content-Type": "text/csv"})
    assert (r.status_code, list(r.json())) == (415, ["error"])


def test_mlflow_formats_equal_predict(client: TestClient) -> None:
    rows = encounters()
    expected = batch_risks(client, rows)
    columns = list(rows[0])
    forms = [
        {"dataframe_records": rows},
        {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}},
        {"instances": rows},
        {"inputs": {c: [r[c] for r in rows] for c in columns}},
        {"inputs": rows, "params": {}},
    ]
    for body in forms:
        r = client.post("/invocations", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": expected}
    text = io.StringIO()
    writer = csv.DictWriter(text, columns)
    writer.writeheader()
    writer.writerows({c: "" if r[c] is None else r[c] for c in columns} for r in rows)
    r = client.post(
        "/invocations", content=text.getvalue(), headers={**AUTH, "Content-Type": "text/csv"}
    )
    assert r.json() == {"predictions": expected}
    assert client.get("/ping").status_code == 200
    assert client.get("/version", headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"encounters": []}, 400, "BAD_REQUEST", "exactly one of the keys"),
        (
            {"dataframe_records": [{**example_encounter(), "time_in_hospital": 99}]},
            400,
            "BAD_REQUEST",
            "column 'time_in_hospital' row 0",
        ),
        (
            {"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}},
            400,
            "BAD_REQUEST",
            "holds 1 values",
        ),
        ({"instances": [example_encounter()] * 6}, 413, "REQUEST_LIMIT_EXCEEDED", "at most 5"),
    ],
)
def test_mlflow_errors_are_mlflows(
    client: TestClient, body: Any, status: int, code: str, words: str
) -> None:
    r = client.post("/invocations", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code
    assert words in r.json()["message"]


def test_mlflow_route_needs_the_key(client: TestClient) -> None:
    r = client.post("/invocations", json={"instances": encounters()})
    assert (r.status_code, r.json()["error_code"]) == (401, "UNAUTHENTICATED")
    assert client.get("/version").status_code == 401
    r = client.post("/invocations", content=b"x", headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "error_code" in r.json()


# --- The real api process, with the protocols' own clients ---------------------------------


@pytest.fixture(scope="module")
def real_rows(encounters: Any) -> list[dict[str, Any]]:
    from readmit_core.data import to_records

    return to_records(encounters.sample(40, random_state=11))


def predicted(api: Any, rows: list[dict[str, Any]]) -> list[float]:
    import httpx

    r = httpx.post(f"{api.url}/predict/batch", json={"encounters": rows}, timeout=30)
    return [p["readmission_risk"] for p in r.json()["predictions"]]


@pytest.mark.parametrize("binary", [False, True], ids=["json-tensors", "binary-tensors"])
def test_tritonclient(
    api: Any, api_model: dict[str, Any], real_rows: list[dict[str, Any]], binary: bool
) -> None:
    import tritonclient.http as triton
    from support.servers import API_MODEL

    client = triton.InferenceServerClient(url=api.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    version = str(api_model["version"])
    assert client.is_model_ready(API_MODEL, version)
    meta = client.get_model_metadata(API_MODEL, version)
    inputs = []
    for spec in meta["inputs"]:
        values = [row.get(spec["name"]) for row in real_rows]
        if all(v is None for v in values):
            continue  # an optional input left out
        if spec["datatype"] == "INT64":
            array = np.array(values, dtype=np.int64)
        else:
            array = np.array([("" if v is None else v).encode() for v in values], dtype=np.object_)
        tensor = triton.InferInput(spec["name"], [len(real_rows)], spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(o["name"], binary_data=binary) for o in meta["outputs"]]
    result = client.infer(
        API_MODEL, inputs, model_version=version, outputs=outputs, request_id="triton-1"
    )
    risks = result.as_numpy("readmission_risk")
    assert risks.dtype == np.float64
    assert risks.tolist() == predicted(api, real_rows)
    flagged = result.as_numpy("readmitted_within_30_days")
    assert flagged.dtype == np.bool_
    bands = [b.decode() if isinstance(b, bytes) else b for b in result.as_numpy("risk_band")]
    assert set(bands) <= {"low", "medium", "high"}
    assert result.get_response()["id"] == "triton-1"
    client.close()


KSERVE = "kserve==0.21.0"


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    """A venv with KServe's client, made once per user and version (its pins, pandas < 3 among
    them, do not fit the project's lock)."""
    import os
    import subprocess
    import sys

    from support.project import require

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "readmit"
    venv = cache / f"kserve-client-{KSERVE.split('==')[1]}"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        done = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", KSERVE],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        require(done.returncode == 0, f"pip install {KSERVE} failed: {done.stderr[-500:]}")
        (venv / ".installed").touch()
    return venv / "bin" / "python"


def test_kserve_client(
    api: Any,
    api_model: dict[str, Any],
    real_rows: list[dict[str, Any]],
    kserve_python: Path,
    tmp_path: Path,
) -> None:
    import subprocess

    from support.servers import API_MODEL

    given = [n for n in INPUTS if any(r.get(n) is not None for r in real_rows)]
    inputs = [
        {"name": n, "datatype": INPUTS[n], "data": [r.get(n) for r in real_rows]} for n in given
    ]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"url": api.url, "model": API_MODEL, "inputs": inputs}))
    kserve = [str(kserve_python), str(Path(__file__).with_name("kserve_client.py")), str(request)]
    out = subprocess.run(kserve, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert (answer["live"], answer["ready"], answer["model_ready"]) == (True, True, True)
    expected = predicted(api, real_rows)
    assert answer["json"] == expected
    assert answer["binary"] == expected


def test_mlflow_scoring_client(api: Any, encounters: Any) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    from readmit_core.data import to_records

    frame = encounters.sample(25, random_state=12)
    client = ScoringServerClient("127.0.0.1", api.port)
    client.wait_server_ready(timeout=10)
    answer = client.invoke(frame[[f.name for f in FIELDS]])
    risks = np.asarray(answer.get_predictions(predictions_format="ndarray")).ravel()
    assert risks.tolist() == predicted(api, to_records(frame))
    assert client.get_version()


@pytest.fixture(scope="module")
def mlflow_serve(
    mlflow_server: str, api_model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`mlflow models serve` of the api's registered version: the server /invocations copies."""
    import os
    import subprocess

    from support.project import VENV_BIN
    from support.servers import API_MODEL, free_port, stop, wait_http

    port = free_port()
    serve = f"models serve --env-manager local -w 1 -h 127.0.0.1 -p {port}"
    model = f"models:/{API_MODEL}/{api_model['version']}"
    log = (tmp_path_factory.mktemp("mlflow-serve") / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), *serve.split(), "-m", model],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow_server,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        },  # it execs uvicorn by name
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()


def test_invocations_answer_as_mlflow_models_serve(
    api: Any, mlflow_serve: str, real_rows: list[dict[str, Any]]
) -> None:
    import httpx

    columns = [f.name for f in FIELDS]
    rows = [{c: r[c] for c in columns} for r in real_rows]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns)
    writer.writeheader()
    writer.writerows({c: "" if r[c] is None else r[c] for c in columns} for r in rows)
    bodies = {
        "dataframe_split": (
            "application/json",
            json.dumps(
                {
                    "dataframe_split": {
                        "columns": columns,
                        "data": [[r[c] for c in columns] for r in rows],
                    }
                }
            ),
        ),
        "dataframe_records": ("application/json", json.dumps({"dataframe_records": rows})),
        "instances": ("application/json", json.dumps({"instances": rows})),
        "inputs": ("application/json", json.dumps({"inputs": rows})),
        "csv": ("text/csv", text.getvalue()),
    }
    expected = predicted(api, real_rows)
    compared = []
    for form, (kind, body) in bodies.items():
        ours = httpx.post(
            f"{api.url}/invocations", content=body, headers={"Content-Type": kind}, timeout=30
        )
        assert ours.status_code == 200, (form, ours.text)
        assert ours.json()["predictions"] == expected, form
        theirs = httpx.post(
            f"{mlflow_serve}/invocations", content=body, headers={"Content-Type": kind}, timeout=60
        )
        if theirs.status_code != 200:
            continue  # MLflow itself refuses this form for a column signature (below)
        assert list(theirs.json()) == list(ours.json()) == ["predictions"], form
        assert np.allclose(theirs.json()["predictions"], expected, rtol=0, atol=1e-9), form
        compared.append(form)
    # MLflow 3 answers instances/inputs given as records with 400 for a model whose signature
    # is columns; readmit-api takes them (a row each, as KServe's V1 does).
    assert compared == ["dataframe_split", "dataframe_records", "csv"], compared


def test_protocol_bodies_are_bounded(client: TestClient) -> None:
    """The body limit holds on every route that reads one, answered in the route's protocol."""
    big = b"x" * (Settings().max_body_bytes + 1)
    name = client.get("/model", headers=AUTH).json()["name"]
    r = client.post(
        f"/v2/models/{name}/infer",
        content=big,
        headers={**AUTH, "Content-Type": "application/octet-stream"},
    )
    assert (r.status_code, list(r.json())) == (413, ["error"])
    r = client.post("/invocations", content=big, headers={**AUTH, "Content-Type": "text/csv"})
    assert (r.status_code, r.json()["error_code"]) == (413, "REQUEST_LIMIT_EXCEEDED")
