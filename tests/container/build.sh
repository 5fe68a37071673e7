#!/bin/sh
# tests/container/build.sh: builds the container image (Containerfile) with
# podman and checks what can be checked on a machine that cannot run
# containers: the image builds, holds /askgate as a static executable with
# the expected user, volume, port and healthcheck, and that very binary,
# copied out of the image, serves /healthz outside any container.
#
# `make test` runs it. Without podman it says so and skips, unless
# ASKGATE_REQUIRE_PODMAN is set (as .ci/run does, after installing podman).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if ! command -v podman >/dev/null 2>&1; then
    if [ -n "${ASKGATE_REQUIRE_PODMAN:-}" ]; then
        echo "tests/container: podman is required here (apt-get install podman)" >&2
        exit 1
    fi
    echo "tests/container: SKIPPED, podman is not installed (apt-get install podman to run it)" >&2
    exit 0
fi

# A tag of this run's own: two runs at once (two clones on one machine)
# must not remove each other's image.
tag="askgate-test-$$:latest"
make --no-print-directory image IMAGE="$tag"
work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    podman rmi -f "$tag" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# What the image says about itself.
config=$(podman image inspect --format '{{.Config.User}} {{json .Config.Volumes}} {{json .Config.ExposedPorts}} {{json .Config.Entrypoint}}' "$tag")
case "$config" in
    '65532:65532 {"/data":{}} {"8787/tcp":{}} ["/askgate"]') ;;
    *) echo "tests/container: unexpected image config: $config" >&2; exit 1 ;;
esac
health=$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$tag")
[ "$health" = '["CMD","/askgate","health"]' ] || {
    echo "tests/container: unexpected healthcheck: $health" >&2; exit 1; }

# The binary in the image, copied out of its layers (podman cannot run it here).
podman save --format docker-archive -o "$work/image.tar" "$tag"
mkdir "$work/image" "$work/root"
tar -xf "$work/image.tar" -C "$work/image"
for layer in $(find "$work/image" -name '*.tar' -o -name 'layer.tar'); do
    tar -xf "$layer" -C "$work/root" 2>/dev/null || true
done
binary="$work/root/askgate"
[ -x "$binary" ] || { echo "tests/container: no executable /askgate in the image" >&2; exit 1; }
if file "$binary" 2>/dev/null | grep -q 'dynamically linked'; then
    echo "tests/container: /askgate is dynamically linked: $(file "$binary")" >&2
    exit 1
fi
[ -d "$work/root/data" ] || { echo "tests/container: no /data in the image" >&2; exit 1; }

# It serves, outside the container, with the image's own settings.
mkdir -m 700 "$work/data"
ASKGATE_DATA_DIR="$work/data" "$binary" serve --bind 127.0.0.1:0 --log-level warn \
    > "$work/out" 2> "$work/err" &
server=$!
addr=""
for _ in $(seq 1 100); do
    addr=$(sed -n 's#^askgate listening on http://##p' "$work/out" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "tests/container: the binary did not start" >&2; cat "$work/err" >&2; exit 1; }
"$binary" health --server "http://$addr" || { echo "tests/container: askgate health failed" >&2; exit 1; }
kill "$server"; wait "$server" 2>/dev/null || true; server=""
if "$binary" health --server "http://$addr" 2>/dev/null; then
    echo "tests/container: askgate health passed against a stopped server" >&2
    exit 1
fi
echo "tests/container: the image builds; its static /askgate serves and answers askgate health"
