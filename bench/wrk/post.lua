-- A fixed form POST: wrk -s post.lua <url> -- "<body>" "<Authorization header>"
function init(args)
  wrk.method = "POST"
  wrk.body = args[1]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = args[2]
end
