#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up everything (venv and packages) and runs the offline main job: the MAXI pipeline end to end on a generated
# toy world, on CPU (see toy_world/demo.py). Extra arguments go to the demo, e.g. --seed 1 or --launch_space true.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m toy_world.demo "$@"
