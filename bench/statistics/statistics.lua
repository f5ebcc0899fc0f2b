-- wrk script: realistic statistics queries on the data of generate.sql.
--   wrk -t4 -c32 -d30s --latency -s statistics.lua http://127.0.0.1:9480 -- <kind> [exact] [tokens.lua]
-- kind: wf24h | wf7d | wf90d | tenant30d | dayseries | mixed (the five in equal shares)
--       | wf400d (400 days of the hottest workflow, workflow 0)
-- exact: "exact" appends exact=true (naive percentile_cont over the rows) to every query.
-- tokens.lua (jwt_tokens.py): a table of project uuid -> JWT of a caller of that tenant, sent
-- as the bearer token; without it the token is the project uuid (statistics_server).
-- Workflows are drawn with the popularity of the data (floor(1000 * u^2): hot ones often),
-- and ranges end at a random minute of the data's last day, so edges fall off the hour.

local kind, exact, tokens = "mixed", false, nil

local function uuid(prefix, n)
  return string.format("%s%012d", prefix, n)
end
local function workflow(n) return uuid("00000000-0000-0000-0000-", n) end
local function project(n) return uuid("00000000-0000-0000-0001-", n) end

-- 2026-01-01T00:00:00Z in Unix seconds; the data covers the 90 days before.
local data_end = 1767225600

local function rfc3339(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

function init(args)
  kind = args[1] or "mixed"
  exact = args[2] == "exact"
  if args[3] and args[3] ~= "" then tokens = dofile(args[3]) end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

local kinds = {"wf24h", "wf7d", "wf90d", "tenant30d", "dayseries"}

local function build(k)
  local w = math.floor(1000 * math.random() ^ 2)
  if k == "wf400d" then w = 0 end
  local tenant = w % 100
  local t_end = data_end - math.random(0, 86399)
  local q
  if k == "wf24h" then
    q = "workflow_id=" .. workflow(w) .. "&start_date=" .. rfc3339(t_end - 86400)
  elseif k == "wf7d" then
    q = "workflow_id=" .. workflow(w) .. "&start_date=" .. rfc3339(t_end - 7 * 86400)
  elseif k == "wf400d" then
    q = "workflow_id=" .. workflow(w) .. "&start_date=" .. rfc3339(t_end - 400 * 86400)
  elseif k == "wf90d" then
    q = "workflow_id=" .. workflow(w) .. "&start_date=" .. rfc3339(t_end - 89 * 86400)
  elseif k == "tenant30d" then
    local ids = {}
    for i = 0, 9 do ids[#ids + 1] = workflow(tenant + 100 * i) end
    q = "workflow_id=" .. table.concat(ids, ",") .. "&group_by=workflow&start_date=" ..
        rfc3339(t_end - 30 * 86400)
  else -- dayseries: 30 days by day, midnight to midnight
    local day_end = data_end - 86400 * math.random(0, 5)
    q = "workflow_id=" .. workflow(w) .. "&group_by=day&start_date=" ..
        rfc3339(day_end - 30 * 86400) .. "&end_date=" .. rfc3339(day_end)
  end
  if k ~= "dayseries" then q = q .. "&end_date=" .. rfc3339(t_end) end
  if exact then q = q .. "&exact=true" end
  return "/api/v1/statistics/execution-times?" .. q, project(tenant)
end

function request()
  local k = kind
  if k == "mixed" then k = kinds[math.random(#kinds)] end
  local path, tenant = build(k)
  local token = tokens and tokens[tenant] or tenant
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

local failures = 0
function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if failures <= 3 then io.stderr:write("status " .. status .. ": " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  io.write(string.format("p99.9_ms %.2f\n", latency:percentile(99.9) / 1000))
end
