#!/usr/bin/env python3
"""exec_drive: test an --exec program alone, without pipepool.

Starts PROGRAM the way pipepool's exec adapter does (requests on fd 3,
answers on fd 4, PIPEPOOL_* in its environment, stdin /dev/null, stdout
and stderr captured), speaks pipepool's side of the protocol
(conf/examples/PROTOCOL.md) with its checks (frame limit, request ids,
HEAD once and first), and runs named checks, each on a fresh program:

    tests/tools/exec_drive.py -- python3 conf/examples/hello_wsgi.py
    tests/tools/exec_drive.py --checks ready,hello,echo,eof -- ./hello_exec

It prints "ok NAME" or "FAIL NAME: why" per check and then
"N passed, M failed"; it exits 1 if any check failed.
"""
import argparse
import fcntl
import hashlib
import os
import select
import struct
import subprocess
import sys
import threading
import time

READY, REQUEST, HEAD, BODY, END, ERROR = range(1, 7)
NAMES = {READY: "READY", REQUEST: "REQUEST", HEAD: "HEAD", BODY: "BODY",
         END: "END", ERROR: "ERROR"}
FRAME_MAX = 1 << 20
HDR = struct.Struct("=IIQ")
U32X2 = struct.Struct("=II")
HELLO = b"hello world from another process\n"


class Malformed(Exception):
    """The program broke the protocol (pipepool would give 502)."""


class Gone(Exception):
    """The program closed its answer pipe (it exited)."""


def _move_high(fd):
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Program:
    def __init__(self, argv, worker=1, timeout=10.0):
        self.timeout = timeout
        req_r, req_w = [_move_high(f) for f in os.pipe()]
        rep_r, rep_w = [_move_high(f) for f in os.pipe()]
        os.dup2(req_r, 3)
        os.dup2(rep_w, 4)
        env = dict(os.environ, PIPEPOOL_REQUEST_FD="3", PIPEPOOL_REPLY_FD="4",
                   PIPEPOOL_WORKER=str(worker))
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(3, 4), env=env)
        finally:
            for fd in (3, 4, req_r, rep_w):
                os.close(fd)
        self.req, self.rep = req_w, rep_r
        os.set_blocking(self.req, False)
        self.buf = b""
        self.id = 0
        self.out, self.err = [], []
        self._readers = [self._reader(self.proc.stdout, self.out),
                         self._reader(self.proc.stderr, self.err)]

    @staticmethod
    def _reader(stream, lines):
        def run():
            for line in stream:
                lines.append(line.rstrip(b"\n"))
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def _fill(self, until):
        left = until - time.monotonic()
        if left <= 0 or not select.select([self.rep], [], [], left)[0]:
            raise Malformed("no frame within %.0f s" % self.timeout)
        data = os.read(self.rep, 1 << 20)
        if not data:
            raise Gone("end of the answer pipe%s" %
                       (" mid-frame" if self.buf else ""))
        self.buf += data

    def frame(self, types):
        """The next frame: (type, payload), checked as pipepool does."""
        until = time.monotonic() + self.timeout
        while len(self.buf) < 16:
            self._fill(until)
        typ, n, rid = HDR.unpack_from(self.buf)
        if typ not in types:
            raise Malformed("malformed frame (type %d)" % typ)
        if n > FRAME_MAX:
            raise Malformed("frame of %d bytes, over 1 MiB" % n)
        if rid != self.id:
            raise Malformed("frame for request %d, not %d" % (rid, self.id))
        while len(self.buf) < 16 + n:
            self._fill(until)
        payload, self.buf = self.buf[16:16 + n], self.buf[16 + n:]
        return typ, payload

    def ready(self):
        typ, p = self.frame({READY})
        if len(p) != 4 or struct.unpack("=I", p)[0] != 1:
            raise Malformed("READY payload %r" % p)

    def send(self, method, path, query="", params=None, body=b"",
             deadline_ms=30000):
        self.id += 1
        fields = [("REQUEST_METHOD", method), ("PIPEPOOL_PATH", path),
                  ("QUERY_STRING", query)] + list((params or {}).items())
        parts = [U32X2.pack(deadline_ms, len(fields))]
        for name, value in fields:
            n, v = name.encode("latin-1"), value.encode("latin-1")
            parts += [U32X2.pack(len(n), len(v)), n, v]
        payload = b"".join(parts) + body
        data = memoryview(HDR.pack(REQUEST, len(payload), self.id) + payload)
        until = time.monotonic() + self.timeout
        while data:
            left = until - time.monotonic()
            if left <= 0 or not select.select([], [self.req], [], left)[1]:
                raise Malformed("the program does not read its request")
            data = data[os.write(self.req, data):]

    def answer(self, keep_body=True):
        """Frames to END or ERROR: a dict of status, headers, body (or
        its sha256 and length), error, and the count of BODY frames."""
        ans = {"status": None, "headers": [], "error": None, "frames": 0,
               "length": 0}
        sha, body = hashlib.sha256(), []
        while True:
            typ, p = self.frame({HEAD, BODY, END, ERROR})
            if typ == HEAD:
                if ans["status"] is not None or ans["frames"]:
                    raise Malformed("HEAD twice or after BODY")
                ans["status"], ans["headers"] = parse_head(p)
            elif typ == BODY:
                ans["frames"] += 1
                ans["length"] += len(p)
                sha.update(p)
                if keep_body:
                    body.append(p)
            elif typ == END:
                if p:
                    raise Malformed("END with a payload")
                break
            else:
                ans["error"] = p.decode("utf-8", "replace")
                break
        ans["sha256"] = sha.hexdigest()
        ans["body"] = b"".join(body) if keep_body else None
        return ans

    def request(self, *args, keep_body=True, **kw):
        self.send(*args, **kw)
        return self.answer(keep_body=keep_body)

    def close(self, wait=1.0):
        """Close the request pipe (pipepool's fini) and reap: the exit
        status, or None if it had to be killed."""
        if self.req is not None:
            os.close(self.req)
            self.req = None
        try:
            return self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            if self.rep is not None:
                os.close(self.rep)
                self.rep = None
            for t in self._readers:
                t.join(1)


