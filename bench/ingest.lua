-- wrk script: POST /api/v1/runs with BATCH fresh run events per request.
-- wrk -t2 -c32 -d20s -s bench/ingest.lua http://127.0.0.1:9470 -- <token> <batch>
local token, batch = "bench", 100
local hex = "0123456789abcdef"
local counter = 0

local function uuid(n)
  -- Unique per thread and request: a counter in the last group, random elsewhere.
  local t = {}
  for i = 1, 8 do local r = math.random(1, 16); t[#t + 1] = hex:sub(r, r) end
  t[#t + 1] = "-"
  for i = 1, 4 do local r = math.random(1, 16); t[#t + 1] = hex:sub(r, r) end
  t[#t + 1] = "-4"
  for i = 1, 3 do local r = math.random(1, 16); t[#t + 1] = hex:sub(r, r) end
  t[#t + 1] = "-8"
  for i = 1, 3 do local r = math.random(1, 16); t[#t + 1] = hex:sub(r, r) end
  t[#t + 1] = string.format("-%012x", n)
  return table.concat(t)
end

local tenants, workflows = {}, {}

function init(args)
  token = args[1] or token
  batch = tonumber(args[2] or batch)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  for i = 1, 20 do tenants[i] = uuid(i) end
  for i = 1, 200 do workflows[i] = uuid(1000 + i) end
end

function request()
  local items = {}
  for i = 1, batch do
    counter = counter + 1
    items[i] = string.format(
      '{"run_id":"%s","workflow_id":"%s","project_id":"%s","status":"%s","duration_ms":%.1f}',
      uuid(counter), workflows[math.random(1, #workflows)], tenants[math.random(1, #tenants)],
      math.random() < 0.95 and "succeeded" or "failed", math.exp(math.random() * 10))
  end
  return wrk.format("POST", "/api/v1/runs",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token},
    "[" .. table.concat(items, ",") .. "]")
end

local errors = 0
function response(status, headers, body)
  if status ~= 202 then errors = errors + 1 end
end

-- done() runs in wrk's main Lua state, which never sees init's arguments: the batch size
-- comes from the environment (BENCH_BATCH) there.
function done(summary, latency, requests)
  local b = tonumber(os.getenv("BENCH_BATCH") or "1")
  local secs = summary.duration / 1e6
  io.write(string.format("batch %d: %.0f requests/s, %.0f runs/s, non-2xx %d, p50 %.2f ms, p99 %.2f ms\n",
    b, summary.requests / secs, summary.requests * b / secs, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
