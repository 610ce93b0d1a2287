/*
 * test_lpattern: the budgeted matcher against the stock Lua 5.4 one.
 *
 * The main check is differential. Two states run the same runner chunk: one
 * with the stock string library, one after lpattern_install. Every case
 * (hand-written ones from lpattern_corpus.lua, then thousands of random
 * patterns and subjects from a fixed seed) calls find, match, gmatch or gsub
 * through pcall in both, and the runner serialises every return value with
 * its type, error messages included, so any difference at all is a failure
 * printed with its case. Subjects stay short so that stock Lua is fast even
 * on the worst random pattern; a case where only our budget ran out is
 * re-run with a huge budget and counted separately.
 *
 * Then the reasons the matcher exists: the pattern bomb stops within a
 * second, nesting and long subjects neither crash nor overflow the C stack,
 * and normal work on a megabyte body fits the budget (timings are printed
 * next to stock Lua's). Finally the plain C API on its own.
 */
#include "check.h"
#include "lua/lpattern.h"
#include "core/xalloc.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Loaded in both states; only uses functions lpattern does not replace. */
static const char runner_src[] =
    "local function ser(v)\n"
    "    local t = type(v)\n"
    "    if t == 'string' then return string.format('%q', v) end\n"
    "    if t == 'number' then return math.type(v) .. ':' .. tostring(v) end\n"
    "    if t == 'nil' or t == 'boolean' then return tostring(v) end\n"
    "    return t\n"
    "end\n"
    "local function pack(...)\n"
    "    local out = {}\n"
    "    for i = 1, select('#', ...) do out[i] = ser((select(i, ...))) end\n"
    "    return table.concat(out, ' ')\n"
    "end\n"
    "local repl_table = {a = '[A]', b = false, c = {}, x = 7, ab = '<ab>', ['1'] = 'one',\n"
    "                    [1] = 'pos1', [3] = 3.5}\n"
    "local function repl_fn(...)\n"
    "    local first = ...\n"
    "    if first == 'b' then return nil end\n"
    "    if first == 'x' then return false end\n"
    "    if first == '1' then return 42 end\n"
    "    if first == 'y' then return {} end\n"
    "    return '{' .. pack(...) .. '}'\n"
    "end\n"
    "function run(op, s, p, init, a4, a5)\n"
    "    if op == 'find' then return pack(pcall(string.find, s, p, init, a4)) end\n"
    "    if op == 'match' then return pack(pcall(string.match, s, p, init)) end\n"
    "    if op == 'mfind' then\n"
    "        return pack(pcall(function() return s:find(p, init, a4) end))\n"
    "    end\n"
    "    if op == 'gmatch' then\n"
    "        local ok, it = pcall(string.gmatch, s, p, init)\n"
    "        if not ok then return pack(ok, it) end\n"
    "        local out = {}\n"
    "        for _ = 1, 300 do\n"
    "            local r = table.pack(pcall(it))\n"
    "            out[#out + 1] = pack(table.unpack(r, 1, r.n))\n"
    "            if not r[1] or r[2] == nil then break end\n"
    "        end\n"
    "        return table.concat(out, '; ')\n"
    "    end\n"
    "    local repl = a4\n"
    "    if a4 == '<table>' then repl = repl_table end\n"
    "    if a4 == '<function>' then repl = repl_fn end\n"
    "    if op == 'mgsub' then\n"
    "        return pack(pcall(function() return s:gsub(p, repl, a5) end))\n"
    "    end\n"
    "    return pack(pcall(string.gsub, s, p, repl, a5))\n"
    "end\n"
    "function run_corpus(i)\n"
    "    return run(table.unpack(corpus[i], 1, 6))\n"
    "end\n"
    "function describe(i)\n"
    "    return pack(table.unpack(corpus[i], 1, 6))\n"
    "end\n";

/* One random or corpus case, as arguments for the runner. */
struct diff_case {
    const char *op;
    const char *s;
    size_t s_len;
    const char *p;
    size_t p_len;
    int has_init;
    long init;
    int plain;        /* find: pass true as the 4th argument */
    const char *repl; /* gsub: replacement, or NULL */
    int has_max;
    long max;
};

