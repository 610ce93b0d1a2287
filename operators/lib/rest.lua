-- REST requests of the operators: GET (or POST) x.op.rest .. path and decode
-- the JSON answer, every failure turned into one clear error() naming the
-- request (`what`), so that the engine shows it as the operator's reason.
--
-- What differs per exchange is passed in `opts`:
--   query, headers, timeout  as for x.http.get;
--   body                     as for x.http.post (post_json only);
--   detail                   the field of a refusal's JSON body that explains
--                            it (Binance {"code":-1121,"msg":"Invalid
--                            symbol."}: "msg"; Coinbase {"message":
--                            "NotFound"}: "message"); appended to the
--                            "HTTP <status>" error. Without it the body of a
--                            refusal is not even decoded.

local M = {}

-- The longest part of an exchange's own text copied into an error.
local MAX_DETAIL = 200

local function request(x, method, path, what, opts)
  opts = opts or {}
  local status, body = method(x.op.rest .. path,
    { query = opts.query, headers = opts.headers, body = opts.body, timeout = opts.timeout })
  if not status then
    error(what .. ": " .. tostring(body), 0) -- "network: ...", "timeout: ...", ...
  end
  if type(body) ~= "string" then
    error(what .. ": HTTP " .. tostring(status) .. " without a body", 0)
  end
  if status ~= 200 then
    local msg
    if opts.detail then
      local ok, doc = pcall(x.json.decode, body)
      msg = ok and type(doc) == "table" and type(doc[opts.detail]) == "string" and doc[opts.detail]
    end
    error(what .. ": HTTP " .. tostring(status)
      .. (msg and (" (" .. msg:sub(1, MAX_DETAIL) .. ")") or ""), 0)
  end
  local ok, doc = pcall(x.json.decode, body)
  if not ok then
    error(what .. ": invalid JSON", 0)
  end
  return doc
end

function M.get_json(x, path, what, opts)
  return request(x, x.http.get, path, what, opts)
end

-- For the few public endpoints that want a POST (KuCoin's token handshake).
function M.post_json(x, path, what, opts)
  return request(x, x.http.post, path, what, opts)
end

-- An answer that has to be a JSON array, returned as it is; anything else is
-- an error naming `what`. lua-cjson decodes [] and {} alike, so an empty
-- table passes.
function M.array(doc, what)
  if type(doc) ~= "table" or (doc[1] == nil and next(doc) ~= nil) then
    error(what .. ": expected an array", 0)
  end
  return doc
end

return M
