-- A module that forgets "local": the locked global table refuses it.
helper = function() end
return {}
