#!/usr/bin/env bash
# Build the pinned Kubernetes control plane and node (kubelet, kube-proxy, CoreDNS, pause; kwok, the
# fake node) from the Go module proxy into .tools/k8s-$K8S_VERSION/bin, and fetch the monitoring
# CRDs; skip what is already there. Cold: ~15 min on 2 cores; warm: 0 s.
#   scripts/cluster/build-tools.sh
# The module zip of k8s.io/kubernetes has no staging/ directory: each k8s.io/<staging> replace is
# pointed at the published module of the same minor version instead.
set -euo pipefail
cd "$(dirname "$0")/../.."

K8S_VERSION=${K8S_VERSION:-v1.35.4}
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
PROMETHEUS_OPERATOR_VERSION=v0.93.1
bin=$PWD/.tools/k8s-$K8S_VERSION/bin
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
# The control plane, and a real node's kubelet and kube-proxy.
components=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
mkdir -p "$bin"

missing=()
for c in "${components[@]}"; do [[ -x $bin/$c ]] || missing+=("$c"); done
if ((${#missing[@]})); then
    dir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    src=$PWD/.tools/k8s-$K8S_VERSION/src
    if [[ ! -f $src/.prepared ]]; then
        rm -rf "$src"
        cp -r "$dir" "$src"
        chmod -R u+w "$src"
        rm -rf "$src/vendor" "$src"/go.work*
        staging=${K8S_VERSION/#v1./v0.}
        (
            cd "$src"
            go mod edit -json | python3 -c '
import json, sys
print("\n".join(r["Old"]["Path"] for r in json.load(sys.stdin).get("Replace") or []))' |
                while read -r m; do go mod edit -dropreplace="$m" -replace="$m=$m@$staging"; done
        )
        touch "$src/.prepared"
    fi
    # Without the version stamp the server says v0.0.0 and the chart's kubeVersion refuses it.
    minor=$(cut -d. -f2 <<< "$K8S_VERSION")
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION
        -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor
        -X k8s.io/component-base/version.gitTreeState=clean"
    echo "building ${missing[*]} $K8S_VERSION (several minutes on a cold machine)"
    (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$bin/" \
        "${missing[@]/#/./cmd/}")
fi

[[ -x $bin/kwok ]] || GOBIN=$bin go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
# The node's DNS (static: it runs as a plain process beside the kubelet).
[[ -x $bin/coredns ]] || CGO_ENABLED=0 GOBIN=$bin go install "github.com/coredns/coredns@$COREDNS_VERSION"
# The pods' sandbox process, from the same Kubernetes module, linked statically for a FROM scratch image.
if [[ ! -x $bin/pause ]]; then
    src=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    gcc -Os -static -DVERSION=3.10 -o "$bin/pause" "$src/build/pause/linux/pause.c"
fi

# The monitoring CRDs of kube-prometheus-stack 88.5.3: the Prometheus operator release it ships
# (appVersion v0.93.1) has them in its module.
crds=$PWD/.tools/prometheus-operator-crds
if [[ ! -f $crds/.done ]]; then
    dir=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    rm -rf "$crds" && mkdir -p "$crds"
    cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$crds/"
    touch "$crds/.done"
fi
echo "kubernetes $K8S_VERSION tools in $bin"
