/*
 * fuzz_fakex_manifest: the fake exchange's fixture loader (fixtures_load),
 * which reads a recorded exchange folder: manifest.json and the optional
 * fakex.json sidecar, then the data files they name.
 *
 * Input: manifest.json up to the first NUL byte; what follows it, if there
 * is a NUL, is fakex.json. Both are written into a private folder under
 * /tmp that also holds two data files the manifest may name, "body.json"
 * (a REST body naming a host to rewrite) and "ws.jsonl" (a short capture);
 * the folder is removed at exit. A folder that loads is then used as the
 * server would use it: bodies rewritten, every REST entry looked up by its
 * own request (it must find one), every recorded subscribe message matched
 * and answered, and each capture's line table (in order, no empty line)
 * and loop points checked.
 */
#include "fixtures.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PICKS 8

static char dir[] = "/tmp/rx-fuzz-fakex.XXXXXX";
static char manifest_path[sizeof dir + 32];
static char sidecar_path[sizeof dir + 32];
static char body_path[sizeof dir + 32];
static char ws_path[sizeof dir + 32];

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_fakex_manifest: %s\n", what);
        abort();
    }
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");

    check(f != NULL, "cannot write under /tmp");
    check(fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write under /tmp");
}

static void clean_up(void)
{
    unlink(manifest_path);
    unlink(sidecar_path);
    unlink(body_path);
    unlink(ws_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char body[] = "{\"url\":\"https://api.example.com/v1\",\"ws\":\"wss:\\/\\/"
                               "stream.example.com:9443\\/ws\",\"price\":\"1.5\"}";
    static const char capture[] = "{\"event\":\"systemStatus\"}\r\n"
                                  "{\"event\":\"subscriptionStatus\",\"channel\":\"ticker\"}\n"
                                  "\n"
                                  "[1,{\"a\":[\"1.5\"]},\"ticker\",\"XBT/USD\"]\n"
                                  "{\"event\":\"heartbeat\"}";

    check(mkdtemp(dir) != NULL, "cannot make a directory under /tmp");
    snprintf(manifest_path, sizeof manifest_path, "%s/manifest.json", dir);
    snprintf(sidecar_path, sizeof sidecar_path, "%s/fakex.json", dir);
    snprintf(body_path, sizeof body_path, "%s/body.json", dir);
    snprintf(ws_path, sizeof ws_path, "%s/ws.jsonl", dir);
    atexit(clean_up);
    write_file(body_path, body, sizeof body - 1);
    write_file(ws_path, capture, sizeof capture - 1);
    return 0;
}

static void use_exchange(struct fixtures_exchange *ex)
{
    size_t picks[MAX_PICKS];
    int spec;

    fixtures_rewrite(ex, "http://127.0.0.1:9/fuzz", "ws://127.0.0.1:9/fuzz");
    for (size_t i = 0; i < ex->n_rest; i++) {
        const struct fixtures_rest *r = &ex->rest[i];
        check(r->served != NULL, "a REST entry with nothing to serve");
        check(fixtures_rest_find(ex, r->method, r->path, &r->query, &spec) != NULL &&
                  spec >= (int)r->query.n,
              "a REST entry its own request does not find");
    }
    for (size_t i = 0; i < ex->n_ws; i++) {
        const struct fixtures_ws *w = &ex->ws[i];
        check(w->start_from <= w->n_lines && w->loop_from <= w->n_lines,
              "loop points outside the capture");
        for (size_t j = 0; j < w->n_lines; j++) {
            check(w->lines[j].len > 0 &&
                      (j == 0 || w->lines[j].off > w->lines[j - 1].off + w->lines[j - 1].len),
                  "capture lines empty, out of order or overlapping");
        }
        for (size_t j = 0; j < w->n_subs; j++) {
            char *text = cJSON_PrintUnformatted(w->subs[j]);
            check(fixtures_ws_for_message(ex, text, strlen(text), picks, MAX_PICKS) <= MAX_PICKS,
                  "more captures picked than asked for");
            free(fixtures_reply_for(ex, text, strlen(text)));
            free(text);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fixtures_exchange ex;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t manifest_len = nul ? (size_t)(nul - data) : size;
    char err[512];

    write_file(manifest_path, data, manifest_len);
    if (nul) {
        write_file(sidecar_path, nul + 1, size - manifest_len - 1);
    } else {
        unlink(sidecar_path);
    }
    if (fixtures_load(&ex, dir, "fuzz", err, sizeof err) != 0) {
        check(err[0] != '\0', "a failed load without a message");
        return 0;
    }
    use_exchange(&ex);
    fixtures_free(&ex);
    return 0;
}
