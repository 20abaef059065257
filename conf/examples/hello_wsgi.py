"""hello_wsgi: a plain WSGI application, hello and /echo, plus the routes
pipepool's tests use.  The same file runs unchanged under

    pipepool --exec "python3 conf/examples/hello_wsgi.py"
    gunicorn --chdir conf/examples hello_wsgi:app
    uwsgi --plugin python3 --wsgi-file conf/examples/hello_wsgi.py

Routes: GET or HEAD of any path: hello; POST /echo: the body back;
/headers[?status=N]: the request's params as text, with X-App: exec;
/big?mb=N: N MiB streamed in 64 KiB pieces (piece i is its number as 8
little-endian bytes, then bytes 8..65535 of 0..255 repeated); /error: an
exception (500); /print: a line on stdout and one on stderr; /pid: the
process's pid; /crash: exits at once; /hang: never answers; /garbage: a
malformed frame (under pipepool only).
"""
import os
import struct
import sys
import time

HELLO = b"hello world from another process\n"
TEXT = "text/plain; charset=utf-8"
PIECE = 65536
PATTERN = bytes(range(256)) * (PIECE // 256)


def text(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", TEXT),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def query(environ, name, default):
    for part in environ.get("QUERY_STRING", "").split("&"):
        key, _, value = part.partition("=")
        if key == name and value:
            return value
    return default


def echo(environ, start_response):
    n = environ.get("CONTENT_LENGTH") or ""
    body = environ["wsgi.input"].read(int(n)) if n else \
        environ["wsgi.input"].read()
    ctype = environ.get("CONTENT_TYPE") or "application/octet-stream"
    start_response("200 OK", [("Content-Type", ctype),
                              ("Content-Length", str(len(body)))])
    return [body]


def headers(environ, start_response):
    lines = sorted("%s=%s\n" % (k, v) for k, v in environ.items()
                   if isinstance(v, str))
    status = int(query(environ, "status", "200"))
    return text(start_response, "".join(lines).encode("latin-1"),
                "%d Custom" % status, [("X-App", "exec")])


def big(environ, start_response):
    mb = min(int(query(environ, "mb", "1")), 1024)
    n = mb * (1 << 20) // PIECE
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(n * PIECE))])
    return (struct.pack("<Q", i) + PATTERN[8:] for i in range(n))


def garbage(environ, start_response):
    fd = os.environ.get("PIPEPOOL_REPLY_FD")
    if not fd:
        return text(start_response, b"not under pipepool\n",
                    "500 Internal Server Error")
    os.write(int(fd), struct.pack("=IIQ", 9, 0, 0))
    return text(start_response, b"too late\n")


def stray(environ, start_response):
    print("a stray print on stdout")
    print("a stray print on stderr", file=sys.stderr)
    return text(start_response, b"printed\n")


def hang(environ, start_response):
    while True:
        time.sleep(3600)


def crash(environ, start_response):
    os._exit(3)


def fail(environ, start_response):
    raise RuntimeError("hello_wsgi fails on purpose")


ROUTES = {
    "/headers": headers, "/big": big, "/garbage": garbage, "/print": stray,
    "/hang": hang, "/crash": crash, "/error": fail,
    "/pid": lambda e, s: text(s, b"%d\n" % os.getpid()),
}


def app(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    method = environ["REQUEST_METHOD"]
    if path == "/echo":
        if method == "POST":
            return echo(environ, start_response)
        return text(start_response, b"use POST\n", "405 Method Not Allowed",
                    [("Allow", "POST")])
    route = ROUTES.get(path)
    if route is not None:
        return route(environ, start_response)
    if method not in ("GET", "HEAD"):
        return text(start_response, b"method not allowed\n",
                    "405 Method Not Allowed", [("Allow", "GET, HEAD")])
    return text(start_response, HELLO)


application = app  # uWSGI's default name

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pipepool_exec
    pipepool_exec.serve_wsgi(app)
