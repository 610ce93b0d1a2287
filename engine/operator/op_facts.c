/*
 * op_facts: what happened to an operator, recorded as it happens — data,
 * errors, unmapped symbols, callback times. op_status (operator.c) derives
 * the state users see from these facts, so it cannot drift from them.
 */
#include "operator_int.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/loop.h"

#define SLOW_CALLBACK_MS 100.0

void op_reason_line(char *s)
{
    char *tb = strstr(s, "\nstack traceback:");
    if (tb) {
        *tb = '\0';
    }
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            *s = ' ';
        }
    }
}

void op_record_error(struct operator *op, const char *what, const char *msg)
{
    op->facts.errors++;
    op->facts.last_error_at = loop_wall_ms();
    if (snprintf(op->facts.reason, sizeof op->facts.reason, "%s: %s", what, msg) < 0) {
        op->facts.reason[0] = '\0';
    } /* a longer reason is cut to fit; the log line below has it whole */
    op_reason_line(op->facts.reason);
    log_warn(op->component, "%s failed: %s", what, msg);
}

void op_record_data(struct operator *op, const struct ticker *t)
{
    op->last_source = t->source;
    op->facts.last_data = t->received;
    if (t->source == TICKER_SOURCE_STREAM) {
        op->facts.last_stream_data = t->received;
    }
}

void op_record_unmapped(struct operator *op, const char *symbol)
{
    struct op_facts *f = &op->facts;
    f->unmapped_total++;
    for (size_t i = 0; i < f->n_unmapped; i++) {
        if (strcmp(f->unmapped[i].symbol, symbol) == 0) {
            f->unmapped[i].count++;
            return;
        }
    }
    if (f->n_unmapped < BOARD_UNMAPPED_MAX) {
        snprintf(f->unmapped[f->n_unmapped].symbol, TICKER_SYMBOL_MAX, "%s", symbol);
        f->unmapped[f->n_unmapped++].count = 1;
    }
}

void op_note_callback(struct operator *op, double ms)
{
    op->facts.callbacks++;
    if (ms > op->facts.callback_max_ms) {
        op->facts.callback_max_ms = ms;
    }
    if (ms > SLOW_CALLBACK_MS) {
        op->facts.slow_callbacks++;
    }
}
