/*
 * decimal: the decimal-text rules of DESIGN §3.
 *
 * Prices travel as decimal text. A price an exchange sent as a JSON string is
 * kept exactly as written ("25.35190000"); a price that arrived as a JSON
 * number is rendered here in the shortest positional form that reads back as
 * the same double ("278000", "0.000012345678901234"), never with an exponent,
 * a trailing ".0" or a "...49999999997" tail. Inverted prices use a fixed
 * number of significant digits instead (decimal_sig).
 *
 * Any thread may call these functions: they keep no state and do not depend
 * on the process locale (the decimal point is always '.', whatever
 * setlocale() was told). The caller owns every buffer; outputs are always
 * NUL-terminated on success and untouched in content on failure.
 *
 * Errors are negative errno values: -EINVAL for text or a value that is not
 * a finite decimal number, -ENOSPC when the result does not fit in `cap`
 * bytes (terminator included), -ERANGE for text whose value overflows or
 * underflows a double.
 */
#ifndef RX_DECIMAL_H
#define RX_DECIMAL_H

#include <stddef.h>

/* Digits a double may need to read back exactly. */
#define DECIMAL_DIGITS_MAX 17

/*
 * Shortest round-trip positional text of v: the fewest significant digits
 * (1..17) that strtod reads back as v, written without an exponent, without
 * trailing zeros after the point and without a point when the value is an
 * integer. Zero (either sign) is "0"; negatives start with '-'. Returns the
 * length written, -EINVAL for NaN or infinity, -ENOSPC if cap is too small.
 */
int decimal_from_double(double v, char *out, size_t cap);

/*
 * v rounded to `digits` significant digits (1..17), positional, trailing
 * zeros trimmed; never longer than decimal_from_double's text, so 0.5 stays
 * "0.5" at any precision. Returns the length, -EINVAL for NaN, infinity or
 * digits out of range, -ENOSPC if cap is too small.
 */
int decimal_sig(double v, int digits, char *out, size_t cap);

/*
 * Validate decimal text an exchange sent (len bytes, no terminator needed):
 *
 *     ['-'] digits ['.' [digits]]  |  ['-'] '.' digits
 *
 * optionally followed by an exponent ('e' or 'E', optional sign, digits).
 * Text without an exponent is copied to out exactly as written, except that
 * the two forms JSON itself would refuse are completed rather than rejected:
 * a bare leading point gains a zero (".5" -> "0.5", "-.5" -> "-0.5") and a
 * bare trailing point is dropped ("5." -> "5"); leading zeros are kept.
 * Text with an exponent ("1.5e-7") is re-rendered with decimal_from_double
 * ("0.00000015"). Anything else is -EINVAL: empty text, whitespace, '+',
 * "NaN", "inf", hex, a second point. Returns the length written to out;
 * *value (if value is not NULL) receives the number.
 */
int decimal_parse(const char *text, size_t len, char *out, size_t cap, double *value);

#endif
