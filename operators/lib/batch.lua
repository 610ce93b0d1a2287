-- Working through a list in parts: chunks (symbols per socket, names per
-- request), and one call per item whose failures are collected into one
-- error instead of stopping at the first. Also a list as a set, for looking
-- items up while going through an answer that lists far more.

local M = {}

-- {item = true} for every item of the list.
function M.set(list)
  local set = {}
  for _, item in ipairs(list) do set[item] = true end
  return set
end

-- Consecutive slices of at most n items each (new tables, in order).
function M.chunks(list, n)
  local out = {}
  for i = 1, #list, n do
    local part = {}
    for j = i, math.min(i + n - 1, #list) do part[#part + 1] = list[j] end
    out[#out + 1] = part
  end
  return out
end

-- fn(item) for every item, each under pcall: one item failing must not hold
-- back the others' data. Returns the non-nil results in order, and, when
-- any call failed, the error to raise: the first failure's text, with
-- " (and N more <noun> failed)" when there were more. The caller emits the
-- results first, then raises it (error(err, 0)).
function M.each(items, fn, noun)
  local results, failed, first = {}, 0, nil
  for _, item in ipairs(items) do
    local ok, r = pcall(fn, item)
    if not ok then
      failed, first = failed + 1, first or tostring(r)
    elseif r ~= nil then
      results[#results + 1] = r
    end
  end
  local err = first and (first .. (failed > 1 and (" (and " .. (failed - 1) .. " more " .. noun .. " failed)") or ""))
  return results, err
end

-- each() for calls that return one ticker: emits the tickers of the calls
-- that succeeded as one batch, then raises the collected error, if any.
function M.emit_each(x, items, fn, noun)
  local list, err = M.each(items, fn, noun)
  if #list > 0 then x.emit_many(list) end
  if err then error(err, 0) end
end

return M
