#!/usr/bin/env bash
# A Python 3.11 base image made from Debian bookworm's own packages, for machines that cannot pull
# python:3.11-slim (no container registry reachable). Slimmed the way Debian's official slim
# images are (no docs, man pages or locales; apt's caches cleaned after every install). Prints the
# image name, tagged by this script's hash so a changed recipe builds a new base; built once
# (1-4 min), then reused. Needs root and debootstrap. The machine's extra CA certificates go in
# too, so a build behind a TLS-inspecting proxy can still reach PyPI.
#   scripts/local-base-image.sh     -> localhost/readmit-python-base:3.11-bookworm-<hash>
set -euo pipefail

docker=${DOCKER:-podman}
recipe=$(sha256sum "$0" | cut -c1-12)
image=localhost/readmit-python-base:3.11-bookworm-$recipe
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! "$docker" image inspect "$image" >/dev/null 2>&1; then
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    echo "building $image from Debian's packages" >&2
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
    cat > "$rootfs/etc/apt/apt.conf.d/clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Install-Recommends "false";
CFG
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" \
        2>/dev/null || true
    chroot "$rootfs" sh -c 'apt-get install -y python3 python3-pip python3-venv python-is-python3 \
        ca-certificates && update-ca-certificates && apt-get clean \
        && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \
        && find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete \
        && rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/*' >&2
    # one --change per variable (a single ENV a=1 b=2 is read as one variable)
    tar -C "$rootfs" -c . | "$docker" import \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV UV_NATIVE_TLS=1' --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' - "$image" >&2
fi
echo "$image"
