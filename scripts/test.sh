#!/usr/bin/env bash
# Install m0rank with its test dependencies into .venv and run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
exec .venv/bin/python -m pytest "$@"
