/*
 * pb_escape: URI, JSON, UTF-8, header and base64 escaping.
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pb_escape.h"
#include "unit.h"


typedef size_t (*escape_len_pt)(const unsigned char *src, size_t len);
typedef unsigned char *(*escape_pt)(unsigned char *dst,
    const unsigned char *src, size_t len);


/*
 * Escapes into a buffer of exactly the announced size, so ASan catches a
 * writer that goes past its *_len, and compares with the expected bytes.
 */
static int
escapes_to(escape_len_pt len_of, escape_pt escape, const char *in,
    size_t in_len, const char *want, size_t want_len)
{
    int             ok;
    size_t          n;
    unsigned char  *buf, *end;

    n = len_of((const unsigned char *) in, in_len);

    buf = malloc(n);
    if (buf == NULL && n > 0) {
        abort();
    }

    end = escape(buf, (const unsigned char *) in, in_len);
    ok = (size_t) (end - buf) == n && unit_bytes_eq(buf, n, want, want_len);

    free(buf);

    return ok;
}


#define URI_IS(in, want)                                                     \
    escapes_to(pb_escape_uri_len, pb_escape_uri, S(in), S(want))
#define JSON_IS(in, want)                                                    \
    escapes_to(pb_escape_json_len, pb_escape_json, S(in), S(want))
#define UTF8_IS(in, want)                                                    \
    escapes_to(pb_utf8_sanitize_len, pb_utf8_sanitize, S(in), S(want))


