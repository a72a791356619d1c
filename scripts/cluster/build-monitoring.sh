#!/usr/bin/env bash
# Build kube-prometheus-stack 88.5.3's components from the Go module proxy, for the e2e tier's
# node (its images are on quay.io and registry.k8s.io, which this kind of machine cannot reach):
# prometheus-operator and its config reloader, kube-state-metrics, Prometheus and Alertmanager,
# each at the version the chart pins, and prometheus-adapter (charts/metrics-adapter), static
# for FROM scratch images. Cold (the stack's five): 404 s alone on 2
# cores with an empty Go build cache (about 20 min beside other builds); warm: 0 s. With --push,
# also an image of each, pushed to the e2e node's registry under the names values/e2e.yaml gives
# the chart (REGISTRY/kps/<component>:<version>, REGISTRY/prometheus-adapter:<version>):
#   scripts/cluster/build-monitoring.sh [--push REGISTRY]
# Test infrastructure only: a MicroK8s user pulls the upstream images. Built once per user and
# version set in READMIT_TOOLS_CACHE; .tools/kps links there. Go's one build and module cache
# serves every tool (they all compile the same Kubernetes client libraries).
set -euo pipefail
cd "$(dirname "$0")/../.."

# The versions kube-prometheus-stack 88.5.3 pins (its values.yaml and subcharts' appVersions).
OPERATOR_VERSION=v0.93.1
KSM_VERSION=v2.20.0
PROMETHEUS_VERSION=v3.14.0
PROMETHEUS_MODULE=v0.314.0  # Prometheus 3.x is published as the Go module version v0.3xx.y
ALERTMANAGER_VERSION=v0.34.0
cache=${READMIT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/readmit/tools}
home=$cache/kps-op-$OPERATOR_VERSION-ksm-$KSM_VERSION-prom-$PROMETHEUS_VERSION-am-$ALERTMANAGER_VERSION
bin=$home/bin
mkdir -p "$bin" .tools
[[ -L .tools/kps || ! -e .tools/kps ]] || rm -rf .tools/kps
ln -sfn "$home" .tools/kps
export CGO_ENABLED=0 GOWORK=off
# where each binary's --version finds its version (the build stamps it; a module build has none)
version=github.com/prometheus/common/version

