-- A library module: require "util" returns this table, loaded once per state.
local util = {}

function util.double(n)
    return n * 2
end

util.loaded_at = os.clock()
return util