def parse_head(p):
    status, n = U32X2.unpack_from(p)
    off, headers = 8, []
    for _ in range(n):
        nl, vl = U32X2.unpack_from(p, off)
        off += 8
        if nl == 0 or off + nl + vl > len(p):
            raise Malformed("a HEAD's header runs past its end")
        headers.append((p[off:off + nl].decode("latin-1"),
                        p[off + nl:off + nl + vl].decode("latin-1")))
        off += nl + vl
    if off != len(p) or not 100 <= status <= 599:
        raise Malformed("HEAD status %d, %d bytes left" % (status,
                                                           len(p) - off))
    return status, headers


def header(ans, name):
    for k, v in ans["headers"]:
        if k.lower() == name.lower():
            return v
    return None


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def big_sha(mb):
    """The sha256 of hello_wsgi's /big?mb=N."""
    piece = bytes(range(256)) * 256
    sha = hashlib.sha256()
    for i in range(mb * 16):
        sha.update(struct.pack("<Q", i) + piece[8:])
    return sha.hexdigest()


# ---- the checks: each gets a fresh, READY program ----

def check_hello(p, opts):
    a = p.request("GET", "/")
    expect(a["status"] in (None, 200), "status %s" % a["status"])
    expect(a["body"] == HELLO, "body %r" % a["body"][:80])
    return "200, %d bytes" % len(a["body"])


def check_sequence(p, opts):
    for i in range(50):
        a = p.request("GET", "/n%d" % i, query="i=%d" % i)
        expect(a["body"] == HELLO, "request %d: body %r" % (i, a["body"]))
    return "50 requests, ids 1..50"


def check_echo(p, opts):
    frames = []
    for size in (1 << 20, (3 << 20) + 5):
        body = os.urandom(size)
        a = p.request("POST", "/echo", params={
            "CONTENT_TYPE": "application/octet-stream",
            "CONTENT_LENGTH": str(len(body))}, body=body)
        expect(a["status"] in (None, 200), "status %s" % a["status"])
        expect(a["body"] == body, "%d bytes: body differs (%d back)" % (
            size, a["length"]))
        frames.append(str(a["frames"]))
    return "1 MiB and 3 MiB + 5 of random bytes back in %s frames" % \
        " and ".join(frames)


