/*
 * fuzz_rest: what a REST request's target goes through before a route
 * runs: the router (rest_route_match: raw path matching and per-segment
 * percent-decoding) and the pair parameter (ticker_pair_canonical, then
 * ticker_pair_swap for an inverted pair).
 *
 * Input: byte 0 picks the method, byte 1 the size of the caller's Allow
 * buffer, byte 2 the size of the pair output buffer; the rest is the
 * request target, query included (the router sees it up to the '?', as in
 * rest.c) and also the pair text. Buffers are allocated to their exact
 * size so that AddressSanitizer sees any write past the capacity given.
 */
#include "rest/rest_int.h"
#include "store/ticker.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALLOW_MAX 256

static const char *const methods[] = {"GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE"};

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_rest: %s\n", what);
        abort();
    }
}

static void fuzz_router(const char *method, const char *target, size_t allow_cap)
{
    char param[API_PARAM_MAX];
    char *allow = malloc(allow_cap ? allow_cap : 1);
    size_t index = SIZE_MAX;
    enum rest_match m =
        rest_route_match(method, target, strcspn(target, "?"), &index, param, allow, allow_cap);

    check(memchr(param, '\0', sizeof param) != NULL, "param not terminated");
    if (m != REST_MATCH_NOT_FOUND) {
        check(index < rest_route_count(), "matched route out of the table");
        check(allow_cap == 0 || memchr(allow, '\0', allow_cap) != NULL, "allow not terminated");
    }
    if (m == REST_MATCH_OK && !strchr(rest_route_at(index)->pattern, '{')) {
        check(param[0] == '\0', "a parameter for a route that has none");
    }
    free(allow);
}

static void fuzz_pair(const char *text, size_t cap)
{
    char *out = malloc(cap ? cap : 1);
    char again[TICKER_PAIR_MAX], swapped[TICKER_PAIR_MAX], back[TICKER_PAIR_MAX];
    int n = ticker_pair_canonical(text, out, cap);

    if (n >= 0) {
        check((size_t)n == strlen(out) && ticker_pair_valid(out), "canonical pair not valid");
        check(ticker_pair_canonical(out, again, sizeof again) == n && strcmp(again, out) == 0,
              "canonical form not stable");
        check(ticker_pair_swap(out, swapped, sizeof swapped) == n && ticker_pair_valid(swapped),
              "swapped pair not valid");
        check(ticker_pair_swap(swapped, back, sizeof back) == n && strcmp(back, out) == 0,
              "swapping twice does not give the pair back");
    }
    if (ticker_pair_swap(text, swapped, sizeof swapped) >= 0) {
        check(ticker_pair_valid(text), "swapped a pair that is not canonical");
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    const char *method = methods[data[0] % (sizeof methods / sizeof methods[0])];
    size_t allow_cap = data[1] % (ALLOW_MAX + 1);
    size_t pair_cap = data[2] % (TICKER_PAIR_MAX + 1);
    char *text = malloc(size - 2);

    memcpy(text, data + 3, size - 3);
    text[size - 3] = '\0';
    fuzz_router(method, text, allow_cap);
    fuzz_pair(text, pair_cap);
    free(text);
    return 0;
}
