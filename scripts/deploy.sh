#!/usr/bin/env bash
# Deploy readmit to MicroK8s with one environment's values, then print where everything is.
#   scripts/deploy.sh lab|production [extra helm args]
#   DRY_RUN=1 scripts/deploy.sh lab    print the commands only (docs/deploy.md lists exactly these)
# Build and push the images first (scripts/build-images.sh): the digests it records in
# values/images.generated.yaml (IMAGES_VALUES) are passed on, so the pods run exactly those
# images; without them it stops (READMIT_IMAGE_TAGS=1: deploy by tag).
# Another cluster than MicroK8s: MICROK8S= (no addons) with HELM and KUBECTL set.
set -euo pipefail
cd "$(dirname "$0")/.."

envs=()
for f in values/*.yaml; do [[ $f == *.generated.yaml ]] || envs+=("$(basename "$f" .yaml)"); done
usage="usage: scripts/deploy.sh ENV [helm args]; ENV is one of: ${envs[*]}"
[[ $# -ge 1 ]] || { echo "$usage" >&2; exit 2; }
env=$1
shift
values=values/$env.yaml
[[ -f $values && $values != *.generated.yaml ]] || { echo "no values file $values; $usage" >&2; exit 2; }
release=${READMIT_RELEASE:-readmit}
namespace=${READMIT_NAMESPACE:-readmit}
microk8s=${MICROK8S-microk8s}
# MicroK8s bundles Helm 3 (microk8s helm3); HELM/KUBECTL point at others.
read -r -a helm <<< "${HELM:-$microk8s helm3}"
read -r -a kubectl <<< "${KUBECTL:-$microk8s kubectl}"

run() {
    echo "+ $*"
    [[ -n ${DRY_RUN:-} ]] || "$@"
}

if [[ -n $microk8s ]]; then
    addons=(dns registry hostpath-storage)
    # Production reuses the cluster's monitoring stack (its Prometheus selects release=kube-prom-stack),
    # and its HPA scales on CPU, which only metrics-server reports (without it: "unable to get
    # metrics for resource cpu" and no scaling).
    [[ $env == production ]] && addons+=(observability metrics-server)
    run "$microk8s" status --wait-ready
    run "$microk8s" enable "${addons[@]}"
fi

# Whether the values file turns a top-level section on (`SECTION:` then `  enabled: true`).
enables() {
    awk -v section="^$1:" '$0 ~ section {s = 1; next} /^[^ #]/ {s = 0}
                           s && /^  enabled: *true/ {print "yes"}' "$values"
}

# Without the bundled kube-prometheus-stack, the ServiceMonitor and PrometheusRule need the
# Prometheus operator's CRDs in the cluster: say so now rather than fail deep inside Helm.
bundled=$(enables kube-prometheus-stack)
if [[ -z $bundled && -z ${DRY_RUN:-} ]]; then
    for crd in servicemonitors prometheusrules; do
        if ! "${kubectl[@]}" get crd "$crd.monitoring.coreos.com" >/dev/null 2>&1; then
            echo "the cluster has no $crd.monitoring.coreos.com CRD, which values/$env.yaml" \
                "needs: enable MicroK8s' observability addon (microk8s enable observability)" \
                "or install the Prometheus operator's CRDs" >&2
            exit 1
        fi
    done
fi

# The metrics adapter serves custom.metrics.k8s.io, which one provider per cluster may serve:
# another one's (an adapter of the observability stack, another release) is not taken over.
adapter=$(enables metrics-adapter)
apiservice=apiservice/v1beta1.custom.metrics.k8s.io
if [[ -n $adapter && -z ${DRY_RUN:-} ]]; then
    owner=$("${kubectl[@]}" get "$apiservice" -o \
        jsonpath='{.metadata.annotations.meta\.helm\.sh/release-namespace}/{.metadata.annotations.meta\.helm\.sh/release-name}' \
        2>/dev/null || true)
    [[ $owner != / ]] || owner="not by a Helm release"
    if [[ -n $owner && $owner != "$namespace/$release" ]]; then
        echo "custom.metrics.k8s.io is already served in this cluster ($owner): set" \
            "metrics-adapter.enabled=false and give that adapter the rules of" \
            "charts/metrics-adapter/templates/configmap.yaml (docs/scaling.md)" >&2
        exit 1
    fi
fi

# By digest: a tag can be pushed again (build-images.sh does, under the appVersion), a digest
# names one image. READMIT_IMAGE_TAGS=1 deploys by tag instead.
generated=${IMAGES_VALUES:-values/images.generated.yaml}
images=(--values "$generated")
if [[ ! -f $generated ]]; then
    if [[ -n ${READMIT_IMAGE_TAGS:-} ]]; then
        images=()
    elif [[ -z ${DRY_RUN:-} ]]; then
        echo "no image digests in $generated: push the images first (scripts/build-images.sh" \
            "records them), or deploy by tag with READMIT_IMAGE_TAGS=1" >&2
        exit 1
    fi
fi
run "${helm[@]}" repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
run "${helm[@]}" dependency build .
run "${helm[@]}" upgrade --install "$release" . --namespace "$namespace" --create-namespace \
    --values "$values" "${images[@]}" --wait --timeout 15m "$@"

[[ -z ${DRY_RUN:-} ]] || exit 0
# The api's HPA reads its load through the adapter: say now if the API server cannot reach it.
if [[ -n $adapter ]] && ! "${kubectl[@]}" wait --for=condition=Available "$apiservice" --timeout=2m; then
    echo "the metrics adapter's API is not available: the api's HPA cannot read its load" \
        "($("${kubectl[@]}" get "$apiservice" -o jsonpath='{.status.conditions[0].message}'))" >&2
    exit 1
fi
node=$("${kubectl[@]}" get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
echo
echo "readmit ($env) is up on $node:"
"${kubectl[@]}" -n "$namespace" get svc -l app.kubernetes.io/instance="$release" \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.spec.ports[0].nodePort}{"\n"}{end}' |
    while IFS=$'\t' read -r name port; do
        [[ -n $port ]] && printf '  %-22s http://%s:%s\n' "$name" "$node" "$port"
    done
"${helm[@]}" status "$release" --namespace "$namespace" --show-resources=false | sed -n '/^NOTES:/,$p'
