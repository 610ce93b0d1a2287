/*
 * faults: the failures a test can inject into one exchange.
 *
 * A control request's JSON body (`{"status":500}`, `{"ws_stall":true}`, ...)
 * is validated as a whole and then applied, so a typo never leaves half a
 * fault set. Faults combine; `{"clear":true}` empties the set first, and a
 * zero, false or null value removes that one fault. Pure: applying returns
 * which one-shot WebSocket actions the caller must start (a drop countdown,
 * a garbage or oversize frame on every open connection). Single-threaded.
 */
#ifndef FAKEX_FAULTS_H
#define FAKEX_FAULTS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* ws_oversize is capped so a typo cannot make the server allocate gigabytes. */
#define FAULTS_MAX_OVERSIZE (64L * 1024 * 1024)
#define FAULTS_MAX_DELAY_MS (10L * 60 * 1000)

struct faults {
    int status;         /* REST answers this status; 0 = none */
    long delay_ms;      /* REST answers this late; 0 = none */
    long truncate;      /* REST body cut to this many bytes; -1 = none */
    int garbage;        /* REST body is an HTML error page */
    int refuse;         /* REST and WS connections closed at once */
    long ws_drop_after; /* close each WS after this many more frames; -1 = none */
    int ws_stall;       /* WS silent and deaf */
    int ws_garbage;     /* a non-JSON text frame and a binary frame */
    long ws_oversize;   /* one text frame of this many bytes; 0 = none */
};

/* What the caller must start on open connections after faults_apply. */
enum faults_event {
    FAULTS_EV_DROP = 1,     /* ws_drop_after given: (re)start or cancel the countdown */
    FAULTS_EV_GARBAGE = 2,  /* queue the garbage frames */
    FAULTS_EV_OVERSIZE = 4, /* queue the oversize frame */
    FAULTS_EV_STALL = 8,    /* ws_stall or refuse changed */
};

void faults_clear(struct faults *f);

/*
 * Apply a fault request. Returns 0 and ORs enum faults_event bits into
 * *events, or -1 with a message in err and `f` unchanged.
 */
int faults_apply(struct faults *f, const cJSON *body, unsigned *events, char *err, size_t errlen);

/* The active faults as a JSON object (caller deletes). */
cJSON *faults_to_json(const struct faults *f);

#endif
