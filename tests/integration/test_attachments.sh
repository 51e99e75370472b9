#!/usr/bin/env bash
# Attachments (docs/attachments.md), end to end on real processes:
#  - a referral with a 300 MiB attachment (TERN_ATTACH_MIB) reaches sweden
#    byte-identical and exactly once while, in three rounds, unhcr's node, the
#    broker and sweden's node are each killed with kill -9 mid-transfer; each
#    round must resume from a chunk past 0 (the logs say where each put and
#    fetch started), never from the start;
#  - the message is in sweden's inbox only once everything is in (tern status
#    shows "receiving" before), and the audit entries of unhcr, the broker and
#    sweden carry the attachment;
#  - a declared SHA-256 or size that is not the file's is refused at send,
#    whether the file was uploaded or passed by descriptor; a send that names
#    descriptors it did not pass, or passes a pipe or a write-only file, is
#    refused, and the node keeps no descriptor of any of them; a send with
#    --attach leaves nothing in the node's uploads/ (no copy), one with
#    --upload still goes through uploads/;
#  - a chunk altered in the broker's store is refused by the recipient with
#    chunk-mismatch (logged and audited), asked again, and the message is
#    refused with chunk-mismatch in its receipt when it stays wrong.
source "$(dirname "$0")/lib.sh"
MIB=${TERN_ATTACH_MIB:-300}

fed_make
for d in broker unhcr sweden; do start "$d"; done
wait_for 20 "unhcr to connect" connected unhcr
wait_for 20 "sweden to connect" connected sweden

APIREQ="$(cd "$(dirname "$0")/../tools" && pwd)/apireq.py"
api() { # NODE [JSON]: one local API request (JSON, or standard input), the answer on stdout
  if [[ -n ${2:-} ]]; then
    python3 "$APIREQ" "$WORK/fed/$1/data/api.sock" "$2"
  else
    python3 "$APIREQ" "$WORK/fed/$1/data/api.sock" -
  fi
}

# --- refused at send: the declaration is not the file ----------------------------
head -c 100000 /dev/urandom >"$WORK/small.bin"
sha=$(sha256sum "$WORK/small.bin" | cut -d' ' -f1)
up=$(api unhcr '{"op":"upload.create","size":100000}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["upload_id"])')
printf '{"op":"upload.append","upload_id":"%s","offset":0,"data":"%s"}' "$up" "$(base64 -w0 "$WORK/small.bin")" |
  api unhcr | grep -q '"offset": *100000' ||
  fail "the upload did not take 100000 bytes"
body() { # SHA SIZE
  referral_json ATT-BAD | python3 -c "
import json,sys; b=json.load(sys.stdin)
b['attachments']=[{'name':'a.bin','mediaType':'application/octet-stream','sha256':'$1','size':'$2'}]
print(json.dumps(b))"
}
bad=$(printf '%064d' 0)
out=$(api unhcr "{\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"body\":$(body "$bad" 100000),\"uploads\":[\"$up\"]}")
grep -q '"error": *"attachment-mismatch"' <<<"$out" || fail "a wrong SHA-256 was not refused at send: $out"
out=$(api unhcr "{\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"body\":$(body "$sha" 99999),\"uploads\":[\"$up\"]}")
grep -q '"error": *"attachment-mismatch"' <<<"$out" || fail "a wrong size was not refused at send: $out"
out=$(api unhcr "{\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"body\":$(body "$sha" 100000)}")
grep -q 'upload' <<<"$out" || fail "a declared attachment without an upload was not refused: $out"
ls "$WORK/fed/unhcr/data/spool/out" 2>/dev/null | grep -q . && fail "a refused send left spool files"
say "refused at send: wrong SHA-256, wrong size, no upload"

