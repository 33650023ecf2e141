#!/usr/bin/env bash
# bench/peers.sh: start N `sleep` processes under gdpm, PM2 and supervisord
# in one run, next to a raw spawn of the same N, and print how long each
# took until all N ran, with the ratios. It also writes a time series of
# instances running (every ~20 ms) per system as CSV and plots them.
#
#   bench/peers.sh                 # N=200, results in bench/out/, plot in bench/launch.png
#   N=50 OUT=/tmp/b bench/peers.sh
#
# Installs what is missing: PM2 with npm into $TOOLS (default
# /tmp/gdpm-bench-tools, not global), supervisord with apt-get (Debian's
# supervisor service is stopped and disabled; this script runs its own
# supervisord on a socket in a temp dir). Run as root on a Debian machine
# with Go, node and npm. Everything it starts is stopped on exit.
#
# "All running" is measured two ways: "procs" is when N processes with the
# system's unique command line exist (/proc, the same observer for every
# system), "status" is when the manager itself reports N running (pm2
# jlist online, supervisorctl RUNNING, gdpm GET /service/:id Running). The
# daemons (PM2 God, supervisord, gdpm master+slave) are started and ready
# before the clock starts; the clock starts just before the start command.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
N=${N:-200}
OUT=${OUT:-bench/out}
PLOT=${PLOT:-bench/launch.png}
TOOLS=${TOOLS:-/tmp/gdpm-bench-tools}
mkdir -p "$OUT"
W=$(mktemp -d /tmp/gdpm-peers.XXXXXX)
# Unique command lines, so the sampler counts only this run's processes:
# `sleep 1000.<pid><k>` sleeps 1000 s like `sleep 1000`.
TAG=$$
cmd_of() { echo "sleep 1000.${TAG}$1"; }
# pat_of K matches system K's processes whether started as sleep or /bin/sleep.
pat_of() { echo "^(/usr)?(/bin/)?sleep 1000\\.${TAG}$1\$"; }

PIDS_TO_STOP=()
cleanup() {
  set +e
  if [ -n "${PM2_HOME:-}" ] && [ -x "$TOOLS/bin/pm2" ]; then
    PM2_HOME=$PM2_HOME "$TOOLS/bin/pm2" kill >/dev/null 2>&1
  fi
  if [ -S "$W/sv/supervisor.sock" ]; then
    supervisorctl -c "$W/sv/supervisord.conf" shutdown >/dev/null 2>&1
  fi
  for p in "${PIDS_TO_STOP[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS_TO_STOP[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  # Whatever of ours is left, found by its unique command line, by pid.
  for k in 1 2 3 4 5; do
    for p in $(pgrep -f "$(pat_of $k)"); do kill -KILL "$p" 2>/dev/null; done
  done
  rm -rf "$W"
}
trap cleanup EXIT

# ---- install
echo "== tools" >&2
if [ ! -x "$TOOLS/bin/pm2" ]; then
  mkdir -p "$TOOLS"
  npm install -g --prefix "$TOOLS" pm2 >"$W/npm.log" 2>&1 || { cat "$W/npm.log"; exit 1; }
fi
if ! command -v supervisord >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq supervisor >"$W/apt.log" 2>&1 || { cat "$W/apt.log"; exit 1; }
fi
# Debian's own supervisor service must not run next to ours.
if [ -d /run/systemd/system ]; then
  systemctl disable --now supervisor.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/supervisor ]; then
  /etc/init.d/supervisor stop >/dev/null 2>&1 || true
  update-rc.d supervisor disable >/dev/null 2>&1 || true
