#!/usr/bin/env bash
# Move the lock: re-resolve requirements/lock.txt to the newest releases that pyproject.toml's
# ranges admit (every extra, for every Python nbpar supports, in one universal lock made by
# uv), rebuild the test venvs from it, and run the whole suite on them. A dependency's release
# then reaches the tests as a change of its own: commit the new lock only if the suite passed.
#   bash scripts/update_lock.sh              # newest releases
#   bash scripts/update_lock.sh -P tqdm      # move one package only (uv's --upgrade-package)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tool=.venv-lock
if [ ! -x "$tool/bin/uv" ]; then
    python3 -m venv "$tool"
    "$tool/bin/python" -m pip install -q --disable-pip-version-check uv
fi
upgrade=(--upgrade)
if [ "${1:-}" = "-P" ]; then
    upgrade=(--upgrade-package "$2")
fi
"$tool/bin/uv" pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
    "${upgrade[@]}" --custom-compile-command "bash scripts/update_lock.sh" \
    -o requirements/lock.txt
git --no-pager diff --stat -- requirements/lock.txt
# Fresh venvs, so that nothing installed before the move is tested by mistake.
rm -rf .venv .venv-3.*
bash scripts/test.sh
echo "update_lock: the suite passed on the new lock; commit requirements/lock.txt on its own"
