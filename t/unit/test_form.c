/*
 * pb_form: form bodies read as JSON documents: pairs, decoding, Latin-1,
 * PHP-style keys as PHP builds them, and hostile bodies.
 */

#define _POSIX_C_SOURCE  200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "pb_form.h"
#include "unit.h"


#define DUMP_FLAGS  (JSON_COMPACT | JSON_PRESERVE_ORDER)

/*
 * A guard against quadratic parsing, not a speed figure: this process's CPU
 * time (other processes on a loaded machine do not count), with room for
 * a slow one; linear parsing of LOTS takes some 50 ms, quadratic minutes.
 */
#define TIME_BOUND  2.0

#define LOTS        100000


/*
 * Parses a copy of exactly len bytes (so ASan sees a read past the end),
 * freed before the caller sees the document.
 */
static json_t *
parse(const char *in, size_t len, const char **err)
{
    json_t         *doc;
    unsigned char  *copy;

    copy = unit_copy(in, len);
    *err = NULL;

    doc = pb_form_parse((const char *) copy, len, err);

    free(copy);

    return doc;
}


static void
print_input(const char *in, size_t len)
{
    fprintf(stderr, "    input: \"%.*s\"%s\n", (int) (len > 200 ? 200 : len),
            in, len > 200 ? "..." : "");
}


/* The body must read as the document that dumps (compact) as want. */
static int
form_is(const char *in, size_t len, const char *want)
{
    int          ok;
    char        *dump;
    json_t      *doc;
    const char  *err;

    doc = parse(in, len, &err);

    if (doc == NULL) {
        fprintf(stderr, "    failed: %s\n", err ? err : "(no message)");
        print_input(in, len);
        return 0;
    }

    dump = json_dumps(doc, DUMP_FLAGS);
    ok = json_is_object(doc) && dump != NULL
         && unit_bytes_eq(dump, strlen(dump), want, strlen(want));

    if (!ok) {
        print_input(in, len);
    }

    free(dump);
    json_decref(doc);

    return ok;
}


/* The body must be malformed, with exactly this message. */
static int
form_fails(const char *in, size_t len, const char *want)
{
    json_t      *doc;
    const char  *err;

    doc = parse(in, len, &err);

    if (doc != NULL) {
        json_decref(doc);
        print_input(in, len);
        return 0;
    }

    return err != NULL && unit_bytes_eq(err, strlen(err), want, strlen(want));
}


#define FORM_IS(in, want)     form_is(S(in), want)
#define FORM_FAILS(in, want)  form_fails(S(in), want)

#define BAD_PERCENT  "invalid percent-encoding"
#define NUL_KEY      "NUL byte in a key"
#define TOO_DEEP     "nesting too deep"


static void
test_empty_body(void)
{
    const char  *err;
    json_t      *doc;

    CHECK(FORM_IS("", "{}"));
    CHECK(FORM_IS(" ", "{}"));
    CHECK(FORM_IS("\r\n", "{}"));
    CHECK(FORM_IS(" \t\r\n\r\n", "{}"));

    /* no buffer at all */
    err = NULL;
    doc = pb_form_parse(NULL, 0, &err);
    CHECK(json_is_object(doc) && json_object_size(doc) == 0);
    CHECK(err == NULL);
    json_decref(doc);
}


