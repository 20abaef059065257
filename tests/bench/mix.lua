-- wrk script for the memory soak of `make bench`: GET / (hello), and every
-- 8th request a POST /echo with a 64 KiB binary body, so the large-buffer
-- paths run as well as the common one.
local bytes = {}
for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
local body = string.rep(table.concat(bytes), 256)
local n = 0

request = function()
    n = n + 1
    if n % 8 == 0 then
        return wrk.format("POST", "/echo",
            { ["Content-Type"] = "application/octet-stream" }, body)
    end
    return wrk.format("GET", "/")
end
