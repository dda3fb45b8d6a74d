/*
 * pb_jscan: values of every kind, bodies cut anywhere (the same values as
 * whole, and as the tree's), what jansson's reading makes of duplicate
 * keys, big integers, \u0000 in keys and a NUL after a number, the
 * documents refused (why, and where), the depth limit, a fresh state
 * copied, and a body of tens of megabytes fed in pieces.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_jscan.h"
#include "unit.h"


#define MAX_PATHS  8


typedef struct {
    pb_path_step_t   steps[MAX_PATHS][PB_PATH_MAX_STEPS];
    pb_jscan_path_t  paths[MAX_PATHS];
    size_t           n;
    pb_jscan_t      *js;
} scan_t;


/* a scanner of the paths of the NULL-terminated list */

static void
scan_init(scan_t *s, const char *const *paths)
{
    int          n;
    const char  *err;

    for (s->n = 0; paths[s->n] != NULL; s->n++) {
        n = pb_path_parse(paths[s->n], strlen(paths[s->n]), s->steps[s->n],
                          PB_PATH_MAX_STEPS, &err);
        CHECK(n >= 0);

        s->paths[s->n].steps = s->steps[s->n];
        s->paths[s->n].nsteps = (n < 0) ? 0 : (size_t) n;
    }

    s->js = pb_jscan_init(unit_alloc(pb_jscan_size(s->n)), s->paths, s->n);
}


static void
scan_done(scan_t *s)
{
    pb_jscan_free(s->js);
    free(s->js);
}


/* the body fed in pieces of step bytes (0: whole), each its own copy */

static int
scan_feed(scan_t *s, const char *body, size_t len, size_t step)
{
    int             rc;
    size_t          at, n;
    unsigned char  *piece;

    rc = PB_JSCAN_OK;

    for (at = 0; at < len && rc == PB_JSCAN_OK; at += n) {
        n = (step == 0 || step > len - at) ? len - at : step;
        piece = unit_copy(body + at, n);
        rc = pb_jscan_feed(s->js, (char *) piece, n);
        free(piece);
    }

    return (rc == PB_JSCAN_OK) ? pb_jscan_finish(s->js) : rc;
}


/* the body fed whole, then cut at split into two pieces */

static int
scan_split(scan_t *s, const char *body, size_t len, size_t split)
{
    int  rc;

    rc = pb_jscan_feed(s->js, body, split);

    if (rc == PB_JSCAN_OK) {
        rc = pb_jscan_feed(s->js, body + split, len - split);
    }

    return (rc == PB_JSCAN_OK) ? pb_jscan_finish(s->js) : rc;
}


/* path i's value is want[0..len); want NULL: the path found nothing */

static int
has_value(pb_jscan_t *js, size_t i, const char *want, size_t len)
{
    size_t       got_len;
    const char  *got;

    if (!pb_jscan_value(js, i, &got, &got_len)) {
        if (want != NULL) {
            fprintf(stderr, "    path %zu: absent, want \"%s\"\n", i, want);
        }

        return want == NULL;
    }

    if (want == NULL) {
        fprintf(stderr, "    path %zu: \"%s\", want absent\n", i, got);
        return 0;
    }

    return got[got_len] == '\0' && unit_bytes_eq(got, got_len, want, len);
}


/* the values found are those of pb_path_eval on pb_json_parse's tree */

static int
same_as_tree(scan_t *s, json_t *doc)
{
    int      same;
    char    *text;
    size_t   i, len;
    json_t  *v;

    same = 1;

    for (i = 0; i < s->n; i++) {
        v = pb_path_eval(doc, s->paths[i].steps, s->paths[i].nsteps);
        text = v ? pb_json_value_text(v, &len) : NULL;

        same &= has_value(s->js, i, text, text ? len : 0);
        free(text);
    }

    return same;
}


/* the body cut at split (len + 1: byte by byte) read as the tree reads it */

