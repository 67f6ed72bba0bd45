#!/usr/bin/env bash
# Create .venv with every pinned dependency and ablate installed in it (safe to re-run).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch first, exactly these versions: pip takes them from the local wheel store; others download GBs
.venv/bin/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