# --- files by descriptor (docs/api.md): hostile and wrong ones refused ------------
fdsend() { # NODE HOW SHA SIZE: a send whose file comes by descriptor; HOW: file, none, pipe, wronly
  local how=()
  case $2 in
    file) how=(--fd "$WORK/small.bin") ;;
    pipe) how=(--fd-pipe) ;;
    wronly) how=(--fd-wronly "$WORK/small.bin") ;;
  esac
  python3 "$APIREQ" "$WORK/fed/$1/data/api.sock" \
    "{\"op\":\"send\",\"to\":[\"sweden\"],\"type\":\"case-referral\",\"descriptors\":1,\"body\":$(body "$3" "$4")}" \
    "${how[@]}"
}
node_fds() { ls "/proc/${PIDS[unhcr]}/fd" | wc -l; }
# The node seals from a passed file only on a local disk or tmpfs
# (tern_attach_fd_check); elsewhere (overlayfs in a container) it says so.
BYFD=1
case $(stat -f -c %T "$WORK") in ext2/ext3 | xfs | btrfs | f2fs | tmpfs | ramfs) ;; *) BYFD=0 ;; esac
((BYFD)) || say "$WORK is on $(stat -f -c %T "$WORK"): files are uploaded, not passed by descriptor"
mismatch='"error": *"attachment-mismatch"'
((BYFD)) || mismatch='cannot be sealed from'
fds_before=$(node_fds)
out=$(fdsend unhcr file "$bad" 100000)
grep -q "$mismatch" <<<"$out" || fail "a wrong SHA-256 by descriptor was not refused: $out"
out=$(fdsend unhcr file "$sha" 99999)
grep -q "$mismatch" <<<"$out" || fail "a wrong size by descriptor was not refused: $out"
out=$(fdsend unhcr none "$sha" 100000)
grep -q 'descriptor' <<<"$out" || fail "a send naming a descriptor it did not pass was not refused: $out"
out=$(fdsend unhcr pipe "$sha" 100000)
grep -q 'not a regular file' <<<"$out" || fail "a pipe passed as a file was not refused: $out"
out=$(fdsend unhcr wronly "$sha" 100000)
grep -q 'not open for reading' <<<"$out" || fail "a write-only file was not refused: $out"
# closed on the node's closer thread: at once, give or take a scheduling
for _ in 1 2 3 4 5 6 7 8 9 10; do [[ $(node_fds) == "$fds_before" ]] && break; sleep 0.1; done
[[ $(node_fds) == "$fds_before" ]] ||
  fail "unhcr holds $(node_fds) descriptors after the refused sends, $fds_before before"
ls "$WORK/fed/unhcr/data/spool/out" 2>/dev/null | grep -q . && fail "a refused send left spool files"
api unhcr "{\"op\":\"upload.delete\",\"upload_id\":\"$up\"}" | grep -q '"ok": *true' ||
  fail "cannot delete upload $up"
say "refused by descriptor: wrong SHA-256, wrong size, none passed, a pipe, write-only; no descriptor kept"

# --- 300 MiB through kill -9 of each process -------------------------------------
head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$WORK/big.bin"
referral_json ATT-1 >"$WORK/ref.json"

resumed_past_zero() { # LOG WHAT: a line "WHAT ... from chunk N" with N > 0 after the kill
  grep -h "$2" "$1" | grep -o 'from chunk [0-9]*' | awk '$3 > 0 {f=1} END {exit !f}'
}

