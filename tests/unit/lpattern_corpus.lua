--[[
Hand-written differential cases for the budgeted pattern matcher.

test_lpattern.c loads this file in a stock Lua state and in one whose
string.find/match/gmatch/gsub are lpattern's, runs every case in both and
compares the complete results. Each case is {op, subject, pattern, init, a4,
a5}: op is find, match, gmatch, gsub, mfind (s:find) or mgsub (s:gsub); for
find a4 is the plain flag, for gsub a4 is the replacement ("<table>" and
"<function>" stand for the runner's table and function) and a5 the maximum
count. The file may only use functions the matcher does not replace.
]]

local cases = {}

local function add(op, s, p, init, a4, a5)
    cases[#cases + 1] = {op, s, p, init, a4, a5, n = 6}
end

-- gsub and s:gsub take no init: their third and fourth arguments are a4, a5.
local function gsub(s, p, repl, n)
    add("gsub", s, p, nil, repl, n)
end

local function mgsub(s, p, repl, n)
    add("mgsub", s, p, nil, repl, n)
end

-- Every operation on one subject and pattern.
local function all(s, p)
    add("find", s, p)
    add("match", s, p)
    add("gmatch", s, p)
    gsub(s, p, "<%0>")
    gsub(s, p, "<table>")
    gsub(s, p, "<function>")
end

local pairs_ = {
    -- Literals, anchors and the empty pattern.
    {"hello world", "o"}, {"hello world", "o w"}, {"hello world", "xyz"},
    {"", ""}, {"", "x*"}, {"abc", ""}, {"abc", "^"}, {"abc", "$"},
    {"abc", "^$"}, {"", "^$"}, {"abc", "^abc$"}, {"abc", "^b"}, {"abc", "c$"},
    {"a$b", "$b"}, {"a$b", "a$"}, {"a$", "a$$"}, {"^a", "^^a"}, {"a^", "a^"},
    {"a^b", "a^b"}, {"$", "$"}, {"$$", "^$$"}, {"a\0b", "\0"}, {"a\0b", "a%zb"},
    {"a\0b", "[\0]"}, {"a\0b", "[%z]"}, {"a\0b", "%Z+"}, {"a\0b", ".-\0"},
    -- Classes.
    {"  x1 Y_z\t\n", "%s+"}, {"  x1 Y_z", "%S+"}, {"ab12cd", "%d"}, {"ab12cd", "%D+"},
    {"a_b 9!", "%w+"}, {"a_b 9!", "%W"}, {"Hello World", "%a+"}, {"Hello World", "%l+"},
    {"Hello World", "%u"}, {"a,b;c!", "%p"}, {"0xDEADbeefG", "%x+"}, {"a\1b\127", "%c"},
    {"  graph!  ", "%g+"}, {"ABC def", "%U+"}, {"abc123", "%A+"}, {"x\r\n", "%C+"},
    -- Escapes, including "%" before a letter that is not a class.
    {"a.b", "%."}, {"a.b", "."}, {"50%", "%%"}, {"(x)", "%(x%)"}, {"a+b", "a%+b"},
    {"a-b", "a%-b"}, {"[x]", "%[x%]"}, {"x", "%x"}, {"q", "%q"}, {"Q", "%Q"},
    {"a*b", "a%*b"}, {"a?b", "%?"}, {"^$", "%^%$"}, {"y", "%y"},
    -- Sets.
    {"abc-", "[a-]"}, {"]", "[]]"}, {"a]", "[^]]"}, {"x-", "[x-]"}, {"-", "[-x]"},
    {"b", "[a-c]"}, {"B", "[a-c]"}, {"%", "[%%]"}, {"a1_!", "[%w_]+"}, {"^", "[%^]"},
    {"^a", "[^^]"}, {"ab^", "[a^]+"}, {"z", "[a-]"}, {"c", "[c-a]"}, {"e", "[^a-dx]"},
    {"-", "[a%-z]"}, {"]", "[%]]"}, {"a-z", "[%a-z]+"}, {"5", "[a-%d]"}, {"-", "[a-%d]"},
    {"]]", "[]]+"}, {"x]", "[^]]+"}, {"a-", "[%a-]+"}, {"[", "[[]"}, {"a", "[a-a]"},
    {"\255", "[\128-\255]"}, {"\200x", "[^\128-\255]"}, {"a.b", "[.]"}, {"a", "[%.]"},
    -- Malformed sets and items: errors only where the matcher gets to them.
    {"a", "[a"}, {"a", "[a%"}, {"a", "[^"}, {"a", "["}, {"a", "[]"}, {"a", "[^]"},
    {"b", "a[x"}, {"a", "a[x"}, {"", "a["}, {"abc", "%"}, {"abc", "a%"}, {"", "%"},
    {"xa", "a%"}, {"a", "[%]"}, {"a", "[a-"},
    -- Quantifiers and backtracking.
    {"aaab", "a-b"}, {"aaab", "a*b"}, {"aaab", "a+ab"}, {"aaa", "a-$"}, {"<a><b>", "<.->"},
    {"<a><b>", "<.*>"}, {"abc", "a?b?c?d?"}, {"ac", "ab?c"}, {"abc", "ab?c"},
    {"abbc", "ab?c"}, {"xyz", ".-"}, {"xyz", ".-$"}, {"aaa", "a+a+a+"}, {"aaaa", "a-a-a-$"},
    {"b", "a*"}, {"b", "a+"}, {"b", "a-"}, {"b", "a?"}, {"aab", "a?a?a?b"},
    {"a+", "a+?"}, {"a-", "a--"}, {"a*", "a**"}, {"x", "*"}, {"x", "+x"}, {"-x", "-x"},
    {"?", "?"}, {"ab", "[ab]*$"}, {"ab", "[^ab]*"}, {"abc", ".*b"}, {"abc", ".-b"},
    -- Captures.
    {"hello world", "(h)(e)(l)"}, {"hello", "()ll()"}, {"hello", "(l)(l)"},
    {"key=val", "(%w+)=(%w+)"}, {"abc", "((a)(b))"}, {"abc", "(a(b(c)))"}, {"abc", "()"},
    {"abc", "(()a())"}, {"abc", "(a"}, {"abc", "a)"}, {"abc", "(a)(b"}, {"abc", "a()"},
    {"", "()"}, {"abc", "(.-)c"}, {"aa b", "(a*(.)%w(%s*))"}, {"abc", "(a)()(b)"},
    {"abc", "(x)"}, {"abc", ")"}, {"abc", "()%)"}, {"ab", "((a)"}, {"ab", "(a))"},
    {"abc", "(()"}, {"abc", "(a)%)"},
    -- Back-references.
    {"abab", "(ab)%1"}, {"xaax", "(a)%1"}, {"abc", "(a)%2"}, {"abc", "%1"},
    {"abc", "(a%1)"}, {"abba", "(.)(.)%2%1"}, {"abc", "()%1"}, {"a", "(a)%0"},
    {"aaa", "(a-)%1$"}, {"say \"hi\" ok", "([\"'])(.-)%1"}, {"aXa", "(a)X%1"},
    {"abab", "((a)b)%2"}, {"aa", "(a)%9"}, {"", "()%1"},
    -- Balances.
    {"f(a(b)c)d", "%b()"}, {"((", "%b()"}, {"x(y", "%b()"}, {"[[]]", "%b[]"},
    {"aba", "%baa"}, {"abc", "%b"}, {"abc", "%ba"}, {"if x then y end", "%bie"},
    {"(a)(b)", "%b()%b()"}, {"((a)", "%b()"}, {"", "%b()"}, {"()", "(%b())"},
    {"(a)", "%b())"}, {"aab", "%bab"}, {"aaabbb", "%bab"},
    -- Frontiers.
    {"THE (quick) fox", "%f[%a]%a+"}, {"hello world", "%f[%w]%w+"}, {"hello", "%f[%l]"},
    {"x", "%f[^%z]"}, {"abc", "%f[%z]"}, {"abc", "%fa"}, {"abc", "%f"}, {"abc", "%f[a"},
    {"aaa", "%f[a]"}, {"", "%f[%z]"}, {"a b", "%f[%s]"}, {"ab", "%f[^b]"}, {"", "%f[^a]"},
    {"abc", "%f[%Z]"}, {"the cat", "%f[%a]%a%f[%A]"}, {"abc", "%f[b]()"},
    -- Limits.
    {"abc", string.rep("()", 32)}, {"abc", string.rep("()", 33)},
    {"a", string.rep("(", 32) .. "a" .. string.rep(")", 32)},
    {"a", string.rep("(", 33) .. "a" .. string.rep(")", 33)},
}

for _, sp in ipairs(pairs_) do
    all(sp[1], sp[2])
end

-- Every character class and set over every byte value.
local bytes = {}
for i = 0, 255 do
    bytes[#bytes + 1] = string.char(i)
end
bytes = table.concat(bytes)
local classes = "acdglpsuwxzACDGLPSUWXZ"
for i = 1, #classes do
    local cl = classes:sub(i, i)
    gsub(bytes, "%" .. cl, "")
    gsub(bytes, "[%" .. cl .. "]", "")
    gsub(bytes, "[^%" .. cl .. "]", "")
    add("find", bytes, "%" .. cl .. "+")
end
gsub(bytes, "[a-f]", "")
gsub(bytes, "[^a-f0-3]", "")
gsub(bytes, "%f[%w]", "|")

-- Nesting right at the depth limit, with '?', '*' and captures.
for k = 196, 202 do
    add("find", string.rep("a", k), string.rep("a?", k))
    add("find", string.rep("a", 10), string.rep("a*", k))
    add("match", string.rep("a", k), string.rep("a-", k) .. "$")
end
add("find", "a", string.rep("a?", 1000))

-- init arithmetic.
for _, init in ipairs({-100, -6, -5, -4, -1, 0, 1, 2, 3, 4, 5, 6, 7, 100, math.maxinteger,
                       math.mininteger}) do
    add("find", "hello", "l", init)
    add("find", "hello", "", init)
    add("find", "hello", "l", init, true)
    add("match", "hello", "()l", init)
    add("match", "hello", "^.", init)
    add("gmatch", "hello", ".", init)
    add("gmatch", "hello", "", init)
end

-- Plain find and the shortcut for patterns without specials.
add("find", "a.b", ".", 1, true)
add("find", "a.b", ".", nil, true)
add("find", "a.b", ".", nil, 1)
add("find", "a.b", ".", nil, false)
add("find", "", "", 1, true)
add("find", "abc", "", 4, true)
add("find", "abc", "", 5, true)
add("find", "abc", "", -1, true)
add("find", "a+b", "+", nil, true)
add("find", "a)b", ")")
add("find", "a]b", "]")
add("find", "a(b", "(", nil, true)
add("find", "a%b", "%", nil, true)
add("find", "abcabc", "ca", 4, true)
add("find", "a\0b", "\0b")

-- gmatch: '^' is an ordinary character, empty matches, captures.
add("gmatch", "^a^a", "^a")
add("gmatch", "abc", "^.")
add("gmatch", "abc", ".", 2)
add("gmatch", "abc", "", 10)
add("gmatch", "abc", "x*")
add("gmatch", "hello world from lua", "%a+")
add("gmatch", "k=v, k2=v2", "(%w+)=(%w+)")
add("gmatch", "abc", "()")
add("gmatch", "aaa", "a-")
add("gmatch", "a,b,,c", "([^,]*)")

-- gsub replacement strings and counts.
local repls = {"%0", "%1", "%2", "<%1-%0>", "%%", "%", "%x", "100%", "%%1", "a%9b", "", "x",
               "%10", "%1%1", "%\0"}
for _, r in ipairs(repls) do
    gsub("hello world", "o", r)
    gsub("hello world", "(o)", r)
    gsub("hello world", "(l)(l)", r)
    gsub("hello", "()", r)
end
for _, n in ipairs({0, 1, 2, -1, 100}) do
    gsub("hello world", "o", "0", n)
    gsub("abc", "", "-", n)
end
gsub("aaa", "^a", "b")
gsub("aaa", "^a*", "b")
gsub("abc", "", "-")
gsub("abc", ".-", "-")
gsub("abc", "b*", "-")
gsub("hello", "l", 5)
gsub("hello", "l", 1.5)
gsub(12345, "3", "x")
gsub(12345, "x", "y")
gsub("a b c x y", "%a", "<table>")
gsub("a b c x y", "(%a)", "<function>")
gsub("abc", "()", "<table>")
gsub("abc", "()(.)", "<function>")
gsub("abc", "(a", "<table>")
gsub("abc", "(a", "<function>")
gsub("abc", "(a", "x")
gsub("abc", "(a", "%1")
gsub("x y", "%a", "<function>")

-- Method calls go through the string metatable.
add("mfind", "hello", "l+")
add("mfind", "hello", "(l)", 4)
mgsub("hello", "l", "L")
mgsub("hello", "[", "L")

-- Argument errors.
add("find", nil, "a")
add("find", "abc", nil)
add("find", "abc", "a", 1.5)
add("find", "abc", "a", "x")
add("find", "abc", "a", "2")
add("find", 123, 2)
add("match", "abc", {})
add("gmatch", "abc", "a", 1.5)
add("gmatch", nil, "a")
gsub("abc", "a", true)
gsub("abc", "a")
gsub("abc", "a", "x", "y")
gsub("abc", "a", "x", 1.5)
gsub("abc", "a", nil, "x")

return cases
