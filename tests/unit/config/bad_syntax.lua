return {
    listen = "0.0.0.0:8080",
    auth = true
    tokens = {},
}
