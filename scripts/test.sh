#!/usr/bin/env bash
# Run the test suite: tests/ and the tutorial notebooks in notebooks/ (nbval runs each in a
# real kernel and compares its outputs with the stored ones, after the substitutions in
# notebooks/nbval_sanitize.cfg). Given paths or other arguments, they go to pytest instead of
# the default paths (a notebook path is tested with nbval too).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
if [ "$#" -eq 0 ]; then
    set -- tests notebooks
fi
exec .venv/bin/python -m pytest --nbval --nbval-current-env \
    --nbval-sanitize-with notebooks/nbval_sanitize.cfg "$@"
