#!/usr/bin/env bash
# Configures and builds Tern.
# Usage: scripts/build.sh [--quiet] [BUILD_DIR] [extra cmake args...]
#   --quiet   the compiler's output goes to BUILD_DIR/build.log; the terminal
#             gets one progress line (one line per phase when it is not a
#             terminal) and, if the build fails, the log's tail and its path.
# TERN_SANITIZE=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quiet=0
if [[ ${1:-} == --quiet || ${1:-} == -q ]]; then
  quiet=1
  shift
fi
build=${1:-"$root/build"}
shift || true
args=()
[[ "${TERN_SANITIZE:-0}" == 1 ]] && args+=(-DTERN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)

if [[ $quiet == 0 ]]; then
  cmake -S "$root" -B "$build" "${args[@]}" "$@" >/dev/null
  cmake --build "$build" -j"$(nproc)" -- --no-print-directory -s
  exit 0
fi

mkdir -p "$build"
build=$(cd "$build" && pwd)
log="$build/build.log"
: >"$log"
tty=0
[[ -t 1 ]] && tty=1

failed() {
  if [[ $tty == 1 ]]; then printf '\n'; fi
  echo "build.sh: $1 failed; the last lines of $log:" >&2
  grep -v '^\[ *[0-9]*%\] Built target' "$log" | tail -n 40 >&2
  echo "build.sh: the whole output is in $log" >&2
  exit 1
}

if [[ $tty == 1 ]]; then printf 'configuring Tern...'; else echo "configuring Tern (log: $log)"; fi
cmake -S "$root" -B "$build" "${args[@]}" "$@" >>"$log" 2>&1 || failed "cmake's configuration"

# Make prints "[ 42%] Building ..."; the highest so far is the progress.
if [[ $tty == 1 ]]; then printf '\rbuilding Tern...   0%%'; else echo "building Tern (log: $log)"; fi
pct=0
exec 3>>"$log"
if ! cmake --build "$build" -j"$(nproc)" -- --no-print-directory -s 2>&1 |
  while IFS= read -r line; do
    printf '%s\n' "$line" >&3
    if [[ $line =~ ^\[\ *([0-9]+)%\] ]] && ((BASH_REMATCH[1] > pct)); then
      pct=${BASH_REMATCH[1]}
      if [[ $tty == 1 ]]; then printf '\rbuilding Tern... %3d%%' "$pct"; fi
    fi
  done; then
  exec 3>&-
  failed "the build"
fi
exec 3>&-
if [[ $tty == 1 ]]; then printf '\rbuilt Tern in %s (log: %s)\033[K\n' "$build/bin" "$log"; else echo "built Tern in $build/bin"; fi
