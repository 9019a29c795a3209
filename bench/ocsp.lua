-- wrk script: POST OCSP_PATH (public, no token) with the DER OCSP requests listed in
-- OCSP_REQUEST_LIST (one file per line, each made by `openssl ocsp -reqout`, with a nonce), in
-- turn, as relying parties checking many certificates would. Every request is signed afresh by
-- the responder (the nonce forbids reusing an answer).
local path = os.getenv("OCSP_PATH")
local bodies = {}
for file in io.lines(os.getenv("OCSP_REQUEST_LIST")) do
  local f = assert(io.open(file, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
local i = 0

function setup(thread)
  thread:set("offset", math.random(#bodies))
end

function request()
  i = i + 1
  local body = bodies[((i + (offset or 0)) % #bodies) + 1]
  return wrk.format("POST", path, { ["Content-Type"] = "application/ocsp-request" }, body)
end
