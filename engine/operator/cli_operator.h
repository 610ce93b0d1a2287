/*
 * cli_operator: the operator author's tools.
 *
 *   explorer operator new NAME [--rest URL] [--ws URL]
 *   explorer operator check FILE
 *   explorer operator record FILE --out DIR [--seconds N] [--pairs A,B]
 *   explorer operator run FILE --replay DIR [--seconds N] [--pairs A,B]
 *
 * Main thread only; each call builds and tears down its own engine parts.
 */
#ifndef RX_CLI_OPERATOR_H
#define RX_CLI_OPERATOR_H

/* argv[0] is "operator". Returns the process exit code. */
int cli_operator(int argc, char **argv, const char *self_path);

#endif