static int
cut_like_tree(const char *body, size_t len, const char *const *paths,
    json_t *doc, size_t split)
{
    int     rc, same;
    scan_t  s;

    scan_init(&s, paths);

    rc = (split <= len) ? scan_split(&s, body, len, split)
                        : scan_feed(&s, body, len, 1);

    same = (rc == (doc ? PB_JSCAN_OK : PB_JSCAN_REFUSED));

    if (!same) {
        fprintf(stderr, "    cut at %zu: rc %d, the tree %s it\n", split, rc,
                doc ? "accepted" : "refused");

    } else if (doc) {
        same = same_as_tree(&s, doc);
    }

    scan_done(&s);

    return same;
}


/*
 * The body read whole, cut in two at every place (a long one at some 60),
 * and byte by byte: each time as pb_json_parse reads it, the same values,
 * or refused.
 */

static int
like_tree(const char *body, size_t len, const char *const *paths)
{
    int            same;
    size_t         split, step;
    json_t        *doc;
    json_error_t   err;

    doc = pb_json_parse(body, len, &err);
    step = (len > 512) ? len / 61 : 1;
    same = cut_like_tree(body, len, paths, doc, len + 1);

    for (split = 0; split <= len && same; split += step) {
        same = cut_like_tree(body, len, paths, doc, split);
    }

    json_decref(doc);

    return same;
}


static void
test_values(void)
{
    scan_t  s;

    static const char  body[] =
        "{\"status\": \"APPROVED\", \"tx\": \"HP-1\\u00e9\\ud83d\\ude00\\n\","
        " \"amount\": 1234, \"price\": 19.99, \"hundred\": 1e2,"
        " \"zero\": -0, \"minus_zero\": -0.0, \"ok\": true, \"no\": false,"
        " \"none\": null, \"items\": [{\"sku code\": \"A\"},"
        " {\"sku code\": \"B\", \"tags\": [\"x\", {}, []]}],"
        " \"buyer\": {\"email\": \"a@b\", \"age\": 30 } }";
    static const char *const  paths[] = {
        "$.status", "$.tx", "$.amount", "$.price", "$.hundred", "$.zero",
        "$.minus_zero", "$.ok", NULL
    };
    static const char *const  more[] = {
        "$.no", "$.none", "$.items[1]['sku code']", "$.items[1].tags",
        "$.buyer", "$.items[2]", "$.buyer.age.x", "$[0]", NULL
    };

    scan_init(&s, paths);
    CHECK(scan_feed(&s, S(body), 0) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("APPROVED")));
    CHECK(has_value(s.js, 1, S("HP-1\xc3\xa9\xf0\x9f\x98\x80\n")));
    CHECK(has_value(s.js, 2, S("1234")));
    CHECK(has_value(s.js, 3, S("19.99")));
    CHECK(has_value(s.js, 4, S("100.0")));
    CHECK(has_value(s.js, 5, S("0")));
    CHECK(has_value(s.js, 6, S("-0.0")));
    CHECK(has_value(s.js, 7, S("true")));
    scan_done(&s);

    scan_init(&s, more);
    CHECK(scan_feed(&s, S(body), 0) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("false")));
    CHECK(has_value(s.js, 1, S("")));
    CHECK(has_value(s.js, 2, S("B")));
    CHECK(has_value(s.js, 3, S("[\"x\",{},[]]")));
    CHECK(has_value(s.js, 4, S("{\"email\":\"a@b\",\"age\":30}")));
    CHECK(has_value(s.js, 5, NULL, 0));
    CHECK(has_value(s.js, 6, NULL, 0));
    CHECK(has_value(s.js, 7, NULL, 0));
    CHECK(!pb_jscan_has_nul(s.js));
    scan_done(&s);

    CHECK(like_tree(S(body), paths));
    CHECK(like_tree(S(body), more));
}


