#!/usr/bin/env bash
# Runs every libFuzzer target (docs/fuzzing.md) for SECONDS each, two at a
# time, with ASan and UBSan. Corpora grow in build-fuzz/corpus/<target>, seeded
# from tests/fuzz/corpus and from inputs made with a fresh dev federation;
# a crash leaves its input in build-fuzz/artifacts and fails the run.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 600 s, all targets)
#   scripts/fuzz.sh 600                 # the documented long run (about 40 min)
#   scripts/fuzz.sh 15                  # what CI runs
#   scripts/fuzz.sh 60 envelope json    # some targets
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(frame apiconn envelope message json config directory checkpoint archive chunk xfer)
build="$root/build-fuzz"

"$root/scripts/install-deps.sh" --with-fuzz
CC=clang cmake -S "$root" -B "$build" -DTERN_FUZZ=ON -DTERN_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

work="$build/work"
export TERN_FUZZ_FED="$work/fed"
if [[ ! -f "$TERN_FUZZ_FED/ca/directory.tdir" ]]; then
  rm -rf "$work" && mkdir -p "$work"
  "$build/bin/tern" dev-federation "$TERN_FUZZ_FED" --base-port 7900 >/dev/null
fi
seeds="$work/seeds"
rm -rf "$seeds" && "$build/bin/tern-fuzz-seeds" "$seeds"
mkdir -p "$seeds/config" "$seeds/directory" "$seeds/archive"
cp "$TERN_FUZZ_FED/unhcr/node.conf" "$seeds/config/node.conf"
cp "$TERN_FUZZ_FED/broker/broker.conf" "$seeds/config/broker.conf"
cp "$TERN_FUZZ_FED/ca/directory.tdir" "$seeds/directory/"
if [[ ! -f "$work/demo.tern-audit" ]]; then
  rm -rf "$work/demo"
  "$build/bin/tern" demo --keep "$work/demo" --base-port 7950 >/dev/null
  "$build/bin/tern" audit export -c "$work/demo/fed/iom/node.conf" --out "$work/demo.tern-audit" >/dev/null
fi
cp "$work/demo.tern-audit" "$seeds/archive/"

mkdir -p "$build/artifacts"
run() {
  local t=$1 corpus="$build/corpus/$1"
  mkdir -p "$corpus"
  local extra=()
  [[ -d "$root/tests/fuzz/corpus/$t" ]] && extra+=("$root/tests/fuzz/corpus/$t")
  [[ -d "$root/tests/fuzz/regressions/$t" ]] && extra+=("$root/tests/fuzz/regressions/$t")
  [[ -d "$seeds/$t" ]] && extra+=("$seeds/$t")
  if "$build/bin/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
      "$corpus" "${extra[@]}" >"$build/fuzz_$t.log" 2>&1; then
    printf '%-11s ok: %s runs in %s s, coverage %s, corpus %s inputs\n' "$t" \
      "$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz_$t.log" | grep -o '[0-9]*$')" \
      "$secs" "$(grep -o 'cov: [0-9]*' "$build/fuzz_$t.log" | tail -1 | cut -d' ' -f2)" \
      "$(ls "$corpus" | wc -l)"
  else
    printf '%-11s FAILED: see %s and %s\n' "$t" "$build/fuzz_$t.log" "$build/artifacts"
    return 1
  fi
}
export -f run
export build secs seeds root
echo "fuzzing ${targets[*]} for $secs s each, two at a time" >&2
printf '%s\n' "${targets[@]}" | xargs -P 2 -I{} bash -c 'run {}'
