<?php
// php-fpm comparison point for `make bench`: the same answer as pipepool's hello.
header('Content-Type: text/plain; charset=utf-8');
header('X-Worker-Pid: ' . getmypid());
header('Content-Length: 33');
echo "hello world from another process\n";
