#!/usr/bin/env bash
# The whole test suite: brings up the local stack (broker, registry stand-in, Postgres), then runs
# every unit, property, doc and end-to-end test of the workspace against it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/stack.sh up
# shellcheck disable=SC1091
. target/stack/env
cargo test --workspace "$@"
