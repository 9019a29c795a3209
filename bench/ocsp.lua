-- wrk script: POST the DER OCSP requests listed in OCSP_REQUEST_LIST (one per line, each made
-- by `openssl ocsp -reqout`, with a nonce), in turn, as relying parties checking many
-- certificates would, to OCSP_PATH, or to the responder path a line names after its file
-- ("<file> <path>": each request to its own CA's responder). Every request is signed afresh by
-- the responder (the nonce forbids reusing an answer).
local default_path = os.getenv("OCSP_PATH")
local requests = {}
for line in io.lines(os.getenv("OCSP_REQUEST_LIST")) do
  local file, path = line:match("^(%S+)%s+(%S+)$")
  file = file or line
  local f = assert(io.open(file, "rb"))
  requests[#requests + 1] = { body = f:read("*a"), path = path or default_path }
  f:close()
end
local i = 0

function setup(thread)
  thread:set("offset", math.random(#requests))
end

function request()
  i = i + 1
  local r = requests[((i + (offset or 0)) % #requests) + 1]
  return wrk.format("POST", r.path, { ["Content-Type"] = "application/ocsp-request" }, r.body)
end