/* Wraps the escaped text in quotes and checks what jansson reads back. */
static int
json_reads_back(const char *in, size_t in_len, const char *want,
    size_t want_len)
{
    int             ok;
    size_t          n;
    json_t         *str;
    unsigned char  *buf, *end;

    n = pb_escape_json_len((const unsigned char *) in, in_len);

    buf = malloc(n + 2);
    if (buf == NULL) {
        abort();
    }

    buf[0] = '"';
    end = pb_escape_json(buf + 1, (const unsigned char *) in, in_len);
    *end++ = '"';

    str = json_loadb((const char *) buf, end - buf,
                     JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    ok = json_is_string(str)
         && unit_bytes_eq(json_string_value(str), json_string_length(str),
                          want, want_len);

    json_decref(str);
    free(buf);

    return ok;
}


static void
test_uri_unreserved_kept(void)
{
    CHECK(URI_IS("", ""));
    CHECK(URI_IS("AZaz09-._~", "AZaz09-._~"));
}


static void
test_uri_reserved_escaped(void)
{
    CHECK(URI_IS("+", "%2B"));
    CHECK(URI_IS("&", "%26"));
    CHECK(URI_IS("@", "%40"));
    CHECK(URI_IS(" ", "%20"));
    CHECK(URI_IS("/", "%2F"));
    CHECK(URI_IS("?", "%3F"));
    CHECK(URI_IS("#", "%23"));
    CHECK(URI_IS("%", "%25"));
    CHECK(URI_IS("=", "%3D"));
    CHECK(URI_IS("a b+c&d", "a%20b%2Bc%26d"));
}


static void
test_uri_binary_escaped(void)
{
    CHECK(URI_IS("\x00", "%00"));
    CHECK(URI_IS("\x7f", "%7F"));
    CHECK(URI_IS("\x80\xff", "%80%FF"));
    CHECK(URI_IS("caf\xc3\xa9", "caf%C3%A9"));
}


static void
test_json_quotes_backslashes(void)
{
    CHECK(JSON_IS("", ""));
    CHECK(JSON_IS("plain / text", "plain / text"));
    CHECK(JSON_IS("a\"b", "a\\\"b"));
    CHECK(JSON_IS("a\\b", "a\\\\b"));
    CHECK(JSON_IS("\"\\\"", "\\\"\\\\\\\""));
}


static void
test_json_control_bytes(void)
{
    CHECK(JSON_IS("\b\f\n\r\t", "\\b\\f\\n\\r\\t"));
    CHECK(JSON_IS("\x01", "\\u0001"));
    CHECK(JSON_IS("\x1b[0m", "\\u001B[0m"));
    CHECK(JSON_IS("\x1f", "\\u001F"));
    CHECK(JSON_IS("\x7f", "\x7f"));
    CHECK(JSON_IS("a\x00" "b", "a\\u0000b"));
}


static void
test_json_valid_utf8_kept(void)
{
    CHECK(JSON_IS("caf\xc3\xa9", "caf\xc3\xa9"));
    CHECK(JSON_IS("\xe2\x82\xac", "\xe2\x82\xac"));
    CHECK(JSON_IS("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"));
    CHECK(JSON_IS("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"));
    CHECK(JSON_IS("\xed\x9f\xbf\xee\x80\x80", "\xed\x9f\xbf\xee\x80\x80"));
}


static void
test_json_invalid_utf8_replaced(void)
{
    /* lone continuation byte */
    CHECK(JSON_IS("a\x80z", "a\\ufffdz"));
    /* truncated sequences: one replacement for the whole prefix */
    CHECK(JSON_IS("\xe2\x82", "\\ufffd"));
    CHECK(JSON_IS("\xe2\x82z", "\\ufffdz"));
    CHECK(JSON_IS("\xf0\x9f\x98", "\\ufffd"));
    CHECK(JSON_IS("\xc3", "\\ufffd"));
    /* overlong forms */
    CHECK(JSON_IS("\xc0\xaf", "\\ufffd\\ufffd"));
    CHECK(JSON_IS("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"));
    /* UTF-16 surrogate D800 */
    CHECK(JSON_IS("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"));
    /* above U+10FFFF, and bytes never valid */
    CHECK(JSON_IS("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"));
    CHECK(JSON_IS("\xf5\xfe\xff", "\\ufffd\\ufffd\\ufffd"));
}


static void
test_json_output_parses(void)
{
    CHECK(json_reads_back(S("q\"b\\s\n\x01\x00z"), S("q\"b\\s\n\x01\x00z")));
    CHECK(json_reads_back(S("\xf0\x9f\x98\x80"), S("\xf0\x9f\x98\x80")));
    CHECK(json_reads_back(S("x\xed\xa0\x80y"),
                          S("x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy")));
    CHECK(json_reads_back(S("\xff"), S("\xef\xbf\xbd")));
}


static void
test_utf8_sanitize(void)
{
    CHECK(UTF8_IS("", ""));
    CHECK(UTF8_IS("ascii \x00\x7f", "ascii \x00\x7f"));
    CHECK(UTF8_IS("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                  "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    CHECK(UTF8_IS("a\x80" "b", "a\xef\xbf\xbd" "b"));
    CHECK(UTF8_IS("\xe2\x82", "\xef\xbf\xbd"));
    CHECK(UTF8_IS("\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"));
    CHECK(UTF8_IS("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    CHECK(UTF8_IS("\xf0\x9f\x98", "\xef\xbf\xbd"));
}


static void
test_utf8_sanitize_bound(void)
{
    static const unsigned char  worst[] = { 0x80, 0xff, 0xc0, 0xf5 };

    CHECK(pb_utf8_sanitize_len(worst, sizeof(worst)) == 3 * sizeof(worst));
}


static void
test_header_sanitize(void)
{
    unsigned char  v[] = "a\r\nb\x00" "c\x7f\td\x1b\x80\xff";

    CHECK(pb_header_sanitize(v, sizeof(v) - 1) == 5);
    CHECK(unit_bytes_eq(v, sizeof(v) - 1, S("a  b c \td \x80\xff")));

    CHECK(pb_header_sanitize(v, 0) == 0);
}


static int
base64_is(const char *in, size_t in_len, const char *want, size_t want_len)
{
    int             ok;
    size_t          n;
    unsigned char  *buf, *end;

    n = pb_base64_len(in_len);

    buf = malloc(n);
    if (buf == NULL && n > 0) {
        abort();
    }

    end = pb_base64(buf, (const unsigned char *) in, in_len);
    ok = (size_t) (end - buf) == n && unit_bytes_eq(buf, n, want, want_len);

    free(buf);

    return ok;
}


static void
test_base64_rfc4648(void)
{
    CHECK(base64_is(S(""), S("")));
    CHECK(base64_is(S("f"), S("Zg==")));
    CHECK(base64_is(S("fo"), S("Zm8=")));
    CHECK(base64_is(S("foo"), S("Zm9v")));
    CHECK(base64_is(S("foob"), S("Zm9vYg==")));
    CHECK(base64_is(S("fooba"), S("Zm9vYmE=")));
    CHECK(base64_is(S("foobar"), S("Zm9vYmFy")));
}


static void
test_base64_binary(void)
{
    CHECK(base64_is(S("\xff\xfe\xfd\x00"), S("//79AA==")));
    CHECK(base64_is(S("\xfb\xef"), S("++8=")));
    CHECK(base64_is(S("\x00\x00\x00"), S("AAAA")));
    CHECK(pb_base64_len(1000) == 1336);
}


const unit_test_t  escape_tests[] = {
    UNIT_TEST(test_uri_unreserved_kept),
    UNIT_TEST(test_uri_reserved_escaped),
    UNIT_TEST(test_uri_binary_escaped),
    UNIT_TEST(test_json_quotes_backslashes),
    UNIT_TEST(test_json_control_bytes),
    UNIT_TEST(test_json_valid_utf8_kept),
    UNIT_TEST(test_json_invalid_utf8_replaced),
    UNIT_TEST(test_json_output_parses),
    UNIT_TEST(test_utf8_sanitize),
    UNIT_TEST(test_utf8_sanitize_bound),
    UNIT_TEST(test_header_sanitize),
    UNIT_TEST(test_base64_rfc4648),
    UNIT_TEST(test_base64_binary),
};

const size_t  escape_ntests = sizeof(escape_tests) / sizeof(escape_tests[0]);
