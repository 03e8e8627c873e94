#!/usr/bin/env bash
# Run the test suite. Without arguments: everything -- the linter and the type checker (ruff
# and mypy, as pyproject.toml configures them), tests/ and the tutorial notebooks in
# notebooks/ on the main interpreter (nbval runs each notebook in a real kernel and compares
# its outputs with the stored ones, after the substitutions in notebooks/nbval_sanitize.cfg),
# then the core suite (tests/unit, tests/integration) on each other tested Python, each in its
# own venv (.venv-3.12, .venv-3.13) installed from the same lock. With arguments, they go to
# pytest on the main interpreter instead (a notebook path is tested with nbval too).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
other_pythons=(3.12 3.13)
bash "$root/scripts/setup.sh"
cd "$root"
nbval=(--nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg)
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "${nbval[@]}" "$@"
fi

# A tested Python: on PATH (python3.12), or the newest of that minor version under pyenv.
find_python() {
    local found
    if found=$(command -v "python$1") && "$found" --version >/dev/null 2>&1; then
        echo "$found"
        return
    fi
    found=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1" 2>/dev/null \
            | sort -V | tail -n 1)
    [ -n "$found" ] && echo "$found"
}

status=0
# Seconds, so first; a finding fails the run, after the tests have run all the same.
echo "=== ruff check; mypy ==="
.venv/bin/ruff check || status=$?
.venv/bin/mypy || status=$?
.venv/bin/python -m pytest "${nbval[@]}" tests notebooks || status=$?
for version in "${other_pythons[@]}"; do
    echo
    if ! python=$(find_python "$version"); then
        echo "test: Python $version not found; its core suite is not run" >&2
        [ "${CI:-}" = true ] && status=1  # CI must test every version the README names
        continue
    fi
    echo "=== core suite on Python $version ($python) ==="
    NBPAR_PYTHON="$python" NBPAR_VENV=".venv-$version" NBPAR_EXTRAS=test \
        bash scripts/setup.sh
    ".venv-$version/bin/python" -m pytest -p no:cacheprovider tests/unit tests/integration \
        || status=$?
done
exit "$status"
