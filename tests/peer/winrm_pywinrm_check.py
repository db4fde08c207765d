#!/usr/bin/env python3
"""Runs pywinrm 0.5.0 (the reference client) against winrm_peer_server.py.

If pywinrm works against the peer and wsusfix's client does not, the bug is in wsusfix.
Usage: winrm_pywinrm_check.py URL USER PASSWORD; prints one JSON object per run.
"""

import json
import sys

import winrm


def main():
    url, user, password = sys.argv[1:4]
    session = winrm.Session(url, auth=(user, password), transport="ntlm", message_encryption="always")
    result = session.run_ps("Write-Output 'from pywinrm'\nWrite-Error 'oops'\nexit 6")
    print(
        json.dumps(
            {
                "status": result.status_code,
                "stdout": result.std_out.decode("cp437"),
                "stderr": result.std_err.decode("cp437"),
            }
        )
    )


if __name__ == "__main__":
    main()
