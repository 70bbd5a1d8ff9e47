#!/usr/bin/env bash
# Create .venv and install m0rank. Usage: scripts/install.sh [offline|dev]
#   offline (default): the library, CLI, server and the built-in offline model
#   dev: everything above plus the test and evaluation dependencies
# System packages (fonts for rendered pages, tesseract OCR, Chromium for the playground test)
# are installed with apt-get when it is available and we are root; the code falls back
# cleanly where they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-offline}"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  packages="fonts-noto-core fonts-noto-cjk tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-chi-sim"
  [ "$profile" = dev ] && packages="$packages chromium chromium-driver"
  missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# torch==2.13.0 is the CPU build; an unpinned torch would pull a multi-GB CUDA build.
extras="offline,server"
[ "$profile" = dev ] && extras="dev"
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" -e ".[$extras]"