static void
test_cut_anywhere(void)
{
    size_t  i;

    static const char *const  paths[] = {
        "$", "$.a", "$.s", "$.n", "$.r", "$.l[1]", "$['k\xc3\xa9y']", NULL
    };
    static const char *const  bodies[] = {
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\"}",
        "{\"s\":\"\\ud83d\\ude00 \xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9\"}",
        "{\"n\":-12345678901234567, \"r\":-1.5e-7, \"l\":[0,0.1,2]}",
        "{\"k\\u00e9y\":1,\"k\xc3\xa9y\":[true,false,null]}",
        " [ {\"a\" : { \"b\" : [ 1 , 2 ] } } , \"x\" ] \r\n\t",
        "{\"a\":\"\\u0000\",\"r\":1E+2,\"n\":9223372036854775807}",
    };

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        CHECK(like_tree(bodies[i], strlen(bodies[i]), paths));
    }
}


/* jansson keeps an object's last member of a key, in the first's place */

static void
test_duplicate_keys(void)
{
    scan_t  s;

    static const char  body[] =
        "{\"a\":1,\"a\":2,"
        " \"b\":{\"c\":1},\"b\":{\"d\":2},"
        " \"e\":{\"f\":1},\"e\":5,"
        " \"g\":[{\"h\":1}],\"g\":[{\"h\":2},{\"h\":3}],"
        " \"o\":{\"x\":1,\"y\":2,\"x\":3}}";
    static const char *const  paths[] = {
        "$.a", "$.b.c", "$.b.d", "$.e.f", "$.g[0].h", "$.o", NULL
    };

    scan_init(&s, paths);
    CHECK(scan_feed(&s, S(body), 0) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("2")));
    CHECK(has_value(s.js, 1, NULL, 0));
    CHECK(has_value(s.js, 2, S("2")));
    CHECK(has_value(s.js, 3, NULL, 0));
    CHECK(has_value(s.js, 4, S("2")));
    CHECK(has_value(s.js, 5, S("{\"x\":3,\"y\":2}")));
    scan_done(&s);

    CHECK(like_tree(S(body), paths));
}


/* an integer over 64 bits, wherever it is, makes every integer a real */

static void
test_big_integer(void)
{
    scan_t  s;

    static const char  body[] =
        "{\"n\":5,\"m\":[1,-0],\"big\":123456789012345678901}";
    static const char *const  paths[] = { "$.n", "$.m", "$.big", NULL };

    scan_init(&s, paths);
    CHECK(scan_feed(&s, S(body), 0) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("5.0")));
    CHECK(has_value(s.js, 1, S("[1.0,-0.0]")));
    CHECK(has_value(s.js, 2, S("1.2345678901234568e20")));
    scan_done(&s);

    CHECK(like_tree(S(body), paths));
    CHECK(like_tree(S("[9223372036854775807,-9223372036854775808]"),
                    paths));
    CHECK(like_tree(S("[9223372036854775808]"), paths));
    CHECK(like_tree(S("[-9223372036854775809]"), paths));
}


/* \u0000 in a key: the document is read with U+FFFD for every \u0000 */

static void
test_nul(void)
{
    scan_t  s;

    static const char  plain[] = "{\"v\":\"a\\u0000b\"}";
    static const char  in_key[] =
        "{\"v\":\"a\\u0000b\",\"o\":[\"\\u0000\"],\"k\\u0000\":1}";
    static const char *const  paths[] = {
        "$.v", "$.o", "$['k\xef\xbf\xbd']", NULL
    };

    scan_init(&s, paths);
    CHECK(scan_feed(&s, S(plain), 0) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("a\0b")));
    CHECK(pb_jscan_has_nul(s.js));
    scan_done(&s);

    scan_init(&s, paths);
    CHECK(scan_feed(&s, S(in_key), 0) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("a\xef\xbf\xbd" "b")));
    CHECK(has_value(s.js, 1, S("[\"\xef\xbf\xbd\"]")));
    CHECK(has_value(s.js, 2, S("1")));
    scan_done(&s);

    CHECK(like_tree(S(plain), paths));
    CHECK(like_tree(S(in_key), paths));
}


