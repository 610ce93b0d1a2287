/*
 * cli_record: `explorer operator record`, an operator's exchange traffic
 * saved as a fixture folder the fake exchange replays (cli_record.c has
 * the design). Main thread only; builds and tears down its own loop,
 * store and clients.
 */
#ifndef RX_CLI_RECORD_H
#define RX_CLI_RECORD_H

struct cli_record_opts {
    const char *file;    /* operators/<name>.lua */
    const char *out_dir; /* the fixture folder to write (made if missing) */
    double seconds;      /* how long to run */
    const char *pairs;   /* "A_B,C_D" allow-list, or NULL */
};

/* Returns the exit code: 0 when something was recorded, 1 when nothing
 * was, 2 when the run could not start. */
int cli_record(const struct cli_record_opts *opts);

#endif
