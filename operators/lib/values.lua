-- Field values as x.emit accepts them: prices and sizes, and `ts` as
-- integer milliseconds since the epoch from the exchanges' time forms.

local M = {}

-- Once per field of every ticker: a local, not a read through the sandbox's
-- read-only globals.
local type = type

-- A price/size as the engine accepts it: a string kept as written (the
-- engine checks it is a decimal number), a number passed through; anything
-- else (null, table, boolean) counts as absent. Never tostring a price.
function M.dec(v)
  local t = type(v)
  if t == "string" or t == "number" then return v end
  return nil
end

-- The same, except that "" also counts as absent: for feeds that send an
-- empty string for a side they do not have (an emit that leaves a field
-- out keeps the stored value; "" would be refused as malformed).
function M.dec_nonempty(v)
  if v == "" then return nil end
  return M.dec(v)
end

-- An exchange's time in ms since the epoch as a JSON number (lua-cjson
-- decodes every number as a float) -> the integer ts; nil for anything else.
function M.ms(v)
  if type(v) ~= "number" then return nil end
  return math.tointeger(v)
end

-- Seconds since the epoch, a JSON number or a decimal string ("1710328241",
-- "1641343699.596") -> integer ms, the fraction truncated; nil for anything
-- else. A string is read digit by digit, so no float rounding creeps in.
function M.seconds_ms(v)
  if type(v) == "number" then
    return v == v and v > -1e15 and v < 1e15 and math.floor(v * 1000) or nil
  end
  if type(v) ~= "string" or #v > 30 then return nil end
  local s, frac = v:match("^(%d+)%.?(%d*)$")
  if not s or #s > 15 then return nil end
  return tonumber(s) * 1000 + tonumber((frac .. "000"):sub(1, 3))
end

return M