struct diff_stats {
    int cases;
    int same;
    int differ;
    int errors;        /* cases where both raised an error */
    int budget_reruns; /* cases where only our default budget ran out */
};

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

/* xorshift64*: deterministic, so a failing case reproduces. */
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (unsigned)((rng_state * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

static void load_runner(lua_State *L)
{
    if (luaL_loadbuffer(L, runner_src, sizeof(runner_src) - 1, "=runner") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "runner: %s\n", lua_tostring(L, -1));
        exit(2);
    }
}

static lua_State *new_state(int ours)
{
    lua_State *L = luaL_newstate();

    luaL_openlibs(L);
    if (ours) {
        lpattern_install(L, 0);
    }
    load_runner(L);
    return L;
}

/* Pops the string result of a runner call into a heap copy. */
static char *take_result(lua_State *L, int status)
{
    size_t len;
    const char *s;
    char *copy;

    s = lua_tolstring(L, -1, &len);
    if (s == NULL) {
        s = "(not a string)";
        len = strlen(s);
    }
    if (status != LUA_OK) {
        /* The runner itself failed: never equal to a real result. */
        copy = xmalloc(len + 8);
        memcpy(copy, "RUNNER:", 7);
        memcpy(copy + 7, s, len + 1);
    } else {
        copy = xstrndup(s, len);
    }
    lua_pop(L, 1);
    return copy;
}

static char *run_case(lua_State *L, const struct diff_case *c)
{
    lua_getglobal(L, "run");
    lua_pushstring(L, c->op);
    lua_pushlstring(L, c->s, c->s_len);
    lua_pushlstring(L, c->p, c->p_len);
    if (c->has_init) {
        lua_pushinteger(L, c->init);
    } else {
        lua_pushnil(L);
    }
    if (c->repl) {
        lua_pushstring(L, c->repl);
    } else {
        lua_pushboolean(L, c->plain);
    }
    if (c->has_max) {
        lua_pushinteger(L, c->max);
    } else {
        lua_pushnil(L);
    }
    return take_result(L, lua_pcall(L, 6, 1, 0));
}

static char *run_corpus_case(lua_State *L, const char *fn, int i)
{
    lua_getglobal(L, fn);
    lua_pushinteger(L, i);
    return take_result(L, lua_pcall(L, 1, 1, 0));
}

/*
 * Compares the two results of one case; when only our default budget ran out,
 * `rerun` repeats our side with a budget no test case can exhaust.
 */
static void compare(struct diff_stats *st, lua_State *ours, char *want, char *got,
                    char *(*rerun)(lua_State *, const void *), const void *arg, const char *what)
{
    st->cases++;
    if (strstr(got, "step budget exceeded") && !strstr(want, "step budget exceeded")) {
        st->budget_reruns++;
        free(got);
        lpattern_set_budget(ours, 1L << 40);
        got = rerun(ours, arg);
        lpattern_set_budget(ours, 0);
    }
    if (strcmp(want, got) == 0) {
        st->same++;
        check_passed++;
        if (strncmp(want, "false", 5) == 0) {
            st->errors++;
        }
    } else {
        st->differ++;
        check_failed++;
        fprintf(stderr, "DIFF %s\n  stock: %s\n  ours:  %s\n", what, want, got);
    }
    free(want);
    free(got);
}

static char *rerun_random(lua_State *L, const void *arg)
{
    return run_case(L, arg);
}

static char *rerun_corpus(lua_State *L, const void *arg)
{
    return run_corpus_case(L, "run_corpus", *(const int *)arg);
}

static int load_corpus(lua_State *L, const char *path)
{
    int n;

    if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "corpus: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    n = (int)luaL_len(L, -1);
    lua_setglobal(L, "corpus");
    return n;
}

/* The corpus sits beside this file; ctest also says where the sources are. */
static void corpus_path(char *buf, size_t size)
{
    const char *src = getenv("RX_SOURCE_DIR");
    const char *slash;

    if (src) {
        snprintf(buf, size, "%s/tests/unit/lpattern_corpus.lua", src);
        return;
    }
    slash = strrchr(__FILE__, '/');
    snprintf(buf, size, "%.*slpattern_corpus.lua", slash ? (int)(slash - __FILE__ + 1) : 0,
             __FILE__);
}

static void test_corpus(lua_State *stock, lua_State *ours)
{
    struct diff_stats st = {0};
    char path[4096];
    int n, i;
    double t0;

    corpus_path(path, sizeof(path));
    n = load_corpus(stock, path);
    CHECK_INT_EQ(load_corpus(ours, path), n);
    t0 = now_seconds();
    for (i = 1; i <= n; i++) {
        char *want = run_corpus_case(stock, "run_corpus", i);
        char *got = run_corpus_case(ours, "run_corpus", i);
        char *what = run_corpus_case(stock, "describe", i);

        compare(&st, ours, want, got, rerun_corpus, &i, what);
        free(what);
    }
    printf("corpus: %d cases, %d same, %d differ (%d errors in both), %d budget re-runs, "
           "%.2f s\n",
           st.cases, st.same, st.differ, st.errors, st.budget_reruns, now_seconds() - t0);
    CHECK(n >= 300);
}

/* A small buffer for building random strings. */
struct text {
    char buf[256];
    size_t len;
};

static void put(struct text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->len + n < sizeof(t->buf)) {
        memcpy(t->buf + t->len, s, n);
        t->len += n;
    }
}

