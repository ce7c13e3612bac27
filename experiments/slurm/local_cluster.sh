#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests marked `slurm` (and for trying
# experiments/slurm/ by hand):
#
#   bash experiments/slurm/local_cluster.sh up     # install, configure, start; wait for sinfo
#   bash experiments/slurm/local_cluster.sh down   # stop the daemons that `up` started
#
# `up` installs Debian's slurm-wlm and munge where they are missing (apt-get, as root or via
# sudo), writes /etc/slurm/slurm.conf for this host (one node with the CPUs of `nproc`, at
# least 2, in a default partition `debug`; no accounting, no cgroups), starts munged,
# slurmctld and slurmd, and waits until `sinfo` shows the node idle. Where a cluster already
# answers `sinfo`, it does nothing, and `down` then leaves that cluster alone. State and logs
# go to $ATTNLAB_SLURM_DIR (default /tmp/attnlab-slurm). ATTNLAB_SLURM_CPUS advertises more
# CPUs than the host has (jobs then share cores).
set -euo pipefail

DIR=${ATTNLAB_SLURM_DIR:-/tmp/attnlab-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by attnlab experiments/slurm/local_cluster.sh"
STARTED=$DIR/started # the daemons `up` started, one "name pid" a line

say() { echo "local_cluster: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

answers() { timeout 10 sinfo -h >/dev/null 2>&1; }

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sinfo >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  [ ${#missing[@]} = 0 ] && return
  command -v apt-get >/dev/null || { say "no apt-get: install ${missing[*]} yourself"; exit 1; }
  say "installing ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

write_conf() {
  local host cpus
  host=$(hostname -s)
  cpus=${ATTNLAB_SLURM_CPUS:-$(nproc)}
  [ "$cpus" -ge 2 ] || cpus=2 # `srun -n 2` must fit
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    say "$CONF exists and is not ours; not touching it (remove it, or use that cluster)"
    exit 1
  fi
  as_root mkdir -p /etc/slurm "$DIR/state" "$DIR/spool"
  as_root tee "$CONF" >/dev/null <<EOF
$MARK
ClusterName=attnlab
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits out its old credential's lifetime (default 120 s) before it may start
# again (a start before that fails: "Job credential revoked"); tests requeue jobs.
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=2
SchedulerType=sched/backfill
JobRequeue=1
MinJobAge=600
KillWait=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start() { # start NAME COMMAND...: run a daemon, record its pid from its pid file
  local name=$1 pidfile=$2
  shift 2
  as_root "$@"
  for _ in $(seq 50); do
    [ -s "$pidfile" ] && break
    sleep 0.1
  done
  [ -s "$pidfile" ] || { say "$name did not start; see $DIR/$name.log"; exit 1; }
  echo "$name $(cat "$pidfile")" >>"$STARTED"
}

up() {
  if answers; then
    say "a SLURM cluster already answers sinfo; nothing started"
    return
  fi
  install_packages
  as_root mkdir -p "$DIR"
  as_root rm -f "$STARTED"
  write_conf
  if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || as_root mungekey --create --keyfile=/etc/munge/munge.key
    as_root chown munge:munge /etc/munge/munge.key
    as_root chmod 400 /etc/munge/munge.key
    as_root mkdir -p /run/munge
    as_root chown munge:munge /run/munge
    as_root rm -f /run/munge/munged.pid
    start munged /run/munge/munged.pid runuser -u munge -- munged
  fi
  as_root rm -f "$DIR/slurmctld.pid" "$DIR/slurmd.pid"
  start slurmctld "$DIR/slurmctld.pid" slurmctld
  start slurmd "$DIR/slurmd.pid" slurmd
  for _ in $(seq 120); do
    if [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; then
      say "up: $(sinfo -h -o '%N, %c CPUs, partition %P') (state and logs in $DIR)"
      return
    fi
    sleep 0.5
  done
  say "the node did not become idle in 60 s: $(sinfo -h -o '%T %E' 2>&1); see $DIR/*.log"
  exit 1
}

down() {
  if [ ! -s "$STARTED" ]; then
    say "down: nothing was started here"
    return
  fi
  local names
  names=$(cut -d' ' -f1 "$STARTED" | tr '\n' ' ')
  # Jobs left in our cluster are cancelled (their steps end), then slurmd, slurmctld, munged.
  if grep -q '^slurmctld ' "$STARTED"; then
    scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
  fi
  for name in slurmd slurmctld munged; do
    pid=$(awk -v n="$name" '$1 == n {print $2}' "$STARTED")
    [ -n "$pid" ] || continue
    as_root kill "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done
  as_root rm -f "$STARTED"
  say "down: stopped $names"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
