#!/usr/bin/env python3
"""A fault-injecting HTTP reverse proxy in front of a plain (HTTP) test registry.

    fault_proxy.py --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT --rules rules.json \
        --port-file F --log L [--max-lifetime 3600]

Forwards every request to --upstream (and nowhere else), streaming bodies both
ways (Content-Length or chunked), passing Range / Content-Range through, and
rewriting absolute Location headers that point at the upstream so they point
at the proxy (the address the client used in its Host header).

Rules: a JSON list, tried in order for every request; the first rule that
matches and has firings left fires, otherwise the request passes through.
The file is re-read when its mtime changes (counters restart then).

  {"method": "GET",                       # optional; a method or a list of them
   "path": "^/v2/.+/blobs/sha256:",       # optional regex, re.search on path?query
   "header": {"Range": "^bytes="},        # optional: request header regexes (absent = no match)
   "skip": 0,                             # let this many matching requests through first
   "times": 1,                            # then fire this many times (-1: forever)
   "action": "status",                    # see below
   ...action parameters...}

Actions:
  status          answer without forwarding: "status" (503), optional "retry_after"
                  (Retry-After header), "headers" {..}, "body" (default: a distribution
                  error JSON). The request body is read and dropped first.
  delay           sleep "ms" milliseconds, then forward normally.
  reset           read the request, then reset the connection (RST) with no answer.
  reset_mid_body  forward; send the response headers and part of the body ("fraction",
                  default 0.5, or "bytes"), wait "linger_ms" (100) for the client to read
                  it, then reset the connection (RST).
  truncate        like reset_mid_body but closes cleanly (FIN): Content-Length
                  announces more than is sent.
  corrupt_body    forward; flip bytes of the response body (same length) so that a
                  digest check fails: "offset" (default: the middle), "count" (1).
Any rule may also carry "delay_ms" (sleep before its action).

Log (--log), one line per event, e.g.
  2026-01-01T00:00:00.123Z #7 GET /v2/x/blobs/sha256:ab.. range=bytes=0- -> 200 bytes=1234
  2026-01-01T00:00:00.456Z #8 FIRED rule=0 action=status GET /v2/x/blobs/sha256:ab..
  2026-01-01T00:00:00.456Z #8 GET /v2/x/blobs/sha256:ab.. -> 503 bytes=77 rule=0:status
"""

import argparse
import http.client
import http.server
import json
import os
import re
import socket
import struct
import threading
import time

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
CHUNK = 64 * 1024


