/*
 * ticker: every reject reason and its precedence, pair parsing in all the
 * accepted spellings, and the derived numbers.
 */
#include "check.h"
#include "store/ticker.h"

#include <errno.h>

/* A valid ticker to break one field at a time. */
static struct ticker good(void)
{
    struct ticker t;

    memset(&t, 0, sizeof(t));
    strcpy(t.exchange, "binance");
    strcpy(t.pair, "BTC_USDT");
    strcpy(t.symbol, "BTCUSDT");
    strcpy(t.bid, "64000.10");
    strcpy(t.ask, "64000.20");
    strcpy(t.bid_size, "1.5");
    strcpy(t.ask_size, "0");
    strcpy(t.last, "64000.15");
    strcpy(t.volume, "12345.678");
    t.bid_value = 64000.10;
    t.ask_value = 64000.20;
    t.ts = 1700000000123;
    t.received = 1700000000200;
    t.source = TICKER_SOURCE_STREAM;
    return t;
}

static void test_reject_names(void)
{
    CHECK_STR_EQ(ticker_reject_name(TICKER_OK), "ok");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_CROSSED), "crossed");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_NONPOSITIVE), "non_positive");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_BAD_NUMBER), "bad_number");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_MISSING), "missing_field");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_TOO_LONG), "too_long");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_BAD_PAIR), "bad_pair");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_BAD_TS), "bad_ts");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_NOT_A_TABLE), "not_a_table");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_UNMAPPED), "unmapped");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_FILTERED), "filtered");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_MAX_PAIRS), "max_pairs");
    CHECK_STR_EQ(ticker_reject_name(TICKER_REJECT_COUNT), "unknown");
    CHECK_STR_EQ(ticker_reject_name((enum ticker_reject)(-1)), "unknown");
}

static void test_validate(void)
{
    struct ticker t = good();

    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);

    /* Optional fields may be null. */
    t.bid_size[0] = t.ask_size[0] = t.last[0] = t.volume[0] = t.symbol[0] = '\0';
    t.ts = TICKER_TS_NONE;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);

    /* bid == ask is allowed; bid > ask is crossed. */
    t = good();
    strcpy(t.ask, "64000.1");
    t.ask_value = 64000.1;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);
    strcpy(t.ask, "64000.09");
    t.ask_value = 64000.09;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_CROSSED);

    /* Non-positive prices and negative sizes. */
    t = good();
    strcpy(t.bid, "0");
    t.bid_value = 0;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.bid, "-1");
    t.bid_value = -1;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.ask, "0.0");
    t.ask_value = 0;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.last, "0");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.bid_size, "-0.1");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.volume, "-5");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.volume, "0");
    strcpy(t.ask_size, "0.0");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);

    /* Text that is not a number, or values that disagree with the text. */
    t = good();
    strcpy(t.bid, "abc");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    strcpy(t.volume, "1.2.3");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    strcpy(t.last, "NaN");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    strcpy(t.volume, "1e5");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    strcpy(t.bid_size, ".5");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    strcpy(t.ask, "64000.2e0");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    strcpy(t.last, " 1");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    t.bid_value = 0;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    t.ask_value = NAN;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);

    /* Missing. */
    t = good();
    t.bid[0] = '\0';
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_MISSING);
    t = good();
    t.ask[0] = '\0';
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_MISSING);
    t = good();
    t.pair[0] = '\0';
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_MISSING);
    t = good();
    t.exchange[0] = '\0';
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_MISSING);

    /* Unterminated arrays. */
    t = good();
    memset(t.symbol, 'S', sizeof(t.symbol));
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_TOO_LONG);
    t = good();
    memset(t.volume, '1', sizeof(t.volume));
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_TOO_LONG);
    t = good();
    memset(t.pair, 'A', sizeof(t.pair));
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_TOO_LONG);
    t = good();
    memset(t.symbol, 'S', sizeof(t.symbol) - 1);
    t.symbol[sizeof(t.symbol) - 1] = '\0';
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);

    /* Pair and exchange shape. */
    static const char *const bad_pairs[] = {"btc_usdt",   "BTC-USDT",  "BTC/USDT",
                                            "BTCUSDT",    "_USDT",     "BTC_",
                                            "BTC_USDT_X", "BTC__USDT", "ABCDEFGHIJKLMNOP_USDT",
                                            "BTC_USDT "};
    for (size_t i = 0; i < sizeof(bad_pairs) / sizeof(bad_pairs[0]); i++) {
        t = good();
        strcpy(t.pair, bad_pairs[i]);
        CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_PAIR);
    }
    t = good();
    strcpy(t.pair, "ABCDEFGHIJKLMNO_123456789012345");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);
    t = good();
    strcpy(t.exchange, "Binance");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_PAIR);
    t = good();
    strcpy(t.exchange, "gate-io");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_PAIR);
    t = good();
    strcpy(t.exchange, "gate_io2");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);

    /* Precedence: missing before bad pair before bad number before crossed. */
    t = good();
    t.bid[0] = '\0';
    strcpy(t.pair, "nope");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_MISSING);
    t = good();
    strcpy(t.pair, "nope");
    strcpy(t.last, "x");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_PAIR);
    t = good();
    strcpy(t.last, "x");
    strcpy(t.bid, "70000");
    t.bid_value = 70000;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    strcpy(t.bid, "70000");
    t.bid_value = 70000;
    strcpy(t.volume, "-1");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
}

