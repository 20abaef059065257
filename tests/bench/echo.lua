-- wrk script for `make bench`: POST /echo with a binary body (default 65536
-- bytes, every byte value 0..255 in turn; BENCH_BODY_BYTES overrides).
local size = tonumber(os.getenv("BENCH_BODY_BYTES") or "65536")
local bytes = {}
for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
local block = table.concat(bytes)
local body = string.rep(block, math.floor(size / 256)) .. block:sub(1, size % 256)

wrk.method = "POST"
wrk.path = "/echo"
wrk.body = body
wrk.headers["Content-Type"] = "application/octet-stream"
