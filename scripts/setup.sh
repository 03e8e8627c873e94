#!/usr/bin/env bash
# Make the repo's .venv ready: create it with python3 if missing, then install nbpar editable
# with its test, jupyter, cluster, bench and dask extras. Idempotent; a re-run skips pip while
# the stamp file is newer than pyproject.toml and this script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.nbpar-installed"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        # Debian ships venv/ensurepip separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "setup: installing python3-venv" >&2
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq >/dev/null
            apt-get install -y -qq python3-venv >/dev/null
        else
            echo "setup: $python cannot create a venv; install python3-venv" >&2
            exit 1
        fi
    fi
    echo "setup: creating $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    rm -f "$stamp"
fi

# The browser tests drive Debian's chromium (never a browser download).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's chromium (for tests/browser)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: /usr/bin/chromium is missing: tests/browser will be skipped" \
             "(as root: apt-get install -y chromium)" >&2
    fi
fi

if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] \
        || [ "$root/scripts/setup.sh" -nt "$stamp" ]; then
    echo "setup: installing nbpar[test,jupyter,cluster,bench,dask] into .venv" >&2
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    log="$venv/pip-install.log"
    if ! "$venv/bin/python" -m pip install -q -e "$root[test,jupyter,cluster,bench,dask]" >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