static void random_subject(struct text *t)
{
    static const char alphabet[] = "aaabbx()1. -^";
    size_t n = rnd(17), i;

    t->len = 0;
    for (i = 0; i < n; i++) {
        t->buf[t->len++] = rnd(60) == 0 ? '\0' : alphabet[rnd(sizeof(alphabet) - 1)];
    }
}

static void random_items(struct text *t, int depth, unsigned count, int *quantified);

/*
 * One pattern item. At most four quantified items per pattern keep the
 * stock matcher's worst case over a 16-byte subject to milliseconds.
 */
static void random_item(struct text *t, int depth, int *quantified)
{
    static const char *const singles[] = {
        "a",    "b",     "x",     "1",   " ",     ".",    "%a",     "%d",  "%s",    "%w", "%l",
        "%p",   "%x",    "%A",    "%S",  "%W",    "%(",   "%)",     "%.",  "%-",    "%%", "[ab]",
        "[^a]", "[a-c]", "[%d.]", "[]]", "[^]b]", "[a-]", "[%a%-]", "[(]", "[^%s]", "^",  "$",
    };
    static const char *const others[] = {"%b()",   "%bab", "%f[a]", "%f[^a]", "%f[%s]",
                                         "%f[%w]", "%1",   "%2",    "()"};
    static const char *const quants[] = {"*", "+", "-", "?"};
    unsigned r = rnd(100);

    if (r < 72) {
        put(t, singles[rnd(sizeof(singles) / sizeof(singles[0]))]);
        if (*quantified < 4 && rnd(10) < 4) {
            put(t, quants[rnd(4)]);
            (*quantified)++;
        }
    } else if (r < 84 && depth < 3) {
        put(t, "(");
        random_items(t, depth + 1, 1 + rnd(3), quantified);
        put(t, ")");
    } else {
        put(t, others[rnd(sizeof(others) / sizeof(others[0]))]);
    }
}

static void random_items(struct text *t, int depth, unsigned count, int *quantified)
{
    unsigned i;

    for (i = 0; i < count; i++) {
        random_item(t, depth, quantified);
    }
}

/* A valid pattern, or one made invalid on purpose at a random byte. */
static void random_pattern(struct text *t)
{
    static const char *const breakers[] = {"%",   "[a", "%f", "(",  ")", "%b(",
                                           "%f[", "[^", "%0", "%9", "[%"};
    int quantified = 0;

    t->len = 0;
    if (rnd(100) < 15) {
        put(t, "^");
    }
    random_items(t, 0, 1 + rnd(5), &quantified);
    if (rnd(100) < 15) {
        put(t, "$");
    }
    if (rnd(100) < 8) {
        const char *b = breakers[rnd(sizeof(breakers) / sizeof(breakers[0]))];
        size_t at = rnd((unsigned)t->len + 1), n = strlen(b);

        if (t->len + n < sizeof(t->buf)) {
            memmove(t->buf + at + n, t->buf + at, t->len - at);
            memcpy(t->buf + at, b, n);
            t->len += n;
        }
    }
}

