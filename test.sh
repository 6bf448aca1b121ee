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

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
    # nextest does not run doctests.
    cargo test --workspace --locked --doc
else
    echo "cargo-nextest not found: using cargo test"
    cargo test --workspace --locked --no-fail-fast
fi
