#!/usr/bin/env bash
# Attachments over the node's HTTP API (docs/api.md, "Attachments over
# HTTP"), with curl:
#  - tus 1.0 upload at unhcr: OPTIONS; POST (412 without Tus-Resumable, 413
#    over the limit, 201 with Location); PATCH in pieces (3 MiB, then 8 MiB each) with HEAD
#    between; a PATCH at a wrong offset gets 409 and the client resumes from
#    HEAD's Upload-Offset; 415 for another Content-Type, 413 for a PATCH over
#    8 MiB, 401 without the token (before its body), 404 for an unknown
#    upload; DELETE; 507 (nothing kept) when the node's disk is full;
#  - POST /v1/messages with "uploads" sends the referral with the file;
#  - downloads at sweden: 401 without the token, 404 for an unknown message
#    and for a message without that attachment;
#  - end to end, once the broker carries attachments (its /metrics has
#    tern_broker_transfer_bytes): sweden downloads the 64 MiB file whole
#    (its peak RSS grows by less than 24 MB: streamed, not held) and in
#    ranges (bytes=A-B, A-, -N), each identical (cmp) to the bytes sent, and
#    an unsatisfiable range gets 416 with Content-Range: bytes */SIZE; 4
#    slow downloads at once hold up no other request, and a fifth gets 503.
source "$(dirname "$0")/lib.sh"
# Under AddressSanitizer freed memory waits in a 256 MB quarantine, which would
# read as a download held in memory: keep it small (no effect on other builds).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"

fed_make
for n in broker unhcr sweden; do start "$n"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden
# Ports as tern dev-federation assigns them (see its --help).
BROKER_METRICS=$((PORT + 1)); UNHCR=http://127.0.0.1:$((PORT + 13)); SWEDEN=http://127.0.0.1:$((PORT + 17))
TOK_U=$(token "$WORK/fed/unhcr/http.token"); TOK_S=$(token "$WORK/fed/sweden/http.token")
TUS=(-H "Tus-Resumable: 1.0.0")
OCTET=(-H "Content-Type: application/offset+octet-stream")

