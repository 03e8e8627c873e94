#!/usr/bin/env bash
# Make a venv ready for nbpar's tests, demo and benchmarks, with exactly the versions of
# requirements/lock.txt (a constraints file): create it if missing, then install nbpar editable
# with its extras. Idempotent; a re-run skips pip while the venv's stamp is newer than
# pyproject.toml, the lock and this script.
#
#   bash scripts/setup.sh                      # .venv with python3: every extra (tests, demo, CI)
#   NBPAR_PYTHON=python3.12 NBPAR_VENV=.venv-3.12 NBPAR_EXTRAS=test bash scripts/setup.sh
#                                              # another interpreter, for the core suite
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/${NBPAR_VENV:-.venv}"
python="${NBPAR_PYTHON:-${PYTHON:-python3}}"
extras="${NBPAR_EXTRAS:-test,lint,jupyter,cluster,bench,dask}"
lock="$root/requirements/lock.txt"
stamp="$venv/.nbpar-installed"

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
    echo "setup: creating $venv with $("$python" --version)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    rm -f "$stamp"
fi

# The browser tests drive Debian's chromium (never a browser download).
if [ ! -x /usr/bin/chromium ] && [[ ",$extras," == *,jupyter,* ]]; then
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

if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] || [ "$lock" -nt "$stamp" ] \
        || [ "$root/requirements/cloudpickle-compat.txt" -nt "$stamp" ] \
        || [ "$root/scripts/setup.sh" -nt "$stamp" ]; then
    echo "setup: installing nbpar[$extras] into $venv, pinned by requirements/lock.txt" >&2
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    log="$venv/pip-install.log"
    pip=("$venv/bin/python" -m pip install -q)
    {
        "${pip[@]}" -c "$lock" -e "$root[$extras]" &&
        # Other cloudpickle releases, each in its own folder, for the test that worker
        # tracebacks read the same under each (tests/unit/test_tracebacks_cloudpickle.py).
        while read -r pin; do
            case "$pin" in ''|'#'*) continue ;; esac
            "${pip[@]}" --no-deps --target "$venv/cloudpickle/${pin#cloudpickle==}" "$pin" || exit 1
        done < "$root/requirements/cloudpickle-compat.txt"
    } >"$log" 2>&1 || {
        cat "$log" >&2
        echo "setup: pip install failed (log above, also in $log)" >&2
        exit 1
    }
    touch "$stamp"
fi
