#!/usr/bin/env bash
# Build the pinned Kubernetes control plane and node (kubelet, kube-proxy, CoreDNS, pause) and
# its NetworkPolicy enforcer (kube-network-policies) from the Go module proxy; skip what is
# already built. Cold: ~15 min on 2 cores; warm: 0 s. (The monitoring stack: build-monitoring.sh.)
#   scripts/cluster/build-tools.sh
# Built once per user and version, in READMIT_TOOLS_CACHE (~/.cache/readmit/tools): a fresh clone
# links .tools/k8s-$K8S_VERSION there and builds nothing again. Every build shares Go's one build
# and module cache (they all compile the same Kubernetes client libraries).
# The module zip of k8s.io/kubernetes has no staging/ directory: each k8s.io/<staging> replace is
# pointed at the published module of the same minor version instead.
set -euo pipefail
cd "$(dirname "$0")/../.."

K8S_VERSION=${K8S_VERSION:-v1.35.4}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
NETWORK_POLICIES_VERSION=${NETWORK_POLICIES_VERSION:-v0.8.0}
cache=${READMIT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/readmit/tools}
# one directory for this set of versions; the clone's .tools/ links to it
home=$cache/k8s-$K8S_VERSION-coredns-$COREDNS_VERSION-knp-$NETWORK_POLICIES_VERSION
bin=$home/bin
mkdir -p "$bin" .tools
[[ -L .tools/k8s-$K8S_VERSION || ! -e .tools/k8s-$K8S_VERSION ]] || rm -rf ".tools/k8s-$K8S_VERSION"
ln -sfn "$home" ".tools/k8s-$K8S_VERSION"

module_dir() {
    go mod download -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

# The control plane, and a real node's kubelet and kube-proxy.
components=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
missing=()
for c in "${components[@]}"; do [[ -x $bin/$c ]] || missing+=("$c"); done
if ((${#missing[@]})); then
    dir=$(module_dir "k8s.io/kubernetes@$K8S_VERSION")
    src=$home/src
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

# The node's DNS (static: it runs as a plain process beside the kubelet).
[[ -x $bin/coredns ]] || CGO_ENABLED=0 GOBIN=$bin go install "github.com/coredns/coredns@$COREDNS_VERSION"
# The NetworkPolicy enforcer (SIG Network's; the node runs it as a DaemonSet, as MicroK8s runs
# Calico), static for a FROM scratch image; built inside its module, whose go.mod it needs.
if [[ ! -x $bin/kube-network-policies ]]; then
    (cd "$(module_dir "sigs.k8s.io/kube-network-policies@$NETWORK_POLICIES_VERSION")" &&
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/kube-network-policies" ./cmd)
fi
# The pods' sandbox process, from the same Kubernetes module, linked statically for a FROM scratch image.
if [[ ! -x $bin/pause ]]; then
    gcc -Os -static -DVERSION=3.10 -o "$bin/pause" \
        "$(module_dir "k8s.io/kubernetes@$K8S_VERSION")/build/pause/linux/pause.c"
fi

echo "kubernetes $K8S_VERSION tools in $bin"
