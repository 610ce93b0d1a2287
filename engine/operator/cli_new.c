/*
 * cli_new: `explorer operator new NAME [--rest URL] [--ws URL]`, the three
 * files a new exchange starts from, relative to the current directory (the
 * repository root):
 *
 *   operators/NAME.lua                   a commented spec-1 skeleton with
 *                                        markets(), poll() and a stream,
 *                                        built on operators/lib/ as the
 *                                        shipped operators are
 *   tests/fixtures/NAME/manifest.json    an empty recording (operator
 *                                        record fills a folder like it)
 *   tests/operators/NAME.expected.jsonl  only the command line the data
 *                                        test runs (tests/operators/README.md)
 *
 * Nothing is overwritten: if any of the three exists, nothing is written.
 * The skeleton loads as it is (`operator check` passes), so an author
 * edits a working file rather than a template.
 */
#include "cli_new.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/ticker.h"

#define PATH_CAP 512

static const char skeleton[] =
    "-- %1$s: what this exchange is (operator API spec 1, docs/operators.md).\n"
    "--\n"
    "-- Written by `explorer operator new`; each part below is a working example\n"
    "-- of an imaginary exchange to replace with the real one's requests and\n"
    "-- fields. The author's loop (docs/operators.md, \"From scratch\"):\n"
    "--   explorer operator record operators/%1$s.lua --out tests/fixtures/%1$s\n"
    "--   explorer operator run operators/%1$s.lua --replay tests/fixtures/%1$s\n"
    "-- then copy the file into the service's operators/ folder.\n"
    "--\n"
    "-- Symbols: say here what the exchange calls a market (\"BTCUSDT\",\n"
    "-- \"BTC-USDT\") and where base and quote come from; never split a symbol\n"
    "-- by guessing.\n"
    "\n"
    "local rest = require \"rest\"     -- GET x.op.rest .. path, decoded, clear errors\n"
    "local market = require \"market\" -- the market index and the allow-list\n"
    "local stream = require \"stream\" -- the ws URL, decoding, sending JSON\n"
    "local dec = require(\"values\").dec -- a price as the engine takes it\n"
    "\n"
    "-- Filled by markets() and read by poll() and the stream (same Lua state).\n"
    "local idx = nil\n"
    "\n"
    "-- markets(): every market as {symbol=, base=, quote=}. Example answer:\n"
    "-- [{\"symbol\":\"BTCUSDT\",\"base\":\"BTC\",\"quote\":\"USDT\",\"status\":\"open\"}]\n"
    "local function load_markets(x)\n"
    "  local doc = rest.get_json(x, \"/markets\", \"markets\")\n"
    "  idx = market.index(x, doc, function(m)\n"
    "    if m.status ~= \"open\" then return nil, \"not open\" end\n"
    "    return { symbol = m.symbol, base = m.base, quote = m.quote }\n"
    "  end, \"markets\")\n"
    "  return idx.list\n"
    "end\n"
    "\n"
    "-- poll(): the tickers of the allow-listed markets (every market without a\n"
    "-- list), in one request. Example answer:\n"
    "-- [{\"symbol\":\"BTCUSDT\",\"bid\":\"97000.1\",\"ask\":\"97000.2\",\"last\":\"97000.1\",\n"
    "--   \"volume\":\"1234.5\",\"time\":1733300000000}]\n"
    "-- Prices stay strings as sent (dec); an emit without bid and ask merges\n"
    "-- with what is stored and is refused while nothing is.\n"
    "local function poll(x)\n"
    "  if not idx then load_markets(x) end\n"
    "  local wanted = {}\n"
    "  for _, s in ipairs((market.targets(x, idx))) do wanted[s] = true end\n"
    "  local list = {}\n"
    "  for _, t in ipairs(rest.get_json(x, \"/tickers\", \"tickers\")) do\n"
    "    if type(t) == \"table\" and wanted[t.symbol] then\n"
    "      list[#list + 1] = {\n"
    "        symbol = t.symbol, bid = dec(t.bid), ask = dec(t.ask),\n"
    "        last = dec(t.last), volume = dec(t.volume),\n"
    "        ts = math.type(t.time) == \"integer\" and t.time or nil,\n"
    "      }\n"
    "    end\n"
    "  end\n"
    "  x.emit_many(list)\n"
    "end\n"
    "\n"
    "-- Stream: one socket for the allow-listed markets; on_open subscribes\n"
    "-- after every (re)connect; on_message may not wait and never raises.\n"
    "local function connections(x, markets)\n"
    "  if not idx then load_markets(x) end\n"
    "  return { { url = stream.url(x), symbols = (market.targets(x, idx)) } }\n"
    "end\n"
    "\n"
    "local function on_open(x, ws, conn)\n"
    "  local msg = { op = \"subscribe\", channel = \"ticker\", symbols = conn.symbols }\n"
    "  stream.send_json(x, ws, msg, \"subscribe\")\n"
    "end\n"
    "\n"
    "-- Example message: {\"channel\":\"ticker\",\"symbol\":\"BTCUSDT\",\"bid\":\"97000.1\",\n"
    "--   \"ask\":\"97000.2\"}\n"
    "local function on_message(x, ws, msg, conn)\n"
    "  local doc = stream.decode(x, msg)\n"
    "  if not doc or doc.channel ~= \"ticker\" or type(doc.symbol) ~= \"string\" then return end\n"
    "  x.emit{ symbol = doc.symbol, bid = dec(doc.bid), ask = dec(doc.ask) }\n"
    "end\n"
    "\n"
    "return {\n"
    "  name = \"%1$s\",\n"
    "  spec = 1,\n"
    "  rest = \"%2$s\",\n"
    "  ws = \"%3$s\",\n"
    "  poll_every = 10,\n"
    "  -- The exchange's public limit, with room: calls per `per` seconds.\n"
    "  budget = { requests = 30, per = 60 },\n"
    "  markets = load_markets,\n"
    "  poll = poll,\n"
    "  stream = {\n"
    "    connections = connections,\n"
    "    on_open = on_open,\n"
    "    on_message = on_message,\n"
    "    ping_every = 30,\n"
    "  },\n"
    "}\n";

