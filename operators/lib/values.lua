-- Field values as x.emit accepts them.

local M = {}

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

return M
