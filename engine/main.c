/*
 * explorer: live cryptocurrency rates from many exchanges, served over
 * REST and WebSocket from memory.
 *
 * The story of a run: read the config, set up logging, raise the open-file
 * limit, build the engine (loop, store, HTTP client, operators), run the
 * loop until SIGINT or SIGTERM, take everything down in order, exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "operator/cli_operator.h"
#include "config/config.h"
#include "engine.h"
#include "core/log.h"
#include "net/lib_log.h"

static int usage(void)
{
    fprintf(stderr, "usage: explorer [--config FILE] [--check-config]\n"
                    "       explorer --version\n"
                    "       explorer operator check|run ... (explorer operator: the author's "
                    "tools)\n");
    return 2;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("main", "open-file limit stays at %llu", (unsigned long long)before);
        return;
    }
    log_info("main", "open-file limit raised from %llu to %llu", (unsigned long long)before,
             (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    const char *path = config_default_path();
    int check_only = 0;
    char err[1024];
    struct config *cfg = NULL;

    lib_log_route();
    if (argc > 1 && strcmp(argv[1], "operator") == 0) {
        log_setup(LOG_WARN, false);
        return cli_operator(argc - 1, argv + 1, argv[0]);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("explorer %s\n", EXPLORER_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = 1;
        } else {
            return usage();
        }
    }
    if (config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "explorer: %s\n", err);
        return 1;
    }
    if (check_only) {
        config_dump(cfg, stdout);
        config_free(cfg);
        return 0;
    }
    log_setup((enum log_level)cfg->log_level, cfg->log_format == CONFIG_LOG_JSON);
    log_info("main", "explorer %s starting with %s", EXPLORER_VERSION, path);
    raise_nofile();

    struct engine *engine = engine_new(cfg, err, sizeof err);
    if (!engine) {
        log_error("main", "%s", err);
        return 1;
    }
    int code = engine_run(engine);
    engine_free(engine);
    log_clear_secrets();
    log_info("main", "stopped");
    return code;
}
