"""KServe's own Python client (``kserve.InferenceRESTClient``, protocol v2) against readmit-api:
run by tests/api/test_api_protocols.py in a venv of its own (kserve pins pandas < 3, which the
project's lock does not). Reads {"url", "model", "version", "inputs": [{"name", "datatype",
"data"}]} from the file given, prints {"live", "ready", "model_ready", "json": risks,
"binary": risks} as one JSON line."""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


def tensor(spec: dict, binary: bool) -> InferInput:
    if spec["datatype"] == "INT64":
        array = np.array(spec["data"], dtype=np.int64)
    else:
        array = np.array(["" if v is None else v for v in spec["data"]], dtype=np.object_)
    infer_input = InferInput(spec["name"], [len(spec["data"])], spec["datatype"])
    infer_input.set_data_from_numpy(array, binary_data=binary)
    return infer_input


async def main(request: dict) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    url, model = request["url"], request["model"]
    answer = {
        "live": await client.is_server_live(url),
        "ready": await client.is_server_ready(url),
        "model_ready": await client.is_model_ready(url, model),
    }
    for mode in ("json", "binary"):
        inputs = [tensor(spec, mode == "binary") for spec in request["inputs"]]
        result = await client.infer(
            url, InferRequest(model, inputs, request_id=mode), model_name=model
        )
        risks = next(o for o in result.outputs if o.name == "readmission_risk")
        answer[mode] = risks.as_numpy().tolist()
    return answer


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(asyncio.run(main(json.load(f)))))
