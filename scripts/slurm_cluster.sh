#!/usr/bin/env bash
# Single-node SLURM cluster on localhost, for the project's tests.
#
#   scripts/slurm_cluster.sh start  [STATE_DIR]   # install (if missing) + start; idempotent
#   scripts/slurm_cluster.sh stop   [STATE_DIR]   # stop the daemons started here; idempotent
#   scripts/slurm_cluster.sh status [STATE_DIR]   # exit 0 if the cluster is up
#
# STATE_DIR defaults to /tmp/spd-slurm. Everything the cluster writes (configs, state,
# spool, logs, pid files, munge socket, MariaDB data) lives there; only the Debian
# packages and the munge key (/etc/munge/munge.key) live outside it.
#
# Daemons: munged (as user munge) -> mariadbd (as user mysql, TCP on 127.0.0.1 only)
#          -> slurmdbd -> slurmctld -> slurmd (all three as root).
# Accounting (slurmdbd + MariaDB) is required: submitit polls `sacct`, which without
# accounting reports every job as UNKNOWN.
#
# Clients must see SLURM_CONF=<STATE_DIR>/etc/slurm.conf: `start` prints the export line
# and writes the path to <STATE_DIR>/slurm_conf_path (stdout carries only that line, so
# `eval "$(scripts/slurm_cluster.sh start)"` works). Without SLURM_CONF the clients look
# for /etc/slurm/slurm.conf, then fall back to DNS SRV lookups, which fail or, where DNS
# is slow, hang for ~60 s.
#
# Ports are fixed (slurmctld 6817, slurmd 6818, slurmdbd 6819, MariaDB 16306), so one
# cluster per machine: stop one STATE_DIR's cluster before starting another's.
#
# Tunables (environment): SPD_SLURM_CPUS (CPUs declared on the node, default 8; more than
# the real cores so that several 1-CPU jobs run at once), SPD_SLURM_DB_PORT (default 16306),
# SPD_SLURM_TIMEOUT (seconds to wait for each daemon, default 60), SPD_SLURM_NODES (1 or 2,
# default 1: with 2, two nodes on this one machine, this host's name and <name>-b, each
# with its own slurmd (Debian builds SLURM with multiple-slurmd support), port, spool, log
# and pid file, and SPD_SLURM_CPUS each: for jobs that span nodes (srun across both)).
set -euo pipefail

readonly PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
readonly CLUSTER_NAME="spd"
readonly PARTITION="debug"
readonly DB_NAME="slurm_acct_db"
readonly DB_USER="slurm"
# Local-only test database bound to 127.0.0.1: a fixed password is fine.
readonly DB_PASS="spd-slurm-local"
readonly NODE_CPUS="${SPD_SLURM_CPUS:-8}"
readonly DB_PORT="${SPD_SLURM_DB_PORT:-16306}"
readonly WAIT_TIMEOUT="${SPD_SLURM_TIMEOUT:-60}"
readonly N_NODES="${SPD_SLURM_NODES:-1}"
readonly SLURMD_PORT=6818
readonly MUNGE_KEY="/etc/munge/munge.key"

log() { printf '[slurm_cluster] %s\n' "$*" >&2; }
die() { printf '[slurm_cluster] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    echo "usage: $0 {start|stop|status} [STATE_DIR]   (default STATE_DIR=/tmp/spd-slurm)" >&2
    exit 2
}