/* jansson loses a NUL read just after a number or a literal */

static void
test_nul_after_token(void)
{
    scan_t  s;

    static const char *const  paths[] = { "$[0]", "$[1]", "$.a", NULL };

    scan_init(&s, paths);
    CHECK(scan_feed(&s, S("[1\0,true\0]"), 1) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("1")));
    CHECK(has_value(s.js, 1, S("true")));
    scan_done(&s);

    CHECK(like_tree(S("[1\0,true\0]"), paths));
    CHECK(like_tree(S("{\"a\":[2.5\0]\0}"), paths));
    CHECK(like_tree(S("[1\0\0]"), paths));
    CHECK(like_tree(S("[\"a\"\0]"), paths));
    CHECK(like_tree(S("[1 \0]"), paths));
}


typedef struct {
    const char  *body;
    size_t       len;
    const char  *error;
    size_t       offset;
} refused_t;


static void
test_refused(void)
{
    size_t        i, offset;
    scan_t        s;
    json_t       *doc;
    const char   *error;
    json_error_t  err;

    static const char *const  paths[] = { "$.a", NULL };
    static const refused_t  cases[] = {
        { S(""), "'[' or '{' expected", 0 },
        { S(" 1"), "'[' or '{' expected", 1 },
        { S("\xef\xbb\xbf{}"), "'[' or '{' expected", 0 },
        { S("{\"a\":[1,"), "premature end of input", 8 },
        { S("[1,]"), "invalid token", 3 },
        { S("{\"a\" 1}"), "':' expected", 5 },
        { S("{\"a\":1 \"b\"}"), "',' or '}' expected", 7 },
        { S("[1 2]"), "',' or ']' expected", 3 },
        { S("{1:2}"), "string or '}' expected", 1 },
        { S("{\"a\":1,}"), "string or '}' expected", 7 },
        { S("[01]"), "invalid number", 2 },
        { S("[1.]"), "invalid number", 3 },
        { S("[-]"), "invalid number", 2 },
        { S("[1e+]"), "invalid number", 4 },
        { S("[.5]"), "invalid token", 1 },
        { S("[1e400]"), "real number overflow", 6 },
        { S("[-1e309]"), "real number overflow", 7 },
        { S("[\"a\x01\"]"), "control character in string", 3 },
        { S("[\"a\n\"]"), "control character in string", 3 },
        { S("[\"a\0\"]"), "control character in string", 3 },
        { S("[\"\\x\"]"), "invalid escape", 3 },
        { S("[\"\\u12g4\"]"), "invalid escape", 6 },
        { S("[\"\\ud800\"]"), "invalid Unicode surrogate", 8 },
        { S("[\"\\ud800\\n\"]"), "invalid Unicode surrogate", 9 },
        { S("[\"\\ud800\\u0041\"]"), "invalid Unicode surrogate", 13 },
        { S("[\"\\udc00\"]"), "invalid Unicode surrogate", 7 },
        { S("[\"\xff\"]"), "invalid UTF-8", 2 },
        { S("[\"\xc0\xaf\"]"), "invalid UTF-8", 2 },
        { S("[\"\xe0\x80\xaf\"]"), "invalid UTF-8", 3 },
        { S("[\"\xed\xa0\x80\"]"), "invalid UTF-8", 3 },
        { S("[\"\xf4\x90\x80\x80\"]"), "invalid UTF-8", 3 },
        { S("[\"\xc3\"]"), "invalid UTF-8", 3 },
        { S("{} x"), "end of file expected", 3 },
        { S("{}\0"), "end of file expected", 2 },
        { S("[tru]"), "invalid token", 4 },
        { S("[truex]"), "invalid token", 5 },
        { S("[True]"), "invalid token", 1 },
        { S("[1\0\0]"), "',' or ']' expected", 3 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        scan_init(&s, paths);
        CHECK(scan_feed(&s, cases[i].body, cases[i].len, 1)
              == PB_JSCAN_REFUSED);

        error = pb_jscan_error(s.js, &offset);
        if (error == NULL || strcmp(error, cases[i].error) != 0
            || offset != cases[i].offset)
        {
            fprintf(stderr, "    case %zu: \"%s\" at %zu\n", i,
                    error ? error : "(none)", offset);
            CHECK(0);
        }

        /* every later call says so */
        CHECK(pb_jscan_feed(s.js, S("{}")) == PB_JSCAN_REFUSED);
        CHECK(pb_jscan_finish(s.js) == PB_JSCAN_REFUSED);
        scan_done(&s);

        doc = pb_json_parse(cases[i].body, cases[i].len, &err);
        CHECK(doc == NULL);
        json_decref(doc);
    }
}


/* jansson's limit: 2048 values deep, the document being the first */

static void
test_depth(void)
{
    char    *body;
    size_t   depth;
    scan_t   s;

    static const char *const  paths[] = { "$[0][0]", NULL };

    body = (char *) unit_alloc(2 * (PB_JSCAN_DEPTH_MAX + 1) + 1);

    for (depth = PB_JSCAN_DEPTH_MAX - 1; depth <= PB_JSCAN_DEPTH_MAX + 1;
         depth++)
    {
        memset(body, '[', depth);
        body[depth] = '1';
        memset(body + depth + 1, ']', depth);

        /* the 1 is one deeper than the arrays */
        CHECK(like_tree(body, 2 * depth + 1, paths));

        scan_init(&s, paths);
        CHECK(scan_feed(&s, body, 2 * depth + 1, 4096)
              == (depth < PB_JSCAN_DEPTH_MAX ? PB_JSCAN_OK
                                             : PB_JSCAN_REFUSED));
        scan_done(&s);

        CHECK(like_tree(body, depth, paths));
    }

    free(body);
}


/* near 2^1024, and digits past those that can matter */

static void
test_number_limits(void)
{
    char    *body;
    size_t   i;

    static const char *const  paths[] = { "$[0]", "$[1]", NULL };
    static const char *const  bodies[] = {
        "[1.7976931348623157e308]",
        "[1.797693134862315807e308]",
        "[1.797693134862315808e308]",
        "[17976931348623158079372897140530341507993413271003782693617377898"
        "044496829276475094664901797758720709633028641669288791094655554785"
        "194040263065748867150582068190890200070838367627385484581771153176"
        "447573027006985557136695962284291481986083493647529271907416844436"
        "551070434271155969950809304288017790417449779]",
        "[17976931348623158079372897140530341507993413271003782693617377898"
        "044496829276475094664901797758720709633028641669288791094655554785"
        "194040263065748867150582068190890200070838367627385484581771153176"
        "447573027006985557136695962284291481986083493647529271907416844436"
        "551070434271155969950809304288017790417449780]",
        "[0.00000000000000000000000000000000000000000000000000001e360]",
        "[1e-400, -1e-400, 4.9e-324]",
    };

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        CHECK(like_tree(bodies[i], strlen(bodies[i]), paths));
    }

    /* 1 and 2000 zeros, then e-1990: 1e10, the digits not kept zeros */
    body = (char *) unit_alloc(4096);
    memcpy(body, "[1", 2);
    memset(body + 2, '0', 2000);
    memcpy(body + 2002, "e-1990,1", 8);
    memset(body + 2010, '0', 300);
    memcpy(body + 2310, "1e-2]", 5);
    CHECK(like_tree(body, 2315, paths));
    free(body);
}


