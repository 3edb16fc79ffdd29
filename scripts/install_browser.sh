#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs Debian's Chromium and ChromeDriver for the Space's end-to-end browser test (root only; no browser
# download at run time: the packages come from the distribution's registry).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install_browser: chromium and chromedriver already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
echo "install_browser: $(chromium --version)"
