-- POST /oauth/token grant_type=refresh_token, chaining each session's
-- refresh tokens: every answer's successor goes back into the queue, so each
-- token is presented once (no grace-window repeats, no reuse detection).
-- More sessions than connections, so a connection never waits for a token.
local queue = {}
local first, last = 1, 0

function init(args)
  for line in io.lines(args[1]) do
    last = last + 1
    queue[last] = line
  end
end

function request()
  local token = queue[first]
  queue[first] = nil
  first = first + 1
  return wrk.format("POST", "/oauth/token", { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local successor = body:match('"refresh_token":"([^"]+)"')
  if successor then
    last = last + 1
    queue[last] = successor
  end
end
