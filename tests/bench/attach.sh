#!/usr/bin/env bash
# The attachment benchmark (issue 16, docs/attachments.md, docs/performance.md
# "Attachments"). On a fresh development federation in a temporary directory
# (broker, unhcr, sweden on free ports) it measures:
#
#  throughput  one SIZE MiB attachment of random bytes, unhcr -> sweden: from
#              the start of `tern send --attach` to "delivered" at unhcr, and
#              the phases from the daemons' log timestamps; MB/s end to end and
#              per phase; each daemon's peak resident memory (VmHWM); the
#              received bytes checked with `tern inbox attachment` + cmp
#              (not timed);
#  fairness    `tern bench` (one message in flight, open loop at --rate) on
#              the idle federation, then again while another SIZE MiB
#              attachment moves: p50 and p99 and their ratio;
#  the limit   a sampler (every 0.5 s) records each process's CPU, the
#              machine's CPU and iowait, and the disk's writes, busy time and
#              flushes (/proc/stat, /proc/PID/stat, /proc/diskstats); per phase
#              the script names what bounds it: one daemon's CPU, the machine's
#              CPU, the disk's bandwidth, or the disk's flush (fsync) latency.
#
# The machine's load average is printed with the results: other work on a
# shared machine moves every figure here.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tests/bench/attach.sh [options] [SIZE_MIB]

Measures attachments end to end on a fresh development federation (broker,
unhcr, sweden): the throughput of one SIZE_MIB attachment (default 1024) and
its phases, the daemons' peak memory, and ordinary messages' latency with and
without a bulk transfer running. Prints a table (or, with --json, one JSON
object) and names what bounds the throughput.

Options:
  --json             print one JSON object instead of the table
  --rate N           ordinary messages per second in the fairness runs (default 5).
                     One message is in flight and latency counts from the
                     scheduled time: a rate whose interval is under the
                     per-message latency during a transfer (about 95 ms on a
                     loaded 2-core machine) measures the queue that builds,
                     not the transfer's effect
  --duration S       seconds measured by each fairness run (default 40)
  --no-fairness      only the throughput run
  --build DIR        the build directory (default: build, or $TERN_BUILD)
  --keep             keep the temporary directory (logs, samples) and print it
  --set SEC.KEY=VAL  set a configuration key in every daemon's file before the
                     start (repeatable), e.g. --set limits.attachment_window=4
  -h, --help         this help

Needs about 6 x SIZE_MIB of free disk in $TMPDIR (default /tmp), python3 and
the tern binaries (scripts/build.sh build -DCMAKE_BUILD_TYPE=Release).
Takes about 6 minutes for 1 GiB on a loaded 2-core machine (the read-back and
cmp, not timed, about 2 of them); 2 GiB about 15.

Examples:
  tests/bench/attach.sh                      # 1 GiB
  tests/bench/attach.sh --json 2048 >a.json  # 2 GiB, the memory bound's size
  tests/bench/attach.sh --no-fairness 64     # a quick check
  tests/bench/attach.sh --set limits.attachment_window=2 512
EOF
}

root=$(cd "$(dirname "$0")/../.." && pwd)
json=0 rate=5 duration=40 fairness=1 keep=0 size_mib=1024 sets=()
build=${TERN_BUILD:-$root/build}
while (($#)); do
  case $1 in
    --json) json=1 ;;
    --rate) rate=${2:?--rate needs N}; shift ;;
    --duration) duration=${2:?--duration needs S}; shift ;;
    --no-fairness) fairness=0 ;;
    --build) build=${2:?--build needs DIR}; shift ;;
    --keep) keep=1 ;;
    --set) sets+=("${2:?--set needs SECTION.KEY=VALUE}"); shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "attach.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) size_mib=$1 ;;
  esac
  shift
done
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || { echo "attach.sh: SIZE_MIB must be a positive integer" >&2; exit 2; }
((size_mib <= 2048)) || { echo "attach.sh: at most 2048 MiB ([limits] max_attachment_size)" >&2; exit 2; }
bin=$build/bin
for b in tern tern-broker tern-node; do
  [[ -x $bin/$b ]] || { echo "attach.sh: no $bin/$b (scripts/build.sh build)" >&2; exit 2; }
