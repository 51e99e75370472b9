#!/usr/bin/env bash
# Installs the Debian 12 packages Tern needs to build, test and run.
# Idempotent: does nothing (and prints nothing) when every package is present.
# Usage: scripts/install-deps.sh [--with-fuzz] [--with-compare]
#   --with-fuzz      clang and libFuzzer (scripts/fuzz.sh)
#   --with-compare   RabbitMQ, NATS and their C clients (tests/bench/compare.sh),
#                    and eatmydata (tests/bench/syncbound.sh)
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git ca-certificates openssl curl python3
  libzmq3-dev protobuf-c-compiler libprotobuf-c-dev libssl-dev liblmdb-dev lmdb-utils
  libsodium-dev libjansson-dev libinih-dev libcmocka-dev libmicrohttpd-dev libcurl4-openssl-dev
  python3-jsonschema python3-yaml jq
)
for a in "$@"; do
  case "$a" in
    --with-fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    --with-compare) pkgs+=(rabbitmq-server nats-server librabbitmq-dev libnats-dev eatmydata) ;;
    *) echo "install-deps: unknown option $a" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