# req NAME TOKEN METHOD URL [curl args...]: the body in $WORK/NAME.out, the
# headers in $WORK/NAME.head; prints the status.
req() {
  local name=$1 tok=$2 method=$3 url=$4
  shift 4
  local auth=()
  [[ -n $tok ]] && auth=(-H "Authorization: Bearer $tok")
  if [[ $method == HEAD ]]; then
    curl -sS -I -o "$WORK/$name.head" -w '%{http_code}' --max-time 30 "${auth[@]}" "$@" "$url" \
      2>"$WORK/$name.err" || fail "$name: HEAD $url: $(cat "$WORK/$name.err")"
    : >"$WORK/$name.out"
  else
    curl -sS -X "$method" -o "$WORK/$name.out" -D "$WORK/$name.head" -w '%{http_code}' \
      --max-time 60 "${auth[@]}" "$@" "$url" 2>"$WORK/$name.err" ||
      fail "$name: $method $url: $(cat "$WORK/$name.err")"
  fi
  local a data=""
  for a in "$@"; do [[ $a == @* && $method != PATCH ]] && data=${a#@}; done
  http_record "$method" "/${url#http://*/}" "$WORK/$name.head" "$WORK/$name.out" "$data"
}
# header NAME FIELD: a response header's value
header() { awk -v f="$2" 'BEGIN{IGNORECASE=1} tolower($0) ~ "^" tolower(f) ":" {sub(/^[^:]*: */, ""); sub(/\r$/, ""); print; exit}' "$WORK/$1.head"; }
expect() { # NAME WANT GOT
  [[ $3 == "$2" ]] || { cat "$WORK/$1.head" "$WORK/$1.out" >&2; fail "$1: status $3, not $2"; }
}

# 64 MiB: over 8 MiB, so the rest goes in several PATCHes; and large enough
# that a download held whole in memory would show in the node's peak RSS.
SIZE=$((64 * 1024 * 1024 + 333))
head -c "$SIZE" /dev/urandom >"$WORK/scan.bin"
SHA=$(sha256sum "$WORK/scan.bin" | cut -d' ' -f1)
FIRST=$((3 * 1024 * 1024))
head -c "$FIRST" "$WORK/scan.bin" >"$WORK/piece1"

say "OPTIONS: tus 1.0.0, the node's limit"
expect options 204 "$(req options "$TOK_U" OPTIONS "$UNHCR/v1/uploads")"
[[ $(header options Tus-Version) == 1.0.0 ]] || fail "OPTIONS: no Tus-Version: 1.0.0"
[[ $(header options Tus-Max-Size) == 2147483648 ]] || fail "OPTIONS: Tus-Max-Size is '$(header options Tus-Max-Size)'"

say "POST: 412 without Tus-Resumable, 413 over the limit, 401 without the token, else 201"
expect no-tus 412 "$(req no-tus "$TOK_U" POST "$UNHCR/v1/uploads" -H "Upload-Length: $SIZE")"
[[ $(header no-tus Tus-Version) == 1.0.0 ]] || fail "a 412 without Tus-Version"
expect old-tus 412 "$(req old-tus "$TOK_U" POST "$UNHCR/v1/uploads" -H "Tus-Resumable: 0.2.2" -H "Upload-Length: $SIZE")"
expect huge 413 "$(req huge "$TOK_U" POST "$UNHCR/v1/uploads" "${TUS[@]}" -H "Upload-Length: 99999999999")"
grep -q '"code": "attachment-too-large"' "$WORK/huge.out" || fail "413 does not say attachment-too-large"
expect anon 401 "$(req anon "" POST "$UNHCR/v1/uploads" "${TUS[@]}" -H "Upload-Length: $SIZE")"
expect create 201 "$(req create "$TOK_U" POST "$UNHCR/v1/uploads" "${TUS[@]}" -H "Upload-Length: $SIZE")"
LOC=$(header create Location)
[[ $LOC =~ ^/v1/uploads/[0-9a-f-]{36}$ ]] || fail "POST: Location is '$LOC'"
[[ $(header create Tus-Resumable) == 1.0.0 ]] || fail "POST: no Tus-Resumable in the answer"
UP=${LOC##*/}

say "HEAD: offset 0 of $SIZE, not to be cached"
expect head0 200 "$(req head0 "$TOK_U" HEAD "$UNHCR$LOC" "${TUS[@]}")"
[[ $(header head0 Upload-Offset) == 0 && $(header head0 Upload-Length) == "$SIZE" ]] ||
  fail "HEAD: offset '$(header head0 Upload-Offset)' of '$(header head0 Upload-Length)'"
[[ $(header head0 Cache-Control) == no-store ]] || fail "HEAD: no Cache-Control: no-store"

say "PATCH: 401 without the token, 415 for another type, 404 for an unknown upload"
expect p-anon 401 "$(req p-anon "" PATCH "$UNHCR$LOC" "${TUS[@]}" "${OCTET[@]}" -H "Upload-Offset: 0" --data-binary @"$WORK/piece1")"
expect p-type 415 "$(req p-type "$TOK_U" PATCH "$UNHCR$LOC" "${TUS[@]}" -H "Content-Type: application/octet-stream" -H "Upload-Offset: 0" --data-binary @"$WORK/piece1")"
expect p-none 404 "$(req p-none "$TOK_U" PATCH "$UNHCR/v1/uploads/01a20000-0000-7000-8000-000000000000" "${TUS[@]}" "${OCTET[@]}" -H "Upload-Offset: 0" --data-binary @"$WORK/piece1")"
head -c $((8 * 1024 * 1024 + 1)) /dev/zero >"$WORK/over8"
expect p-big 413 "$(req p-big "$TOK_U" PATCH "$UNHCR$LOC" "${TUS[@]}" "${OCTET[@]}" -H "Upload-Offset: 0" --data-binary @"$WORK/over8")"
expect head-still0 200 "$(req head-still0 "$TOK_U" HEAD "$UNHCR$LOC" "${TUS[@]}")"
[[ $(header head-still0 Upload-Offset) == 0 ]] || fail "a refused PATCH moved the offset"

say "PATCH the first $FIRST bytes, then one at a wrong offset (409), then resume from HEAD"
expect p1 204 "$(req p1 "$TOK_U" PATCH "$UNHCR$LOC" "${TUS[@]}" "${OCTET[@]}" -H "Upload-Offset: 0" --data-binary @"$WORK/piece1")"
[[ $(header p1 Upload-Offset) == "$FIRST" ]] || fail "PATCH: new offset '$(header p1 Upload-Offset)', not $FIRST"
expect p-wrong 409 "$(req p-wrong "$TOK_U" PATCH "$UNHCR$LOC" "${TUS[@]}" "${OCTET[@]}" -H "Upload-Offset: 0" --data-binary @"$WORK/piece1")"
[[ $(header p-wrong Upload-Offset) == "$FIRST" ]] || fail "409 without the upload's offset"
expect head1 200 "$(req head1 "$TOK_U" HEAD "$UNHCR$LOC" "${TUS[@]}")"
OFF=$(header head1 Upload-Offset)
[[ $OFF == "$FIRST" ]] || fail "HEAD after the first piece: offset $OFF"
tail -c +"$((OFF + 1))" "$WORK/scan.bin" | split -b 8M - "$WORK/rest."
for p in "$WORK"/rest.*; do
  expect p2 204 "$(req p2 "$TOK_U" PATCH "$UNHCR$LOC" "${TUS[@]}" "${OCTET[@]}" -H "Upload-Offset: $OFF" --data-binary @"$p")"
  OFF=$((OFF + $(stat -c %s "$p")))
  [[ $(header p2 Upload-Offset) == "$OFF" ]] || fail "PATCH: new offset '$(header p2 Upload-Offset)', not $OFF"
done
[[ $OFF == "$SIZE" ]] || fail "the PATCHes took $OFF bytes of $SIZE"

say "DELETE ends another upload"
expect c2 201 "$(req c2 "$TOK_U" POST "$UNHCR/v1/uploads" "${TUS[@]}" -H "Upload-Length: 10")"
LOC2=$(header c2 Location)
expect del 204 "$(req del "$TOK_U" DELETE "$UNHCR$LOC2" "${TUS[@]}")"
expect del-head 404 "$(req del-head "$TOK_U" HEAD "$UNHCR$LOC2" "${TUS[@]}")"

say "send the referral with the upload over HTTP"
referral_json HTTP-ATT-1 | python3 -c "
import json, sys
b = json.load(sys.stdin)
b['attachments'] = [{'name': 'scan \"1\".bin', 'mediaType': 'application/pdf', 'sha256': '$SHA', 'size': '$SIZE'}]
print(json.dumps({'type': 'case-referral', 'to': ['sweden'], 'clientRef': 'http-att-1', 'body': b, 'uploads': ['$UP']}))" >"$WORK/send.json"
expect send 201 "$(req send "$TOK_U" POST "$UNHCR/v1/messages" --data-binary @"$WORK/send.json")"
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messageId"])' "$WORK/send.out")
expect gone 404 "$(req gone "$TOK_U" HEAD "$UNHCR$LOC" "${TUS[@]}")"

say "downloads that cannot be: 401 without the token, 404 for no message, no attachment"
NAME_URL='scan%20%221%22.bin'
expect d-anon 401 "$(req d-anon "" GET "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL")"
expect d-nomsg 404 "$(req d-nomsg "$TOK_S" GET "$SWEDEN/v1/messages/01a20000-0000-7000-8000-000000000000/attachments/x")"
referral_json HTTP-PLAIN >"$WORK/plain.json"
PLAIN=$("$TERN" send -c "$(conf unhcr)" --to sweden case-referral "$WORK/plain.json")
wait_for 20 "a plain referral to be delivered" state_is unhcr "$PLAIN" delivered
expect d-noatt 404 "$(req d-noatt "$TOK_S" GET "$SWEDEN/v1/messages/$PLAIN/attachments/x")"

# Last: unhcr again, its data on a 2 MiB tmpfs (a private mount namespace,
# as test_diskfull.sh): a PATCH the disk cannot hold gets 507, nothing kept.
disk_full() {
  if ! unshare -rm true 2>/dev/null; then
    say "SKIPPED 507: this machine does not allow a private mount namespace (unshare -rm)"
    return 0
  fi
  say "a PATCH when unhcr's disk is full: 507, and nothing of it kept"
  stop unhcr
  local c; c=$(conf unhcr)
  sed -i "s|^api_socket = .*|api_socket = $WORK/unhcr-api.sock|" "$c"
  unshare -rm bash -c "mount -t tmpfs -o size=2m tmpfs '$WORK/fed/unhcr/data' && chmod 700 '$WORK/fed/unhcr/data' && exec '$BIN/tern-node' -c '$c'" >>"$WORK/unhcr.log" 2>&1 &
  PIDS[unhcr]=$!
  up_again() { [[ $(req again "$TOK_U" GET "$UNHCR/v1/node") == 200 ]]; }
  wait_for 20 "unhcr to answer over HTTP again" up_again
  head -c $((4 * 1024 * 1024)) /dev/urandom >"$WORK/four"
  expect full-create 201 "$(req full-create "$TOK_U" POST "$UNHCR/v1/uploads" "${TUS[@]}" -H "Upload-Length: $((4 * 1024 * 1024))")"
  local loc; loc=$(header full-create Location)
  expect full-patch 507 "$(req full-patch "$TOK_U" PATCH "$UNHCR$loc" "${TUS[@]}" "${OCTET[@]}" -H "Upload-Offset: 0" --data-binary @"$WORK/four")"
  grep -q '"code": "no-space"' "$WORK/full-patch.out" || fail "507 does not say no-space"
  expect full-head 200 "$(req full-head "$TOK_U" HEAD "$UNHCR$loc" "${TUS[@]}")"
  [[ $(header full-head Upload-Offset) == 0 ]] || fail "a PATCH refused for a full disk moved the offset"
}

curl -sf "http://127.0.0.1:$BROKER_METRICS/metrics" >"$WORK/broker.metrics" || fail "no /metrics at the broker"
if ! grep -q '^# TYPE tern_broker_transfer_bytes' "$WORK/broker.metrics"; then
  say "SKIPPED end to end: this broker does not carry attachments yet (no tern_broker_transfer_bytes)"
  disk_full
  http_check
  echo "it test_http_upload: ok (upload half and download errors only)"
  exit 0
fi

say "end to end: sweden downloads what unhcr uploaded, whole and in ranges"
wait_for 120 "the referral with its attachment to be delivered" state_is unhcr "$ID" delivered
in_inbox() { [[ $(req inbox "$TOK_S" GET "$SWEDEN/v1/inbox/$ID") == 200 ]]; }
wait_for 60 "it to be in sweden's inbox" in_inbox
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/${PIDS[sweden]}/status"; } # kB
budget=$((24 * 1024)) # kB; AddressSanitizer about doubles what a piece costs
grep -q libasan "/proc/${PIDS[sweden]}/maps" && budget=$((2 * budget))
before=$(hwm)
expect whole 200 "$(req whole "$TOK_S" GET "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL")"
cmp "$WORK/scan.bin" "$WORK/whole.out" || fail "the downloaded file is not the one uploaded"
say "  sweden's peak RSS: $before kB before the download, $(hwm) kB after"
(($(hwm) - before < budget)) || fail "the download of $SIZE bytes raised sweden's peak RSS by $(($(hwm) - before)) kB"
[[ $(header whole Content-Length) == "$SIZE" ]] || fail "Content-Length '$(header whole Content-Length)'"
[[ $(header whole Content-Type) == application/pdf ]] || fail "Content-Type '$(header whole Content-Type)'"
[[ $(header whole Accept-Ranges) == bytes ]] || fail "no Accept-Ranges: bytes"
[[ $(header whole ETag) == "\"$SHA\"" ]] || fail "ETag '$(header whole ETag)', not the SHA-256"
[[ $(header whole Content-Disposition) == "attachment; filename=\"scan _1_.bin\"; filename*=UTF-8''scan%20%221%22.bin" ]] ||
  fail "Content-Disposition '$(header whole Content-Disposition)'"
expect head-dl 200 "$(req head-dl "$TOK_S" HEAD "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL")"
[[ $(header head-dl Content-Length) == "$SIZE" ]] || fail "HEAD: Content-Length '$(header head-dl Content-Length)'"
slice() { # FROM LEN: those bytes of the file sent, in $WORK/want
  python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); open(sys.argv[4], "wb").write(f.read(int(sys.argv[3])))' \
    "$WORK/scan.bin" "$1" "$2" "$WORK/want"
}
range() { # NAME RANGE FROM LEN
  expect "$1" 206 "$(req "$1" "$TOK_S" GET "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL" -H "Range: $2")"
  slice "$3" "$4"
  cmp "$WORK/want" "$WORK/$1.out" || fail "$2: not the same bytes"
  [[ $(header "$1" Content-Range) == "bytes $3-$(($3 + $4 - 1))/$SIZE" ]] ||
    fail "$2: Content-Range '$(header "$1" Content-Range)'"
}
range r-mid "bytes=1000-2999999" 1000 2999000
range r-tail "bytes=$((SIZE - 5000))-" $((SIZE - 5000)) 5000
range r-suffix "bytes=-777" $((SIZE - 777)) 777
range r-cut "bytes=$((SIZE - 10))-$((SIZE + 100))" $((SIZE - 10)) 10
expect r-416 416 "$(req r-416 "$TOK_S" GET "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL" -H "Range: bytes=$SIZE-")"
[[ $(header r-416 Content-Range) == "bytes */$SIZE" ]] || fail "416 with Content-Range '$(header r-416 Content-Range)'"
expect r-multi 200 "$(req r-multi "$TOK_S" GET "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL" -H "Range: bytes=0-1,5-9")"
cmp "$WORK/scan.bin" "$WORK/r-multi.out" || fail "several ranges: not the whole file"
say "4 slow downloads at once: other requests go on, a fifth download gets 503"
slow=()
for i in 1 2 3 4; do
  curl -s -o "$WORK/slow$i.out" -D "$WORK/slow$i.head" --limit-rate 2M -H "Authorization: Bearer $TOK_S" \
    -H "Range: bytes=$((i * 1000))-$((i * 1000 + 16 * 1024 * 1024 - 1))" \
    "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL" &
  slow+=($!)
done
all_started() { for i in 1 2 3 4; do grep -q '^HTTP/1.1 206' "$WORK/slow$i.head" || return 1; done; }
wait_for 10 "the 4 downloads to start" all_started
expect fifth 503 "$(req fifth "$TOK_S" GET "$SWEDEN/v1/messages/$ID/attachments/$NAME_URL" -H "Range: bytes=0-0")"
grep -qi '^Retry-After: 1' "$WORK/fifth.head" || fail "the fifth download's 503 has no Retry-After"
# The node makes the downloads' pieces one at a time on its loop, as every
# local API answer: a request waits behind at most one piece per download.
t0=$(date +%s%N)
expect node 200 "$(req node "$TOK_S" GET "$SWEDEN/v1/node")"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
say "  GET /v1/node during the 4 downloads: $ms ms"
((ms < 2000)) || fail "GET /v1/node took $ms ms while 4 downloads ran"
wait "${slow[@]}"
for i in 1 2 3 4; do
  slice $((i * 1000)) $((16 * 1024 * 1024))
  cmp "$WORK/want" "$WORK/slow$i.out" || fail "slow download $i: not the same bytes"
done
expect by-index 404 "$(req by-index "$TOK_S" GET "$SWEDEN/v1/messages/$ID/attachments/other.bin")"
disk_full
http_check
echo "it test_http_upload: ok"