done
tern=$bin/tern

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-attach.XXXXXX")
need_kb=$((size_mib * 1024 * 6))
free_kb=$(df -Pk "$work" | awk 'NR == 2 {print $4}')
if ((free_kb < need_kb)); then
  echo "attach.sh: $((free_kb / 1024)) MiB free in $work, about $((need_kb / 1024)) needed" >&2
  rm -rf "$work"
  exit 3
fi

declare -A PIDS=()
sampler=""
cleanup() {
  local rc=$?
  if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null || true; fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((keep)); then
    rm -f "$work"/*.bin
    echo "attach.sh: kept $work (logs, samples, the federation)" >&2
  elif ((rc != 0)); then
    # a failed run keeps its logs and samples, not gigabytes of spool
    find "$work" -mindepth 1 -maxdepth 1 ! -name '*.log' ! -name '*.json' ! -name '*.jsonl' \
      -exec rm -rf {} + 2>/dev/null || true
    echo "attach.sh: kept $work (logs, samples)" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
conf() { echo "$work/fed/$1/node.conf"; }

# A block of 64 free ports below the ephemeral range, as tests/integration/lib.sh.
ports_free() {
  python3 - "$1" <<'PY'
import socket, sys
base = int(sys.argv[1])
for p in range(base, base + 64):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}
port=""
for _ in 1 2 3 4 5 6 7 8; do
  p=$((20000 + (RANDOM % 187) * 64))
  if ports_free "$p"; then port=$p; break; fi
done
[[ -n $port ]] || fail "no free block of 64 ports"

start() { # NAME
  if [[ $1 == broker ]]; then
    "$bin/tern-broker" -c "$work/fed/broker/broker.conf" >>"$work/broker.log" 2>&1 &
  else
    "$bin/tern-node" -c "$(conf "$1")" >>"$work/$1.log" 2>&1 &
  fi
  PIDS[$1]=$!
  echo "$1 $!" >>"$work/pids"
}
connected() { "$tern" info -c "$(conf "$1")" --json 2>/dev/null | grep -q '"connected": true'; }
# The first "state" in tern status --json; empty (not a failure) when the node
# does not answer in time, as it may not while it seals a large attachment.
state_of() {
  { "$tern" status -c "$(conf unhcr)" --json "$1" 2>/dev/null || true; } |
    tr -d ' \n' | grep -o '"state":"[a-z-]*"' | head -1 | cut -d'"' -f4 || true
}
wait_delivered() { # MSGID SECONDS: polls unhcr's status; fails on rejected/expired or time-out
  local until=$((SECONDS + $2)) s
  while :; do
    s=$(state_of "$1")
    case $s in
      delivered) return 0 ;;
      rejected|expired) fail "$1 is $s at unhcr" ;;
    esac
    ((SECONDS < until)) || fail "$1 not delivered after $2 s (state ${s:-unknown})"
    sleep 0.2
  done
}
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# --- probes: what this disk and CPU do alone (a few seconds) --------------------
say "probes: the disk's 1 MiB synced writes and streaming writes, SHA-256"
python3 - "$work" >"$work/probe.json" <<'PY'
import json, os, sys, time
d = sys.argv[1]
buf = os.urandom(1 << 20)
fd = os.open(f"{d}/probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
t = time.time()
for _ in range(64):
    os.write(fd, buf)
    os.fdatasync(fd)
synced = 64 / (time.time() - t) * 1.048576
os.ftruncate(fd, 0); os.lseek(fd, 0, 0)
t = time.time()
for _ in range(256):
    os.write(fd, buf)
os.fdatasync(fd)
stream = 256 / (time.time() - t) * 1.048576
os.ftruncate(fd, 0); os.lseek(fd, 0, 0)
lat = []
for _ in range(20):
    os.write(fd, buf[:4096])
    t = time.time(); os.fdatasync(fd); lat.append(time.time() - t)
os.close(fd); os.unlink(f"{d}/probe")
lat.sort()
print(json.dumps({"synced_1mib_mbps": synced, "stream_mbps": stream,
                  "fdatasync_4k_ms_p50": lat[len(lat) // 2] * 1e3}))
PY
sha_mbps=$(openssl speed -seconds 1 -bytes 1048576 -evp sha256 2>/dev/null |
  awk '/^sha256/ {v=$NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6}') || true
echo "${sha_mbps:-0}" >"$work/probe_sha"

# --- the federation --------------------------------------------------------------
"$tern" dev-federation "$work/fed" --base-port "$port" >/dev/null
# --set: each key under its section in the broker's and the nodes' files (the
# section added when a file has none); the daemons check them at start.
if ((${#sets[@]})); then
  python3 - "$work/fed" "${sets[@]}" <<'PY' || fail "--set: expected SECTION.KEY=VALUE"
import glob, re, sys
files = glob.glob(f"{sys.argv[1]}/*/broker.conf") + glob.glob(f"{sys.argv[1]}/*/node.conf")
for kv in sys.argv[2:]:
    m = re.fullmatch(r"([a-z_]+)\.([a-z_0-9]+)=(.*)", kv)
    if not m:
        sys.exit(1)
    sec, key, val = m.groups()
    for f in files:
        lines = open(f).read().split("\n")
        at = next((i for i, l in enumerate(lines) if l.strip() == f"[{sec}]"), None)
        if at is None:
            lines += [f"[{sec}]", f"{key} = {val}"]
        else:
            lines.insert(at + 1, f"{key} = {val}")
        open(f, "w").write("\n".join(lines))
PY
fi
: >"$work/pids"
for d in broker unhcr sweden; do start "$d"; done
until connected unhcr && connected sweden; do
  ((SECONDS < 60)) || fail "the nodes did not connect"
  sleep 0.2
done
say "federation up on ports $port-$((port + 19)) in $work"

# The sampler: every 0.5 s, each process's CPU ticks and memory, the machine's
# CPU and the disk holding $work. Processes are read from $work/pids.
python3 - "$work" >"$work/samples.jsonl" <<'PY' &
import json, os, sys, time
work = sys.argv[1]
dev = os.stat(work).st_dev
maj, mnr = os.major(dev), os.minor(dev)
def disk():
    rows = [l.split() for l in open("/proc/diskstats")]
    for r in rows:
        if int(r[0]) == maj and int(r[1]) == mnr:
            return r
    # a partition not listed as such (or a mapper): the busiest whole disk
    rows = [r for r in rows if not r[2].startswith(("loop", "ram"))]
    return max(rows, key=lambda r: int(r[9])) if rows else None
while True:
    s = {"t": time.time()}
    cpu = open("/proc/stat").readline().split()[1:]
    s["cpu"] = [int(x) for x in cpu[:8]]
    r = disk()
    if r:
        f = [int(x) for x in r[3:]]
        s["disk"] = {"name": r[2], "sect_w": f[6], "writes": f[4], "io_ms": f[9],
                     "flushes": f[15] if len(f) > 16 else None,
                     "flush_ms": f[16] if len(f) > 16 else None}
    procs = {}
    try:
        for line in open(f"{work}/pids"):
            name, pid = line.split()
            try:
                st = open(f"/proc/{pid}/stat").read()
                st = st[st.rindex(")") + 2:].split()
                mem = {k: int(v.split()[0]) for k, v in
                       (l.split(":", 1) for l in open(f"/proc/{pid}/status"))
                       if k in ("VmRSS", "VmHWM", "Threads")}
                thr = {}
                for tid in os.listdir(f"/proc/{pid}/task"):
                    try:
                        ts = open(f"/proc/{pid}/task/{tid}/stat").read()
                        comm = ts[ts.index("(") + 1:ts.rindex(")")]
                        ts = ts[ts.rindex(")") + 2:].split()
                        thr[comm] = thr.get(comm, 0) + int(ts[11]) + int(ts[12])
                    except (OSError, ValueError):
                        pass
                procs[name] = {"ticks": int(st[11]) + int(st[12]), "utime": int(st[11]),
                               "stime": int(st[12]), "threads": thr, **mem}
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    s["procs"] = procs
    print(json.dumps(s), flush=True)
    time.sleep(0.5)
PY
sampler=$!

head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/big.bin"
"$tern" example case-referral >"$work/ref.json"
msg_timeout=$((600 + size_mib))

# --- throughput ----------------------------------------------------------------
load_tp=$(load)
say "throughput: $size_mib MiB unhcr -> sweden (load $load_tp)"
t0=$(now)
"$tern" send -c "$(conf unhcr)" --to sweden --attach "$work/big.bin:bulk.bin" \
  case-referral "$work/ref.json" >"$work/id" &
echo "send $!" >>"$work/pids"
wait $! || fail "tern send with a $size_mib MiB attachment failed"
t_sent=$(now)
id=$(tr -d ' \n' <"$work/id")
say "sent $id; waiting for delivered"
wait_delivered "$id" "$msg_timeout"
t_deliv=$(now)
hwm_tp="$(hwm "${PIDS[broker]}") $(hwm "${PIDS[unhcr]}") $(hwm "${PIDS[sweden]}")"
say "delivered after $(awk "BEGIN {printf \"%.1f\", $t_deliv - $t0}") s (by polling); checking the bytes"
"$tern" inbox -c "$(conf sweden)" attachment "$id" bulk.bin --out "$work/got.bin" >&2 ||
  fail "cannot read $id's attachment back at sweden"
cmp -s "$work/big.bin" "$work/got.bin" || fail "the attachment sweden received differs from the one sent"
rm -f "$work/got.bin"
verified=true

# --- fairness ----------------------------------------------------------------------
load_idle="" load_busy="" id2="" t_i0="" t_i1="" t_b0="" t_b1="" t_s2="" t_d2=""
if ((fairness)); then
  sleep 2
  load_idle=$(load)
  say "fairness: tern bench at $rate/s for ${duration}s, idle (load $load_idle)"
  t_i0=$(now)
  "$tern" bench -c "$(conf unhcr)" --to sweden --producers 1 --window 1 --rate "$rate" \
    --duration "$duration" --json >"$work/idle.json" || fail "tern bench (idle) lost messages"
  t_i1=$(now)
  sleep 2
  load_busy=$(load)
  say "fairness: the same while a $size_mib MiB attachment moves (load $load_busy)"
  "$tern" example case-referral | sed 's/"caseId": "[^"]*"/"caseId": "BULK-2"/' >"$work/ref2.json"
  t_s2=$(now)
  "$tern" send -c "$(conf unhcr)" --to sweden --attach "$work/big.bin:bulk2.bin" \
    case-referral "$work/ref2.json" >"$work/id2" &
  send2=$!
  echo "send2 $send2" >>"$work/pids"
  t_b0=$(now)
  "$tern" bench -c "$(conf unhcr)" --to sweden --producers 1 --window 1 --rate "$rate" \
    --duration "$duration" --json >"$work/busy.json" || fail "tern bench (during the transfer) lost messages"
  t_b1=$(now)
  wait "$send2" || fail "the second tern send failed"
  id2=$(tr -d ' \n' <"$work/id2")
  wait_delivered "$id2" "$msg_timeout"
  t_d2=$(now)
fi
hwm_end="$(hwm "${PIDS[broker]}") $(hwm "${PIDS[unhcr]}") $(hwm "${PIDS[sweden]}")"
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; sampler=""
load_end=$(load)

# --- analysis ----------------------------------------------------------------------
cat >"$work/run.json" <<EOF
{"size_mib": $size_mib, "id": "$id", "id2": "$id2", "t0": $t0, "t_sent": $t_sent,
 "t_deliv_poll": $t_deliv, "t_s2": ${t_s2:-null}, "t_b0": ${t_b0:-null}, "t_b1": ${t_b1:-null},
 "t_d2": ${t_d2:-null}, "t_i0": ${t_i0:-null}, "t_i1": ${t_i1:-null}, "rate": $rate, "duration": $duration, "fairness": $fairness,
 "hwm_tp": [${hwm_tp// /, }], "hwm_end": [${hwm_end// /, }], "verified": $verified,
 "load": {"throughput": "$load_tp", "idle": "$load_idle", "busy": "$load_busy", "end": "$load_end"},
 "sha256_openssl_mbps": $(cat "$work/probe_sha"), "ncpu": $(nproc),
 "settings": "${sets[*]}",
 "commit": "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"}
EOF
python3 - "$work" "$json" <<'PY'
import json, os, re, sys, datetime
work, as_json = sys.argv[1], sys.argv[2] == "1"
run = json.load(open(f"{work}/run.json"))
probe = json.load(open(f"{work}/probe.json"))
samples = [json.loads(l) for l in open(f"{work}/samples.jsonl") if l.strip()]
size = run["size_mib"] * 1048576
MB = 1e6
TCK = os.sysconf("SC_CLK_TCK")
DAEMONS = ("broker", "unhcr", "sweden")

def logs(name):
    out = []
    for line in open(f"{work}/{name}.log", errors="replace"):
        m = re.match(r'ts=(\S+)Z .*?msg="(.*)"$', line.strip())
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
            out.append((t.replace(tzinfo=datetime.timezone.utc).timestamp(), m.group(2)))
    return out
L = {n: logs(n) for n in ("unhcr", "broker", "sweden")}

def at(name, pattern, last=False):
    hits = [t for t, m in L[name] if re.search(pattern, m)]
    if not hits:
        return None
    return hits[-1] if last else hits[0]

def marks(mid, t0):
    e = re.escape(mid)
    m = {"send": t0,
         "queued": at("unhcr", rf"^queued {e} "),
         "put_start": at("unhcr", rf"^putting {e} attachment 0 from chunk"),
         "broker_complete": at("broker", rf"attachment 0 of {e} complete at the broker"),
         "broker_holds": at("unhcr", rf"^the broker holds {e}'s"),
         "fetch_start": at("sweden", rf"^fetching {e} attachment 0 from chunk"),
         "all_in": at("sweden", rf"^{e} from unhcr: every attachment is in"),
         "delivered": at("unhcr", rf"^receipt from sweden: {e} delivered")}
    return m

def window(a, b):
    """Resources used between times a and b, from the samples."""
    if a is None or b is None or b <= a:
        return None
    inside = [s for s in samples if a - 0.25 <= s["t"] <= b + 0.25]
    if len(inside) < 2:
        before = [s for s in samples if s["t"] <= a]
        after = [s for s in samples if s["t"] >= b]
        inside = ([before[-1]] if before else []) + ([after[0]] if after else [])
    if len(inside) < 2:
        return None
    s0, s1 = inside[0], inside[-1]
    dt = s1["t"] - s0["t"]
    r = {"seconds": dt}
    procs = {}
    for n in s1["procs"]:
        if n in s0["procs"]:
            procs[n] = round(100 * (s1["procs"][n]["ticks"] - s0["procs"][n]["ticks"]) / TCK / dt, 1)
        else:  # started inside the window (a tern send): from zero
            procs[n] = round(100 * s1["procs"][n]["ticks"] / TCK / dt, 1)
    for n in s0["procs"]:  # ended inside the window: the last sample it had
        if n not in s1["procs"]:
            last = [s for s in inside if n in s["procs"]][-1]
            procs[n] = round(100 * (last["procs"][n]["ticks"] - s0["procs"][n]["ticks"]) / TCK / dt, 1)
    r["cpu_percent"] = procs
    # user vs kernel time, and CPU by thread name (main loop vs ZMQ I/O ...)
    split, by_thread = {}, {}
    for n in s1["procs"]:
        if n in s0["procs"] and n in DAEMONS:
            p0, p1 = s0["procs"][n], s1["procs"][n]
            split[n] = {"user": round(100 * (p1["utime"] - p0["utime"]) / TCK / dt, 1),
                        "kernel": round(100 * (p1["stime"] - p0["stime"]) / TCK / dt, 1)}
            th = {k: round(100 * (v - p0["threads"].get(k, 0)) / TCK / dt, 1)
                  for k, v in p1["threads"].items()}
            by_thread[n] = {k: v for k, v in th.items() if v >= 1}
    r["cpu_user_kernel"] = split
    r["cpu_by_thread"] = by_thread
    c0, c1 = s0["cpu"], s1["cpu"]
    d = [y - x for x, y in zip(c0, c1)]
    tot = sum(d) or 1
    # user nice system idle iowait irq softirq steal
    r["machine_busy_percent"] = round(100 * (tot - d[3] - d[4]) / tot, 1)
    r["iowait_percent"] = round(100 * d[4] / tot, 1)
    r["steal_percent"] = round(100 * d[7] / tot, 1)
    if "disk" in s0 and "disk" in s1:
        k0, k1 = s0["disk"], s1["disk"]
        r["disk"] = k1["name"]
        r["disk_write_mbps"] = round((k1["sect_w"] - k0["sect_w"]) * 512 / MB / dt, 1)
        r["disk_busy_percent"] = round(min(100, 100 * (k1["io_ms"] - k0["io_ms"]) / 1000 / dt), 1)
        if k0.get("flushes") is not None:
            fl = k1["flushes"] - k0["flushes"]
            r["flushes_per_s"] = round(fl / dt, 1)
            r["flush_ms_mean"] = round((k1["flush_ms"] - k0["flush_ms"]) / fl, 2) if fl else None
            r["flush_busy_percent"] = round(min(100, 100 * (k1["flush_ms"] - k0["flush_ms"]) / 1000 / dt), 1)
    return r

def limit(r, ncpu):
    """What bounds a phase, from its resources (a reading, not a proof)."""
    if r is None:
        return "unknown (too short to sample)"
    top = max(((v, n) for n, v in r["cpu_percent"].items()), default=(0, ""))
    why = []
    if top[0] >= 85:
        why.append(f"CPU: {top[1]} at {top[0]:.0f}% of a core (its event loop is one thread)")
    if r["machine_busy_percent"] >= 90:
        why.append(f"CPU: the machine's {ncpu} cores {r['machine_busy_percent']:.0f}% busy (others' work included)")
    if r.get("disk_busy_percent", 0) >= 80 and r.get("disk_write_mbps", 0) >= 0.6 * probe["stream_mbps"]:
        why.append(f"disk bandwidth: {r['disk_write_mbps']:.0f} MB/s written of ~{probe['stream_mbps']:.0f} streaming")
    elif r.get("flush_busy_percent", 0) >= 50 or (r.get("disk_busy_percent", 0) >= 80):
        why.append(f"fsync: the disk busy {r.get('disk_busy_percent', 0):.0f}% "
                   f"({r.get('flushes_per_s', 0):.0f} flushes/s, {r.get('flush_ms_mean') or 0:.1f} ms each, "
                   f"{r.get('disk_write_mbps', 0):.0f} MB/s written)")
    if not why:
        why.append("none saturated: waits (round trips, the chunk window, fsync latency in series)")
    return "; ".join(why)

def nchunks(mid):
    for t, msg in L["unhcr"]:
        mm = re.match(rf"putting {re.escape(mid)} attachment 0 from chunk \d+ of (\d+)", msg)
        if mm:
            return int(mm.group(1))
    return None

def rate(nbytes, a, b):
    return round(nbytes / MB / (b - a), 1) if a is not None and b is not None and b > a else None

m = marks(run["id"], run["t0"])
end = m["delivered"] or run["t_deliv_poll"]
phases = []
nch = nchunks(run["id"])
def phase(name, a, b, nbytes):
    r = window(a, b)
    phases.append({"phase": name, "start_s": None if a is None else round(a - run["t0"], 2),
                   "end_s": None if b is None else round(b - run["t0"], 2),
                   "seconds": None if a is None or b is None else round(b - a, 2),
                   "mbps": rate(nbytes, a, b) if nbytes else None,
                   "ms_per_chunk": round(1000 * (b - a) / nch, 2) if nbytes and nch and a and b else None,
                   "resources": r, "limit": limit(r, run["ncpu"])})
phase("upload + seal (send until queued)", m["send"], m["queued"], size)
phase("queued until the first put", m["queued"], m["put_start"], 0)
phase("put to the broker (sweden fetches meanwhile)", m["put_start"], m["broker_holds"], size)
phase("fetch after the broker held all", m["broker_holds"], m["all_in"], 0)
phase("fetch, whole (first fetch until all in)", m["fetch_start"], m["all_in"], size)
phase("receipt (all in until delivered)", m["all_in"], m["delivered"], 0)
e2e = window(m["send"], end)
# CPU seconds each process spent on the transfer, and the rate each one's
# CPU alone would allow (its event loop is one thread): a figure other work
# on the machine moves less than the wall-clock rates.
cpu_s = {n: round(v * e2e["seconds"] / 100, 2) for n, v in e2e["cpu_percent"].items()} if e2e else {}
ceiling = {n: round(size / MB / v, 0) for n, v in cpu_s.items() if v > 0}
mib = lambda kb: round(kb / 1024, 1)
hw_tp = dict(zip(DAEMONS, run["hwm_tp"]))
hw_end = dict(zip(DAEMONS, run["hwm_end"]))
peak_rss = {}
for s in samples:
    for n, p in s["procs"].items():
        peak_rss[n] = max(peak_rss.get(n, 0), p.get("VmRSS", 0))
threads = {n: p.get("Threads") for n, p in (samples[-1]["procs"] if samples else {}).items()}

out = {
    "commit": run["commit"], "settings": run["settings"], "size_mib": run["size_mib"], "message": run["id"], "chunks": nch,
    "load_average": run["load"], "ncpu": run["ncpu"],
    "throughput": {
        "seconds": round(end - run["t0"], 2),
        "mbps": rate(size, run["t0"], end),
        "send_returned_s": round(run["t_sent"] - run["t0"], 2),
        "marks_s": {k: (None if v is None else round(v - run["t0"], 3)) for k, v in m.items()},
        "phases": phases,
        "resources": e2e, "limit": limit(e2e, run["ncpu"]),
        "cpu_seconds": cpu_s, "cpu_ceiling_mbps": ceiling,
        "received_bytes_identical": run["verified"],
    },
    "memory_mib": {
        "vmhwm_after_throughput": {n: mib(v) for n, v in hw_tp.items()},
        "vmhwm_at_end": {n: mib(v) for n, v in hw_end.items()},
        "peak_rss_sampled": {n: mib(v) for n, v in peak_rss.items()},
        "bound_mib": 64,
        "within_bound": all(v <= 64 * 1024 for v in hw_end.values()),
    },
    "threads": threads,
    "probes": {**probe, "sha256_openssl_mbps": run["sha256_openssl_mbps"]},
}
if run["fairness"]:
    idle = json.load(open(f"{work}/idle.json"))
    busy = json.load(open(f"{work}/busy.json"))
    m2 = marks(run["id2"], run["t_s2"])
    d2 = m2["delivered"] or run["t_d2"]
    # the bench measures after its 2 s warm-up until its end
    b0, b1 = run["t_b0"] + 2, run["t_b1"]
    overlap = max(0.0, min(b1, d2) - max(b0, run["t_s2"])) / (b1 - b0)
    def lat(b):
        return {k: round(b["latency_ms"][k], 2) for k in ("p50", "p99", "p99.9", "max")} | \
               {"delivered": b["delivered"], "failed": b["failed"], "throughput": round(b["throughput"], 1)}
    fi, fb = lat(idle), lat(busy)
    def node_lat(a, b):
        """queued -> receipt delivered at unhcr for bench messages queued in [a, b] (ms):
        the path's own latency, without the open loop's backlog."""
        q, d = {}, {}
        for t, msg in L["unhcr"]:
            mm = re.match(r"queued (\S+) case-referral .*case BENCH", msg)
            if mm and a <= t <= b:
                q[mm.group(1)] = t
            mm = re.match(r"receipt from sweden: (\S+) delivered", msg)
            if mm:
                d[mm.group(1)] = t
        v = sorted(1000 * (d[k] - q[k]) for k in q if k in d)
        if not v:
            return None
        pick = lambda f: round(v[min(len(v) - 1, int(f * len(v)))], 1)
        return {"n": len(v), "p50": pick(0.5), "p99": pick(0.99), "max": round(v[-1], 1)}
    fi["node_path_ms"] = node_lat(run["t_i0"] + 2, run["t_i1"])
    fb["node_path_ms"] = node_lat(run["t_b0"] + 2, run["t_b1"])
    out["fairness"] = {
        "rate": run["rate"], "duration": run["duration"],
        "idle": fi, "during_transfer": fb,
        "p50_ratio": round(fb["p50"] / fi["p50"], 2) if fi["p50"] else None,
        "p99_ratio": round(fb["p99"] / fi["p99"], 2) if fi["p99"] else None,
        "within_2x": bool(fi["p99"] and fb["p99"] <= 2 * fi["p99"]),
        "transfer_seconds": round(d2 - run["t_s2"], 2),
        "transfer_mbps": rate(size, run["t_s2"], d2),
        "bench_window_covered_by_transfer": round(overlap, 2),
        "transfer_marks_s_from_bench_measuring": {k: (None if v is None else round(v - b0, 2)) for k, v in m2.items()},
        "resources_during_bench": window(b0, b1),
    }

if as_json:
    print(json.dumps(out, indent=2))
    sys.exit(0)

tp = out["throughput"]
print(f"tern attachment benchmark at {out['commit']}: {run['size_mib']} MiB unhcr -> sweden, "
      f"{run['ncpu']} CPUs, load average {run['load']['throughput']} at the start")
if run["settings"]:
    print(f"  settings: {run['settings']}")
print(f"  end to end (send start -> delivered at unhcr): {tp['seconds']:.1f} s, {tp['mbps']} MB/s; "
      f"tern send returned after {tp['send_returned_s']:.1f} s; received bytes identical: {tp['received_bytes_identical']}")
print()
print(f"  {'phase':46} {'from s':>7} {'to s':>7} {'secs':>6} {'MB/s':>6}  {'CPU% broker/unhcr/sweden/send':>30} {'disk MB/s':>9} {'busy%':>5} {'flush/s':>7} {'ms':>5}")
for p in phases:
    r = p["resources"] or {}
    c = r.get("cpu_percent", {})
    cpu = "/".join(f"{c.get(n, 0):.0f}" for n in ("broker", "unhcr", "sweden")) + \
          (f"/{c['send']:.0f}" if "send" in c else "")
    f = lambda v, w, d=0: f"{v:>{w}.{d}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"
    print(f"  {p['phase']:46} {f(p['start_s'], 7, 2)} {f(p['end_s'], 7, 2)} {f(p['seconds'], 6, 2)} {f(p['mbps'], 6, 1)}  "
          f"{cpu:>30} {f(r.get('disk_write_mbps'), 9)} {f(r.get('disk_busy_percent'), 5)} "
          f"{f(r.get('flushes_per_s'), 7)} {f(r.get('flush_ms_mean'), 5, 1)}")
    per = f"{p['ms_per_chunk']:.1f} ms per 1 MiB chunk; " if p["ms_per_chunk"] else ""
    print(f"  {'':46}   {per}limit: {p['limit']}")
r = tp["resources"] or {}
print(f"  whole transfer: machine CPU {r.get('machine_busy_percent')}% busy, iowait {r.get('iowait_percent')}%, "
      f"steal {r.get('steal_percent')}%; limit: {tp['limit']}")
print("  CPU by thread, whole transfer (% of a core): " + "; ".join(
    f"{n}: " + ", ".join(f"{k} {v}" for k, v in sorted(t.items(), key=lambda kv: -kv[1]))
    for n, t in (r.get("cpu_by_thread") or {}).items()))
print("  user/kernel: " + ", ".join(f"{n} {v['user']}/{v['kernel']}" for n, v in (r.get("cpu_user_kernel") or {}).items()))
print("  CPU seconds on the transfer (and the MB/s that CPU alone would allow, one thread each): " +
      ", ".join(f"{n} {v} s ({tp['cpu_ceiling_mbps'].get(n, '-')} MB/s)" for n, v in tp["cpu_seconds"].items()))
print()
mm = out["memory_mib"]
print("  peak resident memory (VmHWM), MiB      " + "  ".join(f"{n} {mm['vmhwm_at_end'][n]}" for n in DAEMONS) +
      f"  (bound 64: {'met' if mm['within_bound'] else 'NOT met'})")
print("    after the throughput run             " + "  ".join(f"{n} {mm['vmhwm_after_throughput'][n]}" for n in DAEMONS))
pr = probe
print(f"  probes: disk {pr['stream_mbps']:.0f} MB/s streaming, {pr['synced_1mib_mbps']:.0f} MB/s as 1 MiB writes each "
      f"fdatasync'd, 4 KiB fdatasync {pr['fdatasync_4k_ms_p50']:.1f} ms; OpenSSL SHA-256 {run['sha256_openssl_mbps']} MB/s on one core")
if run["fairness"]:
    fa = out["fairness"]
    print()
    print(f"  fairness: tern bench --producers 1 --window 1 --rate {fa['rate']} --duration {fa['duration']} "
          f"(load {run['load']['idle']} idle, {run['load']['busy']} busy)")
    print(f"    {'':22} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} {'delivered':>9}")
    for k, v in (("idle", fa["idle"]), ("during the transfer", fa["during_transfer"])):
        print(f"    {k:22} {v['p50']:8.2f} {v['p99']:8.2f} {v['p99.9']:9.2f} {v['max']:8.2f} {v['delivered']:9d}")
    for k, v in (("idle", fa["idle"]), ("during the transfer", fa["during_transfer"])):
        np = v.get("node_path_ms")
        if np:
            print(f"    {k}: at unhcr, queued -> receipt (no open-loop backlog): p50 {np['p50']} ms, "
                  f"p99 {np['p99']} ms, max {np['max']} ms, {np['n']} messages")
    print(f"    ratio p50 {fa['p50_ratio']}x, p99 {fa['p99_ratio']}x (bound 2x: {'met' if fa['within_2x'] else 'NOT met'}); "
          f"the transfer ({fa['transfer_seconds']} s, {fa['transfer_mbps']} MB/s) covered "
          f"{100 * fa['bench_window_covered_by_transfer']:.0f}% of the measured window")
PY
((keep)) && say "kept $work"
exit 0
