/*
 * fuzz_operator: the operator spec validator (op_load) on operator files
 * as their authors could write them: the input is operators/fuzz.lua,
 * loaded into a fresh sandbox, run, checked against spec 1 and the config's
 * overrides for `fuzz`, given its `x` context, then freed. Nothing is
 * started, so no callback runs and no network is used.
 *
 * Each run builds the engine services op_load borrows (loop, store, kv,
 * HTTP client, as `explorer operator check` does) and frees them after,
 * so runs share nothing but the config. The sandbox's default caps bound
 * a run (instructions, memory, pattern steps). `require` reaches the real
 * operators/lib of the source tree (read only). The operator file and the
 * config live in a private directory under /tmp, removed at exit.
 */
#include "config/config.h"
#include "core/loop.h"
#include "net/http_client.h"
#include "operator/operator.h"
#include "store/kv.h"
#include "store/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/rx-fuzz-operator.XXXXXX";
static char op_path[sizeof dir + 16];
static char cfg_path[sizeof dir + 16];
static struct config *cfg;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_operator: %s\n", what);
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
    config_free(cfg);
    unlink(op_path);
    unlink(cfg_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Overrides for the operator, so that op_spec applies them too. */
    static const char config_text[] =
        "return { operators = { fuzz = { poll_every = 2.5, pairs = { 'BTC_USDT', 'eth/usdt' },\n"
        "  budget = { requests = 5, per = 1 }, allow_hosts = { 'example.com' },\n"
        "  options = { depth = 10, channels = { 'ticker' } } } } }\n";
    char err[512];

    check(mkdtemp(dir) != NULL, "cannot make a directory under /tmp");
    snprintf(op_path, sizeof op_path, "%s/fuzz.lua", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/explorer.lua", dir);
    atexit(clean_up);
    unsetenv("PORT");
    unsetenv("API_AUTHENTICATION_TOKEN");
    unsetenv("REDIS_URL");
    write_file(cfg_path, config_text, sizeof config_text - 1);
    if (config_load(cfg_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_operator: %s\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    int line = -1;

    write_file(op_path, data, size);
    struct loop *loop = loop_new();
    struct store *store = store_new();
    struct kv *kv = kv_new();
    struct http_client *http = http_client_new(loop, NULL);
    struct op_env env = {.loop = loop,
                         .store = store,
                         .http = http,
                         .kv = kv,
                         .config = cfg,
                         .lib_dir = RX_OPERATORS_LIB};
    struct operator *op = op_load(&env, op_path, err, sizeof err, &line);

    if (op) {
        check(strcmp(op_name(op), "fuzz") == 0, "loaded under another name");
    } else {
        check(err[0] != '\0' && line >= 0, "a failed load without a message");
    }
    op_free(op);
    http_client_free(http);
    kv_free(kv);
    check(loop_free(loop) == 0, "handles left on the loop");
    store_free(store);
    return 0;
}
