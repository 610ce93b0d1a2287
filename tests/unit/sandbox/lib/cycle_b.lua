return { a = require "cycle_a" }
