local t = {}

return {
    listen = t.missing.field,
}
