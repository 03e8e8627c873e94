#!/usr/bin/env bash
# The main job: set up, then run the demo (a live parallel map steered with HALT/RESUME/STOP).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
.venv/bin/python -m nbpar.demo
