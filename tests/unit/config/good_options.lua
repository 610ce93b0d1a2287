-- options: nested tables, arrays, every scalar type, escapes.
return {
    operators = {
        kucoin = {
            options = {
                levels = { 1, 2.5, -3, 1e300 },
                nested = { a = { b = { c = true } } },
                name = "quote\" back\\ nl\n tab\t é",
                empty = {},
                flag = false,
            },
        },
    },
}
