#!/usr/bin/env bash
# Restore the in-cluster registry from a backup made by scripts/backup.sh (or the CronJob).
#   scripts/restore.sh BACKUP
# The running MLflow pod verifies every file against the manifest while it stages the backup
# on its volume (a corrupt or partial one is refused, naming the file, and nothing changes);
# the pod is then restarted, and its prepare-store init container swaps the staged registry
# in before the server opens it (the replaced files are kept in replaced-<time>/ on the volume)
# and migrates it if it is an MLflow release behind. The api pods pick the restored alias up
# at their next alias check.
# Install first without training: helm install ... --set mlflow.train.enabled=false (the api
# is not Ready until the registry has its model). READMIT_NAMESPACE / READMIT_RELEASE /
# KUBECTL as for scripts/backup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 && -f $1 ]] || { echo "usage: scripts/restore.sh BACKUP (a file)" >&2; exit 2; }
release=${READMIT_RELEASE:-readmit}
namespace=${READMIT_NAMESPACE:-readmit}
read -r -a kubectl <<< "${KUBECTL:-microk8s kubectl}"
mlflow=deploy/$release-mlflow
"${kubectl[@]}" -n "$namespace" rollout status "$mlflow" --timeout=300s
"${kubectl[@]}" -n "$namespace" exec -i "$mlflow" -c mlflow -- \
    readmit-registry restore --store=/mlflow --from=- < "$1"
"${kubectl[@]}" -n "$namespace" rollout restart "$mlflow"
"${kubectl[@]}" -n "$namespace" rollout status "$mlflow" --timeout=300s
echo "restored $1 into $namespace/$release-mlflow"