/* A ts before 2009 or more than a day past `received` is refused (ts = -1
 * and 9e15 used to be served), after malformed numbers and before
 * non-positive prices; no ts at all is fine. */
static void test_timestamps(void)
{
    struct ticker t = good();
    const int64_t day = 86400000;

    t.ts = -1;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
    t.ts = 9000000000000000;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
    t.ts = 1710328241; /* seconds, not milliseconds */
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
    t.ts = TICKER_TS_MIN - 1;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
    t.ts = TICKER_TS_MIN;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);
    t.ts = t.received + day;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);
    t.ts = t.received + day + 1;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
    t.ts = INT64_MAX;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
    t.ts = INT64_MIN + 1;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
    t.ts = TICKER_TS_NONE;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);

    t = good();
    t.ts = -1;
    strcpy(t.volume, "x");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_NUMBER);
    t = good();
    t.ts = -1;
    strcpy(t.last, "0");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_BAD_TS);
}

/* The sign of each optional field is read off its text; these are the
 * forms that text can take. */
static void test_field_forms(void)
{
    static const struct {
        const char *volume;
        enum ticker_reject want;
    } forms[] = {
        {"0", TICKER_OK},         {"-0", TICKER_OK},
        {"-0.000", TICKER_OK},    {"00.50", TICKER_OK},
        {"-0.0001", TICKER_REJECT_NONPOSITIVE},
        {"-3", TICKER_REJECT_NONPOSITIVE},
        {"5.", TICKER_REJECT_BAD_NUMBER}, {"-.5", TICKER_REJECT_BAD_NUMBER},
        {"-", TICKER_REJECT_BAD_NUMBER},  {".", TICKER_REJECT_BAD_NUMBER},
        {"1-", TICKER_REJECT_BAD_NUMBER}, {"+1", TICKER_REJECT_BAD_NUMBER},
        {"1,5", TICKER_REJECT_BAD_NUMBER}, {"0x10", TICKER_REJECT_BAD_NUMBER},
    };
    struct ticker t;

    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        t = good();
        strcpy(t.volume, forms[i].volume);
        CHECK_INT_EQ(ticker_validate(&t), forms[i].want);
    }
    /* last must be positive: zero in any spelling is not. */
    t = good();
    strcpy(t.last, "-0.0");
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.bid, "0.000");
    t.bid_value = 0;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_REJECT_NONPOSITIVE);
    t = good();
    strcpy(t.bid, "0.00000000000000000000000000000000001");
    t.bid_value = 1e-35;
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);
    /* The widest text that fits: 39 digits. */
    t = good();
    memset(t.volume, '9', TICKER_DEC_MAX - 1);
    t.volume[TICKER_DEC_MAX - 1] = '\0';
    CHECK_INT_EQ(ticker_validate(&t), TICKER_OK);
}

static void test_mid_spread(void)
{
    struct ticker t = good();

    CHECK_DBL_NEAR(ticker_mid(&t), 64000.15, 1e-9);
    CHECK_DBL_NEAR(ticker_spread_bps(&t), 0.1 / 64000.15 * 1e4, 1e-9);
    strcpy(t.ask, "64000.1");
    t.ask_value = 64000.1;
    CHECK_DBL_NEAR(ticker_spread_bps(&t), 0, 0);
    t.ask[0] = '\0';
    CHECK(isnan(ticker_mid(&t)));
    CHECK(isnan(ticker_spread_bps(&t)));
    t = good();
    t.bid_value = -1;
    t.ask_value = 1;
    CHECK(isnan(ticker_spread_bps(&t)));
}

