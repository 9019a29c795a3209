-- wrk script: RegisterDevice with a distinct serial number and Idempotency-Key per request.
-- Needs TOKEN (a devices:write JWT) and CSR_FILE (a PEM CSR) in the environment; RUN_ID
-- keeps serials distinct across runs against the same database. With REPLAY_LIMIT=n, each
-- thread cycles through its first n serials and keys again: run it with the RUN_ID of an
-- earlier run to measure idempotent replays.
local token = os.getenv("TOKEN")
local run = os.getenv("RUN_ID") or tostring(os.time())
local f = assert(io.open(os.getenv("CSR_FILE"), "r"))
local csr = f:read("*a"):gsub("\n", "\\n")
f:close()

local counter = 0
local thread_id = 0
local replay_limit = tonumber(os.getenv("REPLAY_LIMIT") or "")

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function request()
  counter = counter + 1
  if replay_limit then
    counter = ((counter - 1) % replay_limit) + 1
  end
  local serial = string.format("B%s-%d-%d", run, thread_id, counter)
  local body = string.format(
    '{"serial_number":"%s","model":"bench-x1","csr":"%s","labels":{"site":"bench"}}', serial, csr)
  return wrk.format("POST", "/v1/devices", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = serial,
  }, body)
end

-- Non-2xx answers are counted by wrk as "Non-2xx or 3xx responses".
