#!/usr/bin/env python3
"""A small token server for distribution 2.8's `auth: token` (test fixture).

Standard library only; the RS256 signature is computed here from the RSA key's
numbers (read once with the `openssl` CLI), so no python3-cryptography.

    token_server.py --listen 127.0.0.1:0 --port-file F --log L --acl acl.json \
        --key token-key.pem --cert token-cert.pem --issuer I --service S \
        [--expires-in 300] [--compensate-leeway] [--tls-cert C --tls-key K] \
        [--max-lifetime 3600]

Endpoints (any path; the realm is http(s)://HOST:PORT/token):
  GET  /token?service=S&scope=repository:NAME:pull,push&scope=...   (Basic auth optional)
       -> 200 {"token", "access_token", "expires_in", "issued_at"}
          (+ "refresh_token" when offline_token=true and the user authenticated)
       -> 401 on bad credentials (a missing Authorization header is "anonymous")
  POST /token  form: grant_type=password&username=..&password=..&service=..&scope=..
               or   grant_type=refresh_token&refresh_token=..&service=..&scope=..
       -> 200 {"access_token", "token", "expires_in", "issued_at", "scope", ["refresh_token"]}
       (the OAuth2 flow docker uses for an `identitytoken`)

The ACL (JSON, see README.md):
  {"users": {"NAME": {"password": "...", "refresh_token": "...",
                      "access": [{"repo": "GLOB", "actions": ["pull", "push"]}, ...]}},
   "anonymous": [{"repo": "public/*", "actions": ["pull"]}]}
For each requested repository the FIRST rule whose glob (fnmatch; `*` also
matches `/`) matches gives the allowed actions ("*" allows every action);
the token grants the intersection of requested and allowed actions, possibly
none (then the registry answers 401 insufficient_scope / 403).

Each request is logged to --log as one JSON line:
  {"time", "method", "path", "service", "scopes": [...], "account", "user",
   "grant_type", "status", "granted": [...], "expires_in"}
Passwords, refresh tokens and the Authorization header are never logged.
"""

import argparse
import base64
import fnmatch
import hashlib
import http.server
import json
import os
import re
import secrets
import ssl
import subprocess
import threading
import time
import urllib.parse

LEEWAY = 60  # distribution 2.8 accepts a token up to 60 s past its exp


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class RS256Signer:
    """RSASSA-PKCS1-v1_5 with SHA-256 from the key's modulus and private exponent."""

    DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

    def __init__(self, key_path):
        text = subprocess.run(
            ["openssl", "rsa", "-in", key_path, "-noout", "-text"],
            check=True, capture_output=True, text=True).stdout
        self.n = self._field(text, "modulus")
        self.d = self._field(text, "privateExponent")
        self.k = (self.n.bit_length() + 7) // 8

    @staticmethod
    def _field(text, name):
        m = re.search(r"^%s:\s*\n((?:\s+[0-9a-f:]+\n)+)" % name, text, re.M)
        if not m:
            raise SystemExit("token_server: cannot read %s from the key" % name)
        return int(re.sub(r"[\s:]", "", m.group(1)), 16)

    def sign(self, msg):
        t = self.DIGEST_INFO + hashlib.sha256(msg).digest()
        em = b"\x00\x01" + b"\xff" * (self.k - len(t) - 3) + b"\x00" + t
        s = pow(int.from_bytes(em, "big"), self.d, self.n)
        return s.to_bytes(self.k, "big")


def pem_to_der_b64(path):
    """The certificates of a PEM file, each as standard base64 DER (for x5c)."""
    text = open(path).read()
    return ["".join(block.split()) for block in re.findall(
        r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)]


class State:
    def __init__(self, args):
        self.args = args
        self.signer = RS256Signer(args.key)
        self.x5c = pem_to_der_b64(args.cert)
        if not self.x5c:
            raise SystemExit("token_server: no certificate in %s" % args.cert)
        self.acl_path = args.acl
        self.acl = None
        self.acl_mtime = None
        self.refresh_tokens = {}  # issued refresh token -> user
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1)

    def load_acl(self):
        with self.lock:
            mtime = os.stat(self.acl_path).st_mtime_ns
            if mtime != self.acl_mtime:
                with open(self.acl_path) as f:
                    self.acl = json.load(f)
                self.acl_mtime = mtime
            return self.acl

    def write_log(self, entry):
        with self.lock:
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")


