#!/usr/bin/env bash
# Builds deploy/Dockerfile and runs the image, as ../test.sh does when a container engine is
# there: the image must run as non-root, be under 60 MB, answer /healthz and serve a catalog.
#
#   deploy/image-test.sh             (from anywhere; needs docker with a running daemon)
#
# Offline machines (no registry to pull `rust:` or the distroless base from) still build the
# Dockerfile: the Rust stage is replaced by the binary built here (`BUILD=prebuilt`, the same
# `cargo build --release --locked`), and the runtime base by a stand-in with what
# distroless/cc-debian12 holds for this binary: this Debian 12 machine's C runtime (the same
# glibc release), CA certificates and the `nonroot` user (65532). Which of them was used is
# printed; what is tested of the image is the same either way.
#
# Exit status: 0 passed or skipped (the reason printed), 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=skybroker:image-test
MAX_MB=60
RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
STAND_IN=skybroker-local/cc-debian12:nonroot
export DOCKER_BUILDKIT=1

say() { printf 'image: %s\n' "$*"; }
fail() {
    say "FAILED: $*" >&2
    exit 1
}

if ! command -v docker >/dev/null; then
    say "skipped: no container engine (docker) on this machine"
    exit 0
fi
if ! docker info >/dev/null 2>&1; then
    say "skipped: docker is installed but its daemon does not answer ($(docker info 2>&1 | tail -n 1))"
    exit 0
fi
# BuildKit (stage selection, cache mounts): through buildx, or built into clients before 23
# (Debian 12's docker.io, whose client may sit beside a newer one without buildx).
if ! docker buildx version >/dev/null 2>&1; then
    for client in /usr/bin/docker /usr/local/bin/docker; do
        if [ -x "$client" ] && [ "$("$client" version -f '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)" -lt 23 ] 2>/dev/null; then
            DOCKER_CLIENT=$client
            docker() { "$DOCKER_CLIENT" "$@"; }
            break
        fi
    done
    if ! docker buildx version >/dev/null 2>&1 && [ "$(type -t docker)" != function ]; then
        say "skipped: this docker client needs buildx for BuildKit, and it is not installed"
        exit 0
    fi
fi

work=$(mktemp -d)
container=""
cleanup() {
    [ -n "$container" ] && docker rm -f "$container" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# ===== the bases: pulled when a registry answers, else built here =====
build_args=()
context=.
if docker image inspect "rust:1.95-slim-bookworm" >/dev/null 2>&1 ||
    timeout 60 docker pull -q "rust:1.95-slim-bookworm" >/dev/null 2>&1; then
    say "building from source in rust:1.95-slim-bookworm"
else
    say "no Rust image to be had (offline): building the binary here, BUILD=prebuilt"
    cargo build --release --locked --quiet --bin skybroker
    context="$work/context"
    mkdir -p "$context/config" "$context/data"
    chmod 0750 "$context/data"
    install -s -m 0755 "${CARGO_TARGET_DIR:-target}/release/skybroker" "$context/skybroker"
    cp config/default.toml "$context/config/default.toml"
    build_args+=(--build-arg BUILD=prebuilt)
fi
if docker image inspect "$RUNTIME_IMAGE" >/dev/null 2>&1 ||
    timeout 60 docker pull -q "$RUNTIME_IMAGE" >/dev/null 2>&1; then
    say "runtime base $RUNTIME_IMAGE"
else
    binary="${CARGO_TARGET_DIR:-target}/release/skybroker"
    # The libraries to copy are the binary's: build it here if the Rust stage did not.
    [ -x "$binary" ] || cargo build --release --locked --quiet --bin skybroker
    say "no $RUNTIME_IMAGE to be had (offline): a stand-in from this machine's Debian $(cat /etc/debian_version)"
    root="$work/root"
    mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
    # The binary's C runtime, exactly as the dynamic linker resolves it.
    for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
    [ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    chmod 1777 "$root/tmp"
    chown 65532:65532 "$root/home/nonroot"
    tar -C "$root" -c . | docker import - "$STAND_IN" >/dev/null
    build_args+=(--build-arg "RUNTIME_IMAGE=$STAND_IN")
fi

# ===== build =====
docker build -q -f deploy/Dockerfile "${build_args[@]}" -t "$IMAGE" "$context" >/dev/null ||
    fail "docker build failed"
bytes=$(docker image inspect -f '{{.Size}}' "$IMAGE")
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
say "built $IMAGE: $((bytes / 1000000)) MB, user $user"
[ "$bytes" -lt $((MAX_MB * 1000 * 1000)) ] || fail "the image is $((bytes / 1000000)) MB, over $MAX_MB MB"
case "${user%%:*}" in
"" | 0 | root) fail "the image runs as root (user \"$user\")" ;;
esac

# ===== run: a read-only root file system, the data volume, a password from the environment =====
password="image-test-$RANDOM$RANDOM"
container=$(docker run -d --read-only --tmpfs /tmp -e SKYBROKER_PASSWORD="$password" \
    -p 127.0.0.1::8080 -p 127.0.0.1::9090 "$IMAGE")
api=$(docker port "$container" 8080/tcp | head -n 1)
metrics=$(docker port "$container" 9090/tcp | head -n 1)
deadline=$((SECONDS + 30))
until curl -fsS "http://$metrics/healthz" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || [ "$(docker inspect -f '{{.State.Running}}' "$container")" != true ]; then
        docker logs "$container" 2>&1 | tail -n 20 >&2
        fail "/healthz did not answer within 30 s"
    fi
    sleep 0.5
done
pid=$(docker inspect -f '{{.State.Pid}}' "$container")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the broker process runs as uid $uid, not 65532"
catalog=$(curl -fsS -u "skybroker:$password" -H 'X-Broker-API-Version: 2.17' "http://$api/v2/catalog") ||
    fail "the catalog request failed"
services=$(printf '%s' "$catalog" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["services"]))')
[ "$services" -gt 0 ] || fail "the catalog has no services: $catalog"
status=$(curl -s -o /dev/null -w '%{http_code}' -u "skybroker:wrong" -H 'X-Broker-API-Version: 2.17' "http://$api/v2/catalog")
[ "$status" = 401 ] || fail "a wrong password got $status, not 401"
if docker logs "$container" 2>&1 | grep -q "$password"; then
    fail "the password appears in the container's log"
fi
say "passed: /healthz answers, the catalog lists $services services, a wrong password gets 401, the broker runs as uid $uid"
