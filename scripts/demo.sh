#!/usr/bin/env bash
# The main job, end to end on one machine, for one of the three deployments:
#
#   scripts/demo.sh [single-user-gcp|team-databricks|hybrid-onprem-gcp]   (default: hybrid-onprem-gcp)
#
# Brings up the local stack, registers the standard's schemas, generates a few hours of the
# scenario (Elastic Agent / Metricbeat documents published to Kafka, bill files written to
# target/scenario/<name>), turns the documents into UsageEvents (`elastic`), publishes the
# exporters' extension-meter UsageEvents (hybrid: Presto query seconds, JupyterHub server hours;
# `usage-events.jsonl`), publishes the bills (`export-costs`), runs the tracker until it has
# caught up and prints the per-namespace table.
# Each run uses topics and a database of its own, so runs never mix.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-hybrid-onprem-gcp}
hours=${DEMO_HOURS:-3}
config_dir=deploy/scenarios/$scenario
[ -f "$config_dir/usage-tracker.toml" ] || { echo "unknown scenario $scenario (see deploy/scenarios/)" >&2; exit 64; }

scripts/stack.sh up
# shellcheck disable=SC1091
. target/stack/env
cargo build --quiet --bin usage-tracker
tracker=target/debug/usage-tracker

run=demo-$scenario-$(date +%s)
out=target/scenario/$scenario
mkdir -p "$out"
# The stack's client settings, then the scenario's, with this run's document topics.
{
  cat "$USAGE_TRACKER_CONFIG"
  echo
  sed -E "s/\"(elastic\.metrics\.kubernetes|metricbeat\.onprem\.kubernetes)\"/\"$run.\1\"/g" "$config_dir/usage-tracker.toml"
} >"$out/usage-tracker.toml"
export USAGE_TRACKER_CONFIG=$out/usage-tracker.toml
export USAGE_TRACKER__KAFKA__GROUP_ID=$run USAGE_TRACKER__ELASTIC__GROUP_ID=$run-elastic
for t in usage_events cost_events usage_records dead_letters; do
  export "USAGE_TRACKER__TOPICS__${t^^}=$run.$t"
done
db=${run//-/_}
psql "${DATABASE_URL%/*}/postgres" -qc "create database $db"
export DATABASE_URL=${DATABASE_URL%/*}/$db

start=$(date -u -d "@$(( ($(date +%s) / 3600 - hours - 1) * 3600 ))" +%Y-%m-%dT%H:%M:%SZ)
end=$(date -u -d "@$(( $(date -d "$start" +%s) + hours * 3600 ))" +%Y-%m-%dT%H:%M:%SZ)

echo "== registering the Usage Tracking Standard's schemas"
$tracker schemas register
echo "== $scenario: $hours hours from $start, as the agents would publish them"
events=$out/usage-events.jsonl
rm -f "$events" # only this run's
$tracker generate --scenario "$scenario" --hours "$hours" --period 60 --start "$start" \
  --topic-prefix "$run." --out "$out"
echo "== Elastic documents -> UsageEvents"
$tracker elastic --until-caught-up --log warn
if [ -s "$events" ]; then
  echo "== the exporters' UsageEvents (extension meters) -> the usage topic"
  $tracker publish usage-events "$events" --log warn
fi
echo "== bills -> CostEvents"
for bill in "$out"/gcp-billing-export.*; do
  [ -e "$bill" ] && $tracker export-costs gcp "$bill" --log warn
done
if [ -e "$out/azure-focus-export.csv" ]; then
  $tracker export-costs focus "$out/azure-focus-export.csv" --log warn
fi
if [ -f "$config_dir/rate-card.toml" ]; then
  $tracker export-costs rate-card --card "$config_dir/rate-card.toml" --from "$start" --to "$end" --log warn
fi
echo "== running the tracker until it has caught up"
$tracker run --until-caught-up --log warn
echo "== usage and cost per namespace ($DATABASE_URL)"
$tracker report --from "$start" --to "$end"
# Accounts below the namespace, one report per label the scenario aggregates by.
labels=$(sed -n '/^\[aggregation\]/,/^\[/s/^labels *= *\[\(.*\)\]/\1/p' "$config_dir/usage-tracker.toml" | tr -d '" ' | tr ',' ' ')
for label in $labels; do
  echo "== usage and cost per $label"
  $tracker report --from "$start" --to "$end" --by "label:$label"
done
# Any meter: what the extension resources measured, and the bill lines that name them.
meters="SELECT cluster_id AS cluster, namespace, r->>'resource' AS meter,
               round(sum((r->>'used')::numeric), 2) AS used, r->>'unit' AS unit
        FROM usage_records, jsonb_array_elements(resources) r
        WHERE group_by = '' AND r->>'resource' LIKE 'x-%'
          AND window_start >= '$start' AND window_start < '$end'
        GROUP BY 1, 2, 3, 5 ORDER BY 1, 2, 3"
metered="SELECT cluster_id AS cluster, namespace, c->>'meter' AS meter, c->>'origin_id' AS bill_line,
                sum((c->>'allocated_cost_micros')::bigint) / 1000000.0 AS cost, currency
         FROM usage_records, jsonb_array_elements(costs) c
         WHERE group_by = '' AND c->>'meter' IS NOT NULL
           AND window_start >= '$start' AND window_start < '$end'
         GROUP BY 1, 2, 3, 4, 6 ORDER BY 1, 2, 3"
if [ "$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM ($meters) m")" != 0 ]; then
  echo "== extension meters (x-...): usage per namespace"
  psql "$DATABASE_URL" -P pager=off -c "$meters"
  echo "== extension meters: cost of the bill lines apportioned by them"
  psql "$DATABASE_URL" -P pager=off -c "$metered"
fi
