-- Syntax error on line 3.
return {
    name = "syntax" "broken",
}
