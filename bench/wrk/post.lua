-- wrk: the same form POST on every request, with a fixed Authorization header.
--   wrk … -s bench/wrk/post.lua URL -- AUTHORIZATION BODY
-- e.g. -- "Basic Y2xpZW50OnNlY3JldA==" "grant_type=client_credentials"
-- No request() function, so wrk builds the request once and keeps the hot loop in C.

function init(args)
  local auth, body = args[1], args[2]
  if not auth or not body then
    error("usage: wrk … -s post.lua URL -- AUTHORIZATION BODY")
  end
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Authorization"] = auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
