#!/usr/bin/env bash
# Fuzzes both APIs of a running broker with schemathesis, from their OpenAPI documents: the
# OSB API (`/v2`, the document from `skybroker openapi osb`, its ids limited to the catalog's)
# and the Service Manager API (`/v1`, the document the broker serves). Generated requests,
# valid and not, for every operation, and stateful sequences (create, then read, change,
# delete what was created). Fails on any server error, any answer whose status the document
# does not list, and any body that does not match the documented schema. Each API is bounded
# to `seconds`.
#
#   controller/tests/schemathesis/run.sh path/to/skybroker [seconds]
set -euo pipefail
binary=$1
budget=${2:-45}
here=$(cd "$(dirname "$0")" && pwd)
state=/var/tmp/skybroker-test-services/schemathesis
mkdir -p "$state"

# A venv with the pinned schemathesis, reinstalled when the pin changes.
if ! [ -x "$state/venv/bin/schemathesis" ] || ! cmp -s "$here/requirements.txt" "$state/requirements.installed"; then
    rm -rf "$state/venv"
    python3 -m venv "$state/venv"
    "$state/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$state/requirements.installed"
fi

token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
log=$(mktemp)
osb=$(mktemp --suffix=.json)
"$binary" openapi osb >"$osb"
SKYBROKER_LISTEN=127.0.0.1:0 SKYBROKER_METRICS_LISTEN=127.0.0.1:0 SKYBROKER_STORAGE=memory \
    SKYBROKER_USERNAME=fuzz SKYBROKER_PASSWORD=fuzz-password SKYBROKER_ADMIN_TOKEN="$token" \
    RUST_LOG=warn "$binary" serve >"$log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; rm -f "$log" "$osb"' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$log" && break
    sleep 0.1
done
url=$(grep -o "listening on http://[0-9.:]*" "$log" | head -1 | cut -d' ' -f3)
[ -n "$url" ] || { cat "$log"; echo "the broker did not start"; exit 1; }

checks=not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance
echo "--- the OSB API (/v2)"
"$state/venv/bin/schemathesis" run "$osb" --url "$url" --auth fuzz:fuzz-password \
    --checks "$checks" --max-examples 25 --max-time "$budget" --seed 20261207 --warnings off
echo "--- the Service Manager API (/v1)"
"$state/venv/bin/schemathesis" run "$url/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" --max-examples 25 --max-time "$budget" --seed 20261207 --warnings off
# The broker survived the run.
kill -0 $broker
