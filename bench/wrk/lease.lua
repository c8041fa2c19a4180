-- Online leases: acquire (a new machine every request, so every answer takes a seat) or
-- heartbeat (round robin over leases acquired before the run).
--   wrk -s lease.lua <base url> -- acquire "<Authorization header>" <product> <run tag>
--   wrk -s lease.lua <base url> -- heartbeat "<Authorization header>" <lease ids file>
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  mode = args[1]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = args[2]
  counter = 0
  if mode == "acquire" then
    product = args[3]
    tag = args[4]
  else
    leases = {}
    for line in io.lines(args[3]) do leases[#leases + 1] = line end
  end
end

function request()
  counter = counter + 1
  if mode == "acquire" then
    local machine = string.format("bench-%s-%d-%d", tag, id, counter)
    local body = string.format(
      '{"product":"%s","version":"24.2","machine_id":"%s","machine_name":"PC %s","nonce":"nonce-%08d"}',
      product, machine, machine, counter)
    return wrk.format(nil, "/api/v1/leases", nil, body)
  end
  local lease = leases[(counter * 7 + id) % #leases + 1]
  return wrk.format(nil, "/api/v1/leases/" .. lease .. "/heartbeat", nil, string.format('{"nonce":"nonce-%08d"}', counter))
end