def check_echo0(p, opts):
    a = p.request("POST", "/echo", params={"CONTENT_LENGTH": "0"})
    expect(a["body"] == b"", "body %r" % a["body"])
    return "empty body back"


def check_headers(p, opts):
    a = p.request("GET", "/headers", query="status=203",
                  params={"HTTP_X_TEST": "abc \x01\xff", "REMOTE_ADDR": "1.2.3.4"})
    expect(a["status"] == 203, "status %s" % a["status"])
    expect(header(a, "X-App") == "exec", "headers %r" % a["headers"])
    text = a["body"].decode("latin-1")
    for want in ("HTTP_X_TEST=abc \x01\xff\n", "REMOTE_ADDR=1.2.3.4\n",
                 "PATH_INFO=/headers\n", "REQUEST_METHOD=GET\n",
                 "QUERY_STRING=status=203\n"):
        expect(want in text, "no %r in %r" % (want, text[:300]))
    return "params in, status 203 and X-App out"


def check_big(p, opts):
    mb = opts.big_mb
    t = time.monotonic()
    a = p.request("GET", "/big", query="mb=%d" % mb, keep_body=False)
    dt = time.monotonic() - t
    expect(a["length"] == mb << 20, "%d bytes" % a["length"])
    expect(a["sha256"] == big_sha(mb), "sha256 differs")
    return "%d MiB in %d frames, sha256 ok, %.0f MiB/s" % (
        mb, a["frames"], mb / dt)


def check_error(p, opts):
    a = p.request("GET", "/error")
    err = a["error"]
    expect(err and "RuntimeError" in err, "error %r" % err)
    a = p.request("GET", "/")
    expect(a["body"] == HELLO, "no hello after the error")
    return "ERROR %r, then served again" % err


def check_print(p, opts):
    a = p.request("GET", "/print")
    expect(a["body"] == b"printed\n", "body %r" % a["body"])
    time.sleep(0.2)
    expect(b"a stray print on stdout" in p.out, "stdout %r" % p.out)
    expect(b"a stray print on stderr" in p.err, "stderr %r" % p.err)
    return "prints on stdout and stderr, not in the answer"


def check_garbage(p, opts):
    p.send("GET", "/garbage")
    try:
        p.answer()
    except Malformed as e:
        expect("type 9" in str(e), str(e))
        return "detected: %s" % e
    raise AssertionError("no malformed frame")


def check_crash(p, opts):
    p.send("GET", "/crash")
    try:
        p.answer()
    except Gone:
        st = p.proc.wait(5)
        expect(st == 3, "exit status %s" % st)
        return "the answer pipe ended; exit status 3"
    raise AssertionError("answered")


def check_eof(p, opts):
    p.request("GET", "/")
    st = p.close(wait=1.0)
    expect(st == 0, "exit status %s after the request pipe closed" % st)
    return "exit 0 within 1 s of the request pipe's end"


CHECKS = {
    "hello": check_hello, "sequence": check_sequence, "echo": check_echo,
    "echo0": check_echo0, "headers": check_headers, "big": check_big,
    "error": check_error, "print": check_print, "garbage": check_garbage,
    "crash": check_crash, "eof": check_eof,
}


def run(name, argv, opts):
    p = None
    try:
        p = Program(argv)
        p.ready()
        if name == "ready":
            return True, "READY, protocol version 1"
        return True, CHECKS[name](p, opts)
    except Exception as e:
        why = "%s: %s" % (type(e).__name__, e)
        if p is not None and p.err:
            why += " (stderr: %s)" % b" | ".join(p.err[-3:]).decode(
                "utf-8", "replace")
        return False, why
    finally:
        if p is not None:
            p.close(wait=0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checks", default="ready," + ",".join(CHECKS),
                    help="comma-separated, from: ready," + ",".join(CHECKS))
    ap.add_argument("--big-mb", type=int, default=100)
    ap.add_argument("argv", nargs="+", help="-- PROGRAM [ARGS...]")
    opts = ap.parse_args()
    passed = failed = 0
    for name in opts.checks.split(","):
        if name != "ready" and name not in CHECKS:
            sys.exit("unknown check %r" % name)
        ok, what = run(name, opts.argv, opts)
        print("%s %s: %s" % ("ok  " if ok else "FAIL", name, what),
              flush=True)
        passed, failed = passed + ok, failed + (not ok)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