static void
test_root_and_no_paths(void)
{
    scan_t  s;

    static const char *const  root[] = { "$", NULL };
    static const char *const  none[] = { NULL };

    scan_init(&s, root);
    CHECK(scan_feed(&s, S(" {\"b\": [1, 2.50], \"a\": \"x\"} "), 3)
          == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("{\"b\":[1,2.5],\"a\":\"x\"}")));
    scan_done(&s);

    scan_init(&s, none);
    CHECK(scan_feed(&s, S("[{\"a\":[]}]"), 1) == PB_JSCAN_OK);
    scan_done(&s);
}


/* a fresh state copied byte for byte scans as the one it was copied from */

static void
test_fresh_state_copied(void)
{
    size_t       i, size;
    scan_t       s;
    pb_jscan_t  *copy;

    static const char *const  paths[] = { "$.a[1]", "$.b", NULL };
    static const char *const  bodies[] = {
        "{\"a\":[0,\"x\"],\"b\":2}", "{\"b\":[true]}", "[1]"
    };
    static const char *const  want[] = { "x", "2", NULL, "[true]", NULL,
                                          NULL };

    scan_init(&s, paths);
    size = pb_jscan_size(s.n);
    copy = (pb_jscan_t *) unit_alloc(size);

    for (i = 0; i < 3; i++) {
        memcpy(copy, s.js, size);
        CHECK(pb_jscan_feed(copy, bodies[i], strlen(bodies[i]))
              == PB_JSCAN_OK);
        CHECK(pb_jscan_finish(copy) == PB_JSCAN_OK);
        CHECK(has_value(copy, 0, want[2 * i],
                        want[2 * i] ? strlen(want[2 * i]) : 0));
        CHECK(has_value(copy, 1, want[2 * i + 1],
                        want[2 * i + 1] ? strlen(want[2 * i + 1]) : 0));
        pb_jscan_free(copy);
    }

    free(copy);
    scan_done(&s);
}


