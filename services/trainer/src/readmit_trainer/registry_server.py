"""``readmit-mlflow-server``: the in-cluster MLflow server, with authentication and its users.

It runs ``mlflow server --app-name basic-auth`` (MLflow's own authentication: every call but
``/health`` needs a user, and a user may do nothing it was not granted: the default permission
is NO_PERMISSIONS) with the arguments after ``--``. Once the server answers, it makes sure, as
the admin, that each ``--user NAME:PERMISSION:PASSWORD_FILE`` exists with the password in its
file (a mounted Secret) and holds PERMISSION on the model's experiment and registered model:
the trainer EDIT (log runs, register versions, move the alias), the api READ (find the alias's
version, download its files). It runs at every start, so a changed password or a missing grant
is put right; then it waits on the server, and passes SIGTERM on.

The admin's password, from its file, is set when the user store is created; MLflow ignores it
afterwards (change it through MLflow's update-password API).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

ADMIN = "admin"


def say(message: str) -> None:
    print(f"readmit-mlflow-server: {message}", file=sys.stderr, flush=True)


PERMISSIONS = ("READ", "EDIT", "MANAGE")


class RegistryAccessError(RuntimeError):
    pass


def local_command(mlflow: str | Path, backend: str | Path, artifacts: Path, port: int) -> list[str]:
    """``mlflow server`` as the local stack, the tests and the benchmarks run it: one worker on
    loopback, no authentication, the artifacts proxied from a local directory; ``backend`` a
    store URI or the path of a sqlite database."""
    uri = backend if isinstance(backend, str) else f"sqlite:///{backend}"
    store = ["--backend-store-uri", uri, "--artifacts-destination", str(artifacts)]
    here = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return [str(mlflow), "server", *store, "--serve-artifacts", *here]


@dataclass(frozen=True)
class User:
    name: str
    permission: str
    password_file: Path


def parse_user(text: str) -> User:
    name, permission, path = [*text.split(":", 2), "", ""][:3]
    if not name or permission not in PERMISSIONS or not path:
        raise argparse.ArgumentTypeError(
            f"--user {text!r}: want NAME:PERMISSION:PASSWORD_FILE, PERMISSION one of "
            f"{', '.join(PERMISSIONS)}"
        )
    return User(name, permission, Path(path))


def read_secret(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise RegistryAccessError(f"{path} is empty")
    return value


class Admin:
    """The registry's REST API, as its admin (basic auth)."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base.rstrip("/")
        token = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        try:
            with urlopen(Request(url, data, self.headers, method=method), timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except HTTPError as exc:
            text = exc.read(2000)
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, {"message": text.decode(errors="replace")}

    def ok(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        *also: str,
    ) -> dict[str, Any]:
        """The answer of a call that must succeed, or fail only with one of ``also``."""
        status, answer = self.call(method, path, body, query)
        if status != 200 and answer.get("error_code") not in also:
            raise RegistryAccessError(f"{method} {path}: {status} {answer.get('message', '')}")
        return answer


def ensure_user(admin: Admin, user: User) -> None:
    creds = {"username": user.name, "password": read_secret(user.password_file)}
    made = admin.ok("POST", "/api/2.0/mlflow/users/create", creds, None, "RESOURCE_ALREADY_EXISTS")
    if "user" not in made:  # it was there: its password is the Secret's
        admin.ok("PATCH", "/api/2.0/mlflow/users/update-password", creds)


def ensure_resources(admin: Admin, model: str) -> str:
    """The model's experiment (its runs and files) and registered model; the experiment's id."""
    missing = ("RESOURCE_DOES_NOT_EXIST", "RESOURCE_NOT_FOUND")
    found = admin.ok(
        "GET", "/api/2.0/mlflow/experiments/get-by-name", None, {"experiment_name": model}, *missing
    )
    if "experiment" in found:
        experiment = found["experiment"]["experiment_id"]
    else:
        made = admin.ok("POST", "/api/2.0/mlflow/experiments/create", {"name": model})
        experiment = made["experiment_id"]
    status, _ = admin.call("GET", "/api/2.0/mlflow/registered-models/get", None, {"name": model})
    if status != 200:
        admin.ok("POST", "/api/2.0/mlflow/registered-models/create", {"name": model})
    return str(experiment)


def grant(admin: Admin, user: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Exactly ``permission`` (a different earlier grant is replaced)."""
    what = {"username": user, "resource_type": resource_type, "resource_id": resource_id}
    held = admin.ok("GET", "/api/3.0/mlflow/users/permissions/get", None, what)
    if held.get("permission") == permission:
        return
    admin.call("POST", "/api/3.0/mlflow/users/permissions/revoke", what)
    admin.ok("POST", "/api/3.0/mlflow/users/permissions/grant", {**what, "permission": permission})


def apply_access(base: str, admin_password: str, model: str, users: list[User]) -> None:
    admin = Admin(base, admin_password)
    experiment = ensure_resources(admin, model)
    for user in users:
        ensure_user(admin, user)
        grant(admin, user.name, "experiment", experiment, user.permission)
        grant(admin, user.name, "registered_model", model, user.permission)
        say(f"user {user.name}: {user.permission} on experiment {experiment} and model {model}")


def auth_config(auth_db: Path, admin_password: str) -> Path:
    """MLflow's basic-auth settings, in a file only this process may read."""
    fd, name = tempfile.mkstemp(prefix="basic-auth-", suffix=".ini")
    with os.fdopen(fd, "w") as out:
        out.write(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{auth_db}\n"
            f"admin_username = {ADMIN}\n"
            f"admin_password = {admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
    return Path(name)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    ours, server = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    p = argparse.ArgumentParser(prog="readmit-mlflow-server", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registered model (and experiment) name")
    p.add_argument("--auth-db", type=Path, required=True, help="the users' sqlite database")
    p.add_argument("--admin-password-file", type=Path, required=True)
    p.add_argument(
        "--secret-key-file",
        type=Path,
        required=True,
        help="the server's Flask secret (signs the UI's CSRF tokens)",
    )
    p.add_argument(
        "--user",
        type=parse_user,
        action="append",
        default=[],
        metavar="NAME:PERMISSION:PASSWORD_FILE",
    )
    p.add_argument("--port", type=int, default=5000, help="the server's --port, to reach it")
    return p.parse_args(ours), server


def main(argv: list[str] | None = None) -> None:
    args, server_args = parse_args(argv)
    try:
        admin_password = read_secret(args.admin_password_file)
        secret_key = read_secret(args.secret_key_file)
    except (OSError, RegistryAccessError) as exc:
        sys.exit(f"readmit-mlflow-server: {exc}")
    config = auth_config(args.auth_db, admin_password)
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key,
    }
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow),
        "server",
        "--app-name",
        "basic-auth",
        f"--port={args.port}",
        *server_args,
    ]
    child = subprocess.Popen(command, env=env)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _frame: child.send_signal(s))
    base = f"http://127.0.0.1:{args.port}"
    deadline = time.monotonic() + 300
    while child.poll() is None:
        try:
            with urlopen(f"{base}/health", timeout=3):
                pass
            apply_access(base, admin_password, args.model, args.user)
            break
        except (URLError, OSError, RegistryAccessError) as exc:
            if isinstance(exc, RegistryAccessError) or time.monotonic() > deadline:
                say(f"registry users not set up, stopping: {exc}")
                child.terminate()
                break
            time.sleep(1)
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
