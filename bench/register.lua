-- POST /register with a fresh user on each request.
local counter = 0
local prefix = ""

function setup(thread)
  thread:set("thread_tag", tostring(math.random(1, 1e9)))
end

function init(args)
  prefix = "b" .. (args[1] or "0") .. "t" .. thread_tag .. "n"
end

function request()
  counter = counter + 1
  local name = prefix .. counter
  local body = '{"username":"' .. name .. '","email":"' .. name .. '@bench.example","password":"benchmark passphrase 42"}'
  return wrk.format("POST", "/register", { ["Content-Type"] = "application/json" }, body)
end
