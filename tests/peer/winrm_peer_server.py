#!/usr/bin/env python3
"""A small WinRS test server: an independent peer for wsusfix's WinRM client.

It speaks WS-Management / WinRS over HTTP/1.1 keep-alive the way a Windows WinRM 2.0 listener
does, as far as a client can tell:

- Negotiate authentication (raw NTLMSSP or SPNEGO) through pyspnego's acceptor, credentials from
  the file named by NTLM_USER_FILE (lines DOMAIN:USER:PASSWORD); the security context belongs to
  the TCP connection; the SPNEGO final token rides on the 200.
- Over HTTP, MS-WSMV message encryption is required and checked byte for byte (TABs, lengths,
  no CRLF before the closing boundary); replies, faults included, are sealed.
- Over HTTPS (--tls-cert/--tls-key), Basic (same credential file) or Negotiate without sealing.
- Create / Command / Send / Receive / Signal / Delete on cmd shells. The first Receive of every
  command answers with the w:TimedOut fault (2150858793), as Windows does when no output came
  within OperationTimeout.
- Commands: `powershell.exe ... -EncodedCommand <base64 UTF-16LE>`; a decoded command containing
  `[Console]::In.ReadToEnd()` is the stdin bootstrap: the script is the base64 (UTF-8) text that
  arrives by rsp:Send (WINRS_CONSOLEMODE_STDIN must be FALSE). Command lines over 8191
  characters fail the way cmd.exe fails them.
- "Running" a script only proves the transport; per line:
    Write-Output '<text>'   -> <text> on stdout
    Write-Error '<text>'    -> a CLIXML error record on stderr (exit code 1 unless exit N)
    Start-Sleep -Seconds N  -> the command takes N seconds
    exit N                  -> exit code N, stop
    #peer:digest            -> "sha256=<hex of the UTF-8 script> chars=<n>" on stdout
    #peer:progress          -> a CLIXML progress record on stderr
  stdout is encoded in the shell's code page (437 or 65001) and handed out in small chunks
  across several Receive replies.
- Requests larger than --max-envelope-kb get HTTP 413.
- With --require-cbt (HTTPS), Extended Protection as Windows' CbtHardeningLevel=Strict: an NTLM
  logon must carry the tls-server-end-point channel binding of the listener's certificate
  (RFC 5929), or it is refused.
- Control (no auth): POST /peer/control with body "drop-auth" forgets every connection's security
  context (the next request gets 401); GET /peer/log returns the JSON log of actions.

It prints its port on stdout once it listens on 127.0.0.1.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego
from cryptography.hazmat.primitives import serialization
from spnego.channel_bindings import GssChannelBindings

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
}
ACTION = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
SHELL_ACTION = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
PROTOCOL = b"application/HTTP-SPNEGO-session-encrypted"
ENCRYPTED_CT = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'
BOOTSTRAP_TOKEN = "[Console]::In.ReadToEnd()"
PS_NS = "http://schemas.microsoft.com/powershell/2004/04"
CMD_LINE_MAX = 8191
TIMED_OUT = 2150858793
SHELL_NOT_FOUND = 2150858843

STATE = {
    "lock": threading.Lock(),
    "generation": 0,
    "connections": 0,
    "shells": {},
    "log": [],
}


def log(entry):
    with STATE["lock"]:
        STATE["log"].append(entry)


def read_users():
    path = os.environ.get("NTLM_USER_FILE")
    users = []
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\r\n").split(":")
                if len(parts) == 3:
                    users.append(tuple(parts))
    return users


def basic_ok(header):
    try:
        user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode("utf-8").partition(":")
    except Exception:
        return None
    for domain, name, pw in read_users():
        names = {name.lower(), ("%s\\%s" % (domain, name)).lower()}
        if user.lower() in names and password == pw:
            return user
    return None


def xml_escape(text):
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def envelope(action, relates_to, body):
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="%s" xmlns:a="%s" xmlns:w="%s" xmlns:rsp="%s" xmlns:x="%s">'
        "<s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        "<a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body>%s</s:Body></s:Envelope>"
        % (NS["s"], NS["a"], NS["w"], NS["rsp"], NS["x"], action, str(uuid.uuid4()).upper(), relates_to, body)
    ).encode("utf-8")


def fault(relates_to, subcode, code, text):
    body = (
        '<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code>'
        '<s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail>'
        '<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="%d" Machine="peer">'
        "<f:Message>%s</f:Message></f:WSManFault></s:Detail></s:Fault>"
    ) % (subcode, xml_escape(text), code, xml_escape(text))
    return envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


def clixml_error(text):
    escaped = xml_escape(text).replace("\r", "_x000D_").replace("\n", "_x000A_")
    return '<S S="Error">%s_x000D__x000A_</S>' % escaped


class Command:
    def __init__(self, shell, command_line, console_mode_stdin):
        self.id = str(uuid.uuid4()).upper()
        self.codepage = shell["codepage"]
        self.receives = 0
        self.stdin = b""
        self.stdin_done = False
        self.waits_for_stdin = False
        self.chunks = []
        self.exit_code = 0
        self.ready_at = None
        self.script = None
        self.problem = None
        if len(command_line) > CMD_LINE_MAX:
            self.finish(b"", b"The command line is too long.\r\n", 1)
            return
        match = re.match(
            r"^powershell(?:\.exe)?(?:\s+-NoProfile|\s+-NonInteractive)*\s+-EncodedCommand\s+([A-Za-z0-9+/=]+)$",
            command_line,
            re.IGNORECASE,
        )
        if not match:
            self.finish(b"", ("unexpected command line: %s\r\n" % command_line[:200]).encode(), 9009)
            return
        decoded = base64.b64decode(match.group(1)).decode("utf-16-le")
        if BOOTSTRAP_TOKEN in decoded:
            if console_mode_stdin != "FALSE":
                self.problem = "bootstrap without WINRS_CONSOLEMODE_STDIN=FALSE"
            self.waits_for_stdin = True
        else:
            self.run(decoded)

    def add_stdin(self, data, end):
        self.stdin += data
        if end:
            self.stdin_done = True
            try:
                script = base64.b64decode(self.stdin, validate=False).decode("utf-8")
            except Exception as e:
                self.finish(b"", ("bootstrap: bad stdin: %s\r\n" % e).encode(), 254)
                return
            if self.problem:
                self.finish(b"", (self.problem + "\r\n").encode(), 253)
                return
            self.run(script)

    def encode(self, text):
        if self.codepage == 65001:
            return text.encode("utf-8")
        return text.encode("cp437", errors="replace")

    def run(self, script):
        self.script = script
        stdout, errors, exit_code, sleep = "", [], None, 0
        progress = False
        for raw in script.splitlines():
            line = raw.strip()
            m = re.match(r"^exit\s+(-?\d+)$", line, re.IGNORECASE)
            if m:
                exit_code = int(m.group(1))
                break
            m = re.match(r"""^Write-Output\s+(['"])(.*)\1$""", line)
            if m:
                stdout += m.group(2) + "\r\n"
                continue
            m = re.match(r"""^Write-Error\s+(['"])(.*)\1$""", line)
            if m:
                errors.append(m.group(2))
                continue
            m = re.match(r"^Start-Sleep\s+-Seconds\s+(\d+)$", line, re.IGNORECASE)
            if m:
                sleep += int(m.group(1))
                continue
            if line == "#peer:digest":
                digest = hashlib.sha256(script.encode("utf-8")).hexdigest()
                stdout += "sha256=%s chars=%d\r\n" % (digest, len(script))
            if line == "#peer:progress":
                progress = True
        if exit_code is None:
            exit_code = 1 if errors else 0
        stderr = b""
        if errors or progress:
            objs = ""
            if progress:
                objs += '<Obj S="progress" RefId="0"><MS><I64 N="SourceId">1</I64></MS></Obj>'
            objs += "".join(clixml_error(e) for e in errors)
            stderr = ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="%s">%s</Objs>' % (PS_NS, objs)).encode()
        self.ready_at = time.monotonic() + sleep
        self.finish(self.encode(stdout), stderr, exit_code, keep_ready=True)

    def finish(self, stdout, stderr, exit_code, keep_ready=False):
        if not keep_ready:
            self.ready_at = time.monotonic()
        size = 7 if len(stdout) < 400 else 32 * 1024
        self.chunks = [("stdout", stdout[i : i + size]) for i in range(0, len(stdout), size)]
        self.chunks += [("stderr", stderr[i : i + 64]) for i in range(0, len(stderr), 64)]
        self.exit_code = exit_code


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self):
        super().setup()
        with STATE["lock"]:
            STATE["connections"] += 1
            self.conn_id = STATE["connections"]
        self.ctx = None
        self.ctx_generation = -1

    def log_message(self, *args):
        pass

    # --- HTTP plumbing -------------------------------------------------------------------
    def reply(self, status, body=b"", content_type=None, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def challenge(self):
        offers = [("WWW-Authenticate", "Negotiate")]
        if self.server.tls:
            offers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        self.reply(401, headers=offers)

    def authenticated(self):
        return (
            self.ctx is not None
            and self.ctx.complete
            and self.ctx_generation == STATE["generation"]
        )

    def do_GET(self):
        self.read_body()
        if self.path == "/peer/log":
            with STATE["lock"]:
                body = json.dumps(STATE["log"]).encode()
            self.reply(200, body, "application/json")
        else:
            self.reply(404)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self):
        body = self.read_body()
        if self.path == "/peer/control":
            if body.strip() == b"drop-auth":
                with STATE["lock"]:
                    STATE["generation"] += 1
                log({"event": "drop-auth"})
            self.reply(200)
            return
        if self.path != "/wsman":
            self.reply(404)
            return
        if len(body) > self.server.max_envelope:
            log({"event": "too-large", "bytes": len(body), "conn": self.conn_id})
            self.reply(413)
            return
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            if not self.server.tls:
                self.reply(401, headers=[("WWW-Authenticate", "Negotiate")])
                return
            user = basic_ok(auth)
            log({"event": "auth", "scheme": "basic", "ok": bool(user), "conn": self.conn_id})
            if not user:
                self.challenge()
                return
            self.handle_soap(body, sealed=False)
            return
        if auth.lower().startswith("negotiate "):
            token = base64.b64decode(auth.split(" ", 1)[1])
            if self.ctx is None or self.ctx.complete or self.ctx_generation != STATE["generation"]:
                self.ctx = spnego.server(protocol="negotiate", channel_bindings=self.server.cbt)
                self.ctx_generation = STATE["generation"]
            try:
                out = self.ctx.step(token)
            except Exception as e:
                log({"event": "auth", "scheme": "negotiate", "ok": False, "conn": self.conn_id, "error": type(e).__name__})
                self.ctx = None
                self.challenge()
                return
            if not self.ctx.complete:
                self.reply(401, headers=[("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())])
                return
            log({
                "event": "auth",
                "scheme": "negotiate",
                "ok": True,
                "conn": self.conn_id,
                "protocol": self.ctx.negotiated_protocol,
                "spnego": token[:1] != b"N",
                "user": self.ctx.client_principal,
            })
            headers = []
            if out:
                headers.append(("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode()))
            if body:
                self.handle_soap(body, sealed=not self.server.tls, headers=headers)
            else:
                self.reply(200, headers=headers)
            return
        if not self.authenticated():
            log({"event": "unauthenticated", "conn": self.conn_id})
            self.challenge()
            return
        self.handle_soap(body, sealed=not self.server.tls)

    # --- MS-WSMV encryption --------------------------------------------------------------
    def unseal(self, body):
        ct = self.headers.get("Content-Type", "")
        if "multipart/encrypted" not in ct or PROTOCOL.decode() not in ct:
            raise ValueError("unencrypted message refused: Content-Type %r" % ct)
        m = re.match(
            rb"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
            rb"\tOriginalContent: type=application/soap\+xml;charset=UTF-8;Length=(\d+)\r\n"
            rb"--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
            body,
        )
        if not m:
            raise ValueError("malformed encrypted headers: %r" % body[:200])
        length = int(m.group(1))
        rest = body[m.end():]
        sig_len = struct.unpack("<I", rest[:4])[0]
        sealed = rest[4 + sig_len : 4 + sig_len + length]
        trailer = rest[4 + sig_len + length :]
        if trailer != b"--Encrypted Boundary--\r\n":
            raise ValueError("bad closing boundary: %r" % trailer[:60])
        plain = self.ctx.unwrap_winrm(rest[4 : 4 + sig_len], sealed)
        if len(plain) != length:
            raise ValueError("length mismatch")
        return plain

    def seal(self, plain):
        res = self.ctx.wrap_winrm(plain)
        return (
            b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n"
            b"--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n" % len(plain)
            + struct.pack("<I", len(res.header))
            + res.header
            + res.data
            + b"--Encrypted Boundary--\r\n"
        )

    def handle_soap(self, body, sealed, headers=()):
        headers = list(headers)
        if sealed:
            try:
                body = self.unseal(body)
            except Exception as e:
                log({"event": "bad-encryption", "conn": self.conn_id, "error": str(e)[:300]})
                self.ctx = None
                self.reply(400, b"", None, headers)
                return
        status, reply = self.dispatch(body)
        if sealed:
            self.reply(status, self.seal(reply), ENCRYPTED_CT, headers)
        else:
            self.reply(status, reply, "application/soap+xml;charset=UTF-8", headers)

    # --- WinRS ---------------------------------------------------------------------------
    def dispatch(self, body):
        root = ET.fromstring(body)
        header = root.find("s:Header", NS)
        action = header.findtext("a:Action", namespaces=NS)
        message_id = header.findtext("a:MessageID", namespaces=NS)
        resource = header.findtext("w:ResourceURI", namespaces=NS)
        selector = header.find("w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = selector.text if selector is not None else None
        options = {o.get("Name"): o.text for o in header.findall("w:OptionSet/w:Option", NS)}
        op_timeout = header.findtext("w:OperationTimeout", namespaces=NS) or "PT60S"
        secs = float(re.match(r"PT([\d.]+)S", op_timeout).group(1))
        name = action.rsplit("/", 1)[-1]
        entry = {
            "action": name,
            "conn": self.conn_id,
            "shell": shell_id,
            "options": options,
            "operation_timeout": op_timeout,
            "max_envelope": header.findtext("w:MaxEnvelopeSize", namespaces=NS),
            "to": header.findtext("a:To", namespaces=NS),
            "bytes": len(body),
        }
        if resource != RESOURCE_CMD:
            log(entry)
            return 500, fault(message_id, "w:InvalidResourceURI", 2150858778, "bad resource URI")
        with STATE["lock"]:
            shell = STATE["shells"].get(shell_id) if shell_id else None
        if name != "Create" and shell is None:
            entry["error"] = "shell not found"
            log(entry)
            return 500, fault(
                message_id,
                "w:InvalidSelectors",
                SHELL_NOT_FOUND,
                "The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server." % shell_id,
            )
        if name == "Create":
            shell_id = str(uuid.uuid4()).upper()
            codepage = int(options.get("WINRS_CODEPAGE") or 437)
            with STATE["lock"]:
                STATE["shells"][shell_id] = {"codepage": codepage, "commands": {}}
            entry["shell"] = shell_id
            log(entry)
            return 200, envelope(
                ACTION + "CreateResponse",
                message_id,
                "<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address><a:ReferenceParameters>"
                "<w:ResourceURI>%s</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ShellId\">%s</w:Selector>"
                "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>" % (RESOURCE_CMD, shell_id),
            )
        if name == "Delete":
            with STATE["lock"]:
                STATE["shells"].pop(shell_id, None)
            log(entry)
            return 200, envelope(ACTION + "DeleteResponse", message_id, "")
        if name == "Command":
            line = root.findtext("s:Body/rsp:CommandLine/rsp:Command", namespaces=NS) or ""
            cmd = Command(shell, line, options.get("WINRS_CONSOLEMODE_STDIN"))
            shell["commands"][cmd.id] = cmd
            entry["command"] = cmd.id
            entry["command_line_chars"] = len(line)
            entry["bootstrap"] = cmd.waits_for_stdin
            log(entry)
            return 200, envelope(
                SHELL_ACTION + "CommandResponse",
                message_id,
                "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>" % cmd.id,
            )
        if name == "Send":
            stream = root.find("s:Body/rsp:Send/rsp:Stream", NS)
            cmd = shell["commands"].get(stream.get("CommandId"))
            data = base64.b64decode(stream.text or "")
            entry["command"] = stream.get("CommandId")
            entry["end"] = stream.get("End") == "true"
            entry["data_bytes"] = len(data)
            log(entry)
            cmd.add_stdin(data, stream.get("End") == "true")
            return 200, envelope(SHELL_ACTION + "SendResponse", message_id, "<rsp:SendResponse/>")
        if name == "Receive":
            desired = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            cmd = shell["commands"].get(desired.get("CommandId"))
            entry["command"] = desired.get("CommandId")
            log(entry)
            cmd.receives += 1
            timed_out = fault(
                message_id,
                "w:TimedOut",
                TIMED_OUT,
                "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
            )
            if cmd.receives == 1:
                return 500, timed_out
            if cmd.ready_at is None or time.monotonic() < cmd.ready_at:
                wait = secs if cmd.ready_at is None else min(secs, cmd.ready_at - time.monotonic())
                time.sleep(max(wait, 0))
                if cmd.ready_at is None or time.monotonic() < cmd.ready_at:
                    return 500, timed_out
            streams = ""
            for stream_name, data in cmd.chunks[:3]:
                streams += '<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>' % (
                    stream_name,
                    cmd.id,
                    base64.b64encode(data).decode(),
                )
            cmd.chunks = cmd.chunks[3:]
            if cmd.chunks:
                state = '<rsp:CommandState CommandId="%s" State="%sCommandState/Running"/>' % (cmd.id, SHELL_ACTION)
            else:
                streams += '<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream>' % cmd.id
                streams += '<rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>' % cmd.id
                state = (
                    '<rsp:CommandState CommandId="%s" State="%sCommandState/Done"><rsp:ExitCode>%d</rsp:ExitCode></rsp:CommandState>'
                    % (cmd.id, SHELL_ACTION, cmd.exit_code)
                )
            return 200, envelope(
                SHELL_ACTION + "ReceiveResponse",
                message_id,
                "<rsp:ReceiveResponse>%s%s</rsp:ReceiveResponse>" % (streams, state),
            )
        if name == "Signal":
            signal = root.find("s:Body/rsp:Signal", NS)
            entry["command"] = signal.get("CommandId")
            entry["code"] = signal.findtext("rsp:Code", namespaces=NS)
            shell["commands"].pop(signal.get("CommandId"), None)
            log(entry)
            return 200, envelope(SHELL_ACTION + "SignalResponse", message_id, "<rsp:SignalResponse/>")
        log(entry)
        return 500, fault(message_id, "w:ActionNotSupported", 2150858783, "unsupported action " + action)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that drop connections (deadlines, TLS refusals) are part of the tests; anything
        # else is a bug in this server and goes to stderr, which the tests print on failure.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        traceback.print_exc(file=sys.stderr)


def channel_bindings(cert_file):
    """The tls-server-end-point binding (RFC 5929 4.1) of the certificate in cert_file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest.finalize())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--max-envelope-kb", type=int, default=150)
    parser.add_argument("--require-cbt", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("NTLM_USER_FILE"):
        sys.exit("NTLM_USER_FILE must name the credential file")
    server = Server(("127.0.0.1", 0), Handler)
    server.tls = bool(args.tls_cert)
    server.max_envelope = args.max_envelope_kb * 1024
    server.cbt = None
    if args.require_cbt:
        server.cbt = channel_bindings(args.tls_cert)
    if server.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
