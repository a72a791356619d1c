"""HTTP ceiling for the api benchmark: a FastAPI endpoint that reads the body and does nothing."""

from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI()


@app.post("/ping")
async def ping(request: Request) -> Response:
    await request.body()
    return Response(b'{"ok":true}', media_type="application/json")


@app.get("/health")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
