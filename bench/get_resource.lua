-- GET /get-resource with a different user's token on each request.
local tokens = {}
local next_index = 1

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  next_index = math.random(#tokens)
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("GET", "/get-resource", { ["Authorization"] = "Bearer " .. tokens[next_index] })
end