/* Appends `len` bytes of `s` to buf, showing NUL as \0. */
static size_t put_escaped(char *buf, size_t size, size_t o, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len && o + 3 < size; i++) {
        if (s[i] == '\0') {
            buf[o++] = '\\';
            buf[o++] = '0';
        } else {
            buf[o++] = s[i];
        }
    }
    buf[o] = '\0';
    return o;
}

static void describe_case(char *buf, size_t size, const struct diff_case *c)
{
    size_t o = (size_t)snprintf(buf, size, "%s s=\"", c->op);

    o = put_escaped(buf, size, o, c->s, c->s_len);
    o += (size_t)snprintf(buf + o, size - o, "\" p=\"");
    o = put_escaped(buf, size, o, c->p, c->p_len);
    snprintf(buf + o, size - o, "\" init=%s%ld plain=%d repl=%s max=%s%ld",
             c->has_init ? "" : "nil/", c->init, c->plain, c->repl ? c->repl : "nil",
             c->has_max ? "" : "nil/", c->max);
}

static void test_random(lua_State *stock, lua_State *ours, int patterns)
{
    static const char *const repls[] = {"<%0>", "%1",      "[%2]",       "%%",         "-",
                                        "%1%0", "<table>", "<function>", "<function>", "<table>"};
    struct diff_stats st = {0};
    struct text s, p;
    double t0 = now_seconds();
    int i, k;

    for (i = 0; i < patterns; i++) {
        random_pattern(&p);
        for (k = 0; k < 6; k++) {
            struct diff_case c = {0};
            char what[1024];

            random_subject(&s);
            c.s = s.buf;
            c.s_len = s.len;
            c.p = p.buf;
            c.p_len = p.len;
            c.has_init = rnd(3) == 0;
            c.init = (long)rnd(41) - 20;
            switch (k) {
            case 0:
                c.op = "find";
                c.plain = rnd(10) == 0;
                break;
            case 1:
                c.op = "match";
                break;
            case 2:
                c.op = "gmatch";
                c.has_init = rnd(5) == 0;
                break;
            default:
                c.op = "gsub";
                c.has_init = 0;
                c.repl = repls[rnd(sizeof(repls) / sizeof(repls[0]))];
                c.has_max = rnd(4) == 0;
                c.max = (long)rnd(5) - 1;
                break;
            }
            describe_case(what, sizeof(what), &c);
            compare(&st, ours, run_case(stock, &c), run_case(ours, &c), rerun_random, &c, what);
        }
    }
    printf("random: %d patterns, %d cases, %d same, %d differ (%d errors in both), "
           "%d budget re-runs, %.2f s\n",
           patterns, st.cases, st.same, st.differ, st.errors, st.budget_reruns, now_seconds() - t0);
}

/*
 * Runs `code` (a chunk returning one value) in L, returns its result as a
 * string (or the error) and stores the wall time in *secs.
 */
static char *timed(lua_State *L, const char *code, double *secs)
{
    double t0;
    int status;

    if (luaL_loadstring(L, code) != LUA_OK) {
        return take_result(L, LUA_ERRSYNTAX);
    }
    t0 = now_seconds();
    status = lua_pcall(L, 0, 1, 0);
    *secs = now_seconds() - t0;
    if (status == LUA_OK && !lua_isstring(L, -1)) {
        lua_pushstring(L, luaL_typename(L, -1));
        lua_remove(L, -2);
    }
    return take_result(L, status);
}

/* The exponential cases stop quickly with the budget error, whatever the call. */
static void test_bombs(lua_State *ours)
{
    static const char *const bombs[] = {
        "return select(2, pcall(string.find, string.rep('a', 400), '.-.-.-b'))",
        "return select(2, pcall(string.match, string.rep('a', 400), '.-.-.-b'))",
        "return select(2, pcall(string.gsub, string.rep('a', 400), '.-.-.-b', ''))",
        "return select(2, pcall(function() for _ in string.gmatch(string.rep('a', 400), "
        "'.-.-.-b') do end end))",
        "return select(2, pcall(string.find, string.rep('a', 30), string.rep('a*', 30) .. 'b'))",
        "return select(2, pcall(string.find, string.rep('(', 200000), '%b()'))",
        "return select(2, pcall(string.find, string.rep('a', 100000), '(a*)%1b'))",
        "return select(2, pcall(string.find, string.rep('a', 100000), '.-b'))",
        "return select(2, pcall(string.find, string.rep('a', 100000), "
        "'[' .. string.rep('b', 100000) .. ']'))",
        "return select(2, pcall(string.find, string.rep('a', 100000), "
        "'%f[' .. string.rep('b', 100000) .. ']'))",
    };
    size_t i;

    for (i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
        double secs;
        char *r = timed(ours, bombs[i], &secs);

        printf("bomb %zu: %.3f s: %s\n", i, secs, r);
        CHECK(strstr(r, "pattern too complex (step budget exceeded)") != NULL);
        CHECK(secs < 1.0);
        free(r);
    }
}

