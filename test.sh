#!/usr/bin/env bash
# Runs every check and test Skybroker has: formatting, clippy, unit, black-box and process
# tests. It installs or starts whatever the tests need that the machine lacks, so it works on
# a fresh machine as well as a developer's.
#
#   ./test.sh                 everything
#   ./test.sh -E 'test(lifecycle)'   extra arguments go to cargo-nextest
set -euo pipefail
cd "$(dirname "$0")"

# A target dir outside the clone: repeat runs (and CI runs on the same machine) reuse builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/skybroker-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy || true
cargo --version

# ===== services the tests use =====
# Each test server is found, or started, and its address exported for the tests. The machine's
# own server is used when it accepts the passwordless admin the tests expect; otherwise a
# private one is created under /var/tmp on its own port (installing the packages if needed).
STATE=/var/tmp/skybroker-test-services
mkdir -p "$STATE"

apt_install() {
    command -v apt-get >/dev/null || { echo "cannot install $*: no apt-get"; return 1; }
    [ -f "$STATE/apt-updated" ] || { apt-get update -qq && touch "$STATE/apt-updated"; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

ensure_postgres() {
    [ -n "${SKYBROKER_TEST_POSTGRES:-}" ] && return
    command -v psql >/dev/null && [ -d /usr/lib/postgresql ] || apt_install postgresql postgresql-client
    if [ -z "${SKYBROKER_PRIVATE_SERVERS:-}" ] &&
        psql -h 127.0.0.1 -p 5432 -U postgres -w -tAc 'select 1' >/dev/null 2>&1; then
        export SKYBROKER_TEST_POSTGRES=127.0.0.1:5432
        return
    fi
    local bin port=55432 dir="$STATE/postgres"
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if ! psql -h 127.0.0.1 -p "$port" -U postgres -w -tAc 'select 1' >/dev/null 2>&1; then
        echo "starting a private PostgreSQL on 127.0.0.1:$port"
        mkdir -p "$dir" && chown postgres: "$dir"
        [ -f "$dir/data/PG_VERSION" ] ||
            runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
        # TLS with Debian's snakeoil certificate when there is one (the TLS tests use it).
        local tls=""
        if runuser -u postgres -- test -r /etc/ssl/private/ssl-cert-snakeoil.key; then
            tls="-c ssl=on -c ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem -c ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key"
        fi
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $tls" start >/dev/null
        wait_for 30 psql -h 127.0.0.1 -p "$port" -U postgres -w -tAc 'select 1'
    fi
    export SKYBROKER_TEST_POSTGRES=127.0.0.1:$port
}

ensure_mysql() {
    [ -n "${SKYBROKER_TEST_MYSQL:-}" ] && return
    command -v mariadbd >/dev/null || apt_install mariadb-server mariadb-client
    if [ -z "${SKYBROKER_PRIVATE_SERVERS:-}" ] &&
        mariadb -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; then
        export SKYBROKER_TEST_MYSQL=127.0.0.1:3306
        return
    fi
    local port=53306 dir="$STATE/mariadb"
    if ! mariadb -h 127.0.0.1 -P "$port" -u root -e 'select 1' >/dev/null 2>&1; then
        echo "starting a private MariaDB on 127.0.0.1:$port"
        mkdir -p "$dir" && chown mysql: "$dir"
        [ -d "$dir/data/mysql" ] || mariadb-install-db --user=mysql --datadir="$dir/data" \
            --auth-root-authentication-method=normal --skip-test-db >/dev/null
        runuser -u mysql -- mariadbd --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
            --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
            --skip-name-resolve=0 >/dev/null 2>&1 &
        wait_for 60 mariadb -h 127.0.0.1 -P "$port" -u root -e 'select 1'
    fi
    export SKYBROKER_TEST_MYSQL=127.0.0.1:$port
}

ensure_etcd() {
    [ -n "${SKYBROKER_TEST_ETCD:-}" ] && return
    command -v etcd >/dev/null || apt_install etcd-server
    # Always a private etcd: tests write under their own prefixes, and nothing of the
    # machine's own etcd (if any) is touched.
    local port=23790 peer=23800 dir="$STATE/etcd"
    export SKYBROKER_TEST_ETCD=http://127.0.0.1:$port
    if curl -fsS "$SKYBROKER_TEST_ETCD/health" >/dev/null 2>&1; then return; fi
    echo "starting a private etcd on 127.0.0.1:$port"
    mkdir -p "$dir"
    # The v3 API of etcd 3.4 is what the broker uses; unsafe-no-fsync is not set: tests
    # exercise real durability.
    (cd "$dir" && nohup etcd --name skybroker-test --data-dir "$dir/data" \
        --listen-client-urls "$SKYBROKER_TEST_ETCD" --advertise-client-urls "$SKYBROKER_TEST_ETCD" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "skybroker-test=http://127.0.0.1:$peer" >"$dir/log" 2>&1 &)
    wait_for 30 curl -fsS "$SKYBROKER_TEST_ETCD/health"
}

# moto (the AWS stand-in, issue 8) in server mode on a free loopback port, with IAM policy
# enforcement on: moto lets the first INITIAL_NO_AUTH_ACTION_COUNT calls through without
# authentication, which this function spends on creating an administrator (user, policy,
# key); from then on every call must be signed by a known key and is checked against the
# caller's policies. The tests get the endpoint and the administrator's key.
MOTO=moto[server]==5.2.1
moto_python() { # moto_python SCRIPT: runs python3 with the administrator's key of $STATE/moto
    AWS_ACCESS_KEY_ID="$(cat "$STATE/moto/admin-key")" AWS_SECRET_ACCESS_KEY="$(cat "$STATE/moto/admin-secret")" \
        AWS_DEFAULT_REGION=us-east-1 python3 -c "$1"
}
ensure_moto() {
    [ -n "${SKYBROKER_TEST_AWS:-}" ] && return
    local dir="$STATE/moto"
    mkdir -p "$dir"
    if ! python3 -c 'import moto.server, flask_cors, boto3' 2>/dev/null; then
        local flags=(--quiet --disable-pip-version-check)
        local pip_options
        pip_options=$(python3 -m pip install --help)
        # Debian 12+ marks the system Python externally managed (PEP 668), as in deploy/check.sh.
        if python3 -c 'import os, sysconfig; exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))' &&
            [[ $pip_options == *--break-system-packages* ]]; then
            flags+=(--break-system-packages)
        fi
        if [[ $(id -u) == 0 ]]; then
            [[ $pip_options == *--root-user-action* ]] && flags+=(--root-user-action=ignore)
        else
            flags+=(--user)
        fi
        echo "installing $MOTO"
        python3 -m pip install "${flags[@]}" "$MOTO"
    fi
    local port
    port=$(cat "$dir/port" 2>/dev/null || true)
    local check='import boto3, os; boto3.client("iam", endpoint_url=os.environ["E"]).get_user(UserName="skybroker-test-admin")'
    if [ -n "$port" ] && E="http://127.0.0.1:$port" moto_python "$check" >/dev/null 2>&1; then
        echo "reusing moto on 127.0.0.1:$port"
    else
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        echo "starting moto on 127.0.0.1:$port"
        (cd "$dir" && INITIAL_NO_AUTH_ACTION_COUNT=3 nohup python3 -m moto.server -H 127.0.0.1 -p "$port" \
            >"$dir/log" 2>&1 &)
        wait_for 60 curl -fsS "http://127.0.0.1:$port/moto-api/"
        # Exactly three unauthenticated calls: the administrator, its policy, its key.
        AWS_ACCESS_KEY_ID=bootstrap AWS_SECRET_ACCESS_KEY=bootstrap AWS_DEFAULT_REGION=us-east-1 \
            E="http://127.0.0.1:$port" D="$dir" python3 -c '
import boto3, json, os
iam = boto3.client("iam", endpoint_url=os.environ["E"])
iam.create_user(UserName="skybroker-test-admin")
iam.put_user_policy(UserName="skybroker-test-admin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="skybroker-test-admin")["AccessKey"]
for name, value in (("admin-key", key["AccessKeyId"]), ("admin-secret", key["SecretAccessKey"])):
    with open(os.path.join(os.environ["D"], name), "w") as f:
        f.write(value)
'
        echo "$port" >"$dir/port"
        E="http://127.0.0.1:$port" moto_python "$check"
    fi
    export SKYBROKER_TEST_AWS=http://127.0.0.1:$port
    SKYBROKER_TEST_AWS_ACCESS_KEY_ID=$(cat "$dir/admin-key")
    SKYBROKER_TEST_AWS_SECRET_ACCESS_KEY=$(cat "$dir/admin-secret")
    export SKYBROKER_TEST_AWS_ACCESS_KEY_ID SKYBROKER_TEST_AWS_SECRET_ACCESS_KEY
}

# The official Alibaba Cloud Python SDKs (RDS, RAM, OSS), which the fake Alibaba Cloud's
# proof test (brokers/alibaba-fake/tests/python_sdks.rs) drives: a venv of their pinned
# versions, reinstalled when the requirements change.
# A headless browser for the dashboard's test: Debian's Chromium.
ensure_chromium() {
    [ -n "${SKYBROKER_TEST_CHROMIUM:-}" ] && return
    command -v chromium >/dev/null || apt_install chromium
    export SKYBROKER_TEST_CHROMIUM=$(command -v chromium)
}

ensure_alibaba_sdks() {
    [ -n "${SKYBROKER_TEST_ALIBABA_PYTHON:-}" ] && return
    local dir="$STATE/alibaba-sdk" requirements=brokers/alibaba-fake/tests/sdk/requirements.txt
    local python="$dir/venv/bin/python"
    mkdir -p "$dir"
    if ! [ -x "$python" ]; then
        # Debian's python3 makes venvs only once python3-venv (ensurepip) is installed.
        if ! python3 -m venv "$dir/venv" >/dev/null 2>&1; then
            rm -rf "$dir/venv"
            apt_install python3-venv
            python3 -m venv "$dir/venv"
        fi
        rm -f "$dir/requirements.installed"
    fi
    if ! cmp -s "$requirements" "$dir/requirements.installed" ||
        ! "$python" -c 'import alibabacloud_oss_v2, alibabacloud_rds20140815, alibabacloud_ram20150501' 2>/dev/null; then
        echo "installing the Alibaba Cloud Python SDKs into $dir/venv"
        "$python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        cp "$requirements" "$dir/requirements.installed"
    fi
    export SKYBROKER_TEST_ALIBABA_PYTHON=$python
}

step "services"
command -v curl >/dev/null || apt_install curl
ensure_postgres
ensure_mysql
ensure_etcd
ensure_moto
ensure_alibaba_sdks
ensure_chromium
echo "Chromium at $SKYBROKER_TEST_CHROMIUM"
echo "PostgreSQL at $SKYBROKER_TEST_POSTGRES, MySQL/MariaDB at $SKYBROKER_TEST_MYSQL, etcd at $SKYBROKER_TEST_ETCD, moto (AWS) at $SKYBROKER_TEST_AWS, Alibaba Cloud Python SDKs in $SKYBROKER_TEST_ALIBABA_PYTHON"

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
    # nextest does not run doctests.
    cargo test --workspace --locked --doc
    step "tests: the OSB suite again, on the etcd store"
    SKYBROKER_TEST_STORE=etcd cargo nextest run -p skybroker --test it --locked --no-fail-fast \
        -E 'not test(local_db)' "$@"
else
    echo "cargo-nextest not found: using cargo test"
    cargo test --workspace --locked --no-fail-fast
    step "tests: the OSB suite again, on the etcd store"
    SKYBROKER_TEST_STORE=etcd cargo test -p skybroker --test it --locked --no-fail-fast -- \
        --skip local_db
fi

# ===== both APIs, fuzzed =====
# schemathesis (from PyPI, pinned) against the running binary, driven by the OpenAPI documents
# of the OSB API (`skybroker openapi osb`) and of the Service Manager API (served at
# /v1/openapi.json): no server error, every status and body as documented.
if [ "$#" -eq 0 ]; then
    step "OSB and Service Manager APIs: schemathesis"
    cargo build --locked --quiet --bin skybroker
    bash controller/tests/schemathesis/run.sh "$CARGO_TARGET_DIR/debug/skybroker" 45
fi

# ===== the container image =====
# deploy/Dockerfile built and run (deploy/image-test.sh): non-root, under 60 MB, /healthz and a
# catalog answered. Docker is installed from Debian and its daemon started when missing; where
# it cannot run (an unprivileged container), the step says so and is skipped.
ensure_docker() {
    docker info >/dev/null 2>&1 && return
    command -v dockerd >/dev/null || apt_install docker.io || return 0
    echo "starting dockerd (log: $STATE/dockerd.log)"
    (nohup dockerd >"$STATE/dockerd.log" 2>&1 &)
    wait_for 30 docker info || echo "dockerd did not start: $(tail -n 3 "$STATE/dockerd.log")"
}
if [ "$#" -eq 0 ]; then
    step "container image"
    ensure_docker
    bash deploy/image-test.sh
fi

# ===== deploy/ =====
# Offline: the Dockerfile (hadolint), every YAML file (yamllint), the Kubernetes manifests
# against the Kubernetes schemas (kubernetes-validate), and the ConfigMap's configuration
# (check-config). deploy/check.sh installs the Python tools with pip when they are missing.
step "deploy"
cargo build --locked --quiet --bin skybroker
bash deploy/check.sh "$CARGO_TARGET_DIR/debug/skybroker"
