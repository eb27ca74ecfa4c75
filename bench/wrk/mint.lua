-- wrk: POST a token request and keep every access_token issued, thread k appending to
-- OUT.k (one token a line), to feed post-each.lua. Not a measurement: the response hook
-- costs wrk time.
--   wrk … -s bench/wrk/mint.lua URL -- AUTHORIZATION BODY OUT

local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local out, kept

function init(args)
  local auth, body, prefix = args[1], args[2], args[3]
  if not auth or not body or not prefix then
    error("usage: wrk … -s mint.lua URL -- AUTHORIZATION BODY OUT")
  end
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Authorization"] = auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  out = assert(io.open(prefix .. "." .. (thread_index or 0), "w"))
  -- Flushed only by hand, every 1000 lines, so the file never ends in half a token.
  out:setvbuf("full", 4 * 1024 * 1024)
  kept = 0
end

function response(status, headers, body)
  if status ~= 200 then return end
  local token = body:match('"access_token":"([^"]+)"')
  if token then
    out:write(token, "\n")
    kept = kept + 1
    if kept % 1000 == 0 then out:flush() end
  end
end
