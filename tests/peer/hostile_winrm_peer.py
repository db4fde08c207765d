#!/usr/bin/env python3
"""A hostile WinRM listener: each attack a broken or malicious server can make on a client.

Not the project's simulator: a small separate server. Every listener plays one attack:

  --listen ATTACK=IP:PORT   (repeatable; PORT 0 picks a free port)

Attacks (all over HTTP, the way WinRM 2.0 listens on 5985):
  cleartext500  knows no password: answers the NTLM NEGOTIATE with a fixed challenge, takes any
                AUTHENTICATE without checking it, then answers every request with HTTP 500 in
                clear text, its body 20,000 elements deep (140 KB: within the envelope size)
  deep          logs on for real, then seals a Create reply nested 20,000 elements deep
  attrs         ... a Create reply with 12,000 attributes on one tag
  namespaces    ... a Create reply with 8,000 namespace declarations on one tag
  huge          ... a Create reply of 500 MB, sent in chunks (no length announced)
  bigfault      ... a sealed SOAP fault whose reason is 20 MB
  escapes       ... a sealed fault whose reason holds terminal escape sequences (window
                title, clear screen, a carriage return and a fake result line) and 100 KB
  escapes-output ... a command whose stdout holds the same escape sequences, then Done
  endless       ... a command whose Receives never end: 100 KB of stdout each, Running forever
  running       ... a command whose Receives answer Running at once, without output
  timedout      ... a command whose Receives answer the OperationTimeout fault at once

Logons use pyspnego's acceptor with the credentials of NTLM_USER_FILE (DOMAIN:USER:PASSWORD
lines); the security context belongs to the TCP connection. GET /peer/stats (no logon) returns
{"requests": N, "receives": N} for the listener.

It prints one line per listener, `ATTACK IP PORT`, then `ready`.
"""

import argparse
import base64
import json
import re
import struct
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego

