# Sourced by scripts/sam-local-setup: the moto_server image and its container on our Docker network.
# shellcheck shell=bash

build_moto_image() {
    local want
    want=$( (
        # shellcheck disable=SC2153 # MOTO_SRC is set in sam-local-setup
        cat "$MOTO_SRC/Dockerfile" "$MOTO_SRC/requirements.txt"
        docker_cli image inspect --format '{{.Id}}' "$BASE_IMAGE_REPO:${BASE_IMAGE_TAGS[0]}"
    ) | sha256sum | cut -c1-16)
    MOTO_IMAGE=cancel-service/moto:$want
    if docker_cli image inspect "$MOTO_IMAGE" >/dev/null 2>&1; then
        log "ok: moto image $MOTO_IMAGE"
        return 0
    fi
    log "building moto image $MOTO_IMAGE (moto pip-installed for CPython 3.13, on the base image)"
    local ctx
    ctx=$(mktemp -d)
    CLEANUP+=("$ctx")
    cp "$MOTO_SRC/Dockerfile" "$ctx/"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-warn-conflicts \
        --target "$ctx/site" --platform manylinux2014_x86_64 --python-version 3.13 --implementation cp \
        --only-binary=:all: -r "$MOTO_SRC/requirements.txt" 2>&1 | grep -v "^WARNING: Location 'file:" >&2 || true
    [ -d "$ctx/site/moto" ] || die "pip could not install moto"
    if ! DOCKER_BUILDKIT=0 docker_cli build --pull=false \
        --build-arg "BASE_IMAGE=$BASE_IMAGE_REPO:${BASE_IMAGE_TAGS[0]}" -t "$MOTO_IMAGE" "$ctx" >"$ctx/build.log" 2>&1; then
        tail -n 30 "$ctx/build.log" >&2
        die "docker build of the moto image failed"
    fi
    log "built $MOTO_IMAGE"
}

start_local_aws() {
    if ! docker_cli network inspect "$LOCAL_NETWORK" >/dev/null 2>&1; then
        log "creating Docker network $LOCAL_NETWORK"
        docker_cli network create "$LOCAL_NETWORK" >/dev/null
    fi
    local running
    running=$(docker_cli inspect --format '{{.State.Running}} {{.Config.Image}}' "$MOTO_CONTAINER" 2>/dev/null || true)
    if [ "$running" != "true $MOTO_IMAGE" ]; then
        docker_cli rm -f "$MOTO_CONTAINER" >/dev/null 2>&1 || true
        log "starting $MOTO_CONTAINER on $LOCAL_NETWORK (published on 127.0.0.1 only)"
        docker_cli run -d --name "$MOTO_CONTAINER" --network "$LOCAL_NETWORK" -p 127.0.0.1::5000 \
            "$MOTO_IMAGE" >/dev/null
    else
        log "ok: $MOTO_CONTAINER is running"
    fi
    local port
    port=$(docker_cli port "$MOTO_CONTAINER" 5000/tcp | head -n1)
    MOTO_URL=http://127.0.0.1:${port##*:}
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$MOTO_URL/moto-api/data.json" 2>/dev/null ||
            python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
                "$MOTO_URL/moto-api/data.json" 2>/dev/null; then
            log "ok: moto answers at $MOTO_URL (in containers: http://$MOTO_CONTAINER:5000)"
            return 0
        fi
        sleep 0.2
    done
    docker_cli logs "$MOTO_CONTAINER" 2>&1 | tail -n 20 >&2
    die "moto_server did not answer"
}
