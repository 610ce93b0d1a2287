/*
 * fuzz_config: the config file (config_load) as an operator of the service
 * could write it: the input is the file, run in the config sandbox and
 * walked into a struct config. The sandbox's own caps keep every run
 * bounded (CONFIG_MAX_INSTRUCTIONS, CONFIG_MAX_MEMORY).
 *
 * The file lives in a private directory under /tmp, rewritten for each
 * input and removed at exit. The environment overrides (PORT,
 * API_AUTHENTICATION_TOKEN, REDIS_URL) are cleared at start so that a run
 * depends on its input only. A config that loads is dumped (into memory)
 * and freed; one that fails must say why.
 */
#include "config/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/rx-fuzz-config.XXXXXX";
static char path[sizeof dir + 16];

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_config: %s\n", what);
        abort();
    }
}

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    check(mkdtemp(dir) != NULL, "cannot make a directory under /tmp");
    snprintf(path, sizeof path, "%s/explorer.lua", dir);
    atexit(remove_dir);
    unsetenv("PORT");
    unsetenv("API_AUTHENTICATION_TOKEN");
    unsetenv("REDIS_URL");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    char err[1024];
    FILE *f = fopen(path, "wb");

    check(f != NULL, "cannot write the config file");
    check(fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write the config file");
    if (config_load(path, &cfg, err, sizeof err) != 0) {
        check(cfg == NULL && err[0] != '\0', "a failed load without a message");
        return 0;
    }
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *mem = open_memstream(&dump, &dump_len);
    check(mem != NULL, "open_memstream failed");
    config_dump(cfg, mem);
    fclose(mem);
    free(dump);
    config_free(cfg);
    return 0;
}