def parse_scope(scope):
    """'repository:NAME:pull,push' -> (type, name, [actions]); NAME may hold ':' (a port)."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    typ, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])
    return typ, name, [a for a in actions.split(",") if a]


def allowed_actions(rules, name):
    for rule in rules or []:
        if fnmatch.fnmatchcase(name, rule.get("repo", "")):
            return rule.get("actions", [])
    return []


def grant(rules, scopes):
    access = []
    for scope in scopes:
        for one in scope.split(" "):  # a client may put several in one parameter
            parsed = parse_scope(one)
            if not parsed:
                continue
            typ, name, actions = parsed
            if typ != "repository":
                continue  # registry:catalog:* etc. are never granted here
            allowed = allowed_actions(rules, name)
            got = [a for a in actions if "*" in allowed or a in allowed]
            # one entry per repository, actions merged
            for entry in access:
                if entry["type"] == typ and entry["name"] == name:
                    entry["actions"] = sorted(set(entry["actions"]) | set(got))
                    break
            else:
                access.append({"type": typ, "name": name, "actions": sorted(set(got))})
    # a repository with no granted action is left out, as Docker's auth server does
    return [e for e in access if e["actions"]]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dockless-test-token-server"

    def log_message(self, fmt, *args):  # the JSON log is enough
        pass

    # --------------------------------------------------------------- helpers

    def reply(self, status, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def basic_auth(self):
        """None (no header), ("bad", None) or (user, password)."""
        h = self.headers.get("Authorization")
        if not h:
            return None
        if not h.lower().startswith("basic "):
            return ("bad", None)
        try:
            user, _, pw = base64.b64decode(h[6:].strip()).decode().partition(":")
        except Exception:
            return ("bad", None)
        return (user, pw)

    def check_user(self, acl, user, password):
        u = (acl.get("users") or {}).get(user)
        return u is not None and secrets.compare_digest(str(u.get("password", "")), password or "")

    def make_token(self, user, access):
        st = self.server.state
        a = st.args
        now = int(time.time())
        exp = now + a.expires_in
        if a.compensate_leeway:
            exp -= LEEWAY
        header = {"typ": "JWT", "alg": "RS256", "x5c": st.x5c}
        claims = {
            "iss": a.issuer,
            "sub": user or "",
            "aud": a.service,
            "exp": exp,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = st.signer.sign(signing_input.encode())
        return signing_input + "." + b64url(sig), now

    def issue(self, user, rules, scopes, log, refresh=None, oauth=False):
        access = grant(rules, scopes)
        token, now = self.make_token(user, access)
        a = self.server.state.args
        body = {
            "token": token,
            "access_token": token,
            "expires_in": a.expires_in,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        }
        if oauth:
            body["scope"] = " ".join(scopes)
        if refresh:
            body["refresh_token"] = refresh
        log["granted"] = ["%s:%s:%s" % (e["type"], e["name"], ",".join(e["actions"])) for e in access]
        log["expires_in"] = a.expires_in
        log["status"] = 200
        self.reply(200, body)

    # --------------------------------------------------------------- methods

    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        scopes = q.get("scope", [])
        log = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": "GET",
               "path": url.path, "service": (q.get("service") or [None])[0], "scopes": scopes,
               "account": (q.get("account") or [None])[0],
               "offline_token": (q.get("offline_token") or [None])[0],
               "client_id": (q.get("client_id") or [None])[0]}
        try:
            acl = st.load_acl()
            if log["service"] is not None and log["service"] != st.args.service:
                log["status"] = 400
                self.reply(400, {"errors": [{"code": "INVALID_SERVICE",
                                             "message": "unknown service %r" % log["service"]}]})
                return
            auth = self.basic_auth()
            if auth is None:
                log["user"] = None
                self.issue(None, acl.get("anonymous"), scopes, log)
                return
            user, pw = auth
            log["user"] = user
            if pw is None or not self.check_user(acl, user, pw):
                log["status"] = 401
                self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                             "message": "bad username or password"}]},
                           [("WWW-Authenticate", 'Basic realm="dockless-test-token"')])
                return
            refresh = None
            if log["offline_token"] == "true":
                refresh = secrets.token_hex(16)
                with st.lock:
                    st.refresh_tokens[refresh] = user
            self.issue(user, acl["users"][user].get("access"), scopes, log, refresh=refresh)
        finally:
            st.write_log(log)

    def do_POST(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode("utf-8", "replace"),
                                     keep_blank_values=True)
        f = lambda k: (form.get(k) or [None])[0]
        scopes = []
        for s in form.get("scope", []):
            scopes.extend(x for x in s.split(" ") if x)
        log = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": "POST",
               "path": url.path, "service": f("service"), "scopes": scopes,
               "grant_type": f("grant_type"), "client_id": f("client_id"),
               "access_type": f("access_type")}
        try:
            acl = st.load_acl()
            users = acl.get("users") or {}
            gt = f("grant_type")
            user = None
            if gt == "password":
                user = f("username")
                if not self.check_user(acl, user, f("password")):
                    user = None
            elif gt == "refresh_token":
                rt = f("refresh_token") or ""
                with st.lock:
                    user = st.refresh_tokens.get(rt)
                if user is None:
                    for name, u in users.items():
                        if u.get("refresh_token") and secrets.compare_digest(u["refresh_token"], rt):
                            user = name
            else:
                log["status"] = 400
                self.reply(400, {"error": "unsupported_grant_type"})
                return
            log["user"] = user
            if user is None:
                log["status"] = 401
                self.reply(401, {"error": "invalid_grant"})
                return
            refresh = None
            if gt == "password" and f("access_type") == "offline":
                refresh = secrets.token_hex(16)
                with st.lock:
                    st.refresh_tokens[refresh] = user
            elif gt == "refresh_token":
                refresh = f("refresh_token")
            self.issue(user, users[user].get("access"), scopes, log, refresh=refresh, oauth=True)
        finally:
            st.write_log(log)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--acl", required=True)
    p.add_argument("--key", required=True, help="RSA private key (PEM) that signs the tokens")
    p.add_argument("--cert", required=True, help="its certificate (PEM); goes into x5c")
    p.add_argument("--issuer", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--expires-in", type=int, default=300)
    p.add_argument("--compensate-leeway", action="store_true",
                   help="set exp = now + expires_in - 60 so that distribution 2.8 (60 s leeway) "
                        "rejects the token right when expires_in runs out")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--max-lifetime", type=float, default=3600,
                   help="exit after this many seconds whatever happens (0: never)")
    args = p.parse_args()

    host, _, port = args.listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        raise SystemExit("token_server: listens on loopback only, not %r" % host)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.state = State(args)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    if args.max_lifetime > 0:
        t = threading.Timer(args.max_lifetime, lambda: os._exit(3))
        t.daemon = True
        t.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