# ---------------------------------------------------------------------------------------
# Paths (set by init_paths once STATE_DIR is known)
# ---------------------------------------------------------------------------------------
init_paths() {
    STATE_DIR="$1"
    case "${STATE_DIR}" in
        /*) ;;
        *) STATE_DIR="$(pwd)/${STATE_DIR}" ;;
    esac
    ETC_DIR="${STATE_DIR}/etc"
    LOG_DIR="${STATE_DIR}/log"
    RUN_DIR="${STATE_DIR}/run"
    MUNGE_DIR="${STATE_DIR}/munge"
    DB_DIR="${STATE_DIR}/mysql"
    CTLD_STATE_DIR="${STATE_DIR}/ctld"
    SLURMD_SPOOL_DIR="${STATE_DIR}/slurmd"

    SLURM_CONF_FILE="${ETC_DIR}/slurm.conf"
    SLURMDBD_CONF_FILE="${ETC_DIR}/slurmdbd.conf"
    MUNGE_SOCKET="${MUNGE_DIR}/munge.socket"
    DB_SOCKET="${DB_DIR}/mysqld.sock"

    PID_MUNGED="${MUNGE_DIR}/munged.pid"
    PID_MARIADB="${DB_DIR}/mariadbd.pid"  # mariadbd (user mysql) writes it: must be in its dir
    DB_LOG="${DB_DIR}/mariadbd.err"
    PID_SLURMDBD="${RUN_DIR}/slurmdbd.pid"
    PID_SLURMCTLD="${RUN_DIR}/slurmctld.pid"
    PID_SLURMD="${RUN_DIR}/slurmd.pid"

    # slurm.conf's directory is also where slurmdbd.conf and cgroup.conf are looked up.
    export SLURM_CONF="${SLURM_CONF_FILE}"
    NODE_NAME="$(hostname -s)"
    # With 2 nodes, neither is named after this host: both are reached at NodeAddr 127.0.0.1,
    # and so a job meets at its first node's NodeAddr, not at a name (as on clusters whose node
    # names do not resolve). Neither can be `localhost`, which SLURM replaces with this host's
    # name.
    case "${N_NODES}" in
        1) NODE_NAMES=("${NODE_NAME}") ;;
        2) NODE_NAMES=("spd-node-a" "spd-node-b") ;;
        *) die "SPD_SLURM_NODES=${N_NODES}: give 1 or 2" ;;
    esac
}

# slurmd_pid_file NODE: where NODE's slurmd writes its pid (one file per node with 2 nodes).
slurmd_pid_file() {
    if ((N_NODES == 1)); then echo "${PID_SLURMD}"; else echo "${RUN_DIR}/slurmd-$1.pid"; fi
}

slurmd_log_file() {
    if ((N_NODES == 1)); then echo "${LOG_DIR}/slurmd.log"; else echo "${LOG_DIR}/slurmd-$1.log"; fi
}

# all_slurmd_alive: every node's slurmd runs.
all_slurmd_alive() {
    local node
    for node in "${NODE_NAMES[@]}"; do
        pid_alive "$(slurmd_pid_file "${node}")" slurmd || return 1
    done
}

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

# read_pid PIDFILE: the pid in PIDFILE, or nothing (a daemon may delete it at any moment).
read_pid() {
    { tr -dc '0-9' <"$1"; } 2>/dev/null || true
}

# pid_alive PIDFILE COMM: the pid in PIDFILE is running and its command name is COMM
# (guards against a stale pid file whose pid was recycled by another process). Zombies
# count as dead: on some machines PID 1 is slow to reap the orphaned daemons.
pid_alive() {
    local pidfile="$1" comm="$2" pid stat
    pid="$(read_pid "${pidfile}")"
    [[ -n "${pid}" ]] || return 1
    stat="$(cat "/proc/${pid}/stat" 2>/dev/null)" || return 1
    # /proc/PID/stat is "PID (COMM) STATE ..."
    [[ "${stat}" == "${pid} (${comm}) "* ]] || return 1
    [[ "${stat#* ("${comm}") }" != Z* ]]
}

# wait_for DESCRIPTION CHECK_ALIVE CMD...: poll CMD until it succeeds. Gives up after
# WAIT_TIMEOUT seconds, or at once when CHECK_ALIVE (a command: is the daemon still
# running?) fails, so a daemon that crashed on start is reported without waiting.
wait_for() {
    local desc="$1" alive="$2"; shift 2
    local deadline=$((SECONDS + WAIT_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ! eval "${alive}" >/dev/null 2>&1; then
            log "${desc} exited while starting"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "timed out after ${WAIT_TIMEOUT}s waiting for ${desc}"
            return 1
        fi
        sleep 0.2
    done
}

# pid_alive_or_pending PIDFILE COMM: the daemon is running, or has not written its pid
# file yet (daemons that fork write it a moment after the launching command returns).
pid_alive_or_pending() {
    [[ ! -s "$1" ]] || pid_alive "$1" "$2"
}

# show_log FILE: last lines of a daemon's log, to explain a failure.
show_log() {
    if [[ -f "$1" ]]; then
        log "---- last lines of $1 ----"
        tail -n 30 "$1" >&2 || true
    fi
}

# stop_pid PIDFILE COMM NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
    local pidfile="$1" comm="$2" name="$3" pid i
    if ! pid_alive "${pidfile}" "${comm}"; then
        rm -f "${pidfile}"
        return 0
    fi
    pid="$(read_pid "${pidfile}")"
    log "stopping ${name} (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
        pid_alive "${pidfile}" "${comm}" || break
        sleep 0.2
    done
    if pid_alive "${pidfile}" "${comm}"; then
        log "${name} did not exit on SIGTERM; sending SIGKILL"
        kill -KILL "${pid}" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "${pidfile}"
}

# ---------------------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------------------
missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)" != "install ok installed" ]]; then
            printf '%s\n' "${pkg}"
        fi
    done
}

# apt's chatter goes to stderr: stdout carries only the final `export SLURM_CONF=...` line,
# so callers can `eval "$(scripts/slurm_cluster.sh start)"`.
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

ensure_packages() {
    local missing=() created_policy=0 lists
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) && return 0

    log "missing packages: ${missing[*]}"
    [[ "${EUID}" -eq 0 ]] || die "packages missing (${missing[*]}) and not running as root: cannot install them"
    command -v apt-get >/dev/null 2>&1 || die "packages missing (${missing[*]}) and apt-get is unavailable"

    # Packages' postinst scripts would otherwise start munge/mariadb system-wide with
    # their default configs; this script starts its own instances instead.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi

    lists="$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' 2>/dev/null | head -n 1)"
    if [[ -z "${lists}" ]]; then
        log "apt package lists are empty; running apt-get update"
        apt-get update >&2
    fi
    log "installing: ${missing[*]}"
    if ! apt_install "${missing[@]}"; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2
        apt_install "${missing[@]}" || {
            ((created_policy)) && rm -f /usr/sbin/policy-rc.d
            die "apt-get install ${missing[*]} failed"
        }
    fi
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) || die "packages still missing after install: ${missing[*]}"
}

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
make_dirs() {
    mkdir -p "${STATE_DIR}" "${ETC_DIR}" "${LOG_DIR}" "${RUN_DIR}" "${MUNGE_DIR}" \
        "${DB_DIR}" "${CTLD_STATE_DIR}" "${SLURMD_SPOOL_DIR}"
    local node
    if ((N_NODES > 1)); then
        for node in "${NODE_NAMES[@]}"; do mkdir -p "${SLURMD_SPOOL_DIR}/${node}"; done
    fi
    # Other users (munge, mysql, and job owners running clients) must traverse it.
    chmod 755 "${STATE_DIR}" "${ETC_DIR}" "${RUN_DIR}"
    # munged refuses group/other-writable dirs; clients need to reach the socket.
    chown munge:munge "${MUNGE_DIR}"
    chmod 755 "${MUNGE_DIR}"
    chown mysql:mysql "${DB_DIR}"
    chmod 750 "${DB_DIR}"
}

ensure_munge_key() {
    if [[ ! -s "${MUNGE_KEY}" ]]; then
        log "creating munge key ${MUNGE_KEY}"
        mkdir -p "$(dirname "${MUNGE_KEY}")"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="${MUNGE_KEY}"
        else
            dd if=/dev/urandom of="${MUNGE_KEY}" bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge "${MUNGE_KEY}"
    chmod 400 "${MUNGE_KEY}"
}

# Node memory as seen by the kernel, in MB; declared on the node line (config_overrides
# means slurmd does not check it).
node_memory_mb() {
    awk '/^MemTotal:/ { printf "%d\n", $2 / 1024 * 0.9 }' /proc/meminfo
}

write_slurm_conf() {
    local mem_mb tmp node_lines="" node i=0 spool="${SLURMD_SPOOL_DIR}" pid_file="${PID_SLURMD}"
    local log_file="${LOG_DIR}/slurmd.log"
    mem_mb="$(node_memory_mb)"
    if ((N_NODES == 1)); then
        node_lines="NodeName=${NODE_NAME} NodeAddr=127.0.0.1 CPUs=${NODE_CPUS} RealMemory=${mem_mb} State=UNKNOWN"
    else
        # One slurmd per node on this machine: %n is the node's name.
        spool="${SLURMD_SPOOL_DIR}/%n" pid_file="${RUN_DIR}/slurmd-%n.pid" log_file="${LOG_DIR}/slurmd-%n.log"
        mem_mb=$((mem_mb / N_NODES))
        for node in "${NODE_NAMES[@]}"; do
            node_lines+="NodeName=${node} NodeAddr=127.0.0.1 Port=$((SLURMD_PORT + 10 * i)) CPUs=${NODE_CPUS} RealMemory=${mem_mb} State=UNKNOWN"$'\n'
            i=$((i + 1))
        done
        node_lines="${node_lines%$'\n'}"
    fi
    tmp="$(mktemp "${ETC_DIR}/slurm.conf.XXXXXX")"
    cat >"${tmp}" <<EOF
# Generated by scripts/slurm_cluster.sh -- single-node test cluster. Do not edit.
ClusterName=${CLUSTER_NAME}
# slurmctld only accepts a SlurmctldHost that names this machine.
SlurmctldHost=${NODE_NAME}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again
# (default 120 s); 10 s keeps requeue tests quick and is plenty for local step launches.
AuthInfo=socket=${MUNGE_SOCKET},cred_expire=10

StateSaveLocation=${CTLD_STATE_DIR}
SlurmdSpoolDir=${spool}
SlurmctldPidFile=${PID_SLURMCTLD}
SlurmdPidFile=${pid_file}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${log_file}
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups: this kind of machine (a sandbox) has no usable cgroup hierarchy.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# Users' ulimits may exceed slurmd's; propagating them would fail job launches.
PropagateResourceLimits=NONE

# Per-core/memory scheduling: without DefMemPerCPU each job takes all the node's memory,
# so jobs (and array tasks) run one at a time.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
# Without batch_sched_delay=0 each batch job waits ~3 s before being launched. Jobs that
# become eligible by time alone (e.g. after a requeue) wait for the next periodic pass:
# 60 s (main) / 30 s (backfill) by default, 2 s here.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2

MaxArraySize=1001
MaxJobCount=20000
# Completed jobs leave slurmctld's memory after this; sacct reads slurmdbd and is unaffected.
MinJobAge=60
KillWait=2
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
ReturnToService=2
JobRequeue=1

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# For slurmdbd connections the munge socket is taken from here, not from AuthInfo.
AccountingStoragePass=${MUNGE_SOCKET}

# config_overrides: trust the node line below instead of the detected hardware, so more
# CPUs than real cores can be declared (several 1-CPU jobs at once on a 2-core machine).
SlurmdParameters=config_overrides
${node_lines}
PartitionName=${PARTITION} Nodes=$(IFS=,; echo "${NODE_NAMES[*]}") Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "${tmp}"
    mv -f "${tmp}" "${SLURM_CONF_FILE}"
}

write_slurmdbd_conf() {
    local tmp
    tmp="$(mktemp "${ETC_DIR}/slurmdbd.conf.XXXXXX")"
    cat >"${tmp}" <<EOF
# Generated by scripts/slurm_cluster.sh. Do not edit.
AuthType=auth/munge
AuthInfo=socket=${MUNGE_SOCKET}
# slurmdbd only accepts a DbdHost that names this machine.
DbdHost=${NODE_NAME}
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=${LOG_DIR}/slurmdbd.log
PidFile=${PID_SLURMDBD}
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=${DB_PORT}
StorageUser=${DB_USER}
StoragePass=${DB_PASS}
StorageLoc=${DB_NAME}
EOF
    # slurmdbd refuses a config that is not mode 600 and owned by its SlurmUser (root).
    chown root:root "${tmp}"
    chmod 600 "${tmp}"
    mv -f "${tmp}" "${SLURMDBD_CONF_FILE}"
}

write_configs() {
    # Rewriting the configs under running daemons would make them disagree; keep the
    # running cluster's files in that case.
    if pid_alive "${PID_SLURMCTLD}" slurmctld || pid_alive "$(slurmd_pid_file "${NODE_NAMES[0]}")" slurmd \
        || pid_alive "${PID_SLURMDBD}" slurmdbd; then
        [[ -f "${SLURM_CONF_FILE}" && -f "${SLURMDBD_CONF_FILE}" ]] && return 0
    fi
    write_slurm_conf
    write_slurmdbd_conf
}

# ---------------------------------------------------------------------------------------
# Daemons
# ---------------------------------------------------------------------------------------
munge_ok() {
    munge -n -S "${MUNGE_SOCKET}" | unmunge -S "${MUNGE_SOCKET}"
}

start_munged() {
    if pid_alive "${PID_MUNGED}" munged; then return 0; fi
    log "starting munged"
    # Stale files from an unclean stop would make munged (and wait_for) misjudge.
    rm -f "${MUNGE_SOCKET}" "${MUNGE_SOCKET}.lock" "${PID_MUNGED}"
    # munged refuses to run as root; it daemonizes itself and writes its pid file.
    runuser -u munge -- munged \
        --socket="${MUNGE_SOCKET}" \
        --key-file="${MUNGE_KEY}" \
        --pid-file="${PID_MUNGED}" \
        --log-file="${MUNGE_DIR}/munged.log" \
        --seed-file="${MUNGE_DIR}/munged.seed" \
        || { show_log "${MUNGE_DIR}/munged.log"; die "munged failed to start"; }
    wait_for "munged" "pid_alive_or_pending '${PID_MUNGED}' munged" munge_ok || { show_log "${MUNGE_DIR}/munged.log"; die "munged is not answering"; }
}

mariadb_sql() {
    mariadb --no-defaults --socket="${DB_SOCKET}" -u root -e "$1"
}

mariadb_ok() {
    mariadb_sql "SELECT 1"
}

start_mariadb() {
    if pid_alive "${PID_MARIADB}" mariadbd; then return 0; fi
    if [[ ! -d "${DB_DIR}/mysql" ]]; then
        log "initialising MariaDB data directory ${DB_DIR}"
        mariadb-install-db --no-defaults --user=mysql --datadir="${DB_DIR}" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"${LOG_DIR}/mariadb-install-db.log" 2>&1 \
            || { show_log "${LOG_DIR}/mariadb-install-db.log"; die "mariadb-install-db failed"; }
    fi
    log "starting mariadbd (127.0.0.1:${DB_PORT})"
    rm -f "${DB_SOCKET}" "${PID_MARIADB}"
    # --no-defaults: ignore the system's my.cnf (its datadir/socket/port are the packaged
    # server's). mariadbd does not daemonize: detach it with setsid and background it.
    setsid mariadbd --no-defaults --user=mysql \
        --datadir="${DB_DIR}" --socket="${DB_SOCKET}" --pid-file="${PID_MARIADB}" \
        --port="${DB_PORT}" --bind-address=127.0.0.1 --skip-name-resolve \
        --log-error="${DB_LOG}" --skip-log-bin \
        --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        --innodb-use-native-aio=0 \
        </dev/null >>"${LOG_DIR}/mariadbd.out" 2>&1 &
    local pid=$!
    wait_for "mariadbd" "kill -0 ${pid}" mariadb_ok || { show_log "${DB_LOG}"; die "mariadbd is not answering"; }
    # Idempotent: safe on every start. Both host forms, since a TCP login from 127.0.0.1
    # with --skip-name-resolve matches '127.0.0.1' and socket logins match 'localhost'.
    mariadb_sql "
        CREATE DATABASE IF NOT EXISTS ${DB_NAME};
        CREATE USER IF NOT EXISTS '${DB_USER}'@'localhost' IDENTIFIED BY '${DB_PASS}';
        CREATE USER IF NOT EXISTS '${DB_USER}'@'127.0.0.1' IDENTIFIED BY '${DB_PASS}';
        GRANT ALL ON ${DB_NAME}.* TO '${DB_USER}'@'localhost';
        GRANT ALL ON ${DB_NAME}.* TO '${DB_USER}'@'127.0.0.1';
        FLUSH PRIVILEGES;" || die "could not create the accounting database/user"
}

slurmdbd_ok() {
    sacctmgr -n -P list cluster format=cluster
}

start_slurmdbd() {
    if pid_alive "${PID_SLURMDBD}" slurmdbd; then return 0; fi
    log "starting slurmdbd"
    rm -f "${PID_SLURMDBD}"
    # slurmdbd finds slurmdbd.conf next to $SLURM_CONF; it daemonizes itself.
    slurmdbd || { show_log "${LOG_DIR}/slurmdbd.log"; die "slurmdbd failed to start"; }
    # The first start creates the accounting tables, which takes a while.
    wait_for "slurmdbd" "pid_alive_or_pending '${PID_SLURMDBD}' slurmdbd" slurmdbd_ok || { show_log "${LOG_DIR}/slurmdbd.log"; die "slurmdbd is not answering"; }
}

register_cluster() {
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "${CLUSTER_NAME}"; then
        log "registering cluster '${CLUSTER_NAME}' in slurmdbd"
        sacctmgr -i add cluster "${CLUSTER_NAME}" >/dev/null
    fi
}

slurmctld_ok() {
    scontrol ping | grep -q 'is UP'
}

start_slurmctld() {
    if pid_alive "${PID_SLURMCTLD}" slurmctld; then return 0; fi
    log "starting slurmctld"
    rm -f "${PID_SLURMCTLD}"
    # Daemonizes itself; keeps (recovers) the state saved in StateSaveLocation.
    slurmctld -f "${SLURM_CONF_FILE}" \
        || { show_log "${LOG_DIR}/slurmctld.log"; die "slurmctld failed to start"; }
    wait_for "slurmctld" "pid_alive_or_pending '${PID_SLURMCTLD}' slurmctld" slurmctld_ok || { show_log "${LOG_DIR}/slurmctld.log"; die "slurmctld is not answering"; }
}

start_slurmd() {
    local node pid_file
    for node in "${NODE_NAMES[@]}"; do
        pid_file="$(slurmd_pid_file "${node}")"
        if pid_alive "${pid_file}" slurmd; then continue; fi
        log "starting slurmd (node ${node})"
        rm -f "${pid_file}"
        # -N: tell slurmd which node line is its own rather than relying on hostname lookup.
        slurmd -f "${SLURM_CONF_FILE}" -N "${node}" \
            || { show_log "$(slurmd_log_file "${node}")"; die "slurmd failed to start"; }
    done
}

# node_state [NODE]: the state of NODE (default: the first node).
node_state() {
    sinfo -h -N -n "${1:-${NODE_NAMES[0]}}" -o '%T' 2>/dev/null | head -n 1
}

# Every node registered, responding and usable: idle, or busy with recovered jobs.
node_ready() {
    local node
    for node in "${NODE_NAMES[@]}"; do
        case "$(node_state "${node}")" in
            idle | mixed | allocated | completing) ;;
            *) return 1 ;;
        esac
    done
}

sacct_ok() {
    sacct -n -X -S now-1minutes -o jobid
}

wait_cluster_ready() {
    local deadline=$((SECONDS + WAIT_TIMEOUT)) resumed=0 state node
    until node_ready; do
        for node in "${NODE_NAMES[@]}"; do
            state="$(node_state "${node}")"
            # A node left down/drained by a previous run's saved state: put it back.
            if ((!resumed)) && [[ "${state}" == down* || "${state}" == drain* ]]; then
                scontrol update nodename="${node}" state=resume >/dev/null 2>&1 || true
            fi
            if ((SECONDS >= deadline)); then
                show_log "$(slurmd_log_file "${node}")"
                show_log "${LOG_DIR}/slurmctld.log"
                die "node ${node} did not become idle (state: '${state}')"
            fi
        done
        resumed=1
        sleep 0.2
    done
    wait_for "sacct" true sacct_ok || die "sacct is not answering"
}

# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------
cluster_up() {
    pid_alive "${PID_MUNGED}" munged && pid_alive "${PID_MARIADB}" mariadbd \
        && pid_alive "${PID_SLURMDBD}" slurmdbd && pid_alive "${PID_SLURMCTLD}" slurmctld \
        && all_slurmd_alive && node_ready
}

announce() {
    printf '%s\n' "${SLURM_CONF_FILE}" >"${STATE_DIR}/slurm_conf_path"
    echo "export SLURM_CONF=${SLURM_CONF_FILE}"
}

cmd_start() {
    [[ "${EUID}" -eq 0 ]] || die "start must run as root (it installs packages and starts daemons)"
    if [[ -f "${SLURM_CONF_FILE}" ]] && cluster_up; then
        log "already running"
        announce
        return 0
    fi
    ensure_packages
    make_dirs
    ensure_munge_key
    write_configs
    start_munged
    start_mariadb
    start_slurmdbd
    register_cluster
    start_slurmctld
    start_slurmd
    wait_cluster_ready
    log "cluster '${CLUSTER_NAME}' is up (node(s) ${NODE_NAMES[*]}, partition ${PARTITION}, ${NODE_CPUS} CPUs each)"
    announce
}

cmd_stop() {
    [[ "${EUID}" -eq 0 ]] || die "stop must run as root"
    [[ -d "${STATE_DIR}" ]] || { log "nothing to stop (${STATE_DIR} does not exist)"; return 0; }
    # Cancel leftover jobs first so their slurmstepd processes do not outlive slurmd.
    if pid_alive "${PID_SLURMCTLD}" slurmctld && [[ -f "${SLURM_CONF_FILE}" ]]; then
        timeout 10 scancel --quiet --partition="${PARTITION}" >/dev/null 2>&1 || true
    fi
    # Every slurmd started here, whichever SPD_SLURM_NODES started the cluster.
    local pid_file
    for pid_file in "${PID_SLURMD}" "${RUN_DIR}"/slurmd-*.pid; do
        [[ -e "${pid_file}" ]] && stop_pid "${pid_file}" slurmd "slurmd ($(basename "${pid_file}"))"
    done
    stop_pid "${PID_SLURMCTLD}" slurmctld slurmctld
    stop_pid "${PID_SLURMDBD}" slurmdbd slurmdbd
    stop_pid "${PID_MARIADB}" mariadbd mariadbd
    stop_pid "${PID_MUNGED}" munged munged
    log "stopped"
}

cmd_status() {
    local name pidfile comm rc=0 node daemons
    daemons=(munged:"${PID_MUNGED}" mariadbd:"${PID_MARIADB}" slurmdbd:"${PID_SLURMDBD}"
        slurmctld:"${PID_SLURMCTLD}")
    for node in "${NODE_NAMES[@]}"; do daemons+=(slurmd:"$(slurmd_pid_file "${node}")"); done
    for name in "${daemons[@]}"; do
        comm="${name%%:*}"
        pidfile="${name#*:}"
        if pid_alive "${pidfile}" "${comm}"; then
            printf '%-10s running (pid %s)\n' "${comm}" "$(read_pid "${pidfile}")"
        else
            printf '%-10s stopped\n' "${comm}"
            rc=1
        fi
    done
    if ((rc == 0)) && node_ready; then
        for node in "${NODE_NAMES[@]}"; do printf 'node %s: %s\n' "${node}" "$(node_state "${node}")"; done
        echo "export SLURM_CONF=${SLURM_CONF_FILE}"
        return 0
    fi
    if ((rc == 0)); then
        for node in "${NODE_NAMES[@]}"; do
            printf 'node %s: not ready (%s)\n' "${node}" "$(node_state "${node}")"
        done
    fi
    return 1
}

main() {
    (($# >= 1 && $# <= 2)) || usage
    local cmd="$1"
    init_paths "${2:-/tmp/spd-slurm}"
    case "${cmd}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
