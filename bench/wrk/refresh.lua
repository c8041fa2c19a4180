-- Chained refresh_token grants with rotation: every answer's new refresh token is used
-- for a later request, so each token is presented exactly once.
--   wrk -s refresh.lua <url> -- <tokens file> <tokens per thread> "<Authorization header>"
-- Each thread takes its own slice of the file: one token per connection, plus one that
-- wrk's check of the script draws before the run and never sends.
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local all = {}
  for line in io.lines(args[1]) do all[#all + 1] = line end
  local per = tonumber(args[2])
  queue = {}
  for i = 1, per do queue[#queue + 1] = all[id * per + i] end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = args[3]
end

function request()
  local token = table.remove(queue, 1) or "exhausted"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then queue[#queue + 1] = token end
end
