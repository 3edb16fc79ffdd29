#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up everything (venv, packages, the headless browser for the Space's end-to-end test) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        bash scripts/install_browser.sh
    else
        echo "run_tests: chromium/chromedriver missing and not root: the browser test will skip (fails under CI=true)"
    fi
fi
exec .venv/bin/python -m pytest tests -q "$@"
