#!/usr/bin/env bash
# Build every readmit image and push it to MicroK8s' registry, tagged with the chart's appVersion
# (the tag the chart deploys by default; never "latest").
#   scripts/build-images.sh            build and push api, ui, locust and trainer
#   DRY_RUN=1 scripts/build-images.sh  print the commands only
# Needs Docker (or REGISTRY/DOCKER set to another registry/CLI) and `microk8s enable registry`.
set -euo pipefail
cd "$(dirname "$0")/.."

registry=${REGISTRY:-localhost:32000}
docker=${DOCKER:-docker}
tag=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' Chart.yaml)
[[ -n $tag ]] || { echo "no appVersion in Chart.yaml" >&2; exit 1; }

run() {
    echo "+ $*"
    [[ -n ${DRY_RUN:-} ]] || "$@"
}

for service in api ui locust trainer; do
    image="$registry/readmit-$service:$tag"
    # The build context is the repository root: every image installs the shared readmit-core.
    run "$docker" build -f "services/$service/Dockerfile" -t "$image" .
    run "$docker" push "$image"
done
