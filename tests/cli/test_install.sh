#!/usr/bin/env bash
# `cmake --install` to a fresh prefix gives a usable library: a program built
# against it through pkg-config alone compiles, links and runs.
set -euo pipefail
: "${TERN_BIN_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$TERN_BIN_DIR" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name tern.pc | head -1)")
[[ -f "$pc/tern.pc" ]] || { echo "no tern.pc installed" >&2; exit 1; }
[[ -x "$tmp/prefix/bin/tern" ]] || { echo "tern not installed" >&2; exit 1; }

cat > "$tmp/consumer.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <tern/error.h>
#include <tern/uuid.h>
#include <tern/v1/messages.pb-c.h>
int main(void)
{
	char id[37];
	if (tern_uuid_v7(id) != TERN_OK || !tern_uuid_valid(id))
		return 1;
	if (strcmp(tern_errcode_name(TERN_EBADSIG), "bad-signature") != 0)
		return 1;
	printf("%s\n", tern__v1__case_referral__descriptor.name);
	return 0;
}
C
export PKG_CONFIG_PATH="$pc"
# A sanitizer build of the library needs its runtime in the consumer too.
san=()
if grep -q '^TERN_SANITIZE:BOOL=ON' "$TERN_BIN_DIR/CMakeCache.txt"; then
  san=(-fsanitize=address,undefined)
fi
# shellcheck disable=SC2046
cc -std=c11 "${san[@]}" -o "$tmp/consumer" "$tmp/consumer.c" $(pkg-config --cflags --libs tern)
out=$(LD_LIBRARY_PATH="$(pkg-config --variable=libdir tern)" "$tmp/consumer")
[[ "$out" == "tern.v1.CaseReferral" ]] || { echo "consumer printed '$out'" >&2; exit 1; }
echo "cli test_install: ok"
