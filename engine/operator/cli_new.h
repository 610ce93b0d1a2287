/*
 * cli_new: `explorer operator new`, the files a new operator starts from
 * (cli_new.c has the list). Main thread only.
 */
#ifndef RX_CLI_NEW_H
#define RX_CLI_NEW_H

/* Writes operators/NAME.lua, tests/fixtures/NAME/manifest.json and
 * tests/operators/NAME.expected.jsonl under the current directory, or
 * nothing when any exists. Returns the exit code: 0 written, 1 refused or
 * failed, 2 a bad name or URL. */
int cli_new(const char *name, const char *rest, const char *ws);

#endif
