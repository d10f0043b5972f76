-- wrk script used by bench/http_bench.py: counts non-200 responses per thread and, when
-- the run ends, prints one machine-readable line "WRKJSON {...}" with the percentiles.
-- Headers (Cookie / Authorization) come from wrk's -H options.
-- Optional script argument (wrk ... -s wrk_report.lua URL -- PATHS_FILE): a file with one
-- request path per line; each thread cycles through them from its own offset, so a lookup
-- benchmark reads many different records instead of one cached row.

local threads = {}

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  paths = nil
  if args[1] then
    paths = {}
    for line in io.lines(args[1]) do
      if #line > 0 then table.insert(paths, line) end
    end
    position = (id or 0) * 7919 % #paths
  end
end

function request()
  if paths then
    position = position % #paths + 1
    return wrk.format(nil, paths[position])
  end
  return wrk.format()
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non200") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us": %d, "requests": %d, "bytes": %d, "non200": %d, ' ..
    '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d, ' ..
    '"lat_mean_us": %.1f, "lat_max_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d}\n',
    summary.duration, summary.requests, summary.bytes, bad,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
