/*
 * decode_only: the ceiling the ingest benchmark compares the engine with. A
 * bare Lua 5.4 state (no sandbox, no instruction hook) with lua-cjson, the
 * library rx_engine links, decodes the lines of a JSON-lines capture in a
 * Lua loop, cycling through them, for argv[2] seconds. Nothing is done with
 * the decoded table: this is the one cost every streamed message must pay
 * (notes/limits.md measured ~340k msg/s per core for a 106 B bookTicker).
 *
 *   decode_only FILE.jsonl [SECONDS]
 *
 * It prints one line of key=value pairs for tests/bench/ingest/run:
 * messages, wall seconds, CPU seconds of this (single-threaded) process,
 * msg/s of wall time and of CPU time, and the mean message size.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* lua-cjson's entry point (liblua5.4-cjson), as engine/sandbox_lib.c declares it. */
int luaopen_cjson(lua_State *L);

#define BATCH 20000 /* messages per call into Lua between clock checks */

/* The loop, in Lua so that each decode pays what an operator's does: one
 * call of the C function from Lua, one table built on the Lua heap. */
static const char loop_src[] = "local decode, lines = ...\n"
                               "local n, i = #lines, 0\n"
                               "return function(count)\n"
                               "  local doc\n"
                               "  for _ = 1, count do\n"
                               "    i = i % n + 1\n"
                               "    doc = decode(lines[i])\n"
                               "  end\n"
                               "  return doc\n"
                               "end\n";

static double now_s(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(lua_State *L, const char *what)
{
    fprintf(stderr, "decode_only: %s%s%s\n", what, L ? ": " : "", L ? lua_tostring(L, -1) : "");
    exit(1);
}

/* Pushes a table of the file's non-empty lines; returns their total size. */
static size_t push_lines(lua_State *L, const char *path, lua_Integer *count)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, bytes = 0;
    ssize_t len;

    if (!f) {
        perror(path);
        exit(1);
    }
    lua_newtable(L);
    *count = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            len--;
        }
        if (len == 0) {
            continue;
        }
        lua_pushlstring(L, line, (size_t)len);
        lua_rawseti(L, -2, ++*count);
        bytes += (size_t)len;
    }
    free(line);
    fclose(f);
    if (*count == 0) {
        die(NULL, "no lines in the file");
    }
    return bytes;
}

int main(int argc, char **argv)
{
    double seconds = argc > 2 ? atof(argv[2]) : 5.0;
    lua_Integer lines;
    long long messages = 0;

    if (argc < 2 || seconds <= 0) {
        fprintf(stderr, "usage: decode_only FILE.jsonl [SECONDS]\n");
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        die(NULL, "no Lua state");
    }
    luaL_openlibs(L);
    if (luaL_loadbuffer(L, loop_src, sizeof loop_src - 1, "=decode_loop") != LUA_OK) {
        die(L, "loading the loop");
    }
    luaL_requiref(L, "cjson", luaopen_cjson, 0);
    lua_getfield(L, -1, "decode");
    lua_remove(L, -2);
    size_t bytes = push_lines(L, argv[1], &lines);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        die(L, "starting the loop");
    }
    int loop = lua_gettop(L);

    /* One short untimed round warms the caches and the Lua heap. */
    lua_pushvalue(L, loop);
    lua_pushinteger(L, BATCH);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        die(L, "decoding");
    }
    double wall0 = now_s(CLOCK_MONOTONIC), cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID), wall;
    do {
        lua_pushvalue(L, loop);
        lua_pushinteger(L, BATCH);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            die(L, "decoding");
        }
        messages += BATCH;
        wall = now_s(CLOCK_MONOTONIC) - wall0;
    } while (wall < seconds);
    double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;

    printf("messages=%lld seconds=%.3f cpu_seconds=%.3f msg_per_s=%.0f msg_per_cpu_s=%.0f "
           "mean_bytes=%.1f lines=%lld\n",
           messages, wall, cpu, (double)messages / wall, (double)messages / cpu,
           (double)bytes / (double)lines, (long long)lines);
    lua_close(L);
    return 0;
}
