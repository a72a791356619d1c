"""Secrets from the environment: NAME itself, or the file NAME_FILE points to.

The file form is how Kubernetes hands a Secret over without putting it in the process
environment (a mounted volume): it does not leak into child processes or `/proc/<pid>/environ`.
"""

from __future__ import annotations

import os
from pathlib import Path


def secret_from_env(name: str) -> str | None:
    """NAME_FILE's content when set (a missing file is an error, not "no secret"), else NAME."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as e:
            raise RuntimeError(f"{name}_FILE={path} cannot be read: {e.strerror}") from e
    return os.environ.get(name) or None
