-- wrk script: POST Alertmanager API v2 alerts (what Prometheus sends) to /api/v2/alerts.
--
--   wrk -t2 -c32 -d10s --latency -s bench/alerts.lua http://127.0.0.1:PORT/api/v2/alerts -- BATCH MODE RUN [KEY]
--
-- BATCH  alerts per request (Prometheus sends at most 64; 1 and 100 are the benchmark's cases)
-- MODE   "new": every request carries label sets never sent before (every alert is real work);
--        "resend": every request repeats one of a fixed pool of POOL alerts, as Prometheus re-sends all
--        firing alerts every resend-delay (1 minute by default)
-- RUN    a word put in every alert's labels, so separate runs never collide
-- KEY    sent as "Authorization: Bearer KEY" when given (Tocsin's integration key; Alertmanager ignores it)

POOL = 5000
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

local function alert(tag, id)
  return '{"labels":{"alertname":"BenchInstanceSlow","job":"bench","severity":"warning","run":"' .. run
    .. '","instance":"' .. tag .. "-" .. id .. '"},"annotations":{"summary":"instance ' .. tag .. "-" .. id
    .. ' is slow"},"startsAt":"' .. starts .. '","endsAt":"' .. ends
    .. '","generatorURL":"http://prometheus.bench:9090/graph?g0.expr=up"}'
end

local function body(tag, first, count)
  local parts = {}
  for i = 0, count - 1 do
    parts[#parts + 1] = alert(tag, first + i)
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

function init(args)
  batch = tonumber(args[1] or "1")
  mode = args[2] or "new"
  run = args[3] or "bench"
  local key = args[4]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
  starts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  ends = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 3600) -- firing: endsAt in the future
  counter = 0
  if mode == "resend" then
    pool = {}
    for b = 0, math.floor(POOL / batch) - 1 do
      pool[#pool + 1] = wrk.format(nil, nil, nil, body("pool", b * batch, batch))
    end
    counter = (tid - 1) * math.floor(#pool / 2) -- threads start at different places in the pool
  end
end

function request()
  counter = counter + 1
  if mode == "resend" then
    return pool[counter % #pool + 1]
  end
  return wrk.format(nil, nil, nil, body("t" .. tid, counter * batch, batch))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-SUMMARY {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout))
end
