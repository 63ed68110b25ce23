#!/usr/bin/env bash
# Browser dependencies of the end-to-end UI tests: headless Chromium and a matching chromedriver
# (Debian packages `chromium` and `chromium-driver`). Idempotent: does nothing when both exist.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
    exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "e2e-deps: not root and sudo is not available; install chromium and chromium-driver" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends chromium chromium-driver

for bin in "$CHROMIUM" "$CHROMEDRIVER"; do
    if [[ ! -x "$bin" ]]; then
        echo "e2e-deps: $bin is still missing after the install" >&2
        exit 1
    fi
done
"$CHROMIUM" --version
"$CHROMEDRIVER" --version
