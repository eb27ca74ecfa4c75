-- wrk: a form POST whose body is PREFIX followed by the next line of FILE, cycling through
-- the file; each thread starts at a different line. With a fixed Authorization header.
--   wrk … -s bench/wrk/post-each.lua URL -- AUTHORIZATION PREFIX FILE
-- e.g. -- "Basic Y2xpZW50OnNlY3JldA==" "token=" tokens.txt  (lines must be form-safe,
-- as JWS compact tokens are). Requests are formatted once, in init, not per request.

local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local requests, count, next_index

function init(args)
  local auth, prefix, file = args[1], args[2], args[3]
  if not auth or not prefix or not file then
    error("usage: wrk … -s post-each.lua URL -- AUTHORIZATION PREFIX FILE")
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  requests = {}
  for line in io.lines(file) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format(nil, nil, nil, prefix .. line)
    end
  end
  count = #requests
  if count == 0 then
    error(file .. " has no lines")
  end
  -- Spread the threads over the file: thread k starts k * 7919 lines in.
  next_index = ((thread_index or 0) * 7919) % count
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end
