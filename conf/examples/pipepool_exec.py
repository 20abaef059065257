"""pipepool_exec: the program side of pipepool's --exec protocol.

Standard library only: copy this file beside your program.  PROTOCOL.md
describes the frames.  A handler of your own:

    import pipepool_exec

    def handle(req):
        return 200, [("Content-Type", "text/plain")], [b"hello\\n"]

    pipepool_exec.serve(handle)

or any WSGI application:

    pipepool_exec.serve_wsgi(app)

and run it with `pipepool --exec "python3 /path/to/myapp.py"`.  Each
pipepool worker starts one such program and hands it one request at a
time.  What the program prints on stdout or stderr goes to pipepool's log
line by line; it never reaches a client.
"""
import io
import os
import struct
import sys
import time
import traceback

VERSION = 1
READY, REQUEST, HEAD, BODY, END, ERROR = range(1, 7)
FRAME_MAX = 1 << 20          # the most payload pipepool takes in one frame
FLUSH_AT = 1 << 16           # frames are written in batches of about this

_HDR = struct.Struct("=IIQ")  # type, len, id: host byte order
_U32 = struct.Struct("=I")
_U32X2 = struct.Struct("=II")


class Error(Exception):
    """Raise Error("reason") in a handler: the client gets 500 with it."""


class ProtocolError(Exception):
    """pipepool sent something this module does not understand."""


class Request:
    """One request: params (str -> str, bytes as latin-1, as in WSGI),
    body (bytes), id and deadline (a time.monotonic() value)."""

    __slots__ = ("id", "params", "body", "deadline")

    def __init__(self, rid, params, body, deadline):
        self.id = rid
        self.params = params
        self.body = body
        self.deadline = deadline

    @property
    def method(self):
        return self.params.get("REQUEST_METHOD", "GET")

    @property
    def path(self):
        return self.params.get("PIPEPOOL_PATH", "/")

    @property
    def query(self):
        return self.params.get("QUERY_STRING", "")

    def time_left(self):
        """Seconds before pipepool gives the client 504."""
        return self.deadline - time.monotonic()


def _parse(rid, payload):
    deadline_ms, n = _U32X2.unpack_from(payload, 0)
    off, params = 8, {}
    for _ in range(n):
        nl, vl = _U32X2.unpack_from(payload, off)
        off += 8
        name = str(payload[off:off + nl], "latin-1")
        off += nl
        params[name] = str(payload[off:off + vl], "latin-1")
        off += vl
    if off > len(payload):
        raise ProtocolError("a REQUEST's params run past its end")
    return Request(rid, params, bytes(payload[off:]),
                   time.monotonic() + deadline_ms / 1000.0)


class Conn:
    """The two pipes to pipepool.  Answer frames are batched and written
    at END (or each FLUSH_AT bytes), so a small answer is one write."""

    def __init__(self, rfd, wfd):
        self._r = open(rfd, "rb", buffering=FLUSH_AT, closefd=False)
        self._w = wfd
        self._out = []
        self._outlen = 0

    @classmethod
    def from_env(cls):
        try:
            rfd = int(os.environ["PIPEPOOL_REQUEST_FD"])
            wfd = int(os.environ["PIPEPOOL_REPLY_FD"])
        except (KeyError, ValueError):
            sys.stderr.write("%s: run me under pipepool --exec (no "
                             "PIPEPOOL_REQUEST_FD / PIPEPOOL_REPLY_FD)\n"
                             % sys.argv[0])
            sys.exit(2)
        return cls(rfd, wfd)

    def _frame(self, typ, rid, payload=b""):
        self._out.append(_HDR.pack(typ, len(payload), rid))
        if payload:
            self._out.append(payload)
        self._outlen += 16 + len(payload)
        if self._outlen >= FLUSH_AT:
            self.flush()

    def flush(self):
        if not self._out:
            return
        n = os.writev(self._w, self._out)
        if n < self._outlen:
            rest = memoryview(b"".join(self._out))[n:]
            while rest:
                rest = rest[os.write(self._w, rest):]
        self._out, self._outlen = [], 0

    def ready(self):
        self._frame(READY, 0, _U32.pack(VERSION))
        self.flush()

    def requests(self):
        """Each request until pipepool closes the pipe (time to exit)."""
        while True:
            hdr = self._r.read(16)
            if not hdr:
                return
            if len(hdr) < 16:
                raise ProtocolError("the request pipe ended mid-frame")
            typ, n, rid = _HDR.unpack(hdr)
            if typ != REQUEST:
                raise ProtocolError("frame type %d, not REQUEST" % typ)
            payload = self._r.read(n)
            if len(payload) < n:
                raise ProtocolError("the request pipe ended mid-frame")
            yield _parse(rid, memoryview(payload))

    def head(self, rid, status, headers):
        parts = [_U32X2.pack(int(status), len(headers))]
        for name, value in headers:
            name = name.encode("latin-1") if isinstance(name, str) else name
            value = (value.encode("latin-1") if isinstance(value, str)
                     else bytes(value))
            parts += [_U32X2.pack(len(name), len(value)), name, value]
        self._frame(HEAD, rid, b"".join(parts))

    def body(self, rid, data):
        view = memoryview(data)
        for at in range(0, len(view), FRAME_MAX):
            self._frame(BODY, rid, view[at:at + FRAME_MAX])

    def end(self, rid):
        self._frame(END, rid)
        self.flush()

    def error(self, rid, why):
        self._frame(ERROR, rid, why.encode("utf-8", "replace")[:200])
        self.flush()


