/*
 * board: two published arrays under one mutex.
 *
 * A status is a few kilobytes and there are tens of exchanges, republished
 * five times a second: a copy under a mutex costs microseconds, far less
 * than a scheme that lets readers avoid the lock would cost to explain.
 * The writer builds its array outside the lock and swaps pointers inside
 * it; readers memcpy inside it.
 */
#include "board.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

static const char *const state_names[BOARD_STATE_COUNT] = {
    "starting", "streaming", "polling", "degraded", "error", "disabled", "standby",
};

struct board {
    pthread_mutex_t lock;
    struct board_status *statuses;
    size_t n_statuses;
    struct board_market *markets;
    size_t n_markets;
    struct board_market *remote_markets;
    size_t n_remote_markets;
    struct board_store store;
    bool loading;
};

const char *board_state_name(enum board_state state)
{
    return (unsigned)state < BOARD_STATE_COUNT ? state_names[state] : "unknown";
}

struct board *board_new(void)
{
    struct board *board = xcalloc(1, sizeof *board);
    pthread_mutex_init(&board->lock, NULL);
    snprintf(board->store.kind, sizeof board->store.kind, "memory");
    return board;
}

void board_free(struct board *board)
{
    if (!board) {
        return;
    }
    pthread_mutex_destroy(&board->lock);
    free(board->statuses);
    free(board->markets);
    free(board->remote_markets);
    free(board);
}

/* A malloc'd copy of n elements of size each (at least one element, so the
 * result is never NULL). */
static void *copy_of(const void *src, size_t n, size_t size)
{
    void *out = xcalloc(n ? n : 1, size);
    if (n) {
        memcpy(out, src, n * size);
    }
    return out;
}

void board_put_statuses(struct board *board, const struct board_status *st, size_t n)
{
    struct board_status *fresh = copy_of(st, n, sizeof *st);

    pthread_mutex_lock(&board->lock);
    struct board_status *old = board->statuses;
    board->statuses = fresh;
    board->n_statuses = n;
    pthread_mutex_unlock(&board->lock);
    free(old);
}

void board_put_markets(struct board *board, const struct board_market *m, size_t n)
{
    struct board_market *fresh = copy_of(m, n, sizeof *m);

    pthread_mutex_lock(&board->lock);
    struct board_market *old = board->markets;
    board->markets = fresh;
    board->n_markets = n;
    pthread_mutex_unlock(&board->lock);
    free(old);
}

void board_put_remote_markets(struct board *board, const struct board_market *m, size_t n)
{
    struct board_market *fresh = copy_of(m, n, sizeof *m);

    pthread_mutex_lock(&board->lock);
    struct board_market *old = board->remote_markets;
    board->remote_markets = fresh;
    board->n_remote_markets = n;
    pthread_mutex_unlock(&board->lock);
    free(old);
}

struct board_status *board_statuses(const struct board *board, size_t *n)
{
    struct board *b = (struct board *)board;

    pthread_mutex_lock(&b->lock);
    struct board_status *out = copy_of(b->statuses, b->n_statuses, sizeof *out);
    *n = b->n_statuses;
    pthread_mutex_unlock(&b->lock);
    return out;
}

/* Whether name is among the first n exchanges of names. */
static bool named(const char (*names)[TICKER_EXCHANGE_MAX], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

size_t board_markets(const struct board *board, const char *exchange, struct board_market **out)
{
    struct board *b = (struct board *)board;
    size_t n = 0;
    /* The exchanges with local markets (lists are grouped by exchange, so a
     * name is new when it differs from the one before). */
    char(*local)[TICKER_EXCHANGE_MAX] = NULL;
    size_t n_local = 0;

    pthread_mutex_lock(&b->lock);
    *out = xcalloc(b->n_markets + b->n_remote_markets + 1, sizeof **out);
    local = xcalloc(b->n_markets + 1, sizeof *local);
    for (size_t i = 0; i < b->n_markets; i++) {
        const struct board_market *m = &b->markets[i];
        if (i == 0 || strcmp(m->exchange, b->markets[i - 1].exchange) != 0) {
            memcpy(local[n_local++], m->exchange, TICKER_EXCHANGE_MAX);
        }
        if (!exchange || strcmp(m->exchange, exchange) == 0) {
            (*out)[n++] = *m;
        }
    }
    for (size_t i = 0; i < b->n_remote_markets; i++) {
        const struct board_market *m = &b->remote_markets[i];
        if ((!exchange || strcmp(m->exchange, exchange) == 0) &&
            !named((const char(*)[TICKER_EXCHANGE_MAX])local, n_local, m->exchange)) {
            (*out)[n++] = *m;
        }
    }
    pthread_mutex_unlock(&b->lock);
    free(local);
    return n;
}

size_t board_names(const struct board *board, char (*names)[TICKER_EXCHANGE_MAX], size_t cap)
{
    struct board *b = (struct board *)board;

    pthread_mutex_lock(&b->lock);
    size_t n = b->n_statuses;
    for (size_t i = 0; i < n && i < cap; i++) {
        memcpy(names[i], b->statuses[i].name, TICKER_EXCHANGE_MAX);
    }
    pthread_mutex_unlock(&b->lock);
    return n;
}

void board_put_store(struct board *board, const struct board_store *store)
{
    pthread_mutex_lock(&board->lock);
    board->store = *store;
    pthread_mutex_unlock(&board->lock);
}

void board_set_loading(struct board *board, bool loading)
{
    pthread_mutex_lock(&board->lock);
    board->loading = loading;
    pthread_mutex_unlock(&board->lock);
}

void board_store_health(const struct board *board, struct board_store *out)
{
    struct board *b = (struct board *)board;
    pthread_mutex_lock(&b->lock);
    *out = b->store;
    pthread_mutex_unlock(&b->lock);
}

bool board_ready(const struct board *board)
{
    struct board *b = (struct board *)board;
    bool ready = true;

    pthread_mutex_lock(&b->lock);
    ready = !b->loading;
    for (size_t i = 0; i < b->n_statuses && ready; i++) {
        ready = b->statuses[i].state != BOARD_STARTING;
    }
    pthread_mutex_unlock(&b->lock);
    return ready;
}