round() { # VICTIM: send, kill VICTIM mid-transfer, restart it, check the result
  local victim=$1 case=ATT-$1 id how=()
  # One round copies the file to the node first (--upload), the others
  # pass it by descriptor: the node then holds no copy of it.
  [[ $victim == broker ]] && how=(--upload)
  referral_json "$case" >"$WORK/ref-$victim.json"
  id=$("$TERN" send -c "$(conf unhcr)" --to sweden --attach "$WORK/big.bin:scan-$victim.bin" \
    "${how[@]}" case-referral "$WORK/ref-$victim.json") || fail "send with a $MIB MiB attachment failed"
  if [[ ${#how[@]} -eq 0 ]] && ((BYFD)); then
    grep -q "sealing 1 attachment(s) of $id" "$WORK/unhcr.log" || fail "no seal of $id in unhcr's log"
    ls "$WORK/fed/unhcr/data/uploads" 2>/dev/null | grep -q . &&
      fail "a send by descriptor left a copy in unhcr's uploads/"
  fi
  say "$victim round: sent $id"
  # mid-transfer: the broker holds some chunks (sender, broker), or sweden some
  if [[ $victim == sweden ]]; then
    wait_for 60 "sweden to receive part of $id" bash -c \
      "'$TERN' status -c '$(conf sweden)' --json $id | grep -q '\"received_bytes\": [1-9]'"
    state_is sweden "$id" receiving || fail "sweden does not show $id as receiving"
    count_is sweden inbox "$INBOX" || fail "$id is in sweden's inbox before its attachment is in"
  else
    wait_for 60 "the broker to hold part of $id" bash -c \
      "'$TERN' status -c '$(conf unhcr)' --json $id | grep -q '\"at_broker\": [1-9]'"
  fi
  : >"$WORK/$victim.log.after"
  crash "$victim"
  say "killed $victim mid-transfer"
  local mark
  mark=$(wc -l <"$WORK/$victim.log")
  start "$victim"
  wait_for 30 "unhcr to connect" connected unhcr
  wait_for 240 "$id delivered" state_is unhcr "$id" delivered
  tail -n +"$((mark + 1))" "$WORK/$victim.log" >"$WORK/$victim.after"
  case $victim in
    unhcr) resumed_past_zero "$WORK/unhcr.after" "putting $id" ||
      fail "unhcr did not resume putting $id past chunk 0 after its restart" ;;
    broker) resumed_past_zero "$WORK/unhcr.log" "putting $id" ||
      fail "unhcr did not resume putting $id past chunk 0 after the broker's restart" ;;
    sweden) resumed_past_zero "$WORK/sweden.after" "fetching $id" ||
      fail "sweden did not resume fetching $id past chunk 0 after its restart" ;;
  esac
  # The chunks went on the bulk lane again after the restart (docs/protocol.md).
  if [[ $victim == broker ]]; then
    for n in unhcr sweden; do
      grep -q "$n opened its bulk lane" "$WORK/broker.after" ||
        fail "$n did not open its bulk lane again after the broker's restart"
    done
  else
    grep -q "bulk lane open" "$WORK/$victim.after" ||
      fail "$victim did not open its bulk lane again after its restart"
  fi
  INBOX=$((INBOX + 1))
  count_is sweden inbox "$INBOX" || fail "sweden's inbox does not hold exactly $INBOX messages"
  rm -f "$WORK/got.bin"
  "$TERN" inbox -c "$(conf sweden)" attachment "$id" "scan-$victim.bin" --out "$WORK/got.bin" ||
    fail "cannot read $id's attachment back"
  cmp -s "$WORK/big.bin" "$WORK/got.bin" || fail "$id's attachment is not byte-identical"
  say "$victim round: $id delivered whole, resumed past chunk 0"
  LAST=$id
}
# --- sealing does not hold the node: a send goes through meanwhile ------------
referral_json ATT-SEAL >"$WORK/ref-seal.json"
"$TERN" send -c "$(conf unhcr)" --to sweden --attach "$WORK/big.bin:seal.bin" case-referral \
  "$WORK/ref-seal.json" >"$WORK/seal.id" &
bigsend=$!
wait_for 120 "unhcr to start sealing" grep -q "sealing 1 attachment" "$WORK/unhcr.log"
small=$(referral_json ATT-SMALL | "$TERN" send -c "$(conf unhcr)" --to sweden case-referral -)
wait "$bigsend" || fail "the send with an attachment failed"
big=$(cat "$WORK/seal.id")
line_of() { grep -n "queued $1" "$WORK/unhcr.log" | head -1 | cut -d: -f1; }
(($(line_of "$small") < $(line_of "$big"))) ||
  fail "a plain send waited for the sealing of another's attachment"
wait_for 240 "$big delivered" state_is unhcr "$big" delivered
say "a plain send went through while $MIB MiB were sealed"
INBOX=2

# Every recipient has it: the broker keeps the chunks for [delivery] retain
# (a node restored from an older copy gets them again) and shows the bytes,
# which no destination's transfer_bytes counts.
kept() {
  "$TERN" queues -c "$WORK/fed/broker/broker.conf" --json >"$WORK/kept.json" &&
    python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["transfer_retained_bytes"] < int(sys.argv[2]))' \
      "$WORK/kept.json" $((MIB * 1048576))
}
wait_for 30 "the broker to show the $MIB MiB kept for restores" kept
"$TERN" queues -c "$WORK/fed/broker/broker.conf" | grep -q '^attachments kept for restores' ||
  fail "tern queues does not say what attachments it keeps for restores"
say "the broker shows the attachments it keeps for restores"