fi
go build -o "$W/bin/" ./examples/gdpm-master ./bench/spawn ./bench/plot
PM2="$TOOLS/bin/pm2"
echo "pm2 $(PM2_HOME=$W/pm2probe "$PM2" --version 2>/dev/null | tail -1); supervisord $(supervisord --version); $(go version)" >&2
PM2_HOME=$W/pm2probe "$PM2" kill >/dev/null 2>&1 || true

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# sample K CSV: every ~20 ms, count the processes with system K's command
# line, until killed.
sample() {
  local pat t0=$2
  pat=$(pat_of "$1")
  echo "ms,running" >"$3"
  while :; do
    echo "$(( $(now_ms) - t0 )),$(pgrep -c -f "$pat")" >>"$3"
    sleep 0.02
  done
}

# run NAME K STATUS_FN START_FN: start the sampler, start the clock, run
# START_FN, poll STATUS_FN (prints the number running) until it says N;
# records "procs" from the CSV and "status" from the poll.
declare -A PROCS STATUS
run() {
  local name=$1 k=$2 status_fn=$3 start_fn=$4 t0 sp n
  t0=$(now_ms)
  sample "$k" "$t0" "$OUT/$name.csv" &
  sp=$!
  $start_fn
  while :; do
    n=$($status_fn 2>/dev/null | head -1) || true
    [ "${n:-0}" -ge "$N" ] && break
    if [ $(( $(now_ms) - t0 )) -gt 120000 ]; then echo "$name: only $n of $N after 120 s" >&2; exit 1; fi
  done
  STATUS[$name]=$(( $(now_ms) - t0 ))
  # Let the sampler see the last ones, then read when it first saw N.
  while [ "$(awk -F, -v n="$N" 'NR>1 && $2>=n {print; exit}' "$OUT/$name.csv")" = "" ]; do
    sleep 0.05
    if [ $(( $(now_ms) - t0 - STATUS[$name] )) -gt 5000 ]; then break; fi
  done
  sleep 0.2
  kill "$sp"; wait "$sp" 2>/dev/null || true
  PROCS[$name]=$(awk -F, -v n="$N" 'NR>1 && $2>=n {print $1; exit}' "$OUT/$name.csv")
  echo "$name: status ${STATUS[$name]} ms, procs ${PROCS[$name]:-?} ms" >&2
}

# ---- raw: one Go process, as gdpm's slave starts them
raw_start() { "$W/bin/spawn" -n "$N" -hold 1s $(cmd_of 1) >"$W/raw.out" & RAWPID=$!; }
raw_status() { pgrep -c -f "$(pat_of 1)"; }
echo "== raw" >&2
run raw 1 raw_status raw_start
wait "$RAWPID"
RAW_GO_MS=$(awk '{printf "%d", $1*1000}' "$W/raw.out")

# ---- raw from bash: a `for` loop of `&`
BASHCMD=$(cmd_of 5)
bash_start() { BASHPIDS=(); for _ in $(seq "$N"); do $BASHCMD & BASHPIDS+=($!); done; }
bash_status() { pgrep -c -f "$(pat_of 5)"; }
echo "== bash" >&2
run bash 5 bash_status bash_start
kill "${BASHPIDS[@]}" 2>/dev/null; wait "${BASHPIDS[@]}" 2>/dev/null || true

# ---- gdpm: dev cluster (embedded etcd + master + one slave in one process)
echo "== gdpm" >&2
"$W/bin/gdpm-master" -dev -http 127.0.0.1:0 -tcp 127.0.0.1:0 -log-level warn 2>"$W/gdpm.log" &
PIDS_TO_STOP+=($!)
API=
for _ in $(seq 300); do
  API=$(sed -n 's/^gdpm-master: API on \(http:[^,]*\),.*/\1/p' "$W/gdpm.log")
  [ -n "$API" ] && curl -sf "$API/node/" | grep -q '"Ids":\["' && break
  sleep 0.1
done
curl -sf "$API/node/" | grep -q '"Ids":\["' || { echo "gdpm did not come up"; cat "$W/gdpm.log"; exit 1; }
gdpm_start() {
  SVC=$(curl -sf "$API/service/" -H 'Content-Type: application/json' -d "{\"Command\":\"$(cmd_of 3)\",\"InstanceNum\":$N}")
}
gdpm_status() { curl -sf "$API/service/$SVC/" | grep -o '"Running":[0-9]*' | head -1 | cut -d: -f2; sleep 0.01; }
run gdpm 3 gdpm_status gdpm_start
curl -sf -X DELETE "$API/service/$SVC/" >/dev/null

