-- Readers of x.op.options (the operator's own `options`, which the config may
-- override with anything): a bad value is logged and replaced by the
-- default, never an error, so that a typo in the config does not stop the
-- operator.

local M = {}

-- x.op.options as a table ({} when absent or not a table).
function M.all(x)
  return type(x.op.options) == "table" and x.op.options or {}
end

-- A number option (strings like "5" count), dflt when unset. With lo/hi, a
-- value outside lo..hi is warned about and replaced by dflt.
function M.number(x, name, dflt, lo, hi)
  local v = tonumber(M.all(x)[name]) or dflt
  if lo and (v < lo or v > hi) then
    x.log.warn("options." .. name .. " must be within " .. lo .. ".." .. hi .. "; using " .. dflt)
    v = dflt
  end
  return v
end

-- An integer option >= lo (and <= hi when given), dflt when unset; a
-- fraction or a value out of range is warned about and replaced by dflt.
function M.integer(x, name, dflt, lo, hi)
  local v = math.tointeger(tonumber(M.all(x)[name]) or dflt)
  if not v or v < lo or (hi and v > hi) then
    local want = hi and ("an integer " .. lo .. ".." .. hi)
      or (lo == 1 and "a positive integer" or ("an integer >= " .. lo))
    x.log.warn("options." .. name .. " must be " .. want .. "; using " .. dflt)
    v = dflt
  end
  return v
end

-- A switch that is on unless set to false (nil, absent: on).
function M.flag(x, name)
  return M.all(x)[name] ~= false
end

return M
