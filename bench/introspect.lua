-- POST /oauth/introspect by a resource server (HTTP Basic client
-- credentials), a different user's access token on each request; the
-- requests are formatted once, in init.
local requests = {}
local next_index = 1

function init(args)
  local credentials = args[2]
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("POST", "/oauth/introspect", {
      ["Authorization"] = "Basic " .. credentials,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "token=" .. line)
  end
  next_index = math.random(#requests)
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