# ---- PM2: its own PM2_HOME; the God daemon is up before the clock starts
echo "== pm2" >&2
export PM2_HOME=$W/pm2
mkdir -p "$PM2_HOME"
"$PM2" ping >/dev/null
cat >"$W/ecosystem.config.js" <<JS
module.exports = {
  apps: [{ name: "sleep", script: "/bin/sleep", args: "1000.${TAG}2", interpreter: "none",
           exec_mode: "fork", instances: $N, autorestart: true }]
};
JS
pm2_start() { "$PM2" start "$W/ecosystem.config.js" >"$W/pm2-start.log" 2>&1; }
pm2_status() { "$PM2" jlist 2>/dev/null | grep -o '"status":"online"' | wc -l; }
run pm2 2 pm2_status pm2_start
"$PM2" kill >/dev/null 2>&1

# ---- supervisord: our own config and socket; the group is started by the
# timed command (autostart=false so nothing runs before the clock)
echo "== supervisord" >&2
mkdir -p "$W/sv"
cat >"$W/sv/supervisord.conf" <<CONF
[unix_http_server]
file=$W/sv/supervisor.sock
[supervisord]
logfile=$W/sv/supervisord.log
pidfile=$W/sv/supervisord.pid
childlogdir=$W/sv
user=root
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$W/sv/supervisor.sock
[program:sleep]
command=/bin/sleep 1000.${TAG}4
process_name=%(program_name)s_%(process_num)04d
numprocs=$N
startsecs=0
autostart=false
autorestart=true
stdout_logfile=NONE
stderr_logfile=NONE
CONF
supervisord -c "$W/sv/supervisord.conf"
for _ in $(seq 100); do supervisorctl -c "$W/sv/supervisord.conf" pid >/dev/null 2>&1 && break; sleep 0.1; done
SVPID=$(cat "$W/sv/supervisord.pid")
sv_start() { supervisorctl -c "$W/sv/supervisord.conf" start 'sleep:*' >/dev/null; }
sv_status() { supervisorctl -c "$W/sv/supervisord.conf" status 2>/dev/null | grep -c RUNNING; }
run supervisord 4 sv_status sv_start
supervisorctl -c "$W/sv/supervisord.conf" shutdown >/dev/null
for _ in $(seq 100); do kill -0 "$SVPID" 2>/dev/null || break; sleep 0.1; done

# ---- report
"$W/bin/plot" -o "$PLOT" -title "$N x sleep: instances running vs seconds since the start command" \
  gdpm="$OUT/gdpm.csv" pm2="$OUT/pm2.csv" supervisord="$OUT/supervisord.csv" raw="$OUT/raw.csv"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
  echo "N=$N  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cpus  $(uname -r)"
  echo "raw spawn from Go (start calls only): ${RAW_GO_MS} ms"
  printf "%-12s %10s %10s %9s %9s %9s\n" system status_ms procs_ms x_raw gdpm_faster x_bash
  for s in raw bash gdpm pm2 supervisord; do
    printf "%-12s %10s %10s %9s %9s %9s\n" "$s" "${STATUS[$s]}" "${PROCS[$s]}" \
      "$(ratio "${STATUS[$s]}" "${STATUS[raw]}")" "$(ratio "${STATUS[$s]}" "${STATUS[gdpm]}")" "$(ratio "${STATUS[$s]}" "${STATUS[bash]}")"
  done
  echo "x_raw: status time / raw status time; gdpm_faster: status time / gdpm status time"
  echo "csv: $OUT/{raw,bash,gdpm,pm2,supervisord}.csv  plot: $PLOT"
} | tee "$OUT/summary.txt"
