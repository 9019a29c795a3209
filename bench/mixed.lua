-- wrk script: 80 % GET /v1/devices/{id} (ids from IDS_FILE), 20 % RegisterDevice with a new
-- serial and key. Needs TOKEN (devices:read and devices:write), IDS_FILE, CSR_FILE, RUN_ID.
local token = os.getenv("TOKEN")
local run = os.getenv("RUN_ID") or tostring(os.time())
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  ids[#ids + 1] = line
end
local f = assert(io.open(os.getenv("CSR_FILE"), "r"))
local csr = f:read("*a"):gsub("\n", "\\n")
f:close()

local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function request()
  counter = counter + 1
  if counter % 5 == 0 then
    local serial = string.format("M%s-%d-%d", run, thread_id, counter)
    local body = string.format(
      '{"serial_number":"%s","model":"bench-x1","csr":"%s","labels":{"site":"bench"}}', serial, csr)
    return wrk.format("POST", "/v1/devices", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = serial,
    }, body)
  end
  local id = ids[(counter % #ids) + 1]
  return wrk.format("GET", "/v1/devices/" .. id, { ["Authorization"] = "Bearer " .. token })
end
