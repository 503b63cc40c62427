-- wrk script: POST unique signed Databricks events (from gen_unique.py) at a paced rate.
-- usage: REQS=/path/reqs.tsv DELAY_MS=10 wrk -t1 -c1 -d10s -s latency_post.lua http://127.0.0.1:PORT
-- Each connection waits DELAY_MS between requests: with -c1 and 10 ms that is ~100 events/s.
local reqs = {}
local i = 0
local path = os.getenv("URL_PATH") or "/hooks/databricks"
local delay_ms = tonumber(os.getenv("DELAY_MS") or "10")
init = function(args)
  for line in io.lines(os.getenv("REQS")) do
    local tab = line:find("\t", 1, true)
    reqs[#reqs + 1] = wrk.format("POST", path,
      { ["Content-Type"] = "application/json", ["X-Databricks-Signature"] = line:sub(1, tab - 1) },
      line:sub(tab + 1))
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
delay = function()
  return delay_ms
end
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d non2xx3xx=%d errors=%d\n",
    summary.requests, summary.requests / secs, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
