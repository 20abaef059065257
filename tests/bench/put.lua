-- wrk script for `make bench` (store figures): PUT /kv/b<run>-<thread>-<n>
-- with a fixed body, every request a key not written before.
-- Script arguments (after `--`): RUN, a tag that keeps keys of different
-- rounds into the same DB apart (default "0"), and the body size in bytes
-- (default 100).
local threads = 0

-- runs in wrk's main Lua state, once per thread: number the threads
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

local prefix = "/kv/b0-"
local n = 0

function init(args)
    local run = args[1] or "0"
    local size = tonumber(args[2] or "100")
    prefix = "/kv/b" .. run .. "-" .. tostring(tid or 0) .. "-"
    wrk.body = string.rep("v", size)
end

wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/octet-stream"

function request()
    n = n + 1
    return wrk.format(nil, prefix .. n)
end
