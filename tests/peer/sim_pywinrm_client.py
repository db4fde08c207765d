"""pywinrm 0.5.0 against the simulator's WinRM endpoint: a client nobody on the project wrote.

Usage: python sim_pywinrm_client.py '<json config>'
The config names the endpoint's URLs, the CA file, an account and a wrong password. Each scenario
prints one JSON object per line on stdout; the Rust test (tests/sim_endpoint_peer.rs) decides what
is right. A scenario that raises prints its exception type and message instead of output.
"""

import base64
import json
import sys
import traceback

import re
import struct
import uuid

import requests
import spnego
import winrm
from winrm.protocol import Protocol

BOUNDARY = b"--Encrypted Boundary"
ENCRYPTED = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'


def outcome(name, fn):
    try:
        result = fn()
        record = {"scenario": name, "ok": True}
        record.update(result)
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
    header = resp.headers.get("WWW-Authenticate", "")
    m = re.search(r"Negotiate ([A-Za-z0-9+/=]+)", header)
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


def spnego_create_shell(url, user, password):
    """pyspnego's own SPNEGO client (not requests_ntlm's raw NTLMSSP), then one encrypted Create."""
    ctx = spnego.client(user, password, hostname="peer-host", service="http", protocol="negotiate")
    http = requests.Session()
    r = http.post(url, data=b"", headers={"Authorization": "Negotiate " + base64.b64encode(ctx.step()).decode()})
    assert r.status_code == 401, r.status_code
    token = ctx.step(negotiate_token(r))
    r = http.post(url, data=b"", headers={"Authorization": "Negotiate " + base64.b64encode(token).decode()})
    assert r.status_code == 200, r.status_code
    final = negotiate_token(r)
    if final:
        ctx.step(final)
    assert ctx.complete, "SPNEGO context complete"

    msg = create_envelope()
    wrapped = ctx.wrap_winrm(msg)
    body = (
        BOUNDARY + b"\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(msg)).encode() + b"\r\n"
        + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
        + struct.pack("<i", len(wrapped.header)) + wrapped.header + wrapped.data + BOUNDARY + b"--\r\n"
    )
    r = http.post(url, data=body, headers={"Content-Type": ENCRYPTED})
    parts = [p for p in r.content.split(BOUNDARY + b"\r\n") if p]
    payload = parts[1]
    if payload.endswith(BOUNDARY + b"--\r\n"):
        payload = payload[: -len(BOUNDARY + b"--\r\n")]
    payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"")
    sig_len = struct.unpack("<i", payload[:4])[0]
    reply = ctx.unwrap_winrm(payload[4 : 4 + sig_len], payload[4 + sig_len :]).decode()
    return {
        "status_code": r.status_code,
        "final_token": final is not None,
        "negotiated_protocol": ctx.negotiated_protocol,
        "has_shell_id": "<rsp:ShellId>" in reply,
    }


def main():
    cfg = json.loads(sys.argv[1])
    user, password = cfg["user"], cfg["password"]

    def ntlm_session(pw=password, **kw):
        return winrm.Session(
            cfg["http_url"], auth=(user, pw), transport="ntlm", message_encryption="always", **kw
        )

    # NTLM over HTTP with MS-WSMV encryption; the script's first line is echoed, `exit 3` obeyed.
    outcome("ntlm_http_run_ps", lambda: response(ntlm_session().run_ps("Write-Output 'hello'\nexit 3")))

    # The same through pywinrm's cmd path: a program that does not exist on the host.
    outcome("ntlm_http_run_cmd_unknown", lambda: response(ntlm_session().run_cmd("ipconfig", ["/all"])))

    # A script too long for cmd.exe's command line.
    outcome("ntlm_http_too_long", lambda: response(ntlm_session().run_ps("Write-Output 1;" * 400)))

    # Receive past the operation timeout: pywinrm swallows w:TimedOut and receives again.
    def slow():
        s = ntlm_session(operation_timeout_sec=1, read_timeout_sec=3)
        return response(s.run_ps("slow\nsleep 2500\nexit 0"))

    outcome("ntlm_http_timed_out_then_done", slow)

    # 300 kB of output over several encrypted Receives.
    def big():
        r = response(ntlm_session().run_ps("big\nbig 300000"))
        r["std_out_len"] = len(r["std_out"])
        r["std_out"] = r["std_out"][:40]
        return r

    outcome("ntlm_http_large_output", big)

    # The stdin bootstrap through the low-level protocol: stdin chunks, then End.
    def bootstrap():
        p = Protocol(
            cfg["http_url"], transport="ntlm", username=user, password=password,
            message_encryption="always",
        )
        shell = p.open_shell()
        boot = "$s=[Console]::In.ReadToEnd(); iex ([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($s)))"
        encoded = base64.b64encode(boot.encode("utf_16_le")).decode("ascii")
        cmd = p.run_command(shell, "powershell.exe -NoProfile -NonInteractive -EncodedCommand " + encoded,
                            console_mode_stdin=False)
        script = base64.b64encode(("# from stdin\n" + "Write-Output 2\n" * 3000 + "exit 5").encode("utf-8"))
        half = len(script) // 2
        p.send_command_input(shell, cmd, script[:half])
        p.send_command_input(shell, cmd, script[half:], end=True)
        out, err, code = p.get_command_output(shell, cmd)
        p.cleanup_command(shell, cmd)
        p.close_shell(shell)
        return {"status_code": code, "std_out": out.decode(), "std_err": err.decode()}

    outcome("ntlm_http_stdin_bootstrap", bootstrap)

    # SPNEGO-wrapped NTLM from pyspnego's Negotiate client, with the final token and sealing.
    outcome("spnego_pyspnego_http", lambda: spnego_create_shell(cfg["http_url"], user, password))

    # A wrong password is refused.
    outcome("ntlm_http_wrong_password", lambda: response(ntlm_session(pw=cfg["wrong_password"]).run_ps("x")))

    # Basic is refused over HTTP (AllowUnencrypted=false, Basic off)...
    outcome(
        "basic_http_refused",
        lambda: response(winrm.Session(cfg["http_url"], auth=(user, password), transport="basic").run_ps("x")),
    )

    # ...and accepted over HTTPS, the certificate checked against the endpoint's CA.
    outcome(
        "basic_https",
        lambda: response(
            winrm.Session(
                cfg["https_url"], auth=(user, password), transport="ssl",
                server_cert_validation="validate", ca_trust_path=cfg["ca_file"],
            ).run_ps("over https\nexit 0")
        ),
    )

    # NTLM over HTTPS (no message encryption needed there).
    outcome(
        "ntlm_https",
        lambda: response(
            winrm.Session(
                cfg["https_url"], auth=(user, password), transport="ntlm",
                server_cert_validation="ignore",
            ).run_ps("ntlm over https")
        ),
    )


if __name__ == "__main__":
    main()