/*
 * 40 MB fed in pieces of 1 to 64 KB, as a body filter sees them: the
 * values before, in the middle of and after the bulk, each found once.
 */

static void
test_large_body(void)
{
    char      *body, *p;
    size_t     i, len, at, n;
    scan_t     s;
    uint32_t   random;

    static const char *const  paths[] = {
        "$.status", "$.items[99999].sku", "$.tx", "$.pad", NULL
    };

    len = 40 * 1024 * 1024;
    body = (char *) unit_alloc(len);
    p = body + sprintf(body, "{\"status\":\"APPROVED\",\"items\":[");

    for (i = 0; i < 100000; i++) {
        p += sprintf(p, "%s{\"sku\":\"S%zu\",\"n\":%zu}", i ? "," : "", i, i);
    }

    p += sprintf(p, "],\"pad\":\"");
    memset(p, 'p', body + len - 100 - p);
    p = body + len - 100;
    p += sprintf(p, "\",\"tx\":\"LAST\"}");
    len = p - body;

    scan_init(&s, paths);
    random = 1;

    for (at = 0; at < len; at += n) {
        random = random * 1103515245 + 12345;
        n = 1 + (random >> 8) % (64 * 1024);
        n = (n > len - at) ? len - at : n;
        CHECK(pb_jscan_feed(s.js, body + at, n) == PB_JSCAN_OK);
    }

    CHECK(pb_jscan_finish(s.js) == PB_JSCAN_OK);
    CHECK(has_value(s.js, 0, S("APPROVED")));
    CHECK(has_value(s.js, 1, S("S99999")));
    CHECK(has_value(s.js, 2, S("LAST")));
    CHECK(pb_jscan_value(s.js, 3, (const char **) &p, &n) && n > len / 2);
    scan_done(&s);
    free(body);
}


const unit_test_t  jscan_tests[] = {
    UNIT_TEST(test_values),
    UNIT_TEST(test_cut_anywhere),
    UNIT_TEST(test_duplicate_keys),
    UNIT_TEST(test_big_integer),
    UNIT_TEST(test_nul),
    UNIT_TEST(test_nul_after_token),
    UNIT_TEST(test_refused),
    UNIT_TEST(test_depth),
    UNIT_TEST(test_number_limits),
    UNIT_TEST(test_root_and_no_paths),
    UNIT_TEST(test_fresh_state_copied),
    UNIT_TEST(test_large_body),
};

const size_t  jscan_ntests = sizeof(jscan_tests) / sizeof(jscan_tests[0]);
