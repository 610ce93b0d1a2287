-- Forgets "local" on line 2.
counter = 0
return {}
