#!/usr/bin/env bash
# Build the four readmit images from services/Dockerfile (one target each), tagged with the chart's
# appVersion (never "latest"), push them to MicroK8s' registry and record their digests, so that
# a rebuild rolls out even though the tag stays the same.
#   scripts/build-images.sh             build, push, write values/images.generated.yaml
#   PUSH=0 scripts/build-images.sh      build only (nothing recorded: a digest exists once pushed)
#   DRY_RUN=1 scripts/build-images.sh   print the commands only
# Environment: REGISTRY (localhost:32000), DOCKER (podman when installed, else docker),
# BASE_IMAGE (python:3.11.14-slim-bookworm; when it cannot be pulled, a local base is built from
# Debian's packages by scripts/local-base-image.sh), IMAGES_VALUES (values/images.generated.yaml),
# SERVICES (api ui locust trainer).
set -euo pipefail
cd "$(dirname "$0")/.."

registry=${REGISTRY:-localhost:32000}
if [[ -z ${DOCKER:-} ]]; then
    DOCKER=docker
    command -v podman >/dev/null && DOCKER=podman
fi
docker=$DOCKER
push=${PUSH:-1}
upstream_base=python:3.11.14-slim-bookworm
base=${BASE_IMAGE:-$upstream_base}
values_out=${IMAGES_VALUES:-values/images.generated.yaml}
read -r -a services <<< "${SERVICES:-api ui locust trainer}"
tag=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' Chart.yaml)
[[ -n $tag ]] || { echo "no appVersion in Chart.yaml" >&2; exit 1; }

run() {
    echo "+ $*"
    [[ -n ${DRY_RUN:-} ]] || "$@"
}

build_args=()
push_args=()
if [[ $docker == *podman* ]]; then
    # Docker's image format keeps HEALTHCHECK; MicroK8s' registry speaks plain HTTP on localhost.
    build_args+=(--format docker)
    [[ $registry == localhost:* || $registry == 127.* ]] && push_args+=(--tls-verify=false)
fi

# The upstream base when it can be had, else one made from Debian's packages (no registry needed).
if [[ -z ${DRY_RUN:-} && -z ${BASE_IMAGE:-} ]] && ! "$docker" image inspect "$base" >/dev/null 2>&1 &&
    ! "$docker" pull -q "$base" >/dev/null 2>&1; then
    echo "cannot pull $base: using a local base built from Debian's packages" >&2
    base=$(scripts/local-base-image.sh)
fi

declare -A digests=()
for service in "${services[@]}"; do
    image="$registry/readmit-$service:$tag"
    # The build context is the repository root: every image installs the shared readmit-core.
    run "$docker" build "${build_args[@]}" -f services/Dockerfile --target "$service" \
        --build-arg "SERVICE=$service" --build-arg "BASE_IMAGE=$base" -t "$image" .
    if [[ $push != 0 ]]; then
        digest_file=$(mktemp)
        run "$docker" push "${push_args[@]}" --digestfile "$digest_file" "$image"
        [[ -n ${DRY_RUN:-} ]] || digests[$service]=$(cat "$digest_file")
        rm -f "$digest_file"
    fi
done

[[ -z ${DRY_RUN:-} ]] || exit 0
echo
printf '%-44s %10s  %s\n' IMAGE SIZE ID
for service in "${services[@]}"; do
    image="$registry/readmit-$service:$tag"
    "$docker" image inspect --format '{{.Size}} {{.Id}}' "$image" | {
        read -r size id
        printf '%-44s %7d MB  %s  %s\n' "$image" $((size / 1000000)) "${id:0:19}" \
            "${digests[$service]:-}"
    }
done

# The digests pin each Deployment to the image just pushed (scripts/deploy.sh passes this file).
if ((${#digests[@]})); then
    {
        echo "# Written by scripts/build-images.sh: the images pushed last (git-ignored)."
        for service in "${services[@]}"; do
            key=$service
            [[ $service == trainer ]] && key=mlflow  # the mlflow subchart runs the trainer image
            printf '%s:\n  image:\n    registry: %s\n    digest: "%s"\n' \
                "$key" "$registry" "${digests[$service]}"
        done
    } > "$values_out"
    echo "digests recorded in $values_out"
fi
