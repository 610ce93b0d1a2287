/*
 * cli_run: `explorer operator run`, an operator against recorded data
 * (cli_run.c has the design). Main thread only; builds and tears down its
 * own loop, store and clients.
 */
#ifndef RX_CLI_RUN_H
#define RX_CLI_RUN_H

#include <stdbool.h>

struct cli_run_opts {
    const char *file;       /* operators/<name>.lua */
    const char *replay_dir; /* tests/fixtures/<name>: its parent is served */
    double seconds;         /* at most this long */
    const char *pairs;      /* "A_B,C_D" allow-list, or NULL */
    bool poll;              /* run one poll() */
    bool streams;           /* run the streams */
    bool stored;            /* print the final stored tickers, not each one */
};

/* Returns the exit code: 0 when at least one ticker was stored, 1 when
 * none was, 2 when the run could not start. */
int cli_run(const char *self_path, const struct cli_run_opts *opts);

/* What the store holds for exchange, one JSON line a pair sorted by pair,
 * in the format of tests/operators/<name>*.expected.jsonl (--stored). */
struct store;
void cli_print_stored(const struct store *store, const char *exchange);

#endif