static void test_same_quote(void)
{
    struct ticker a = good();
    struct ticker b = good();

    CHECK(ticker_same_quote(&a, &b));
    b.received += 5;
    b.v = 42;
    CHECK(ticker_same_quote(&a, &b));
    /* Bytes after the terminator do not matter. */
    b.symbol[10] = 'Z';
    CHECK(ticker_same_quote(&a, &b));
    b = good();
    b.ts++;
    CHECK(!ticker_same_quote(&a, &b));
    b = good();
    b.source = TICKER_SOURCE_POLL;
    CHECK(!ticker_same_quote(&a, &b));
    b = good();
    strcpy(b.last, "64000.150");
    CHECK(!ticker_same_quote(&a, &b));
    b = good();
    b.volume[0] = '\0';
    CHECK(!ticker_same_quote(&a, &b));
    b = good();
    strcpy(b.symbol, "BTC-USDT");
    CHECK(!ticker_same_quote(&a, &b));
}

static void check_canonical(const char *in, const char *want)
{
    char out[TICKER_PAIR_MAX];

    CHECK_INT_EQ(ticker_pair_canonical(in, out, sizeof(out)), strlen(want));
    CHECK_STR_EQ(out, want);
}

static void test_pair_canonical(void)
{
    static const char *const bad[] = {"",
                                      "BTC",
                                      "BTC_",
                                      "_USDT",
                                      "BTC_USDT_X",
                                      "BTC USDT",
                                      "BTC:USDT",
                                      "BTC//USDT",
                                      "BTC_/USDT",
                                      " BTC_USDT",
                                      "BTC_USDT ",
                                      "BTÇ_USDT",
                                      "ABCDEFGHIJKLMNOP_USDT",
                                      "BTC_ABCDEFGHIJKLMNOP",
                                      "-"};
    char out[TICKER_PAIR_MAX];

    check_canonical("BTC_USDT", "BTC_USDT");
    check_canonical("BTC/USDT", "BTC_USDT");
    check_canonical("BTC-USDT", "BTC_USDT");
    check_canonical("btc-usdt", "BTC_USDT");
    check_canonical("Btc/uSdt", "BTC_USDT");
    check_canonical("1inch_usdt", "1INCH_USDT");
    check_canonical("ABCDEFGHIJKLMNO_123456789012345", "ABCDEFGHIJKLMNO_123456789012345");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT_EQ(ticker_pair_canonical(bad[i], out, sizeof(out)), -EINVAL);
    }
    CHECK_INT_EQ(ticker_pair_canonical(NULL, out, sizeof(out)), -EINVAL);
    CHECK_INT_EQ(ticker_pair_canonical("btc_usdt", out, 8), -ENOSPC);
    CHECK_INT_EQ(ticker_pair_canonical("btc_usdt", out, 9), 8);
    CHECK_STR_EQ(out, "BTC_USDT");
}

static void test_pair_helpers(void)
{
    char out[TICKER_PAIR_MAX];

    CHECK(ticker_pair_valid("BTC_USDT"));
    CHECK(!ticker_pair_valid("BTC-USDT"));
    CHECK(!ticker_pair_valid(""));
    CHECK(ticker_exchange_valid("gate_io"));
    CHECK(ticker_exchange_valid("x"));
    CHECK(!ticker_exchange_valid(""));
    CHECK(!ticker_exchange_valid("Gate"));
    CHECK(!ticker_exchange_valid("abcdefghijklmnopqrstuvwxyz012345"));
    CHECK(ticker_exchange_valid("abcdefghijklmnopqrstuvwxyz01234"));

    CHECK_INT_EQ(ticker_pair_swap("BTC_USDT", out, sizeof(out)), 8);
    CHECK_STR_EQ(out, "USDT_BTC");
    CHECK_INT_EQ(ticker_pair_swap("A_BCDEF", out, sizeof(out)), 7);
    CHECK_STR_EQ(out, "BCDEF_A");
    CHECK_INT_EQ(ticker_pair_swap("btc_usdt", out, sizeof(out)), -EINVAL);
    CHECK_INT_EQ(ticker_pair_swap("BTC_USDT", out, 8), -ENOSPC);
}

int main(void)
{
    test_reject_names();
    test_validate();
    test_timestamps();
    test_field_forms();
    test_mid_spread();
    test_same_quote();
    test_pair_canonical();
    test_pair_helpers();
    return CHECK_DONE();
}
