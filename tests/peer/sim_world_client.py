"""pywinrm against `wsusfix sim serve`: scripts with a valid marker get the world's answers.

Usage: sim_world_client.py HTTP_REPLICA HTTP_UPSTREAM HTTPS_UPSTREAM CA_FILE USER PASSWORD
Prints one JSON object with what each call returned.
"""
import base64
import json
import sys

import winrm

replica_url, upstream_url, https_url, ca, user, password = sys.argv[1:7]
UPDATE = "D359F493-0AAD-43FA-AF5C-6763326CD98F"


def keys(out):
    result = {}
    for line in out.decode().splitlines():
        if line.startswith("wsusfix:") and "=" in line:
            k, v = line[len("wsusfix:"):].split("=", 1)
            result.setdefault(k, []).append(base64.b64decode(v).decode())
    return result


def run(session, script):
    r = session.run_ps(script)
    return {"rc": r.status_code, "keys": keys(r.std_out), "stderr": r.std_err.decode(errors="replace")}


report = {}
ntlm = winrm.Session(replica_url, auth=(user, password), transport="ntlm", message_encryption="always")
report["decline_on_replica"] = run(ntlm, '# wsusfix-op: decline {"update":"%s"}\n$u.Decline()' % UPDATE)
report["no_marker"] = run(ntlm, "Get-Date")

up = winrm.Session(upstream_url, auth=(user, password), transport="ntlm", message_encryption="always")
report["facts_upstream"] = run(up, '# wsusfix-op: facts {"update":"%s","since":"","services":["W3SVC"]}\n' % UPDATE)

# Windows takes Basic for local accounts only, named without a domain.
basic = winrm.Session(https_url, auth=(user.split("\\")[-1], password), transport="ssl", ca_trust_path=ca)
report["https_basic_declined"] = run(basic, '# wsusfix-op: ensure_declined {"update":"%s"}\n' % UPDATE)

try:
    winrm.Session(upstream_url, auth=(user, "wrong-password"), transport="ntlm").run_ps(
        "# wsusfix-op: child_servers {}"
    )
    report["wrong_password"] = "accepted"
except winrm.exceptions.InvalidCredentialsError as e:
    report["wrong_password"] = "refused: %s" % e

print(json.dumps(report))
