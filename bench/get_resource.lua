-- GET /get-resource with a different user's token on each request. The
-- requests are formatted once, in init: wrk shares the machine with the
-- server, so its per-request Lua work would be taken from the server's share.
local requests = {}
local next_index = 1

function init(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("GET", "/get-resource", { ["Authorization"] = "Bearer " .. line })
  end
  next_index = math.random(#requests)
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