/*
 * Normal operator work on long subjects: the same result as stock Lua within
 * the default budget. Prints both timings.
 */
static void test_normal_work(lua_State *stock, lua_State *ours)
{
    static const char setup[] =
        "body = string.rep('{\"sym\":\"BTCUSDT\", \"px\":\"12345.67\", \"qty\":\"0.001\", "
        "\"ts\":1700000000123},\\n', 14000)\n"
        "long_a = string.rep('a', 100000) .. 'b'\n";
    static const char *const work[] = {
        "return #body",
        "return long_a:find('.-b')",
        "return long_a:find('a*b')",
        "local r, n = body:gsub('\"(%w+)\":', '%1='); return #r .. ' ' .. n",
        "local r, n = body:gsub('%s+', ''); return #r .. ' ' .. n",
        "local n = 0; for px in body:gmatch('\"px\":\"([%d.]+)\"') do n = n + 1 end; return n",
        "local r = body:match('^%s*(.-)%s*$'); return #r",
        "return body:find('\"qty\":\"9', 1, true) or 'none'",
        "return body:find('%d+%.%d+e') or 'none'",
        "local r, n = body:gsub('\"ts\":(%d+)', function(d) return d end); return n",
        "local n = 0; for k in body:gmatch('\"(%w+)\":\"[^\"]*\"') do n = n + 1 end return n",
        "return select('#', body:find('%f[%w]%w+$'))",
    };
    size_t i;

    CHECK(luaL_dostring(stock, setup) == LUA_OK);
    CHECK(luaL_dostring(ours, setup) == LUA_OK);
    for (i = 0; i < sizeof(work) / sizeof(work[0]); i++) {
        double t_stock, t_ours;
        char *want = timed(stock, work[i], &t_stock);
        char *got = timed(ours, work[i], &t_ours);

        printf("work %zu: stock %.4f s, ours %.4f s: %s\n", i, t_stock, t_ours, got);
        CHECK_STR_EQ(got, want);
        free(want);
        free(got);
    }
}

/* Nesting and long subjects end in an error or a result, never a crash. */
static void test_deep(lua_State *ours)
{
    static const struct {
        const char *code;
        const char *expect;
    } deep[] = {
        {"return select(2, pcall(string.find, string.rep('a', 1000), string.rep('a?', 1000)))",
         "pattern too complex"},
        {"return select(2, pcall(string.find, 'a', string.rep('(', 100000)))", "too many captures"},
        {"return select(2, pcall(string.find, 'a', string.rep('a-', 100000)))",
         "pattern too complex"},
        {"return select(2, pcall(string.find, string.rep('a', 300), string.rep('(a)', 40)))",
         "too many captures"},
        {"return select(2, string.rep('a', 2000000):find('.*$'))", "2000000"},
        {"return select(2, string.rep('a', 2000000):find('(.-)$'))", "2000000"},
        {"return #string.rep('a', 2000000):match('^(a*)$')", "2000000"},
        {"return #(string.rep('ab', 500000):gsub('a', '%%'))", "1000000"},
        {"return select(2, pcall(string.find, string.rep('a', 50), "
         "string.rep('%f[a]', 100000)))",
         "1"},
    };
    size_t i;

    for (i = 0; i < sizeof(deep) / sizeof(deep[0]); i++) {
        double secs;
        char *r = timed(ours, deep[i].code, &secs);

        if (strstr(r, deep[i].expect) == NULL) {
            check_failed++;
            fprintf(stderr, "deep %zu: %s: got %s\n", i, deep[i].code, r);
        } else {
            check_passed++;
        }
        free(r);
    }
}

