-- A module without a return value: require gives true, like stock Lua.
local _ = 1
