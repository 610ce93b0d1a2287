return {
    operators = {
        binance = {
            poll_evry = 5,
        },
    },
}
