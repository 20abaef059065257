#!/usr/bin/env python3
# A Python CGI (tests/e2e/cgi.bats): /echo sends its body back, /big?N
# writes N MiB of a fixed pattern (tests/cgi/pattern.py makes the same).
import os
import sys

out = sys.stdout.buffer
path = os.environ.get("PATH_INFO", "")
if path == "/echo":
    n = int(os.environ.get("CONTENT_LENGTH") or 0)
    body = sys.stdin.buffer.read(n)
    out.write(b"Content-Type: application/octet-stream\r\n")
    out.write(b"X-Got: %d\r\n\r\n" % len(body))
    out.write(body)
elif path == "/big":
    mib = int(os.environ.get("QUERY_STRING") or 1)
    out.write(b"Content-Type: application/octet-stream\n\n")
    block = bytes(range(256)) * 4096
    for _ in range(mib):
        out.write(block)
else:
    out.write(b"Content-Type: text/html\n\n<p>python %s %s</p>\n" % (
        os.environ.get("REQUEST_METHOD", "").encode(),
        os.environ.get("QUERY_STRING", "").encode()))
out.flush()
