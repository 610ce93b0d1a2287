return {
    listen = "0.0.0.0:8080",
    stale_after_sm = 1000,
}