/* The base budget is per state and only matters for subjects below base / 64 bytes. */
static void test_set_budget(lua_State *ours)
{
    static const char plain[] =
        "return select(2, pcall(string.find, 'abcdefghijklmnopqrstuvwxyz', 'z'))";
    static const char cubic[] =
        "return select(2, pcall(string.find, 'abcdefghijklmnopqrstuvwxyz', '(.-)(.-)(.-)%d'))";
    double secs;
    char *r;

    lpattern_set_budget(ours, 20);
    /* No specials: find takes the plain path, which needs no budget. */
    r = timed(ours, plain, &secs);
    CHECK_STR_EQ(r, "26");
    free(r);
    /* About 20,000 steps: over 64 per byte of this 26-byte subject. */
    r = timed(ours, cubic, &secs);
    CHECK_STR_EQ(r, "pattern too complex (step budget exceeded)");
    free(r);
    lpattern_set_budget(ours, 0);
    r = timed(ours, cubic, &secs);
    CHECK_STR_EQ(r, "nil");
    free(r);
}

/*
 * A loop of calls that each stay under the per-call budget is bounded by the
 * pool, and so is pattern work inside gsub callbacks.
 */
static void test_pool(lua_State *ours)
{
    static const char loop[] = "local s, errs = string.rep('a', 40), 0\n"
                               "for i = 1, 100000 do\n"
                               "    if not pcall(string.find, s, '(.-)(.-)(.-)%d') then\n"
                               "        errs = errs + 1\n"
                               "    end\n"
                               "end\n"
                               "return errs";
    static const char nested[] =
        "return select(2, pcall(string.gsub, 'aaaa', 'a', function()\n"
        "    return string.find(string.rep('a', 40), '(.-)(.-)(.-)%d') or 'x'\n"
        "end))";
    double secs;
    char *r;

    r = timed(ours, "return string.find(string.rep('a', 40), '(.-)(.-)(.-)%d') or 'nil'", &secs);
    CHECK_STR_EQ(r, "nil");
    printf("pool: one call without a pool %.4f s\n", secs);
    free(r);
    lpattern_set_pool(ours, 2000000);
    r = timed(ours, loop, &secs);
    printf("pool: 100000 calls with a pool of 2e6 steps: %.3f s, %s failed\n", secs, r);
    CHECK(atoi(r) > 99000);
    CHECK(secs < 1.0);
    free(r);
    lpattern_set_pool(ours, 50000);
    r = timed(ours, nested, &secs);
    CHECK(strstr(r, ":2: pattern too complex (step budget exceeded)") != NULL);
    free(r);
    lpattern_set_pool(ours, -1);
    r = timed(ours, nested, &secs);
    CHECK_STR_EQ(r, "xxxx");
    free(r);
}

static int install_without_string(lua_State *L)
{
    lpattern_install(L, 0);
    return 0;
}

static void test_misuse(void)
{
    lua_State *L = luaL_newstate();

    lua_pushcfunction(L, install_without_string);
    CHECK_INT_EQ(lua_pcall(L, 0, 0, 0), LUA_ERRRUN);
    CHECK_STR_EQ(lua_tostring(L, -1), "lpattern_install: the string library is not open");
    lua_close(L);
}

struct sink_buf {
    char text[128];
    size_t len;
};

static void sink_append(void *ud, const char *text, size_t len)
{
    struct sink_buf *b = ud;

    if (b->len + len < sizeof(b->text)) {
        memcpy(b->text + b->len, text, len);
        b->len += len;
        b->text[b->len] = '\0';
    }
}

static int c_find(struct lpattern_match *m, const char *subject, const char *pattern, long steps,
                  size_t *start, size_t *end)
{
    lpattern_init(m, subject, strlen(subject), pattern, strlen(pattern), LPATTERN_CARET_ANCHORS,
                  steps);
    return lpattern_find(m, 0, start, end);
}

