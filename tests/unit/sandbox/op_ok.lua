-- A well-formed operator file: a chunk that returns a table and uses a lib.
local util = require "util"

return {
    name = "ok",
    spec = 1,
    twice = function(n) return util.double(n) end,
}
