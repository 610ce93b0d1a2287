return {
    ws = {
        max_conections = 10,
    },
}
