#!/bin/sh
# No header block at all (tests/e2e/cgi.bats): 502.
echo "this is not a header"
echo
echo "body"