def _failed(conn, rid, exc):
    """An exception in the application: its traceback to the log, and
    ERROR for the client (the class's name only: a message may hold
    secrets; raise Error(reason) to choose the client's text)."""
    if isinstance(exc, Error):
        conn.error(rid, str(exc) or "error")
        return
    traceback.print_exc(file=sys.stderr)
    conn.error(rid, "the application raised %s" % type(exc).__name__)


def _start():
    # Prints go to pipepool's log: line by line, not at exit.
    sys.stdout.reconfigure(line_buffering=True)
    conn = Conn.from_env()
    conn.ready()
    return conn


def serve(handler):
    """Run handler(request) -> (status, [(name, value)], iterable of bytes)
    for each request until pipepool closes the pipe.  The body iterable is
    sent piece by piece as it yields, so an answer of any size streams."""
    conn = _start()
    for req in conn.requests():
        try:
            status, headers, body = handler(req)
            conn.head(req.id, status, headers)
            for piece in body:
                if piece:
                    conn.body(req.id, piece)
            conn.end(req.id)
        except Exception as exc:
            _failed(conn, req.id, exc)


def _environ(req):
    env = dict(req.params)
    env["SCRIPT_NAME"] = ""
    env["PATH_INFO"] = req.path
    env.setdefault("SERVER_NAME", "localhost")
    env.setdefault("SERVER_PORT", "80")
    env.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
    if req.body and not env.get("CONTENT_LENGTH"):
        env["CONTENT_LENGTH"] = str(len(req.body))
    https = env.get("HTTPS", "").lower() in ("on", "1")
    env["wsgi.version"] = (1, 0)
    env["wsgi.url_scheme"] = "https" if https else env.get(
        "REQUEST_SCHEME", "http")
    env["wsgi.input"] = io.BytesIO(req.body)
    env["wsgi.errors"] = sys.stderr
    env["wsgi.multithread"] = False
    env["wsgi.multiprocess"] = True
    env["wsgi.run_once"] = False
    env["pipepool.deadline"] = req.deadline
    env["pipepool.deadline_ms"] = str(int(req.time_left() * 1000))
    env["pipepool.worker"] = os.environ.get("PIPEPOOL_WORKER", "")
    return env


class _WsgiAnswer:
    """start_response and write() for one request (PEP 3333): HEAD goes
    out with the first non-empty piece of body, or at the end."""

    def __init__(self, conn, rid):
        self.conn, self.rid = conn, rid
        self.status = self.headers = None
        self.sent = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        if self.status is not None and exc_info is None:
            raise AssertionError("start_response called twice")
        self.status = int(status.split(None, 1)[0])
        self.headers = headers
        return self.write

    def send_head(self):
        if not self.sent:
            if self.status is None:
                raise AssertionError("no start_response before the body")
            self.conn.head(self.rid, self.status, self.headers)
            self.sent = True

    def write(self, data):
        if data:
            self.send_head()
            self.conn.body(self.rid, data)


def serve_wsgi(app):
    """Run a WSGI application (PEP 3333) until pipepool closes the pipe."""
    conn = _start()
    for req in conn.requests():
        ans = _WsgiAnswer(conn, req.id)
        result = None
        try:
            result = app(_environ(req), ans.start_response)
            for piece in result:
                ans.write(piece)
            ans.send_head()
            conn.end(req.id)
        except Exception as exc:
            _failed(conn, req.id, exc)
        finally:
            if hasattr(result, "close"):
                try:
                    result.close()
                except Exception:
                    traceback.print_exc(file=sys.stderr)
