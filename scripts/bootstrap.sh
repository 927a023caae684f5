#!/usr/bin/env bash
# Creates .venv/ at the repository root and installs what is still missing:
# torch (CPU build by default; set RECONSTREAM_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
# or any pip spec on a GPU server), then the package with its test, benchmark and Ray extras (CI runs the Ray tests).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=.venv/.reconstream-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        # shellcheck disable=SC2086
        .venv/bin/python -m pip install --quiet ${RECONSTREAM_TORCH:-torch==2.13.0}
    fi
    .venv/bin/python -m pip install --quiet -e ".[test,bench,ray]"
    touch "$stamp"
fi
