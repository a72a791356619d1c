#!/usr/bin/env bash
# Deploy readmit to MicroK8s with one environment's values, then print where everything is.
#   scripts/deploy.sh lab|production [extra helm args]
#   DRY_RUN=1 scripts/deploy.sh lab    print the commands only (the README lists exactly these)
# Build and push the images first: scripts/build-images.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

envs=(values/*.yaml)
envs=("${envs[@]#values/}")
usage="usage: scripts/deploy.sh ENV [helm args]; ENV is one of: ${envs[*]%.yaml}"
[[ $# -ge 1 ]] || { echo "$usage" >&2; exit 2; }
env=$1
shift
values=values/$env.yaml
[[ -f $values ]] || { echo "no values file $values; $usage" >&2; exit 2; }
release=${READMIT_RELEASE:-readmit}
namespace=${READMIT_NAMESPACE:-readmit}
# MicroK8s bundles Helm 3 (microk8s helm3); HELM/KUBECTL point at others.
read -r -a helm <<< "${HELM:-microk8s helm3}"
read -r -a kubectl <<< "${KUBECTL:-microk8s kubectl}"

run() {
    echo "+ $*"
    [[ -n ${DRY_RUN:-} ]] || "$@"
}

addons=(dns registry hostpath-storage)
# Production reuses the cluster's monitoring stack (its Prometheus selects release=kube-prom-stack).
[[ $env == production ]] && addons+=(observability)

run microk8s status --wait-ready
run microk8s enable "${addons[@]}"
run "${helm[@]}" repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
run "${helm[@]}" dependency build .
run "${helm[@]}" upgrade --install "$release" . --namespace "$namespace" --create-namespace \
    --values "$values" --wait --timeout 15m "$@"

[[ -z ${DRY_RUN:-} ]] || exit 0
node=$("${kubectl[@]}" get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
echo
echo "readmit ($env) is up on $node:"
"${kubectl[@]}" -n "$namespace" get svc -l app.kubernetes.io/instance="$release" \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.spec.ports[0].nodePort}{"\n"}{end}' |
    while IFS=$'\t' read -r name port; do
        [[ -n $port ]] && printf '  %-22s http://%s:%s\n' "$name" "$node" "$port"
    done
"${helm[@]}" status "$release" --namespace "$namespace" --show-resources=false | sed -n '/^NOTES:/,$p'
