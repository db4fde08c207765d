#!/usr/bin/env bash
# Creates the Python virtualenv that the interop tests use (pywinrm and pyspnego from PyPI).
# Idempotent; prints the venv's python path on its last line. Location: $WSUSFIX_PEER_VENV or
# <repo>/.peer-venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${WSUSFIX_PEER_VENV:-$root/.peer-venv}
stamp=$venv/.wsusfix-ready-1
if [ ! -f "$stamp" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        -r "$root/tests/peer/requirements.txt" >&2
    touch "$stamp"
fi
echo "$venv/bin/python"
