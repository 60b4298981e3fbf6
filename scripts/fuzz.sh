#!/usr/bin/env bash
# Fuzzes the code that parses producers' bytes (docs/reliability.md, "Fuzzing"): runs every fuzz
# target (or those named) for SECONDS each, default 60, and exits non-zero on the first crash.
#
#   scripts/fuzz.sh [--engine libfuzzer|mutate] [SECONDS_PER_TARGET] [TARGET...]
#
# --engine libfuzzer (the default): coverage-guided, cargo-fuzz on stable Rust (--sanitizer none),
#   installed when missing. The first build of fuzz/ takes a while (all dependencies, instrumented).
#   New inputs go to target/fuzz-corpus/<target>/ (not committed), a crash to
#   fuzz/artifacts/<target>/; reproduce it with `cd fuzz && cargo fuzz run -s none TARGET FILE`.
# --engine mutate: the stable mutation runner tests/fuzz.rs: blind (no coverage), but no install
#   and no build of its own after the test suite. What CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

engine=libfuzzer
case "${1:-}" in
  --engine) engine=${2:?--engine needs libfuzzer or mutate}; shift 2 ;;
  --engine=*) engine=${1#--engine=}; shift ;;
esac
seconds=${1:-60}
[[ $# -gt 0 ]] && shift
all_targets=(avro_usage_event avro_cost_event ecs_document gcp_jsonl gcp_csv focus_csv rate_card)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -lt 1 ]]; then
  echo "fuzz.sh: SECONDS_PER_TARGET must be a positive whole number, not '$seconds'" >&2
  exit 2
fi

case "$engine" in
  mutate)
    # Built by the test suite already (same profile); a hang is cut off by `timeout`.
    cargo test --test fuzz --no-run
    FUZZ_SECONDS=$seconds FUZZ_TARGETS=$(IFS=,; echo "${targets[*]}") \
      timeout $((seconds * ${#targets[@]} + 120)) \
      cargo test --test fuzz -- --ignored --nocapture mutated_inputs_hold_the_properties
    ;;
  libfuzzer)
    if ! cargo fuzz --version >/dev/null 2>&1; then
      cargo install cargo-fuzz --locked
    fi
    # The shared Elastic documents seed ecs_document when this machine has them (they are not
    # copied into the repository).
    fixtures=""
    for dir in "${USAGE_TRACKER_ELASTIC_FIXTURES:-}" ../shared/fixtures/elastic /work/shared/fixtures/elastic; do
      if [[ -n $dir && -d $dir ]]; then fixtures=$(cd "$dir" && pwd); break; fi
    done
    cd fuzz
    cargo fuzz build --sanitizer none
    summary=()
    for target in "${targets[@]}"; do
      work=../target/fuzz-corpus/$target
      mkdir -p "$work"
      dirs=("$work" "corpus/$target")
      [[ $target == ecs_document && -n $fixtures ]] && dirs+=("$fixtures")
      log=$work.log
      echo "== $target: ${seconds}s"
      # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: a runaway allocation.
      if ! cargo fuzz run --sanitizer none "$target" "${dirs[@]}" -- \
          -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
          >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz.sh: $target crashed; the input is under fuzz/artifacts/$target/ (log: target/fuzz-corpus/$target.log)" >&2
        exit 1
      fi
      runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
      cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
      summary+=("$target: ${runs:-?} inputs in ${seconds}s, ${cov:-cov: ?}")
    done
    printf 'fuzz %s\n' "${summary[@]}"
    ;;
  *)
    echo "fuzz.sh: unknown engine '$engine' (libfuzzer or mutate)" >&2
    exit 2
    ;;
esac
