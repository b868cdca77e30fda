-- POST /login (form) with the right password, rotating over the registered users.
local users = {}
local next_index = 1

function init(args)
  for line in io.lines(args[1]) do users[#users + 1] = line end
  next_index = math.random(#users)
end

function request()
  next_index = next_index % #users + 1
  local body = "username=" .. users[next_index] .. "&password=benchmark+passphrase+42"
  return wrk.format("POST", "/login", { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end
