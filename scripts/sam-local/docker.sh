# Sourced by scripts/sam-local-setup: our own Docker daemon (start, stop, check) and the packages it needs.
# shellcheck shell=bash

docker_cli() { DOCKER_HOST=$DOCKER_URL docker "$@"; }
daemon_answers() { DOCKER_HOST=$1 timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

our_dockerd_pid() {
    # The pid in our pid file, if that process is alive and is a dockerd.
    local pid
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/comm" 2>/dev/null || return 1
    # A killed dockerd whose parent has not reaped it yet is no daemon.
    [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] && echo "$pid"
}

stop_daemon() {
    local pid
    if ! pid=$(our_dockerd_pid); then
        log "no Docker daemon of ours is running (pid file $PIDFILE)"
        return 0
    fi
    # Our containers first (sam's and the tests'), so that dockerd exits promptly.
    DOCKER_URL=unix://$SOCK
    local ids
    ids=$(docker_cli ps -q 2>/dev/null || true)
    if [ -n "$ids" ]; then
        log "stopping containers: $(echo "$ids" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        docker_cli rm -f $ids >/dev/null 2>&1 || true
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
        log "dockerd did not stop in 20 s; killing it"
        kill -KILL "$pid" || true
    fi
    rm -f "$PIDFILE" "$SOCK"
    # dockerd leaves its data root bind-mounted on itself (mount propagation); undo that so the
    # cache can be removed like any folder.
    if mountpoint -q "$CACHE/docker" 2>/dev/null; then
        as_root umount "$CACHE/docker" || log "warning: could not unmount $CACHE/docker"
    fi
    log "stopped"
}

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [ ${#missing[@]} -eq 0 ]; then
        log "ok: dockerd, docker and debootstrap are installed"
        return 0
    fi
    # shellcheck disable=SC2207
    missing=($(printf '%s\n' "${missing[@]}" | sort -u))
    log "installing ${missing[*]} with apt-get"
    local apt_log
    apt_log=$(mktemp)
    CLEANUP+=("$apt_log")
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$apt_log" 2>&1 ||
        ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >>"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        die "apt-get could not install ${missing[*]}"
    fi
}

# shellcheck disable=SC2034 # STARTED: print_env in sam-local-setup reports it
start_daemon() {
    if [ "${SAM_LOCAL_USE_DOCKER_HOST:-0}" = 1 ] && [ -n "${DOCKER_HOST:-}" ]; then
        daemon_answers "$DOCKER_HOST" || die "SAM_LOCAL_USE_DOCKER_HOST=1 but no daemon answers at $DOCKER_HOST"
        DOCKER_URL=$DOCKER_HOST
        STARTED=0
        log "ok: using the Docker daemon at $DOCKER_URL"
        return 0
    fi
    DOCKER_URL=unix://$SOCK
    STARTED=0
    if daemon_answers "$DOCKER_URL"; then
        log "ok: our Docker daemon answers at $DOCKER_URL (pid $(our_dockerd_pid || echo '?'))"
        return 0
    fi
    [ "$MODE" = status ] && return 1
    if pid=$(our_dockerd_pid); then
        log "dockerd pid $pid is alive but does not answer; restarting it"
        stop_daemon
    fi
    command -v dockerd >/dev/null || die "dockerd is not installed"
    as_root mkdir -p "$RUN" "$CACHE/docker"
    rm -f "$SOCK"
    log "starting dockerd: socket $SOCK, data root $CACHE/docker, log $DOCKERD_LOG"
    # Our own default bridge, so that a system daemon's docker0 is never touched.
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        log "creating bridge $BRIDGE ($BRIDGE_CIDR)"
        as_root ip link add "$BRIDGE" type bridge
        as_root ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    fi
    as_root ip link set "$BRIDGE" up
    # --iptables=false: no host firewall/NAT rules (containers reach only each other and the
    # published loopback ports that sam uses).
    # Detached (setsid) so that it outlives this script; `--stop` ends it.
    setsid dockerd \
        --host "unix://$SOCK" \
        --data-root "$CACHE/docker" \
        --exec-root "$RUN/exec" \
        --pidfile "$PIDFILE" \
        --storage-driver "${CANCEL_SERVICE_DOCKER_STORAGE_DRIVER:-overlay2}" \
        --iptables=false \
        --ip-masq=false \
        --bridge "$BRIDGE" \
        --default-address-pool base=172.31.0.0/16,size=24 \
        </dev/null >"$DOCKERD_LOG" 2>&1 9>&- &
    local bg=$!
    for _ in $(seq 1 150); do
        if daemon_answers "$DOCKER_URL"; then
            STARTED=1
            log "dockerd is up (pid $(our_dockerd_pid || echo $bg))"
            return 0
        fi
        if ! [ -d "/proc/$bg" ]; then
            break
        fi
        sleep 0.2
    done
    log "dockerd did not come up; its errors (all in $DOCKERD_LOG):"
    { grep -E 'level=(error|fatal)' "$DOCKERD_LOG" | tail -n 8 && tail -n 2 "$DOCKERD_LOG"; } >&2 || true
    kill "$bg" 2>/dev/null || true
    die "the Docker daemon cannot start on this machine, so sam local cannot run here"
}
