# Sourced by scripts/sam-local-setup: the SAM CLI in its own venv, and python3.13 for `sam build`.
# shellcheck shell=bash

sam_version_in() {
    [ -x "$1/bin/sam" ] && "$1/bin/sam" --version 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p'
}

install_sam() {
    local have
    have=$(sam_version_in "$SAM_VENV" || true)
    if [ "$have" = "$SAM_CLI_VERSION" ]; then
        log "ok: SAM CLI $have in $SAM_VENV"
        return 0
    fi
    [ "$MODE" = status ] && return 1
    # Its own venv: aws-sam-cli pins boto3 and click exactly (==1.43.108, ==8.1.8), which would
    # hold back the project's .venv; the project's own pins are untouched this way. The venv lives
    # in the cache (one per SAM CLI version, shared by every clone on this machine) and .venv-sam
    # links to it.
    if [ "$(sam_version_in "$SAM_HOME" || true)" != "$SAM_CLI_VERSION" ]; then
        rm -rf "$SAM_HOME"
        log "creating $SAM_HOME and installing aws-sam-cli==$SAM_CLI_VERSION into it (about 30 s)"
        python3 -m venv "$SAM_HOME"
        "$SAM_HOME/bin/python" -m pip install -q --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION" 2>&1 |
            grep -v "^WARNING: Location 'file:" >&2 || true
        [ "$(sam_version_in "$SAM_HOME" || true)" = "$SAM_CLI_VERSION" ] || die "aws-sam-cli did not install"
    fi
    # .venv-sam: a folder of links to the cached venv's parts (bin/sam, bin/python, lib, ...).
    rm -rf "$SAM_VENV"
    mkdir -p "$SAM_VENV"
    local part
    for part in "$SAM_HOME"/*; do
        ln -s "$part" "$SAM_VENV/"
    done
    log "ok: SAM CLI $SAM_CLI_VERSION in $SAM_VENV (links to $SAM_HOME)${have:+ (had $have)}"
}

check_python313() {
    # `sam build` (no container) needs python3.13 on PATH: pyenv's, selected by PYENV_VERSION.
    if PYENV_VERSION=3.13.0 python3.13 -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
        log "ok: python3.13 for sam build (PYENV_VERSION=3.13.0)"
    else
        log "warning: no python3.13 on PATH (pyenv 3.13.0); sam build of the python3.13 runtime will fail"
    fi
}