module_dir() {
    go mod download -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

# A writable copy of a module (go may complete its go.sum), removed when the build is done.
module_copy() {
    local src
    src=$(mktemp -d)
    cp -r "$(module_dir "$1")/." "$src"
    chmod -R u+w "$src"
    echo "$src"
}

# prometheus-operator and the reloader it runs beside Prometheus and Alertmanager: the module zip
# lacks the two nested modules its go.mod replaces by directories, so their published versions
# are required instead.
if [[ ! -x $bin/operator || ! -x $bin/prometheus-config-reloader ]]; then
    echo "building prometheus-operator $OPERATOR_VERSION" >&2
    src=$(module_copy "github.com/prometheus-operator/prometheus-operator@$OPERATOR_VERSION")
    (
        cd "$src"
        for nested in pkg/apis/monitoring pkg/client; do
            m=github.com/prometheus-operator/prometheus-operator/$nested
            go mod edit -dropreplace="$m" -require="$m@$OPERATOR_VERSION"
        done
        GOFLAGS=-mod=mod go build -trimpath \
            -ldflags "-s -w -X $version.Version=${OPERATOR_VERSION#v}" \
            -o "$bin/" ./cmd/operator ./cmd/prometheus-config-reloader
    )
    rm -rf "$src"
fi

# kube-state-metrics: `go install …@version` is refused (the proxy's version list), so it is
# built inside its downloaded module.
if [[ ! -x $bin/kube-state-metrics ]]; then
    echo "building kube-state-metrics $KSM_VERSION" >&2
    (cd "$(module_dir "k8s.io/kube-state-metrics/v2@$KSM_VERSION")" &&
        go build -trimpath -ldflags "-s -w" -o "$bin/kube-state-metrics" .)
fi

# Prometheus: only Kubernetes service discovery (what the operator configures); no web UI (its
# assets are built by npm): the HTTP API is whole. Debian's prometheus cannot stand in: it is
# built without Kubernetes discovery.
if [[ ! -x $bin/prometheus ]]; then
    echo "building Prometheus $PROMETHEUS_VERSION" >&2
    src=$(module_copy "github.com/prometheus/prometheus@$PROMETHEUS_MODULE")
    (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
        -ldflags "-s -w -X $version.Version=${PROMETHEUS_VERSION#v}" \
        -o "$bin/prometheus" ./cmd/prometheus)
    rm -rf "$src"
fi

# Alertmanager embeds its npm-built UI (ui/app/dist), which the module zip lacks: an empty page
# stands in; its API (what Prometheus and the tests use) is whole.
if [[ ! -x $bin/alertmanager ]]; then
    echo "building Alertmanager $ALERTMANAGER_VERSION" >&2
    src=$(module_copy "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION")
    mkdir -p "$src/ui/app/dist"
    echo '<!doctype html><title>Alertmanager</title><p>API only.' > "$src/ui/app/dist/index.html"
    (cd "$src" && GOFLAGS=-mod=mod go build -trimpath \
        -ldflags "-s -w -X $version.Version=${ALERTMANAGER_VERSION#v}" \
        -o "$bin/alertmanager" ./cmd/alertmanager)
    rm -rf "$src"
fi
echo "kube-prometheus-stack components in $bin" >&2

# prometheus-adapter, which serves the api's load to its HPA (charts/metrics-adapter): not part
# of the stack, so kept under a version of its own (linked as .tools/prometheus-adapter).
ADAPTER_VERSION=v0.12.0
adapter_home=$cache/prometheus-adapter-$ADAPTER_VERSION
[[ -L .tools/prometheus-adapter || ! -e .tools/prometheus-adapter ]] || rm -rf .tools/prometheus-adapter
ln -sfn "$adapter_home" .tools/prometheus-adapter
if [[ ! -x $adapter_home/bin/adapter ]]; then
    echo "building prometheus-adapter $ADAPTER_VERSION" >&2
    mkdir -p "$adapter_home/bin"
    src=$(module_copy "sigs.k8s.io/prometheus-adapter@$ADAPTER_VERSION")
    (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
        -o "$adapter_home/bin/adapter" ./cmd/adapter)
    rm -rf "$src"
fi
[[ ${1:-} == --push ]] || exit 0

# One static binary per image, as nobody (65534), with the entrypoint the chart and the operator
# expect (they pass arguments only, and run the reloader as /bin/prometheus-config-reloader).
registry=${2:?--push needs the registry, e.g. localhost:32000}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/podman/containers.conf}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# image (under the registry), binary, entrypoint, tag
for image in "kps/prometheus-operator $bin/operator /bin/operator $OPERATOR_VERSION" \
    "kps/prometheus-config-reloader $bin/prometheus-config-reloader /bin/prometheus-config-reloader $OPERATOR_VERSION" \
    "kps/kube-state-metrics $bin/kube-state-metrics /kube-state-metrics $KSM_VERSION" \
    "kps/prometheus $bin/prometheus /bin/prometheus $PROMETHEUS_VERSION" \
    "kps/alertmanager $bin/alertmanager /bin/alertmanager $ALERTMANAGER_VERSION" \
    "prometheus-adapter $adapter_home/bin/adapter /adapter $ADAPTER_VERSION"; do
    read -r path binary entrypoint tag <<< "$image"
    rm -rf "${context:?}"/*
    mkdir -p "$context/root$(dirname "$entrypoint")"
    cp "$binary" "$context/root$entrypoint"
    printf 'FROM scratch\nCOPY root/ /\nUSER 65534:65534\nENTRYPOINT ["%s"]\n' "$entrypoint" \
        > "$context/Containerfile"
    name=$registry/$path:$tag
    podman build -q --format docker -t "$name" "$context" >/dev/null
    podman push -q --tls-verify=false "$name"
    echo "$name"
done
