"""Kerberos clients nobody on the project wrote, against the simulator's WinRM endpoint.

Usage: python sim_pywinrm_kerberos.py '<json config>'
with KRB5_CONFIG naming the test realm's krb5.conf and KRB5CCNAME a ticket cache that `kinit`
filled (pykerberos never takes a password). The config names the endpoint's URL, the SPN host,
the user principal and its password. Each scenario prints one JSON object per line; the Rust
test (tests/sim_endpoint_kerberos.rs) decides what is right.
"""

import base64
import json
import re
import struct
import sys
import traceback
import uuid

import requests
import spnego
import winrm

BOUNDARY = b"--Encrypted Boundary"
ENCRYPTED = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'


def outcome(name, fn):
    try:
        record = {"scenario": name, "ok": True}
        record.update(fn())
    except Exception as exc:  # the test asserts on the type
        record = {
            "scenario": name,
            "ok": False,
            "error_type": type(exc).__name__,
            "error": str(exc),
            "trace": traceback.format_exc(limit=3),
        }
    print(json.dumps(record), flush=True)


def response(rs):
    return {
        "status_code": rs.status_code,
        "std_out": rs.std_out.decode("utf-8", "replace"),
        "std_err": rs.std_err.decode("utf-8", "replace"),
    }


def negotiate_token(resp):
    m = re.search(r"Negotiate ([A-Za-z0-9+/=]+)", resp.headers.get("WWW-Authenticate", ""))
    return base64.b64decode(m.group(1)) if m else None


def create_envelope():
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
        'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header>'
        '<wsa:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</wsa:Action>'
        '<wsman:MaxEnvelopeSize s:mustUnderstand="true">153600</wsman:MaxEnvelopeSize>'
        "<wsa:MessageID>uuid:%s</wsa:MessageID><wsman:OperationTimeout>PT20S</wsman:OperationTimeout>"
        '<wsman:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</wsman:ResourceURI>'
        "</s:Header><s:Body><rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>"
        "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell></s:Body></s:Envelope>"
        % str(uuid.uuid4()).upper()
    ).encode()


def spnego_kerberos_create_shell(cfg):
    """pyspnego's SPNEGO client over MIT's krb5 mechanism, with the password (no cache), mutual
    authentication, then one sealed Create and its sealed reply."""
    ctx = spnego.client(
        cfg["user"], cfg["password"], hostname=cfg["spn_host"], service="HTTP", protocol="negotiate",
        context_req=spnego.ContextReq.mutual_auth | spnego.ContextReq.sequence_detect
        | spnego.ContextReq.confidentiality | spnego.ContextReq.integrity,
    )
    http = requests.Session()
    r = http.post(cfg["http_url"], data=b"", headers={"Authorization": "Negotiate " + base64.b64encode(ctx.step()).decode()})
    assert r.status_code == 200, r.status_code
    ctx.step(negotiate_token(r))
    assert ctx.complete, "mutual authentication completed the context"
    msg = create_envelope()
    w = ctx.wrap_winrm(msg)
    body = (
        BOUNDARY + b"\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(msg)).encode() + b"\r\n"
        + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
        + struct.pack("<I", len(w.header)) + w.header + w.data + BOUNDARY + b"--\r\n"
    )
    r = http.post(cfg["http_url"], data=body, headers={"Content-Type": ENCRYPTED})
    payload = r.content.split(BOUNDARY + b"\r\n")[2]
    payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
    payload = payload[: -len(BOUNDARY + b"--\r\n")]
    n = struct.unpack("<I", payload[:4])[0]
    reply = ctx.unwrap_winrm(payload[4:4 + n], payload[4 + n:]).decode()
    return {
        "status_code": r.status_code,
        "negotiated_protocol": ctx.negotiated_protocol,
        "signature_len": n,
        "has_shell_id": "<rsp:ShellId>" in reply,
    }


def main():
    cfg = json.loads(sys.argv[1])

    def kerberos_session(**kw):
        # pywinrm's kerberos transport: a raw krb5 token under "Negotiate", sealed messages.
        return winrm.Session(
            cfg["http_url"], auth=(cfg["user"], None), transport="kerberos",
            message_encryption="always", kerberos_hostname_override=cfg["spn_host"],
            service="HTTP", **kw
        )

    outcome("pywinrm_kerberos_run_ps", lambda: response(kerberos_session().run_ps("Write-Output 'hello'\nexit 3")))

    def big():
        r = response(kerberos_session().run_ps("big\nbig 200000"))
        r["std_out_len"] = len(r["std_out"])
        r["std_out"] = r["std_out"][:40]
        return r

    outcome("pywinrm_kerberos_large_output", big)
    outcome("pyspnego_kerberos_sealed_create", lambda: spnego_kerberos_create_shell(cfg))

    # NTLM with the right password: this host is hardened, it refuses NTLM.
    outcome(
        "pywinrm_ntlm_refused",
        lambda: response(
            winrm.Session(
                cfg["http_url"], auth=(cfg["user"], cfg["password"]), transport="ntlm",
                message_encryption="always",
            ).run_ps("x")
        ),
    )


if __name__ == "__main__":
    main()
