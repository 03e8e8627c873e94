#!/usr/bin/env bash
# The main job: set up, run the demo (a live parallel map steered with HALT/RESUME/STOP), then
# execute the quick-start notebook headless into artifacts/, where JupyterLab can open it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
.venv/bin/python -m nbpar.demo

notebook=notebooks/01_quick_start.ipynb
executed=artifacts/01_quick_start.executed.ipynb
echo
echo "executing $notebook headless (a real kernel, 2 workers) ..."
mkdir -p artifacts
started=$SECONDS
.venv/bin/jupyter nbconvert --to notebook --execute --log-level=WARN \
    --output-dir artifacts --output "$(basename "$executed" .ipynb)" "$notebook"
echo "done in $((SECONDS - started)) s: $executed"
echo "open it in JupyterLab: .venv/bin/jupyter lab artifacts/  (the tutorials: .venv/bin/jupyter lab notebooks/;" \
     "as root, add --allow-root)"
