#!/usr/bin/env bash
# Run the test suite (all of tests/ unless paths are given); extra arguments go to pytest.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
if [ "$#" -eq 0 ]; then
    set -- tests
fi
exec .venv/bin/python -m pytest "$@"
