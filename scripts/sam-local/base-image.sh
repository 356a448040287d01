# Sourced by scripts/sam-local-setup: the local stand-in for the Lambda Python 3.13 base image.
# shellcheck shell=bash

image_version() {
    # Changes whenever an input of the image changes, so that the image is rebuilt then.
    (
        # shellcheck disable=SC2164 # IMAGE_SRC is in the repository; build_base_image copies from it
        cd "$IMAGE_SRC"
        cat Dockerfile bootstrap lambda-entrypoint.sh requirements.txt
        echo "$ROOTFS_IMAGE"
    ) | sha256sum | cut -c1-16
}

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    # The mirror apt uses: deb822 `URIs:` or one-line `deb URL suite` entries, not the security one.
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
            -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' |
        grep -E '/debian/?$' | grep -v security | head -n1)
    [ -n "$m" ] || die "no Debian mirror found in apt's sources; set DEBIAN_MIRROR"
    echo "$m"
}

build_rootfs_tar() {
    if [ -s "$ROOTFS_TAR" ]; then
        log "ok: cached rootfs $ROOTFS_TAR"
        return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed"
    local mirror tmp
    mirror=$(debian_mirror)
    mkdir -p "$(dirname "$ROOTFS_TAR")"
    tmp=$(mktemp -d "$CACHE/rootfs/build.XXXXXX")
    log "debootstrap $ROOTFS_SUITE (minbase + python3) from $mirror (about 30 s)"
    if ! as_root debootstrap --variant=minbase --include=python3,ca-certificates \
        "$ROOTFS_SUITE" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
        tail -n 20 "$tmp/debootstrap.log" >&2
        as_root rm -rf "$tmp"
        die "debootstrap failed"
    fi
    # Trim what a Lambda image has no use for.
    as_root rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"* \
        "$tmp/root/usr/share/doc" "$tmp/root/usr/share/man" "$tmp/root/usr/share/info" \
        "$tmp/root/usr/share/locale" "$tmp/root/var/log/"*
    log "packing the rootfs into $ROOTFS_TAR"
    as_root tar -C "$tmp/root" --numeric-owner -c . | gzip -1 >"$ROOTFS_TAR.part"
    mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
    as_root rm -rf "$tmp"
}

build_base_image() {
    local want have
    want=$(image_version)
    have=$(docker_cli image inspect --format '{{index .Config.Labels "cancel-service.image-version"}}' \
        "$BASE_IMAGE_REPO:${BASE_IMAGE_TAGS[0]}" 2>/dev/null || true)
    if [ "$have" = "$want" ]; then
        local t
        for t in "${BASE_IMAGE_TAGS[@]:1}"; do
            docker_cli image inspect "$BASE_IMAGE_REPO:$t" >/dev/null 2>&1 ||
                docker_cli tag "$BASE_IMAGE_REPO:${BASE_IMAGE_TAGS[0]}" "$BASE_IMAGE_REPO:$t"
        done
        log "ok: base image $BASE_IMAGE_REPO:${BASE_IMAGE_TAGS[0]} (version $have)"
        return 0
    fi
    [ "$MODE" = status ] && return 1
    log "building base image $BASE_IMAGE_REPO:${BASE_IMAGE_TAGS[0]} (version $want${have:+, had $have})"
    if ! docker_cli image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
        build_rootfs_tar
        log "docker import $ROOTFS_TAR as $ROOTFS_IMAGE"
        docker_cli import "$ROOTFS_TAR" "$ROOTFS_IMAGE" >/dev/null
    fi
    local ctx
    ctx=$(mktemp -d)
    CLEANUP+=("$ctx")
    cp "$IMAGE_SRC/Dockerfile" "$IMAGE_SRC/bootstrap" "$IMAGE_SRC/lambda-entrypoint.sh" "$ctx/"
    log "pip install awslambdaric and boto3 (CPython 3.13 manylinux x86_64 wheels) into the image's /var/runtime"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-warn-conflicts --target "$ctx/runtime" \
        --platform manylinux2014_x86_64 --python-version 3.13 --implementation cp --only-binary=:all: \
        -r "$IMAGE_SRC/requirements.txt" 2>&1 | grep -v "^WARNING: Location 'file:" >&2 || true
    [ -d "$ctx/runtime/awslambdaric" ] || die "pip could not install awslambdaric"
    local tags=()
    for t in "${BASE_IMAGE_TAGS[@]}"; do tags+=(-t "$BASE_IMAGE_REPO:$t"); done
    # Legacy builder: works offline with a local FROM image and needs no buildx plugin.
    if ! DOCKER_BUILDKIT=0 docker_cli build --pull=false --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" \
        --label "cancel-service.image-version=$want" "${tags[@]}" "$ctx" >"$ctx/build.log" 2>&1; then
        tail -n 30 "$ctx/build.log" >&2
        die "docker build of the base image failed"
    fi
    log "built $BASE_IMAGE_REPO:{$(
        IFS=,
        echo "${BASE_IMAGE_TAGS[*]}"
    )}"
    # SAM builds `<repo>:3.13-rapid-x86_64` on top (the emulator added); drop a stale one so that
    # it is rebuilt from the new base.
    docker_cli image rm -f "$BASE_IMAGE_REPO:3.13-rapid-x86_64" >/dev/null 2>&1 || true
    if [ "$DOCKER_URL" = "unix://$SOCK" ]; then
        docker_cli image prune -f >/dev/null 2>&1 || true # the previous version, now untagged
    fi
}
