-- Grows a table until the memory cap refuses (string.rep is not offered).
local t = {}
local i = 0
while true do
    i = i + 1
    t[i] = { i, i, i, i }
end
