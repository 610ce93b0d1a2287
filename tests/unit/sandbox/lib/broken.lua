-- A module with a syntax error on line 3.
local t = {
  a = = 1,
}
return t