static const char manifest[] = "{\n"
                               " \"title\": \"%1$s\",\n"
                               " \"rest_base\": [\"%2$s\"],\n"
                               " \"ws_url\": [\"%3$s\"],\n"
                               " \"rest\": [],\n"
                               " \"ws\": []\n"
                               "}\n";

static const char expected[] =
    "# explorer operator run operators/%1$s.lua --replay tests/fixtures/%1$s --stored\n";

/* A URL with one of the schemes and nothing that needs quoting in Lua or
 * JSON (no quotes, backslashes, spaces or control characters). */
static bool url_ok(const char *url, const char *scheme1, const char *scheme2)
{
    if (strncmp(url, scheme1, strlen(scheme1)) != 0 &&
        strncmp(url, scheme2, strlen(scheme2)) != 0) {
        return false;
    }
    for (const unsigned char *c = (const unsigned char *)url; *c; c++) {
        if (*c <= ' ' || *c == '"' || *c == '\\' || *c == 0x7f) {
            return false;
        }
    }
    return strlen(url) < 256;
}

/* mkdir -p of the folders above `path`. */
static int make_parents(const char *path)
{
    char dir[PATH_CAP];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            return -errno;
        }
        *p = '/';
    }
    return 0;
}

static int write_text(const char *path, const char *fmt, const char *name, const char *rest,
                      const char *ws)
{
    if (make_parents(path) != 0) {
        fprintf(stderr, "explorer: cannot make the folder of %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* O_EXCL: a file that appeared since the check is not overwritten. */
    FILE *f = fopen(path, "wx");
    if (!f) {
        fprintf(stderr, "explorer: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    int bad = fprintf(f, fmt, name, rest, ws) < 0;
    bad |= fclose(f) != 0;
    if (bad) {
        fprintf(stderr, "explorer: cannot write %s\n", path);
        return -1;
    }
    printf("wrote %s\n", path);
    return 0;
}

int cli_new(const char *name, const char *rest, const char *ws)
{
    char paths[3][PATH_CAP];
    const char *fmts[3] = {skeleton, manifest, expected};

    if (!ticker_exchange_valid(name)) {
        fprintf(stderr, "explorer operator: new: '%s' is not an exchange name ([a-z0-9_], "
                        "1 to %d characters)\n",
                name, TICKER_EXCHANGE_MAX - 1);
        return 2;
    }
    if (!url_ok(rest, "http://", "https://")) {
        fprintf(stderr, "explorer operator: new: --rest '%s' is not an http:// or https:// URL "
                        "(no quotes, spaces or backslashes)\n",
                rest);
        return 2;
    }
    if (!url_ok(ws, "ws://", "wss://")) {
        fprintf(stderr, "explorer operator: new: --ws '%s' is not a ws:// or wss:// URL "
                        "(no quotes, spaces or backslashes)\n",
                ws);
        return 2;
    }
    snprintf(paths[0], PATH_CAP, "operators/%s.lua", name);
    snprintf(paths[1], PATH_CAP, "tests/fixtures/%s/manifest.json", name);
    snprintf(paths[2], PATH_CAP, "tests/operators/%s.expected.jsonl", name);
    int exist = 0;
    for (int i = 0; i < 3; i++) {
        if (access(paths[i], F_OK) == 0) {
            fprintf(stderr, "explorer operator: new: %s exists; nothing was written\n",
                    paths[i]);
            exist++;
        }
    }
    if (exist) {
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        if (write_text(paths[i], fmts[i], name, rest, ws) != 0) {
            return 1;
        }
    }
    return 0;
}