def now_str():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class Rules:
    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.rules = []
        self.seen = []   # matching requests so far, per rule
        self.fired = []  # firings so far, per rule
        self.lock = threading.Lock()

    def _reload(self):
        if not self.path:
            return
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self.mtime:
            return
        self.mtime = mtime
        rules = []
        if mtime is not None:
            with open(self.path) as f:
                text = f.read()
            rules = json.loads(text) if text.strip() else []
        if not isinstance(rules, list):
            raise SystemExit("fault_proxy: rules must be a JSON list")
        for r in rules:
            r["_re"] = re.compile(r["path"]) if r.get("path") else None
            r["_hdr"] = {k: re.compile(v) for k, v in (r.get("header") or {}).items()}
            if r.get("action") not in ("status", "delay", "reset", "reset_mid_body", "truncate",
                                       "corrupt_body"):
                raise SystemExit("fault_proxy: unknown action %r" % r.get("action"))
        self.rules = rules
        self.seen = [0] * len(rules)
        self.fired = [0] * len(rules)

    def pick(self, method, path, headers):
        """The (index, rule) that fires for this request, or (None, None)."""
        with self.lock:
            self._reload()
            for i, r in enumerate(self.rules):
                m = r.get("method")
                if m and method not in ([m] if isinstance(m, str) else m):
                    continue
                if r["_re"] and not r["_re"].search(path):
                    continue
                if any(headers.get(k) is None or not rx.search(headers.get(k))
                       for k, rx in r["_hdr"].items()):
                    continue
                times = r.get("times", 1)
                if times >= 0 and self.fired[i] >= times:
                    continue
                self.seen[i] += 1
                if self.seen[i] <= r.get("skip", 0):
                    continue
                self.fired[i] += 1
                return i, r
            return None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dockless-fault-proxy"

    def log_message(self, fmt, *args):
        pass

    def log(self, text):
        srv = self.server
        with srv.log_lock:
            srv.logf.write("%s #%d %s\n" % (now_str(), self.req_id, text))

    # ------------------------------------------------------------ request body

    def request_body(self):
        """(headers to send upstream for the body, iterator of body pieces or None)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return {"Transfer-Encoding": "chunked"}, self._read_chunked()
        n = self.headers.get("Content-Length")
        if n is not None:
            n = int(n)
            return {"Content-Length": str(n)}, self._read_exact(n)
        return {}, None

    def _read_exact(self, n):
        while n > 0:
            piece = self.rfile.read(min(CHUNK, n))
            if not piece:
                raise ConnectionError("client closed the request body early")
            n -= len(piece)
            yield piece

    def _read_chunked(self):
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed a chunked body early")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield from self._read_exact(size)
            self.rfile.readline(65537)  # CRLF after the chunk

    # ------------------------------------------------------------ actions

    def reset_connection(self, linger_ms=0):
        try:
            self.wfile.flush()
        except Exception:
            pass
        if linger_ms:
            # RST drops what the kernel still buffers: give the client time to
            # read what was sent so it really sees "part of the body"
            time.sleep(linger_ms / 1000.0)
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()
        self.close_connection = True

    def answer_status(self, rule, body_iter):
        if body_iter is not None:
            for _ in body_iter:
                pass
        status = int(rule.get("status", 503))
        body = rule.get("body")
        if body is None:
            code = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(status, "UNKNOWN")
            body = json.dumps({"errors": [{"code": code, "message": "injected by fault_proxy",
                                           "detail": None}]})
        body = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        if rule.get("retry_after") is not None:
            self.send_header("Retry-After", str(rule["retry_after"]))
        for k, v in (rule.get("headers") or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status, len(body)

    # ------------------------------------------------------------ forwarding

    def rewrite_location(self, value):
        srv = self.server
        for prefix in srv.upstream_prefixes:
            if value.startswith(prefix):
                host = self.headers.get("Host") or srv.listen_addr
                return "http://" + host + value[len(prefix):]
        return value

    def handle_any(self):
        self.req_id = self.server.next_id()
        path = self.path
        hdrs = {k: v for k, v in self.headers.items()}
        rng = self.headers.get("Range")
        desc = "%s %s%s" % (self.command, path, (" range=" + rng) if rng else "")
        idx, rule = self.server.rules.pick(self.command, path, self.headers)
        action = rule.get("action") if rule else None
        tag = (" rule=%d:%s" % (idx, action)) if rule else ""
        if rule:
            self.log("FIRED rule=%d action=%s %s" % (idx, action, desc))
            if rule.get("delay_ms"):
                time.sleep(rule["delay_ms"] / 1000.0)
            if action == "delay":
                time.sleep(rule.get("ms", 1000) / 1000.0)
        body_headers, body_iter = self.request_body()

        if action == "status":
            status, n = self.answer_status(rule, body_iter)
            self.log("%s -> %d bytes=%d%s" % (desc, status, n, tag))
            return
        if action == "reset":
            if body_iter is not None:
                for _ in body_iter:
                    pass
            self.reset_connection()
            self.log("%s -> RESET before response%s" % (desc, tag))
            return

        # forward
        up = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port,
                                        timeout=300)
        try:
            up.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            up.putheader("Host", self.server.upstream)
            for k, v in self.headers.items():
                lk = k.lower()
                if lk in HOP_BY_HOP or lk in ("host", "content-length", "expect"):
                    continue
                up.putheader(k, v)
            for k, v in body_headers.items():
                up.putheader(k, v)
            up.endheaders()
            chunked = body_headers.get("Transfer-Encoding") == "chunked"
            if body_iter is not None:
                for piece in body_iter:
                    if chunked:
                        up.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    else:
                        up.send(piece)
                if chunked:
                    up.send(b"0\r\n\r\n")
            resp = up.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self.log("%s -> upstream error %r" % (desc, e))
            try:
                self.send_error(502, "upstream error")
            except OSError:
                pass
            up.close()
            return

        try:
            self.relay_response(resp, rule, desc, tag)
        finally:
            up.close()

    def relay_response(self, resp, rule, desc, tag):
        action = rule.get("action") if rule else None
        no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        length = resp.getheader("Content-Length")
        length = int(length) if length is not None and not resp.chunked else None

        body = None
        if not no_body and action in ("reset_mid_body", "truncate", "corrupt_body") and length is None:
            body = resp.read()  # unknown length: buffer to know where "half" is
            length = len(body)

        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in HOP_BY_HOP or lk == "content-length":
                continue
            if lk == "location":
                v = self.rewrite_location(v)
            self.send_header(k, v)
        stream_chunked = False
        if not no_body:
            if length is not None:
                self.send_header("Content-Length", str(length))
            else:
                self.send_header("Transfer-Encoding", "chunked")
                stream_chunked = True
        elif resp.getheader("Content-Length") is not None:
            self.send_header("Content-Length", resp.getheader("Content-Length"))
        self.end_headers()

        if no_body:
            self.log("%s -> %d%s" % (desc, resp.status, tag))
            return

        limit = None
        if action in ("reset_mid_body", "truncate"):
            if rule.get("bytes") is not None:
                limit = min(int(rule["bytes"]), length)
            else:
                limit = int(length * float(rule.get("fraction", 0.5)))
        flip_at = flip_n = None
        if action == "corrupt_body" and length:
            flip_at = int(rule.get("offset", length // 2))
            flip_n = int(rule.get("count", 1))

        sent = 0
        pieces = iter([body]) if body is not None else iter(lambda: resp.read(CHUNK), b"")
        try:
            for piece in pieces:
                if not piece:
                    break
                if flip_at is not None and sent <= flip_at + flip_n and flip_at < sent + len(piece):
                    b = bytearray(piece)
                    for j in range(max(flip_at, sent), min(flip_at + flip_n, sent + len(b))):
                        b[j - sent] ^= 0xFF
                    piece = bytes(b)
                if limit is not None and sent + len(piece) >= limit:
                    piece = piece[:limit - sent]
                    if piece:
                        self.wfile.write(piece)
                    sent += len(piece)
                    break
                if stream_chunked:
                    self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                else:
                    self.wfile.write(piece)
                sent += len(piece)
            if limit is not None:
                if action == "reset_mid_body":
                    self.reset_connection(int(rule.get("linger_ms", 100)))
                    self.log("%s -> %d bytes=%d/%d RESET%s" % (desc, resp.status, sent, length, tag))
                else:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_WR)
                    self.close_connection = True
                    self.log("%s -> %d bytes=%d/%d TRUNCATED%s" % (desc, resp.status, sent, length, tag))
                return
            if stream_chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as e:
            self.close_connection = True
            self.log("%s -> %d client went away after %d bytes (%r)%s" % (desc, resp.status, sent, e, tag))
            return
        extra = " CORRUPTED@%d" % flip_at if flip_at is not None else ""
        self.log("%s -> %d bytes=%d%s%s" % (desc, resp.status, sent, extra, tag))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout) as e:
            self.close_connection = True
            try:
                self.log("connection error %r" % (e,))
            except Exception:
                pass

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def next_id(self):
        with self.id_lock:
            self.counter += 1
            return self.counter


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--upstream", required=True, help="HOST:PORT of the plain registry")
    p.add_argument("--rules", help="rules JSON file (may be absent: pass-through)")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--max-lifetime", type=float, default=3600,
                   help="exit after this many seconds whatever happens (0: never)")
    args = p.parse_args()

    host, _, port = args.listen.rpartition(":")
    uhost, _, uport = args.upstream.rpartition(":")
    loop = ("127.0.0.1", "localhost", "::1")
    if host not in loop or uhost not in loop:
        raise SystemExit("fault_proxy: loopback only (listen %r, upstream %r)" % (host, uhost))

    rules = Rules(args.rules)
    rules._reload()  # fail early on a bad rules file
    srv = Server((host, int(port)), Handler)
    srv.counter = 0
    srv.id_lock = threading.Lock()
    srv.rules = rules
    srv.upstream = args.upstream
    srv.upstream_host = uhost
    srv.upstream_port = int(uport)
    srv.upstream_prefixes = ["http://%s:%s" % (h, uport) for h in (uhost, "127.0.0.1", "localhost")]
    srv.listen_addr = "%s:%d" % (host, srv.server_address[1])
    srv.logf = open(args.log, "a", buffering=1)
    srv.log_lock = threading.Lock()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, args.port_file)
    if args.max_lifetime > 0:
        t = threading.Timer(args.max_lifetime, lambda: os._exit(3))
        t.daemon = True
        t.start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