# The bulk work runs below the loops (docs/attachments.md): the threads that
# seal, write and open chunks, and the nodes' bulk lanes' ZMQ I/O threads,
# at nice 10 or more; each daemon's loop (its first thread) as started.
thread_nice() { # PID NAME: the niceness of PID's thread NAME, or nothing
  local t
  for t in /proc/"$1"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] || continue
    sed 's/.*) //' "$t/stat" | awk '{print $17}'
    return
  done
}
for check in unhcr:tern-seal unhcr:2/ZMQbg/IO/0 broker:tern-put sweden:tern-open sweden:2/ZMQbg/IO/0; do
  who=${check%%:*} name=${check#*:}
  nice=$(thread_nice "${PIDS[$who]}" "$name")
  loop=$(sed 's/.*) //' /proc/"${PIDS[$who]}"/stat | awk '{print $17}')
  [[ -n $nice ]] || fail "$who has no thread $name"
  ((nice >= 10)) || fail "$who's $name runs at nice $nice, not below its loop"
  ((loop >= 10 || nice > loop)) || fail "$who's $name runs at its loop's priority ($loop)"
done
say "the bulk threads run at nice 10, below the loops"

round unhcr
round broker
round sweden

# Audit entries of all three carry the attachment, and tern audit prove
# covers them: unhcr's and sweden's with the plaintext's SHA-256, the
# broker's with the same sealed root and never the SHA-256.
sha_big=$(sha256sum "$WORK/big.bin" | cut -d' ' -f1)
for who in unhcr sweden broker; do
  c=$(conf "$who")
  [[ $who == broker ]] && c="$WORK/fed/broker/broker.conf"
  wait_for 30 "$who's audit proof of $LAST" bash -c "'$TERN' audit prove -c '$c' $LAST >'$WORK/prove-$who.json'"
done
python3 - "$WORK" "$sha_big" <<'PY' || fail "the audit entries do not carry the attachment as they should"
import base64, json, sys
work, sha = sys.argv[1], bytes.fromhex(sys.argv[2])
def entries(who):
    return [base64.b64decode(e["entry"]) for e in json.load(open(f"{work}/prove-{who}.json"))["entries"]]
def roots(es):  # 32-byte strings after the AuditAttachment root tag (field 3, bytes)
    out = set()
    for e in es:
        i = e.find(b"\x1a\x20")
        while i >= 0:
            out.add(e[i + 2:i + 34]); i = e.find(b"\x1a\x20", i + 1)
    return out
u, s, b = entries("unhcr"), entries("sweden"), entries("broker")
assert any(sha in e for e in u), "unhcr: no SHA-256"
assert any(sha in e for e in s), "sweden: no SHA-256"
assert not any(sha in e for e in b), "broker: the plaintext SHA-256 is there"
assert roots(b) & roots(s) & roots(u), "no sealed root common to the three"
PY
say "audit: the attachment in unhcr's, the broker's and sweden's entries"

# --- a chunk altered in the broker's store ------------------------------------
stop sweden
head -c $((3 * 1024 * 1024)) /dev/urandom >"$WORK/three.bin"
referral_json ATT-TAMPER >"$WORK/ref-t.json"
id=$("$TERN" send -c "$(conf unhcr)" --to sweden --attach "$WORK/three.bin:t.bin" case-referral "$WORK/ref-t.json")
spool="$WORK/fed/broker/data/chunks/$id.0"
wait_for 60 "the broker to hold all of $id" grep -q "attachment 0 of $id complete at the broker" "$WORK/broker.log"
[[ -f $spool ]] || fail "no spool file $spool at the broker"
# flip one byte of chunk 1 (slots of 1 MiB + 16)
python3 - "$spool" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1048576 + 16 + 1000); b = f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 0xff]))
PY
start sweden
wait_for 60 "$id rejected" state_is unhcr "$id" rejected
"$TERN" status -c "$(conf unhcr)" --json "$id" | grep -q chunk-mismatch ||
  fail "the receipt for $id does not say chunk-mismatch"
grep -q "refused chunk 1 of $id" "$WORK/sweden.log" || fail "sweden did not log the refused chunk"
count_is sweden inbox "$INBOX" || fail "a message with a damaged attachment entered the inbox"
say "altered chunk: refused, asked again, message refused with chunk-mismatch"
# --- a backup carries the attachments: restored, sweden still reads them --------
"$TERN" backup -c "$(conf sweden)" --out "$WORK/sweden-backup" >/dev/null || fail "tern backup failed"
ls "$WORK/sweden-backup/spool/in/$LAST".0 >/dev/null || fail "the backup lacks $LAST's attachment"
stop sweden
mv "$WORK/fed/sweden/data" "$WORK/sweden-data-old"
mv "$WORK/sweden-backup" "$WORK/fed/sweden/data"
start sweden
wait_for 20 "sweden to connect" connected sweden
rm -f "$WORK/got.bin"
"$TERN" inbox -c "$(conf sweden)" attachment "$LAST" scan-sweden.bin --out "$WORK/got.bin" ||
  fail "the restored node cannot read $LAST's attachment"
cmp -s "$WORK/big.bin" "$WORK/got.bin" || fail "the restored attachment is not byte-identical"
say "backup and restore: the attachments come back with the store"
echo "it test_attachments: ok ($MIB MiB through kill -9 of unhcr, broker and sweden)"
