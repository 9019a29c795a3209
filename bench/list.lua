-- wrk script: GET /v1/devices (first pages of 50, alternating a status filter).
-- Needs TOKEN (a devices:read JWT).
local token = os.getenv("TOKEN")
local paths = { "/v1/devices?limit=50", "/v1/devices?limit=50&status=provisioned" }
local i = 0

function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], { ["Authorization"] = "Bearer " .. token })
end
