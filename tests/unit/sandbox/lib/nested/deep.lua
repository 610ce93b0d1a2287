-- require "nested.deep": dots in the name map to directories.
local util = require "util"
return { quadruple = function(n) return util.double(util.double(n)) end }
