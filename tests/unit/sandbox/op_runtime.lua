-- Fails while loading, on line 4, inside a helper called from line 6.
local function check(t)
    local limits = t.limits
    return limits.max + 1
end
check({})
return {}
