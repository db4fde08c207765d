#!/usr/bin/env bash
# Creates the Python virtualenv that the interop tests use (pywinrm and pyspnego from PyPI) and
# prints its python path on its last line. Idempotent.
#
#   setup.sh             the NTLM peers (requirements.txt)
#   setup.sh --kerberos  the Kerberos peers too (requirements-kerberos.txt): installs MIT
#                        Kerberos and the build tools first (tests/kdc/realm.sh install)
#
# The venv lives in a cache folder keyed by the requirements it was built from, so that a
# machine that runs the tests again (another clone, CI) reuses it: $WSUSFIX_PEER_VENV if set,
# else ${XDG_CACHE_HOME:-$HOME/.cache}/wsusfix/peer-venv-<kind>-<hash>.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kind=ntlm
requirements=$root/tests/peer/requirements.txt
if [[ "${1:-}" == "--kerberos" ]]; then
    kind=kerberos
    requirements=$root/tests/peer/requirements-kerberos.txt
    "$root/tests/kdc/realm.sh" install --python-build
fi
hash=$(cat "$root/tests/peer/requirements.txt" "$requirements" | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/wsusfix
venv=${WSUSFIX_PEER_VENV:-$cache/peer-venv-$kind-$hash}
stamp=$venv/.wsusfix-ready
if [[ ! -f "$stamp" ]]; then
    mkdir -p "$(dirname "$venv")"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    touch "$stamp"
fi
echo "$venv/bin/python"
