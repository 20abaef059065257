-- wrk script: count responses by status code and print them at the end
-- as "codes 200=N 502=M ...", so tests can check every code seen.
local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	codes = {}
end

function response(status, headers, body)
	codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
	local total = {}
	for _, t in ipairs(threads) do
		local c = t:get("codes")
		for k, v in pairs(c) do
			total[k] = (total[k] or 0) + v
		end
	end
	local line = "codes"
	for k, v in pairs(total) do
		line = line .. " " .. k .. "=" .. v
	end
	print(line)
	print("max_latency_us " .. latency.max)
end
