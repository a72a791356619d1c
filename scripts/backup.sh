#!/usr/bin/env bash
# Back up the in-cluster registry to this machine: one tar (SQLite's online backup of MLflow's
# database, its artifacts, a manifest with every file's SHA-256), made inside the running MLflow
# pod while it serves, streamed out through kubectl.
#   scripts/backup.sh [FILE]     default: backups/readmit-registry-<namespace>-<UTC time>.tar
# READMIT_NAMESPACE / READMIT_RELEASE (default readmit) name the release; KUBECTL the client
# (default: microk8s kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."
release=${READMIT_RELEASE:-readmit}
namespace=${READMIT_NAMESPACE:-readmit}
read -r -a kubectl <<< "${KUBECTL:-microk8s kubectl}"
out=${1:-backups/readmit-registry-$namespace-$(date -u +%Y%m%dT%H%M%SZ).tar}
mkdir -p "$(dirname "$out")"
# whole or not at all: a failed stream leaves no file that looks like a backup
trap 'rm -f "$out.partial"' EXIT
"${kubectl[@]}" -n "$namespace" exec "deploy/$release-mlflow" -c mlflow -- \
    readmit-registry backup --store=/mlflow --to=- > "$out.partial"
"${kubectl[@]}" -n "$namespace" exec -i "deploy/$release-mlflow" -c mlflow -- \
    readmit-registry verify - < "$out.partial"
mv "$out.partial" "$out"
echo "backup: $out ($(du -h "$out" | cut -f1))"
