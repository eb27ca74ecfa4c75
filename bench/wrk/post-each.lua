-- wrk: a form POST whose body is PREFIX followed by the next line of a file, with a fixed
-- Authorization header; thread k reads FILES.k (as mint.lua writes them), one line per
-- request. At the end of its file a thread starts it again, and done() prints
-- "post-each: files restarted N times" — then lines were sent more than once.
--   wrk … -s bench/wrk/post-each.lua URL -- AUTHORIZATION PREFIX FILES
-- e.g. -- "Basic Y2xpZW50OnNlY3JldA==" "token=" /tmp/tokens  (lines must be form-safe, as
-- JWS compact tokens are).

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local prefix, path, file

function init(args)
  local auth
  auth, prefix, path = args[1], args[2], args[3]
  if not auth or not prefix or not path then
    error("usage: wrk … -s post-each.lua URL -- AUTHORIZATION PREFIX FILES")
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  path = path .. "." .. (thread_index or 0)
  file = assert(io.open(path, "r"))
  restarts = 0
end

function request()
  local line = file:read("*l")
  if not line or #line == 0 then
    file:close()
    file = assert(io.open(path, "r"))
    restarts = restarts + 1
    line = file:read("*l")
    if not line then error(path .. " is empty") end
  end
  return wrk.format(nil, nil, nil, prefix .. line)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("restarts") or 0)
  end
  io.write("post-each: files restarted ", total, " times\n")
end