static void
test_flat_pairs(void)
{
    CHECK(FORM_IS("a=1", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("a=1&b=2", "{\"a\":\"1\",\"b\":\"2\"}"));
    /* in the order they came */
    CHECK(FORM_IS("b=1&a=2&c=3", "{\"b\":\"1\",\"a\":\"2\",\"c\":\"3\"}"));
    /* split at the first '=' */
    CHECK(FORM_IS("a=b=c", "{\"a\":\"b=c\"}"));
    CHECK(FORM_IS("a==", "{\"a\":\"=\"}"));
    /* values are always strings */
    CHECK(FORM_IS("n=12&t=true&z=null&f=1.5",
                  "{\"n\":\"12\",\"t\":\"true\",\"z\":\"null\","
                  "\"f\":\"1.5\"}"));
    CHECK(FORM_IS("j=%7B%7D", "{\"j\":\"{}\"}"));
}


static void
test_key_without_value(void)
{
    CHECK(FORM_IS("a", "{\"a\":\"\"}"));
    CHECK(FORM_IS("a=", "{\"a\":\"\"}"));
    CHECK(FORM_IS("a&b=1&c", "{\"a\":\"\",\"b\":\"1\",\"c\":\"\"}"));
    CHECK(FORM_IS("a[]&a[]", "{\"a\":[\"\",\"\"]}"));
}


static void
test_empty_pairs_skipped(void)
{
    CHECK(FORM_IS("a=1&&b=2", "{\"a\":\"1\",\"b\":\"2\"}"));
    CHECK(FORM_IS("&a=1&", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("a=1&&&&", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("&", "{}"));
    CHECK(FORM_IS("&&&", "{}"));
}


/* Only '&' separates pairs. */
static void
test_semicolon_is_no_separator(void)
{
    CHECK(FORM_IS("a=1;b=2", "{\"a\":\"1;b=2\"}"));
    CHECK(FORM_IS("a;b=1&c=2", "{\"a;b\":\"1\",\"c\":\"2\"}"));
}


static void
test_last_value_wins(void)
{
    CHECK(FORM_IS("a=1&a=2", "{\"a\":\"2\"}"));
    /* the key keeps its first place */
    CHECK(FORM_IS("a=1&b=2&a=3", "{\"a\":\"3\",\"b\":\"2\"}"));
    CHECK(FORM_IS("a=1&a", "{\"a\":\"\"}"));
    CHECK(FORM_IS("a[x]=1&a[x]=2", "{\"a\":{\"x\":\"2\"}}"));
}


static void
test_plus_and_percent(void)
{
    CHECK(FORM_IS("a+b=c+d", "{\"a b\":\"c d\"}"));
    CHECK(FORM_IS("a=++", "{\"a\":\"  \"}"));
    CHECK(FORM_IS("%41%62=%2B%2b%3D%26", "{\"Ab\":\"++=&\"}"));
    CHECK(FORM_IS("a%3Db=1", "{\"a=b\":\"1\"}"));
    CHECK(FORM_IS("a%26b=1%262", "{\"a&b\":\"1&2\"}"));
    CHECK(FORM_IS("k=%25", "{\"k\":\"%\"}"));
    CHECK(FORM_IS("k=%2541", "{\"k\":\"%41\"}"));
    CHECK(FORM_IS("k=%7e%7E%20", "{\"k\":\"~~ \"}"));
    CHECK(FORM_IS("k=%aF%Af", "{\"k\":\"\xc2\xaf\xc2\xaf\"}"));
    /* a %20 is a space too, and \r\n inside stays */
    CHECK(FORM_IS("k=a%0D%0Ab", "{\"k\":\"a\\r\\nb\"}"));
    /* raw bytes that should have been encoded are taken as they are */
    CHECK(FORM_IS("k=a b\"c", "{\"k\":\"a b\\\"c\"}"));
}


static void
test_invalid_percent(void)
{
    CHECK(FORM_FAILS("a=%zz", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%4", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%4g", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%g4", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%%41", BAD_PERCENT));
    CHECK(FORM_FAILS("a=% 41", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%u0041", BAD_PERCENT));
    CHECK(FORM_FAILS("%g0=1", BAD_PERCENT));
    CHECK(FORM_FAILS("a%=1", BAD_PERCENT));
    CHECK(FORM_FAILS("a%", BAD_PERCENT));
    /* anywhere in the body */
    CHECK(FORM_FAILS("a=1&b=2&c=%2", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%2&b=3", BAD_PERCENT));
    CHECK(FORM_FAILS("a=%2&3", BAD_PERCENT));
    /* even in a pair that would be skipped */
    CHECK(FORM_FAILS("=%zz&a=1", BAD_PERCENT));
    CHECK(FORM_FAILS("[x]=%zz&a=1", BAD_PERCENT));
    /* trimmed whitespace does not complete an escape */
    CHECK(FORM_FAILS("a=%4\n", BAD_PERCENT));
}


static void
test_whitespace_around_body(void)
{
    CHECK(FORM_IS("a=1\r\n", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("a=1\n", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("\r\n\t a=1 \t\r\n", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("a\r\n", "{\"a\":\"\"}"));
    /* inside, whitespace is part of keys and values */
    CHECK(FORM_IS("a= 1 &b =2", "{\"a\":\" 1 \",\"b \":\"2\"}"));
    CHECK(FORM_IS("a=1\r\nb=2", "{\"a\":\"1\\r\\nb=2\"}"));
    CHECK(FORM_IS("a=1 &\r\n", "{\"a\":\"1 \"}"));
    /* encoded whitespace is no whitespace around the body */
    CHECK(FORM_IS("a=1%0A", "{\"a\":\"1\\n\"}"));
    CHECK(FORM_IS("a=+", "{\"a\":\" \"}"));
}


static void
test_latin1(void)
{
    /* a Latin-1 form, as some Brazilian providers post */
    CHECK(FORM_IS("nome=Jo%E3o+da+Concei%E7%E3o",
                  "{\"nome\":\"Jo\xc3\xa3o da Concei\xc3\xa7\xc3\xa3o\"}"));
    /* the same in UTF-8 stays */
    CHECK(FORM_IS("nome=Jo%C3%A3o", "{\"nome\":\"Jo\xc3\xa3o\"}"));
    CHECK(FORM_IS("e=%F0%9F%98%80", "{\"e\":\"\xf0\x9f\x98\x80\"}"));
    /* keys too, and raw bytes as encoded ones */
    CHECK(FORM_IS("cora%E7%E3o=1", "{\"cora\xc3\xa7\xc3\xa3o\":\"1\"}"));
    CHECK(FORM_IS("a=\xe9t\xe9", "{\"a\":\"\xc3\xa9t\xc3\xa9\"}"));
    CHECK(FORM_IS("a[\xe9]=1", "{\"a\":{\"\xc3\xa9\":\"1\"}}"));
    /* one bad byte makes the whole value Latin-1 */
    CHECK(FORM_IS("a=%C3%A3%E3", "{\"a\":\"\xc3\x83\xc2\xa3\xc3\xa3\"}"));
    /* each key and value on its own */
    CHECK(FORM_IS("%C3%A3=%E3", "{\"\xc3\xa3\":\"\xc3\xa3\"}"));
    /* overlong, surrogate, past U+10FFFF, cut short: not UTF-8 */
    CHECK(FORM_IS("a=%C0%80", "{\"a\":\"\xc3\x80\xc2\x80\"}"));
    CHECK(FORM_IS("a=%ED%A0%80",
                  "{\"a\":\"\xc3\xad\xc2\xa0\xc2\x80\"}"));
    CHECK(FORM_IS("a=%F4%90%80%80",
                  "{\"a\":\"\xc3\xb4\xc2\x90\xc2\x80\xc2\x80\"}"));
    CHECK(FORM_IS("a=%E2%82", "{\"a\":\"\xc3\xa2\xc2\x82\"}"));
    CHECK(FORM_IS("a=%FF", "{\"a\":\"\xc3\xbf\"}"));
    /* the largest and the last 3-byte ones are UTF-8 */
    CHECK(FORM_IS("a=%F4%8F%BF%BF", "{\"a\":\"\xf4\x8f\xbf\xbf\"}"));
    CHECK(FORM_IS("a=%EF%BF%BF", "{\"a\":\"\xef\xbf\xbf\"}"));
}


static void
test_nul(void)
{
    json_t      *doc, *v;
    const char  *err;

    CHECK(FORM_IS("a=x%00y", "{\"a\":\"x\\u0000y\"}"));
    CHECK(FORM_IS("a=%00", "{\"a\":\"\\u0000\"}"));
    /* in a Latin-1 value too */
    CHECK(FORM_IS("a=%00%E9", "{\"a\":\"\\u0000\xc3\xa9\"}"));

    doc = parse(S("a=x%00y"), &err);
    v = json_object_get(doc, "a");
    CHECK(json_is_string(v)
          && unit_bytes_eq(json_string_value(v), json_string_length(v),
                           S("x\0y")));
    json_decref(doc);

    CHECK(FORM_FAILS("a%00b=1", NUL_KEY));
    CHECK(FORM_FAILS("%00=1", NUL_KEY));
    CHECK(FORM_FAILS("%00", NUL_KEY));
    CHECK(FORM_FAILS("a[%00]=1", NUL_KEY));
    CHECK(FORM_FAILS("ok=1&a[x%00]=1", NUL_KEY));
    /* in a pair that would be skipped too */
    CHECK(FORM_FAILS("[%00]=1", NUL_KEY));

    /* a raw NUL byte, as the body need not be text */
    CHECK(FORM_IS("a=x\0y", "{\"a\":\"x\\u0000y\"}"));
    CHECK(FORM_FAILS("a\0=1", NUL_KEY));
}


/* The issue's examples. */
static void
test_php_nesting(void)
{
    CHECK(FORM_IS("venda[codigo]=1&comissoes[0][valor]=2",
                  "{\"venda\":{\"codigo\":\"1\"},"
                  "\"comissoes\":[{\"valor\":\"2\"}]}"));
    CHECK(FORM_IS("a[]=x&a[]=y", "{\"a\":[\"x\",\"y\"]}"));

    /* a Monetizze-style postback */
    CHECK(FORM_IS("chave_unica=abc&venda%5Bcodigo%5D=123&venda[status]=2"
                  "&venda[valor]=97.00&produto[nome]=Curso+de+Viol%E3o"
                  "&comissoes[0][nome]=Ana&comissoes[0][valor]=10"
                  "&comissoes[1][nome]=Bia&comissoes[1][valor]=20\r\n",
                  "{\"chave_unica\":\"abc\","
                  "\"venda\":{\"codigo\":\"123\",\"status\":\"2\","
                  "\"valor\":\"97.00\"},"
                  "\"produto\":{\"nome\":\"Curso de Viol\xc3\xa3o\"},"
                  "\"comissoes\":[{\"nome\":\"Ana\",\"valor\":\"10\"},"
                  "{\"nome\":\"Bia\",\"valor\":\"20\"}]}"));

    CHECK(FORM_IS("a[b][c][d]=1&a[b][e]=2",
                  "{\"a\":{\"b\":{\"c\":{\"d\":\"1\"},\"e\":\"2\"}}}"));
    CHECK(FORM_IS("m[0][0]=a&m[0][1]=b&m[1][0]=c",
                  "{\"m\":[[\"a\",\"b\"],[\"c\"]]}"));
    /* names are taken as they are: no '.' or ' ' made '_' */
    CHECK(FORM_IS("a.b[c d]=1&x y=2",
                  "{\"a.b\":{\"c d\":\"1\"},\"x y\":\"2\"}"));
    CHECK(FORM_IS("a[ b ]=1", "{\"a\":{\" b \":\"1\"}}"));
    /* brackets read after decoding */
    CHECK(FORM_IS("a%5Bb%5D=1", "{\"a\":{\"b\":\"1\"}}"));
    CHECK(FORM_IS("a[b%5D=1", "{\"a\":{\"b\":\"1\"}}"));
    CHECK(FORM_IS("a%5B%5D=1&a%5b%5d=2", "{\"a\":[\"1\",\"2\"]}"));
    /* '=' and '&' inside brackets, encoded */
    CHECK(FORM_IS("a[x%3Dy%26z]=1", "{\"a\":{\"x=y&z\":\"1\"}}"));
}


static void
test_append(void)
{
    CHECK(FORM_IS("a[]=x", "{\"a\":[\"x\"]}"));
    CHECK(FORM_IS("a[][x]=1&a[][y]=2",
                  "{\"a\":[{\"x\":\"1\"},{\"y\":\"2\"}]}"));
    CHECK(FORM_IS("a[][]=1&a[][]=2", "{\"a\":[[\"1\"],[\"2\"]]}"));
    CHECK(FORM_IS("a[x][]=1&a[x][]=2&a[y][]=3",
                  "{\"a\":{\"x\":[\"1\",\"2\"],\"y\":[\"3\"]}}"));
    /* one more than the largest integer key so far */
    CHECK(FORM_IS("a[5]=x&a[]=y", "{\"a\":{\"5\":\"x\",\"6\":\"y\"}}"));
    CHECK(FORM_IS("a[5]=x&a[2]=y&a[]=z",
                  "{\"a\":{\"5\":\"x\",\"2\":\"y\",\"6\":\"z\"}}"));
    CHECK(FORM_IS("a[0]=x&a[]=y", "{\"a\":[\"x\",\"y\"]}"));
    CHECK(FORM_IS("a[x]=1&a[]=2", "{\"a\":{\"x\":\"1\",\"0\":\"2\"}}"));
    /* only canonical decimals are integers */
    CHECK(FORM_IS("a[-1]=x&a[]=y", "{\"a\":{\"-1\":\"x\",\"0\":\"y\"}}"));
    CHECK(FORM_IS("a[05]=x&a[]=y", "{\"a\":{\"05\":\"x\",\"0\":\"y\"}}"));
    CHECK(FORM_IS("a[+5]=x&a[]=y", "{\"a\":{\" 5\":\"x\",\"0\":\"y\"}}"));
    CHECK(FORM_IS("a[1.0]=x&a[]=y", "{\"a\":{\"1.0\":\"x\",\"0\":\"y\"}}"));
    CHECK(FORM_IS("a[1000000000]=x&a[]=y",
                  "{\"a\":{\"1000000000\":\"x\",\"0\":\"y\"}}"));
    /* up to 9 digits, and "[]" counting on past them */
    CHECK(FORM_IS("a[999999999]=x&a[]=y&a[]=z",
                  "{\"a\":{\"999999999\":\"x\",\"1000000000\":\"y\","
                  "\"1000000001\":\"z\"}}"));
    /* an index "[]" made is a key as another */
    CHECK(FORM_IS("a[]=1&a[]=2&a[1]=3", "{\"a\":[\"1\",\"3\"]}"));
    CHECK(FORM_IS("a[]=1&a[0][x]=2", "{\"a\":[{\"x\":\"2\"}]}"));
    /* the root counts too, though "[]" cannot append to it */
    CHECK(FORM_IS("0=a&1=b", "{\"0\":\"a\",\"1\":\"b\"}"));
}


/* json_encode's choice: an array for the keys 0..n-1 in order only. */
static void
test_array_or_object(void)
{
    CHECK(FORM_IS("a[0]=x&a[1]=y", "{\"a\":[\"x\",\"y\"]}"));
    CHECK(FORM_IS("a[1]=x&a[0]=y", "{\"a\":{\"1\":\"x\",\"0\":\"y\"}}"));
    CHECK(FORM_IS("a[1]=x", "{\"a\":{\"1\":\"x\"}}"));
    CHECK(FORM_IS("a[0]=x&a[2]=y", "{\"a\":{\"0\":\"x\",\"2\":\"y\"}}"));
    CHECK(FORM_IS("a[0]=x&a[x]=y", "{\"a\":{\"0\":\"x\",\"x\":\"y\"}}"));
    CHECK(FORM_IS("a[00]=x", "{\"a\":{\"00\":\"x\"}}"));
    /* a key seen again keeps the order */
    CHECK(FORM_IS("a[0]=x&a[1]=y&a[0]=z", "{\"a\":[\"z\",\"y\"]}"));
    /* the root stays an object */
    CHECK(FORM_IS("0=x", "{\"0\":\"x\"}"));
}


/* A string replaced by a map and the other way round, in place. */
static void
test_replace_kinds(void)
{
    CHECK(FORM_IS("a=1&a[b]=2", "{\"a\":{\"b\":\"2\"}}"));
    CHECK(FORM_IS("a[b]=2&a=1", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("a=1&b=2&a[x]=3", "{\"a\":{\"x\":\"3\"},\"b\":\"2\"}"));
    CHECK(FORM_IS("a[b][c]=1&a[b]=2", "{\"a\":{\"b\":\"2\"}}"));
    CHECK(FORM_IS("a[b]=1&a[b][c]=2", "{\"a\":{\"b\":{\"c\":\"2\"}}}"));
    CHECK(FORM_IS("a[]=1&a=2&a[]=3", "{\"a\":[\"3\"]}"));
    /* a map replaced starts empty: its old keys and next index gone */
    CHECK(FORM_IS("a[x]=1&a[y]=2&a=3&a[z]=4", "{\"a\":{\"z\":\"4\"}}"));
    CHECK(FORM_IS("a[7]=1&a=2&a[]=3", "{\"a\":[\"3\"]}"));
    CHECK(FORM_IS("a[x][y]=1&a[x]=2&a[x][z]=3",
                  "{\"a\":{\"x\":{\"z\":\"3\"}}}"));
}


/* Not "base[k1]..[kn]": one flat key, as it is. */
static void
test_malformed_brackets(void)
{
    CHECK(FORM_IS("a[b=1", "{\"a[b\":\"1\"}"));
    CHECK(FORM_IS("a]b=1", "{\"a]b\":\"1\"}"));
    CHECK(FORM_IS("a[b]c=1", "{\"a[b]c\":\"1\"}"));
    CHECK(FORM_IS("a[b][=1", "{\"a[b][\":\"1\"}"));
    CHECK(FORM_IS("a[b]]=1", "{\"a[b]]\":\"1\"}"));
    CHECK(FORM_IS("a[[b]]=1", "{\"a[[b]]\":\"1\"}"));
    CHECK(FORM_IS("a[b[c]]=1", "{\"a[b[c]]\":\"1\"}"));
    CHECK(FORM_IS("a[]x=1", "{\"a[]x\":\"1\"}"));
    CHECK(FORM_IS("a[=1", "{\"a[\":\"1\"}"));
    CHECK(FORM_IS("[a=1", "{\"[a\":\"1\"}"));
    CHECK(FORM_IS("[=1", "{\"[\":\"1\"}"));
    CHECK(FORM_IS("]=1", "{\"]\":\"1\"}"));
    /* a flat key and a nested one of the same base are different keys */
    CHECK(FORM_IS("a[b=1&a[c]=2", "{\"a[b\":\"1\",\"a\":{\"c\":\"2\"}}"));
    /* a ']' before the first '[' is part of the base */
    CHECK(FORM_IS("a][b]=1", "{\"a]\":{\"b\":\"1\"}}"));
}


/* PHP skips what has no name. */
static void
test_empty_base_skipped(void)
{
    CHECK(FORM_IS("[a]=1&b=2", "{\"b\":\"2\"}"));
    CHECK(FORM_IS("[]=1", "{}"));
    CHECK(FORM_IS("[a][b]=1", "{}"));
    CHECK(FORM_IS("=1", "{}"));
    CHECK(FORM_IS("=", "{}"));
    CHECK(FORM_IS("=&a=1&=2", "{\"a\":\"1\"}"));
    CHECK(FORM_IS("%5Ba%5D=1", "{}"));
}


/* "a" followed by n groups of "[x]" (or "[]"), then "=v" and tail. */
static char *
deep_key(const char *base, size_t n, const char *group, const char *tail,
    size_t *len)
{
    char    *body;
    size_t   i, size, g, b, t;

    b = strlen(base);
    g = strlen(group);
    t = strlen(tail);
    size = b + n * g + t;
    body = (char *) unit_alloc(size);

    memcpy(body, base, b);

    for (i = 0; i < n; i++) {
        memcpy(body + b + i * g, group, g);
    }

    memcpy(body + b + n * g, tail, t);
    *len = size;

    return body;
}


/* How many objects and arrays nest in v, v included. */
static size_t
depth_of(json_t *v)
{
    size_t       i, d, max;
    json_t      *item;
    const char  *key;

    max = 0;

    if (json_is_object(v)) {
        json_object_foreach(v, key, item) {
            d = depth_of(item);
            max = d > max ? d : max;
        }

        return max + 1;
    }

    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++) {
            d = depth_of(json_array_get(v, i));
            max = d > max ? d : max;
        }

        return max + 1;
    }

    return 0;
}


static void
test_nesting_depth(void)
{
    char        *body;
    size_t       len;
    json_t      *doc, *v;
    const char  *err;

    /* PB_FORM_DEPTH_MAX groups: fine */
    body = deep_key("a", PB_FORM_DEPTH_MAX, "[x]", "=deep", &len);
    doc = parse(body, len, &err);
    CHECK(doc != NULL);
    CHECK(depth_of(doc) == PB_FORM_DEPTH_MAX + 1);

    for (v = json_object_get(doc, "a"); json_is_object(v);
         v = json_object_get(v, "x"))
    {
        /* void */
    }

    CHECK(json_is_string(v) && strcmp(json_string_value(v), "deep") == 0);
    json_decref(doc);
    free(body);

    body = deep_key("a", PB_FORM_DEPTH_MAX, "[]", "=deep", &len);
    doc = parse(body, len, &err);
    CHECK(doc != NULL && depth_of(doc) == PB_FORM_DEPTH_MAX + 1);
    json_decref(doc);
    free(body);

    /* one more: the body is malformed */
    body = deep_key("a", PB_FORM_DEPTH_MAX + 1, "[x]", "=deep", &len);
    CHECK(form_fails(body, len, TOO_DEEP));
    free(body);

    body = deep_key("ok=1&a", PB_FORM_DEPTH_MAX + 1, "[]", "", &len);
    CHECK(form_fails(body, len, TOO_DEEP));
    free(body);

    /* far more */
    body = deep_key("a", 100000, "[]", "=1", &len);
    CHECK(form_fails(body, len, TOO_DEEP));
    free(body);

    /* in a pair that would be skipped too */
    body = deep_key("", PB_FORM_DEPTH_MAX + 1, "[x]", "=1", &len);
    CHECK(form_fails(body, len, TOO_DEEP));
    free(body);

    /* not well formed: one flat key however many brackets */
    body = deep_key("a", PB_FORM_DEPTH_MAX + 1, "[x]", "x=1", &len);
    doc = parse(body, len, &err);
    CHECK(doc != NULL && depth_of(doc) == 1 && json_object_size(doc) == 1);
    CHECK(json_object_getn(doc, body, len - 2) != NULL);
    json_decref(doc);
    free(body);
}


/* Bodies that end without a NUL, cut anywhere: ASan watches the reads. */
static void
test_not_nul_terminated(void)
{
    size_t              i;
    json_t             *doc;
    const char         *err;
    static const char   body[] = "v[a][]=%41%e3&w[0]=+&x%5B%5D=1&y=%00&z";

    for (i = 0; i < sizeof(body) - 1; i++) {
        doc = parse(body, i, &err);

        /* a cut escape is the only failure */
        CHECK(doc != NULL || strcmp(err, BAD_PERCENT) == 0);
        json_decref(doc);
    }

    CHECK(FORM_IS("v[a][]=%41%e3&w[0]=+&x%5B%5D=1&y=%00&z",
                  "{\"v\":{\"a\":[\"A\xc3\xa3\"]},\"w\":[\" \"],"
                  "\"x\":[\"1\"],\"y\":\"\\u0000\",\"z\":\"\"}"));
}


/* n pairs "<pair>" made by fmt from their number, joined by '&'. */
static char *
pairs(const char *head, const char *fmt, size_t n, size_t *len)
{
    int      w;
    char    *body;
    size_t   i, size, used;

    size = strlen(head) + n * (strlen(fmt) + 24) + 1;
    body = (char *) unit_alloc(size);

    used = (size_t) snprintf(body, size, "%s", head);

    for (i = 0; i < n; i++) {
        if (i > 0) {
            body[used++] = '&';
        }

        w = snprintf(body + used, size - used, fmt, i);
        used += (size_t) w;
    }

    *len = used;

    return body;
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/* Parses within TIME_BOUND; the document for the caller to check. */
static json_t *
parse_timed(const char *body, size_t len)
{
    double       start, took;
    json_t      *doc;
    const char  *err;

    start = now();
    doc = pb_form_parse(body, len, &err);
    took = now() - start;

    CHECK(doc != NULL);
    CHECK(took < TIME_BOUND);
    if (took >= TIME_BOUND) {
        fprintf(stderr, "    %zu bytes took %.3f s\n", len, took);
    }

    return doc;
}


static void
test_many_appends(void)
{
    char    *body;
    size_t   len;
    json_t  *doc, *a;

    body = pairs("", "a[]=%zu", LOTS, &len);
    doc = parse_timed(body, len);
    a = json_object_get(doc, "a");
    CHECK(json_is_array(a) && json_array_size(a) == LOTS);
    CHECK(strcmp(json_string_value(json_array_get(a, LOTS - 1)),
                 "99999") == 0);
    json_decref(doc);
    free(body);

    /* a map with a named key first: an object of as many keys */
    body = pairs("a[x]=1&", "a[]=%zu", LOTS / 2, &len);
    doc = parse_timed(body, len);
    a = json_object_get(doc, "a");
    CHECK(json_is_object(a) && json_object_size(a) == LOTS / 2 + 1);
    CHECK(strcmp(json_string_value(json_object_get(a, "49999")),
                 "49999") == 0);
    json_decref(doc);
    free(body);

    /* appends at every level */
    body = pairs("", "a[][][]=%zu", LOTS, &len);
    doc = parse_timed(body, len);
    a = json_object_get(doc, "a");
    CHECK(json_is_array(a) && json_array_size(a) == LOTS);
    json_decref(doc);
    free(body);
}


static void
test_many_keys(void)
{
    char    *body;
    size_t   len;
    json_t  *doc, *a;

    body = pairs("", "k%zu=1", LOTS, &len);
    doc = parse_timed(body, len);
    CHECK(json_object_size(doc) == LOTS);
    json_decref(doc);
    free(body);

    /* long keys with a long common prefix */
    body = pairs("", "a[xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx%zu]=1", LOTS,
                 &len);
    doc = parse_timed(body, len);
    CHECK(json_object_size(json_object_get(doc, "a")) == LOTS);
    json_decref(doc);
    free(body);

    /* explicit indexes in order: one array */
    body = pairs("", "a[%zu][v]=1", LOTS, &len);
    doc = parse_timed(body, len);
    a = json_object_get(doc, "a");
    CHECK(json_is_array(a) && json_array_size(a) == LOTS);
    json_decref(doc);
    free(body);

    /* one key, over and over */
    body = pairs("", "a[b]=%zu", LOTS, &len);
    doc = parse_timed(body, len);
    a = json_object_get(json_object_get(doc, "a"), "b");
    CHECK(strcmp(json_string_value(a), "99999") == 0);
    json_decref(doc);
    free(body);

    /* a map replaced over and over, its old keys dropped */
    body = pairs("", "a[%zu]=1&a=2", LOTS / 2, &len);
    doc = parse_timed(body, len);
    CHECK(strcmp(json_string_value(json_object_get(doc, "a")), "2") == 0);
    json_decref(doc);
    free(body);
}


/*
 * Writes doc into exactly pb_form_write_len bytes (so ASan sees a write
 * past them), checks the writer wrote that many; the text, NUL-ended.
 */
static char *
write_doc(const json_t *doc, size_t *len)
{
    char           *text;
    size_t          n;
    unsigned char  *buf, *end;

    n = pb_form_write_len(doc);
    buf = unit_alloc(n);
    end = pb_form_write(buf, doc);

    CHECK(end == buf + n);

    text = (char *) unit_alloc(n + 1);
    if (n > 0) {
        memcpy(text, buf, n);
    }
    text[n] = '\0';
    free(buf);

    *len = n;

    return text;
}


/* The JSON text in, loaded, must write as the form want. */
static int
write_is(const char *in, const char *want)
{
    int           ok;
    char         *form;
    size_t        len;
    json_t       *doc;
    json_error_t  error;

    doc = json_loads(in, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (doc == NULL) {
        fprintf(stderr, "    bad test JSON: %s: %s\n", in, error.text);
        return 0;
    }

    form = write_doc(doc, &len);
    ok = unit_bytes_eq(form, len, want, strlen(want));

    if (!ok) {
        fprintf(stderr, "    document: %s\n", in);
    }

    free(form);
    json_decref(doc);

    return ok;
}


/*
 * doc written as a form must read back as doc, members in the same
 * order (json_equal alone does not compare the order).
 */
static int
round_trip(const json_t *doc)
{
    int          ok;
    char        *form, *dump, *again_dump;
    size_t       len;
    json_t      *again;
    const char  *err;

    form = write_doc(doc, &len);
    again = parse(form, len, &err);

    dump = json_dumps(doc, DUMP_FLAGS);
    again_dump = again ? json_dumps(again, DUMP_FLAGS) : NULL;

    ok = again != NULL && json_equal(again, (json_t *) doc)
         && again_dump != NULL && strcmp(dump, again_dump) == 0;

    if (!ok) {
        fprintf(stderr, "    document: %s\n    form: %s\n    again: %s\n",
                dump, form, again_dump ? again_dump : "(failed)");
    }

    free(again_dump);
    free(dump);
    json_decref(again);
    free(form);

    return ok;
}


static int
round_trip_json(const char *in)
{
    int     ok;
    json_t  *doc;

    doc = json_loads(in, JSON_ALLOW_NUL, NULL);
    if (doc == NULL) {
        fprintf(stderr, "    bad test JSON: %s\n", in);
        return 0;
    }

    ok = round_trip(doc);
    json_decref(doc);

    return ok;
}


/* n objects {"a": ..} around {"a": leaf}: leaf under n + 1 names. */
static json_t *
nested(size_t n, json_t *leaf)
{
    size_t   i;
    json_t  *doc;

    doc = json_object();
    json_object_set_new(doc, "a", leaf);

    for (i = 0; i < n; i++) {
        leaf = doc;
        doc = json_object();
        json_object_set_new(doc, (i % 2) ? "a" : "b", leaf);
    }

    return doc;
}


/* The name nested() gives its leaf, outermost first: n + 1 names. */
static char *
nested_name(size_t n)
{
    char    *name;
    size_t   k, used;

    name = (char *) unit_alloc(1 + 7 * n + 1);
    used = 0;

    /* name k from the leaf: "a" for 0, then as nested() adds them */
    for (k = n + 1; k-- > 0; /* void */) {
        if (k < n) {
            memcpy(name + used, "%5B", 3);
            used += 3;
        }

        name[used++] = (k == 0 || (k - 1) % 2) ? 'a' : 'b';

        if (k < n) {
            memcpy(name + used, "%5D", 3);
            used += 3;
        }
    }

    name[used] = '\0';

    return name;
}


static void
test_write_issue_example(void)
{
    CHECK(write_is("{\"venda\":{\"codigo\":\"1\"},"
                   "\"comissoes\":[{\"nome\":\"a\",\"valor\":2.5},"
                   "{\"nome\":\"b\"}]}",
                   "venda%5Bcodigo%5D=1"
                   "&comissoes%5B0%5D%5Bnome%5D=a"
                   "&comissoes%5B0%5D%5Bvalor%5D=2.5"
                   "&comissoes%5B1%5D%5Bnome%5D=b"));

    /* in the document's order, not sorted */
    CHECK(write_is("{\"z\":\"1\",\"a\":\"2\",\"m\":{\"y\":\"3\",\"b\":\"4\"}}",
                   "z=1&a=2&m%5By%5D=3&m%5Bb%5D=4"));
}


static void
test_write_left_out(void)
{
    CHECK(write_is("{\"a\":null,\"b\":{},\"c\":[],\"d\":\"x\"}", "d=x"));
    /* containers of nothing to write write nothing */
    CHECK(write_is("{\"e\":{\"f\":null,\"g\":[],\"h\":[{}]},\"d\":\"x\"}",
                   "d=x"));
    /* an element left out keeps the indexes of the others */
    CHECK(write_is("{\"h\":[null,\"y\",{},\"z\"]}",
                   "h%5B1%5D=y&h%5B3%5D=z"));
    CHECK(write_is("{\"a\":null}", ""));
    CHECK(write_is("[null,[],{}]", ""));
    /* no name for a root that is not a container */
    CHECK(write_is("\"x\"", ""));
    CHECK(write_is("12", ""));
    CHECK(write_is("true", ""));
    CHECK(write_is("null", ""));
}


static void
test_write_empty(void)
{
    json_t         *doc;
    unsigned char   buf[1];

    CHECK(write_is("{}", ""));
    CHECK(write_is("[]", ""));

    doc = json_object();
    CHECK(pb_form_write_len(doc) == 0);
    CHECK(pb_form_write(buf, doc) == buf);
    json_decref(doc);

    CHECK(pb_form_write_len(NULL) == 0);
    CHECK(pb_form_write(buf, NULL) == buf);
}


static void
test_write_booleans(void)
{
    CHECK(write_is("{\"t\":true,\"f\":false,\"a\":[true,false]}",
                   "t=1&f=0&a%5B0%5D=1&a%5B1%5D=0"));
}


static void
test_write_numbers(void)
{
    CHECK(write_is("{\"i\":0,\"n\":-17,\"big\":9223372036854775807,"
                   "\"small\":-9223372036854775808}",
                   "i=0&n=-17&big=9223372036854775807"
                   "&small=-9223372036854775808"));

    /* the fewest digits that read back, as pb_json_value_text */
    CHECK(write_is("{\"a\":19.99,\"b\":2.0,\"c\":-0.5,\"d\":0.1,"
                   "\"e\":1e300,\"f\":1.5e-7,\"g\":0.30000000000000004}",
                   "a=19.99&b=2.0&c=-0.5&d=0.1&e=1e300&f=1.5e-7"
                   "&g=0.30000000000000004"));
    CHECK(write_is("{\"max\":1.7976931348623157e308,\"min\":5e-324}",
                   "max=1.7976931348623157e308&min=4.94065645841247e-324"));
}


static void
test_write_escapes(void)
{
    /* space as %20, '+' as %2B; unreserved bytes as they are */
    CHECK(write_is("{\"q\":\"a&b=c+d%e f\\ng\",\"k&=+% \\n\":\"-._~\"}",
                   "q=a%26b%3Dc%2Bd%25e%20f%0Ag"
                   "&k%26%3D%2B%25%20%0A=-._~"));
    /* brackets in keys and values, encoded as names' are */
    CHECK(write_is("{\"a[b\":\"]\",\"c\":{\"[d]\":\"x\"}}",
                   "a%5Bb=%5D&c%5B%5Bd%5D%5D=x"));
    /* UTF-8 byte by byte, NUL included */
    CHECK(write_is("{\"nome\":\"Jo\\u00e3o\",\"\\u00fc\":\"\\u20ac\","
                   "\"z\":\"a\\u0000b\",\"e\":\"\\ud83d\\ude00\"}",
                   "nome=Jo%C3%A3o&%C3%BC=%E2%82%AC&z=a%00b"
                   "&e=%F0%9F%98%80"));
    /* empty names and values */
    CHECK(write_is("{\"\":\"x\",\"a\":\"\",\"b\":{\"\":\"y\"}}",
                   "=x&a=&b%5B%5D=y"));
}


static void
test_write_root_array(void)
{
    CHECK(write_is("[\"a\",{\"b\":\"c\"},[\"d\",1]]",
                   "0=a&1%5Bb%5D=c&2%5B0%5D=d&2%5B1%5D=1"));
}


static void
test_write_long_array(void)
{
    char    *form, *want;
    size_t   i, len, used;
    json_t  *doc, *a;

    doc = json_object();
    a = json_array();
    json_object_set_new(doc, "a", a);

    for (i = 0; i < 1001; i++) {
        json_array_append_new(a, json_integer((json_int_t) i));
    }

    want = (char *) unit_alloc(1001 * 24);
    used = 0;

    for (i = 0; i < 1001; i++) {
        used += (size_t) sprintf(want + used, "%sa%%5B%zu%%5D=%zu",
                                 i ? "&" : "", i, i);
    }

    form = write_doc(doc, &len);
    CHECK(unit_bytes_eq(form, len, want, used));

    free(form);
    free(want);
    json_decref(doc);
}


static void
test_write_deep(void)
{
    char    *form, *name, *want;
    size_t   len, n;
    json_t  *doc;

    /* a leaf under exactly PB_FORM_WRITE_DEPTH_MAX names is written */
    n = PB_FORM_WRITE_DEPTH_MAX - 1;
    doc = nested(n, json_string("x"));
    name = nested_name(n);
    want = (char *) unit_alloc(strlen(name) + 3);
    sprintf(want, "%s=x", name);

    form = write_doc(doc, &len);
    CHECK(unit_bytes_eq(form, len, want, strlen(want)));

    free(form);
    free(want);
    free(name);
    json_decref(doc);

    /* one more, left out, with its siblings above the limit kept */
    n = PB_FORM_WRITE_DEPTH_MAX;
    doc = nested(n, json_string("x"));
    json_object_set_new(doc, "s", json_string("y"));

    form = write_doc(doc, &len);
    CHECK(unit_bytes_eq(form, len, S("s=y")));

    free(form);
    json_decref(doc);

    /* far deeper: no recursion past the limit */
    doc = nested(1000, json_array());
    json_array_append_new(json_object_get(doc, "a"), json_true());
    CHECK(pb_form_write_len(doc) == 0);
    json_decref(doc);
}


static void
test_write_round_trip(void)
{
    size_t   n;
    json_t  *doc;

    CHECK(round_trip_json("{}"));
    CHECK(round_trip_json("{\"venda\":{\"codigo\":\"1\"},"
                          "\"comissoes\":[{\"nome\":\"a\",\"valor\":\"2.5\"},"
                          "{\"nome\":\"b\"}]}"));
    CHECK(round_trip_json("{\"a\":[[\"x\",[\"y\"]],{\"x\":\"z\"}],"
                          "\"b\":{\"1\":\"p\",\"0\":\"q\"},"
                          "\"c\":{\"01\":\"r\",\"x\":[\"s\"]}}"));
    /* at the root, keys "0".."n-1" stay an object */
    CHECK(round_trip_json("{\"0\":\"a\",\"1\":{\"x\":\"b\"}}"));
    CHECK(round_trip_json("{\"q\":\"a&b=c+d%e f\\ng\\r\\t\","
                          "\"k&=+% \\n\":\"-._~\",\"a[b\":\"]\","
                          "\"a]b\":{\"c\":\" \"},"
                          "\"nome\":\"Jo\\u00e3o \\u20ac \\ud83d\\ude00\","
                          "\"z\":\"a\\u0000b\",\"e\":\"\"}"));
    CHECK(round_trip_json("{\"a\":[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\","
                          "\"6\",\"7\",\"8\",\"9\",\"10\",\"11\"]}"));
    /* large indexes, as "[]" makes them past 9 digits */
    CHECK(round_trip_json("{\"a\":{\"999999999\":\"x\","
                          "\"1000000000\":\"y\"}}"));

    /* as deep as a form can be */
    n = PB_FORM_DEPTH_MAX;
    doc = nested(n, json_string("x"));
    CHECK(round_trip(doc));
    json_decref(doc);
}


const unit_test_t  form_tests[] = {
    UNIT_TEST(test_empty_body),
    UNIT_TEST(test_flat_pairs),
    UNIT_TEST(test_key_without_value),
    UNIT_TEST(test_empty_pairs_skipped),
    UNIT_TEST(test_semicolon_is_no_separator),
    UNIT_TEST(test_last_value_wins),
    UNIT_TEST(test_plus_and_percent),
    UNIT_TEST(test_invalid_percent),
    UNIT_TEST(test_whitespace_around_body),
    UNIT_TEST(test_latin1),
    UNIT_TEST(test_nul),
    UNIT_TEST(test_php_nesting),
    UNIT_TEST(test_append),
    UNIT_TEST(test_array_or_object),
    UNIT_TEST(test_replace_kinds),
    UNIT_TEST(test_malformed_brackets),
    UNIT_TEST(test_empty_base_skipped),
    UNIT_TEST(test_nesting_depth),
    UNIT_TEST(test_not_nul_terminated),
    UNIT_TEST(test_many_appends),
    UNIT_TEST(test_many_keys),
    UNIT_TEST(test_write_issue_example),
    UNIT_TEST(test_write_left_out),
    UNIT_TEST(test_write_empty),
    UNIT_TEST(test_write_booleans),
    UNIT_TEST(test_write_numbers),
    UNIT_TEST(test_write_escapes),
    UNIT_TEST(test_write_root_array),
    UNIT_TEST(test_write_long_array),
    UNIT_TEST(test_write_deep),
    UNIT_TEST(test_write_round_trip),
};

const size_t  form_ntests = sizeof(form_tests) / sizeof(form_tests[0]);
