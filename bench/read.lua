-- wrk script: GET /v1/devices/{id}, cycling through the ids in IDS_FILE (one per line).
-- Needs TOKEN (a devices:read JWT).
local token = os.getenv("TOKEN")
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  ids[#ids + 1] = line
end
local i = 0

function setup(thread)
  thread:set("offset", math.random(#ids))
end

function request()
  i = i + 1
  local id = ids[((i + (offset or 0)) % #ids) + 1]
  return wrk.format("GET", "/v1/devices/" .. id, { ["Authorization"] = "Bearer " .. token })
end
