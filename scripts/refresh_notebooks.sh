#!/usr/bin/env bash
# Re-run the tutorial notebooks in place, so that their stored outputs (which the tests
# compare with fresh runs, see notebooks/nbval_sanitize.cfg) are those of the current code.
# Run it after changing a notebook, or nbpar in a way that changes what a notebook shows.
#   bash scripts/refresh_notebooks.sh                         # all of notebooks/*.ipynb
#   bash scripts/refresh_notebooks.sh notebooks/03_steering.ipynb
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
if [ "$#" -eq 0 ]; then
    set -- notebooks/*.ipynb
fi
for notebook in "$@"; do
    started=$SECONDS
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace --log-level=WARN "$notebook"
    echo "$notebook: $((SECONDS - started)) s"
done
