#!/usr/bin/env bash
# The main job, end to end on one machine: bring up the local stack, register the standard's
# schemas, publish a few hours of a demo cluster's usage and bill, run the tracker until it has
# caught up, and print the per-namespace table. Safe to run again: events carry stable ids, so a
# second run deduplicates instead of double counting.
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${DEMO_HOURS:-6}

scripts/stack.sh up
# shellcheck disable=SC1091
. target/stack/env
cargo build --quiet --bin usage-tracker
tracker=target/debug/usage-tracker

echo "== registering the Usage Tracking Standard's schemas"
$tracker schemas register
echo "== publishing $hours hours of the demo cluster's usage and bill"
$tracker generate --hours "$hours"
echo "== running the tracker until it has caught up"
$tracker run --until-caught-up --log warn
echo "== usage and cost per namespace"
$tracker report