NS_S = "http://www.w3.org/2003/05/soap-envelope"
NS_A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_W = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ENCRYPTED_CT = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'
DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
TIMED_OUT = 2150858793
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[H\r[   1.00s] wsus-eu-paris: done in 1 s\u009b31m"


def envelope(relates_to, body):
    return (
        '<s:Envelope xmlns:s="%s" xmlns:a="%s" xmlns:w="%s" xmlns:rsp="%s"><s:Header>'
        "<a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Response</a:Action>"
        "<a:MessageID>uuid:%s</a:MessageID><a:RelatesTo>%s</a:RelatesTo></s:Header>"
        "<s:Body>%s</s:Body></s:Envelope>"
        % (NS_S, NS_A, NS_W, NS_RSP, str(uuid.uuid4()).upper(), relates_to, body)
    ).encode("utf-8")


def fault(relates_to, code, reason):
    return envelope(
        relates_to,
        '<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:InternalError</s:Value>'
        '</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail>'
        '<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="%d" '
        'Machine="hostile"/></s:Detail></s:Fault>' % (reason, code),
    )


def deep(levels):
    return "<a>" * levels + "</a>" * levels


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self):
        super().setup()
        self.ctx = None
        self.commands = {}

    def log_message(self, *args):
        pass

    def count(self, key):
        with self.server.lock:
            self.server.stats[key] += 1

    def reply(self, status, body=b"", content_type=None, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/peer/stats":
            with self.server.lock:
                body = json.dumps(self.server.stats).encode()
            self.reply(200, body, "application/json")
        else:
            self.reply(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.count("requests")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("negotiate "):
            self.logon(base64.b64decode(auth.split(" ", 1)[1]))
            return
        if self.server.attack == "cleartext500":
            # The client's request is sealed; this server cannot read it and does not care.
            self.reply(500, self.server.deep_body, "application/soap+xml;charset=UTF-8")
            return
        if self.ctx is None or not self.ctx.complete:
            self.reply(401, headers=[("WWW-Authenticate", "Negotiate")])
            return
        plain = self.unseal(body)
        self.answer(plain)

    def logon(self, token):
        if self.ctx is None or self.ctx.complete:
            self.ctx = spnego.server(protocol="negotiate")
        if self.server.attack == "cleartext500" and b"NTLMSSP\x00\x03\x00\x00\x00" in token:
            # Any AUTHENTICATE will do: this server knows no password (and keeps the response,
            # made for its fixed challenge, for an offline guess).
            self.reply(200)
            return
        try:
            out = self.ctx.step(token)
        except Exception:
            self.ctx = None
            self.reply(401, headers=[("WWW-Authenticate", "Negotiate")])
            return
        if self.server.attack == "cleartext500" and out:
            # The same server challenge for everyone (bytes 24..32 of the CHALLENGE message).
            at = out.find(b"NTLMSSP\x00\x02\x00\x00\x00")
            if at >= 0:
                out = out[: at + 24] + b"\x11\x22\x33\x44\x55\x66\x77\x88" + out[at + 32 :]
        headers = []
        if out:
            headers.append(("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode()))
        self.reply(200 if self.ctx.complete else 401, headers=headers)

    # --- MS-WSMV sealing ---------------------------------------------------------------------
    def unseal(self, body):
        m = re.search(rb"Length=(\d+)\r\n", body)
        length = int(m.group(1))
        start = body.index(b"application/octet-stream\r\n") + len(b"application/octet-stream\r\n")
        sig_len = struct.unpack("<I", body[start : start + 4])[0]
        header = body[start + 4 : start + 4 + sig_len]
        sealed = body[start + 4 + sig_len : start + 4 + sig_len + length]
        return self.ctx.unwrap_winrm(header, sealed)

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

    def sealed_reply(self, status, plain):
        self.reply(status, self.seal(plain), ENCRYPTED_CT)

    # --- WinRS, as far as each attack needs it -------------------------------------------------
    def answer(self, plain):
        text = plain.decode("utf-8", errors="replace")
        action = re.search(r"<a:Action[^>]*>([^<]*)</a:Action>", text).group(1)
        relates = re.search(r"<a:MessageID>([^<]*)</a:MessageID>", text).group(1)
        attack = self.server.attack
        verb = action.rsplit("/", 1)[-1]
        if verb == "Create":
            if attack == "deep":
                return self.sealed_reply(200, envelope(relates, deep(20000)))
            if attack == "attrs":
                attrs = "".join(' a%d=""' % i for i in range(12000))
                return self.sealed_reply(200, envelope(relates, "<x%s/>" % attrs))
            if attack == "namespaces":
                decls = "".join(' xmlns:p%d="u"' % i for i in range(8000))
                return self.sealed_reply(200, envelope(relates, "<x%s/>" % decls))
            if attack == "huge":
                return self.huge()
            if attack == "bigfault":
                return self.sealed_reply(500, fault(relates, 5, "x" * (20 * 1024 * 1024)))
            if attack == "escapes":
                return self.sealed_reply(500, fault(relates, 5, ESCAPES + "y" * 100000))
            shell = str(uuid.uuid4()).upper()
            return self.sealed_reply(
                200,
                envelope(
                    relates,
                    '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet>' % shell,
                ),
            )
        if verb == "Command":
            command = str(uuid.uuid4()).upper()
            body = "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>" % command
            return self.sealed_reply(200, envelope(relates, body))
        if verb == "Receive":
            self.count("receives")
            command = re.search(r'CommandId="([^"]*)"', text).group(1)
            if attack == "timedout":
                return self.sealed_reply(500, fault(relates, TIMED_OUT, "The operation timed out."))
            streams, state = "", RUNNING
            if attack == "endless":
                streams = '<rsp:Stream Name="stdout" CommandId="%s">%s</rsp:Stream>' % (
                    command,
                    self.server.chunk_b64,
                )
            if attack == "escapes-output":
                data = base64.b64encode((ESCAPES + "\r\n").encode("utf-8")).decode()
                streams = '<rsp:Stream Name="stdout" CommandId="%s">%s</rsp:Stream>' % (command, data)
                state = DONE
            exit_code = "<rsp:ExitCode>0</rsp:ExitCode>" if state == DONE else ""
            body = (
                '<rsp:ReceiveResponse>%s<rsp:CommandState CommandId="%s" State="%s">%s</rsp:CommandState>'
                "</rsp:ReceiveResponse>" % (streams, command, state, exit_code)
            )
            return self.sealed_reply(200, envelope(relates, body))
        # Send, Signal, Delete: an empty answer is enough.
        return self.sealed_reply(200, envelope(relates, ""))

    def huge(self):
        self.send_response(200)
        self.send_header("Content-Type", ENCRYPTED_CT)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"\0" * (1024 * 1024)
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        try:
            for _ in range(500):
                self.wfile.write(frame)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", action="append", required=True, metavar="ATTACK=IP:PORT")
    args = parser.parse_args()
    chunk_b64 = base64.b64encode(b"A" * (100 * 1024)).decode()
    deep_body = deep(20000).encode()
    servers = []
    for item in args.listen:
        attack, _, where = item.partition("=")
        ip, _, port = where.rpartition(":")
        server = Server((ip, int(port)), Handler)
        server.attack = attack
        server.lock = threading.Lock()
        server.stats = {"requests": 0, "receives": 0}
        server.chunk_b64 = chunk_b64
        server.deep_body = deep_body
        servers.append(server)
        print(attack, ip, server.server_address[1], flush=True)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
