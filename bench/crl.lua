-- wrk script: GET CRL_PATH (public, no token) with If-None-Match: ETAG, as a relying party
-- that already holds the current CRL re-checks it. Every answer should be 304; anything else
-- is counted and printed as "Unexpected responses: N" (wrk's own "Non-2xx or 3xx" count
-- would include the 304s).
local path = os.getenv("CRL_PATH")
local etag = os.getenv("ETAG")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init()
  unexpected = 0
end

function request()
  return wrk.format("GET", path, { ["If-None-Match"] = etag })
end

function response(status)
  if status ~= 304 then
    unexpected = unexpected + 1
  end
end

function done()
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("unexpected")
  end
  print("Unexpected responses: " .. total)
end