/* The plain C interface, without Lua. */
static void test_c_api(void)
{
    struct lpattern_match m;
    struct lpattern_capture cap;
    struct sink_buf out = {{0}, 0};
    char *bomb = xmalloc(401);
    char *deep = xmalloc(601);
    size_t s = 0, e = 0;
    int i;

    CHECK_INT_EQ(c_find(&m, "key=val", "(%w+)=(%w+)", 1000, &s, &e), 1);
    CHECK_INT_EQ(s, 0);
    CHECK_INT_EQ(e, 7);
    CHECK_INT_EQ(m.level, 2);
    CHECK_INT_EQ(m.capture[0].start, 0);
    CHECK_INT_EQ(m.capture[0].len, 3);
    CHECK_INT_EQ(m.capture[1].start, 4);
    CHECK_INT_EQ(m.capture[1].len, 3);
    CHECK_INT_EQ(lpattern_expand(&m, "<%1|%0|%%|%2>", 13, s, e, sink_append, &out), 0);
    CHECK_STR_EQ(out.text, "<key|key=val|%|val>");
    CHECK_INT_EQ(lpattern_expand(&m, "%3", 2, s, e, sink_append, &out), LPATTERN_EPATTERN);
    CHECK_STR_EQ(m.error, "invalid capture index %3");

    CHECK_INT_EQ(c_find(&m, "hello", "()ll", 1000, &s, &e), 1);
    CHECK_INT_EQ(lpattern_get_capture(&m, 0, s, e, &cap), LPATTERN_CAPTURE_POSITION);
    CHECK_INT_EQ(cap.start, 2);

    CHECK_INT_EQ(c_find(&m, "ab", "^b", 1000, &s, &e), 0);
    CHECK_INT_EQ(c_find(&m, "ab", "b$", 1000, &s, &e), 1);
    CHECK_INT_EQ(s, 1);

    CHECK_INT_EQ(c_find(&m, "a", "a%", 1000, &s, &e), LPATTERN_EPATTERN);
    CHECK_STR_EQ(m.error, "malformed pattern (ends with '%')");
    CHECK_INT_EQ(c_find(&m, "b", "a%", 1000, &s, &e), 0);

    memset(bomb, 'a', 400);
    bomb[400] = '\0';
    CHECK_INT_EQ(c_find(&m, bomb, ".-.-.-b", LPATTERN_DEFAULT_BUDGET, &s, &e), LPATTERN_EBUDGET);
    CHECK_STR_EQ(m.error, "pattern too complex (step budget exceeded)");
    for (i = 0; i < 300; i++) {
        memcpy(deep + 2 * i, "a?", 2);
    }
    deep[600] = '\0';
    CHECK_INT_EQ(c_find(&m, bomb, deep, LPATTERN_DEFAULT_BUDGET, &s, &e), LPATTERN_ECOMPLEX);
    CHECK_STR_EQ(m.error, "pattern too complex");

    CHECK_INT_EQ(lpattern_budget_for(0, 10), LPATTERN_DEFAULT_BUDGET);
    CHECK_INT_EQ(lpattern_budget_for(0, 1 << 20), LPATTERN_STEPS_PER_BYTE << 20);
    CHECK_INT_EQ(lpattern_budget_for(5, 0), 5);
    CHECK(lpattern_is_plain("a]b)", 4));
    CHECK(!lpattern_is_plain("a.b", 3));
    CHECK(lpattern_is_plain("a\0b", 3));
    free(bomb);
    free(deep);
}

/*
 * RX_LPATTERN_PATTERNS and RX_LPATTERN_SEED widen the random run for a soak
 * (the defaults keep ctest to a few seconds).
 */
int main(void)
{
    lua_State *stock = new_state(0);
    lua_State *ours = new_state(1);
    const char *patterns = getenv("RX_LPATTERN_PATTERNS");
    const char *seed = getenv("RX_LPATTERN_SEED");

    if (seed) {
        rng_state = strtoull(seed, NULL, 0) * 0x9E3779B97F4A7C15ULL | 1;
    }

    test_c_api();
    test_misuse();
    test_corpus(stock, ours);
    test_random(stock, ours, patterns ? atoi(patterns) : 4000);
    test_bombs(ours);
    test_deep(ours);
    test_set_budget(ours);
    test_pool(ours);
    test_normal_work(stock, ours);
    lua_close(stock);
    lua_close(ours);
    return CHECK_DONE();
}
