#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the Slurm test (`xtask/tests/slurm.rs`): munge,
# the controller and the compute daemon on localhost (no network beyond loopback), state under one folder.
#
#   slurm-one-node.sh start DIR   writes DIR/slurm.conf, starts munged, slurmctld and slurmd,
#                                 waits until the node is idle; prints `export SLURM_CONF=…`
#   slurm-one-node.sh stop DIR    stops the daemons it started (by the pids kept in DIR)
#
# Needs root and Debian's `slurm-wlm` and `munge` packages (`.ci/run` installs them).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

# Stops the daemons by the pids kept in DIR and waits (up to 20 s, then SIGKILL) until they are
# gone, so that a new cluster can bind the same ports.
stop() {
    pids=()
    for name in slurmd slurmctld munged; do
        if [ -f "$dir/$name.started" ]; then
            pids+=("$(cat "$dir/$name.started")")
            rm -f "$dir/$name.started"
        fi
    done
    [ ${#pids[@]} -eq 0 ] && { forget_munge; return 0; }
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 40); do
        alive=0
        for pid in "${pids[@]}"; do
            # A zombie (state Z) has exited; only its parent can reap it.
            if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
                alive=1
            fi
        done
        [ $alive -eq 0 ] && { forget_munge; return 0; }
        sleep 0.5
    done
    kill -9 "${pids[@]}" 2>/dev/null || true
    forget_munge
}

# Removes munge's folder (named in DIR/munge.dir).
forget_munge() {
    if [ -f "$dir/munge.dir" ]; then
        rm -rf "$(cat "$dir/munge.dir")"
        rm -f "$dir/munge.dir"
    fi
}

case "$action" in
stop) stop; exit 0 ;;
start) ;;
*) usage ;;
esac

for tool in munged slurmctld slurmd sinfo sbatch; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (install slurm-wlm and munge)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "error: starting the daemons needs root" >&2; exit 1; }

# Munge: a fresh key, the daemon run as the munge user with its files in a folder of its own
# under /tmp (DIR may lie below folders the munge user cannot enter, as a checkout in a private
# temporary folder does; /tmp also keeps the socket's path short).
munge=$(mktemp -d /tmp/ponder-munge.XXXXXX)
echo "$munge" >"$dir/munge.dir"
chown munge:munge "$munge"
chmod 700 "$munge"
head -c 1024 /dev/urandom >"$munge/munge.key"
chown munge:munge "$munge/munge.key"
chmod 400 "$munge/munge.key"
socket="$munge/munge.socket"
runuser -u munge -- munged --key-file="$munge/munge.key" --socket="$socket" \
    --pid-file="$munge/munged.pid" --log-file="$munge/munged.log" \
    --seed-file="$munge/munged.seed" --force
cp "$munge/munged.pid" "$dir/munged.started"
munge -S "$socket" -n | unmunge -S "$socket" >/dev/null

cpus=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
cat >"$dir/slurm.conf" <<CONF
ClusterName=ponder-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 &
echo $! >"$dir/slurmctld.started"
slurmd -D -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 &
echo $! >"$dir/slurmd.started"
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "error: the node did not become idle within 60 s (is another Slurm using ports 6817/6818?); logs in $dir/log:" >&2
tail -n 3 "$dir/log/slurmctld.out" "$dir/log/slurmd.out" >&2 || true
stop
exit 1
