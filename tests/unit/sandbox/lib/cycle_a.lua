-- cycle_a requires cycle_b, which requires cycle_a again.
return { b = require "cycle_b" }
