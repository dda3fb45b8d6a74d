/*
 * pb_jsonpath: parsing, evaluation and value text.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pb_jsonpath.h"
#include "unit.h"


static const char  doc_text[] =
    "{\"a\": {\"b\": [10, {\"c\": \"x\"}, null]},"
    " \"arr\": [[1, 2], [3]],"
    " \"k.x\": 1,"
    " \"\": \"empty\","
    " \"s\": \"str\"}";


static pb_path_step_t  steps[PB_PATH_MAX_STEPS];


static int
parses(const char *src, size_t len)
{
    const char  *err;

    err = NULL;

    return pb_path_parse(src, len, steps, PB_PATH_MAX_STEPS, &err);
}


/* The path must be rejected with exactly this message. */
static int
fails_with(const char *src, size_t len, const char *want)
{
    const char  *err;

    err = NULL;

    if (pb_path_parse(src, len, steps, PB_PATH_MAX_STEPS, &err) != -1) {
        return 0;
    }

    return err != NULL && unit_bytes_eq(err, strlen(err), want, strlen(want));
}


static int
is_key(const pb_path_step_t *step, const char *key, size_t len)
{
    return step->key != NULL && unit_bytes_eq(step->key, step->key_len,
                                              key, len);
}


static int
is_index(const pb_path_step_t *step, size_t index)
{
    return step->key == NULL && step->index == index;
}


/* Value at the path in the test document, or NULL. */
static json_t *
lookup(json_t *doc, const char *path)
{
    int  n;

    n = parses(path, strlen(path));
    if (n < 0) {
        return NULL;
    }

    return pb_path_eval(doc, steps, n);
}


static int
text_is(json_t *value, const char *want, size_t want_len)
{
    int     ok;
    char   *text;
    size_t  len;

    len = (size_t) -1;
    text = pb_json_value_text(value, &len);

    ok = text != NULL && text[len] == '\0'
         && unit_bytes_eq(text, len, want, want_len);

    free(text);

    return ok;
}


static void
test_parse_root(void)
{
    CHECK(parses(S("$")) == 0);
}


static void
test_parse_dot_names(void)
{
    CHECK(parses(S("$.a")) == 1);
    CHECK(is_key(&steps[0], S("a")));

    CHECK(parses(S("$.a.bc.d_e")) == 3);
    CHECK(is_key(&steps[0], S("a")));
    CHECK(is_key(&steps[1], S("bc")));
    CHECK(is_key(&steps[2], S("d_e")));

    /* a dot name ends only at '.' or '[' */
    CHECK(parses(S("$.a]b'c d\xc3\xa9")) == 1);
    CHECK(is_key(&steps[0], S("a]b'c d\xc3\xa9")));
}


static void
test_parse_brackets(void)
{
    CHECK(parses(S("$[0]")) == 1);
    CHECK(is_index(&steps[0], 0));

    CHECK(parses(S("$['k']")) == 1);
    CHECK(is_key(&steps[0], S("k")));

    CHECK(parses(S("$[\"k.x[y]\"]")) == 1);
    CHECK(is_key(&steps[0], S("k.x[y]")));

    CHECK(parses(S("$['say \"hi\"']")) == 1);
    CHECK(is_key(&steps[0], S("say \"hi\"")));

    CHECK(parses(S("$['']")) == 1);
    CHECK(is_key(&steps[0], S("")));

    CHECK(parses(S("$['a\0b']")) == 1);
    CHECK(is_key(&steps[0], S("a\0b")));

    CHECK(parses(S("$[007]")) == 1);
    CHECK(is_index(&steps[0], 7));
}


static void
test_parse_mixed(void)
{
    CHECK(parses(S("$.a[12]['b'].c[\"d\"][0]")) == 6);
    CHECK(is_key(&steps[0], S("a")));
    CHECK(is_index(&steps[1], 12));
    CHECK(is_key(&steps[2], S("b")));
    CHECK(is_key(&steps[3], S("c")));
    CHECK(is_key(&steps[4], S("d")));
    CHECK(is_index(&steps[5], 0));
}


static void
test_parse_not_nul_terminated(void)
{
    CHECK(parses("$.abc.d", 4) == 1);
    CHECK(is_key(&steps[0], S("ab")));

    CHECK(fails_with("$['k']", 5, "unterminated \"[\""));
}


static void
test_parse_index_limits(void)
{
    char  max[64], over[64];

    snprintf(max, sizeof(max), "$[%zu]", (size_t) SIZE_MAX);
    CHECK(parses(max, strlen(max)) == 1);
    CHECK(is_index(&steps[0], SIZE_MAX));

    /* SIZE_MAX ends in 5: one more is the same digits with a 6 */
    memcpy(over, max, sizeof(max));
    over[strlen(over) - 2] = '6';
    CHECK(fails_with(over, strlen(over), "bad array index"));

    CHECK(fails_with(S("$[99999999999999999999999]"), "bad array index"));
}


static void
test_parse_max_steps(void)
{
    char         path[2 * PB_PATH_MAX_STEPS + 3];
    size_t       i;
    const char  *err;

    path[0] = '$';

    for (i = 0; i <= PB_PATH_MAX_STEPS; i++) {
        path[1 + 2 * i] = '.';
        path[2 + 2 * i] = 'a';
    }

    CHECK(parses(path, 1 + 2 * PB_PATH_MAX_STEPS) == PB_PATH_MAX_STEPS);
    CHECK(fails_with(path, 3 + 2 * PB_PATH_MAX_STEPS,
                     "too many steps in JSONPath"));

    err = NULL;
    CHECK(pb_path_parse(S("$.a.b"), steps, 2, &err) == 2);
    CHECK(pb_path_parse(S("$.a.b.c"), steps, 2, &err) == -1);
    CHECK(err != NULL);
    CHECK(pb_path_parse(S("$"), steps, 0, &err) == 0);
}


static void
test_parse_failures(void)
{
    const char  *must_start = "JSONPath must start with \"$\"";
    const char  *empty_name = "empty name after \".\"";
    const char  *unterminated = "unterminated \"[\"";
    const char  *bad_index = "bad array index";
    const char  *unexpected = "expected \".\" or \"[\"";

    CHECK(fails_with(S(""), must_start));
    CHECK(fails_with(S("a"), must_start));
    CHECK(fails_with(S(".a"), must_start));
    CHECK(fails_with(S(" $"), must_start));

    CHECK(fails_with(S("$a"), unexpected));
    CHECK(fails_with(S("$ "), unexpected));
    CHECK(fails_with(S("$[0]x"), unexpected));
    CHECK(fails_with(S("$['a']b"), unexpected));

    CHECK(fails_with(S("$."), empty_name));
    CHECK(fails_with(S("$..a"), empty_name));
    CHECK(fails_with(S("$.a."), empty_name));
    CHECK(fails_with(S("$.[0]"), empty_name));

    CHECK(fails_with(S("$["), unterminated));
    CHECK(fails_with(S("$[0"), unterminated));
    CHECK(fails_with(S("$['a'"), unterminated));
    CHECK(fails_with(S("$.a[12"), unterminated));

    CHECK(fails_with(S("$[]"), bad_index));
    CHECK(fails_with(S("$[-1]"), bad_index));
    CHECK(fails_with(S("$[+1]"), bad_index));
    CHECK(fails_with(S("$[ 1]"), bad_index));
    CHECK(fails_with(S("$[1a]"), bad_index));
    CHECK(fails_with(S("$[a]"), bad_index));

    CHECK(fails_with(S("$['a"), "unterminated quoted key"));
    CHECK(fails_with(S("$['a\"]"), "unterminated quoted key"));
    CHECK(fails_with(S("$[\"a']"), "unterminated quoted key"));
    CHECK(fails_with(S("$['a'x]"), "expected \"]\" after quoted key"));
}


static void
test_eval_nested(void)
{
    json_t  *doc, *v;

    doc = json_loads(doc_text, 0, NULL);
    CHECK(doc != NULL);

    CHECK(lookup(doc, "$") == doc);
    CHECK(lookup(doc, "$.a") == json_object_get(doc, "a"));

    v = lookup(doc, "$.a.b[1].c");
    CHECK(json_is_string(v) && strcmp(json_string_value(v), "x") == 0);

    v = lookup(doc, "$['a'][\"b\"][0]");
    CHECK(json_is_integer(v) && json_integer_value(v) == 10);

    v = lookup(doc, "$.arr[1][0]");
    CHECK(json_is_integer(v) && json_integer_value(v) == 3);

    v = lookup(doc, "$['k.x']");
    CHECK(json_is_integer(v) && json_integer_value(v) == 1);

    v = lookup(doc, "$['']");
    CHECK(json_is_string(v) && strcmp(json_string_value(v), "empty") == 0);

    /* a JSON null is found, unlike a missing value */
    CHECK(json_is_null(lookup(doc, "$.a.b[2]")));

    json_decref(doc);
}


static void
test_eval_not_found(void)
{
    json_t  *doc;

    doc = json_loads(doc_text, 0, NULL);
    CHECK(doc != NULL);

    CHECK(lookup(doc, "$.missing") == NULL);
    CHECK(lookup(doc, "$.a.missing.deeper") == NULL);
    CHECK(lookup(doc, "$.k.x") == NULL);
    CHECK(lookup(doc, "$.a.b[3]") == NULL);
    CHECK(lookup(doc, "$.arr[1][1]") == NULL);
    CHECK(lookup(doc, "$.a.b.c") == NULL);
    CHECK(lookup(doc, "$.a[0]") == NULL);
    CHECK(lookup(doc, "$[0]") == NULL);
    CHECK(lookup(doc, "$.s.x") == NULL);
    CHECK(lookup(doc, "$.s[0]") == NULL);
    CHECK(lookup(doc, "$.a.b[2].x") == NULL);

    CHECK(pb_path_eval(NULL, steps, 0) == NULL);
    CHECK(parses(S("$.a")) == 1);
    CHECK(pb_path_eval(NULL, steps, 1) == NULL);

    json_decref(doc);
}


static void
test_eval_array_root(void)
{
    json_t  *doc, *v;

    doc = json_loads("[[\"x\", \"y\"], {\"k\": true}]", 0, NULL);
    CHECK(doc != NULL);

    v = lookup(doc, "$[0][1]");
    CHECK(json_is_string(v) && strcmp(json_string_value(v), "y") == 0);
    CHECK(json_is_true(lookup(doc, "$[1].k")));
    CHECK(lookup(doc, "$.k") == NULL);
    CHECK(lookup(doc, "$[2]") == NULL);

    json_decref(doc);
}


static void
test_text_strings(void)
{
    json_t  *v;

    v = json_string("h\xc3\xa9llo \"raw\"");
    CHECK(text_is(v, S("h\xc3\xa9llo \"raw\"")));
    json_decref(v);

    v = json_stringn("a\0b", 3);
    CHECK(text_is(v, S("a\0b")));
    json_decref(v);

    v = json_string("");
    CHECK(text_is(v, S("")));
    json_decref(v);
}


static void
test_text_numbers(void)
{
    json_t  *v;

    v = json_integer(42);
    CHECK(text_is(v, S("42")));
    json_decref(v);

    v = json_integer(-7);
    CHECK(text_is(v, S("-7")));
    json_decref(v);

    v = json_integer(9007199254740993LL);
    CHECK(text_is(v, S("9007199254740993")));
    json_decref(v);

    v = json_real(19.99);
    CHECK(text_is(v, S("19.99")));
    json_decref(v);

    v = json_real(0.1);
    CHECK(text_is(v, S("0.1")));
    json_decref(v);

    v = json_real(1.0);
    CHECK(text_is(v, S("1.0")));
    json_decref(v);

    v = json_real(-2.5e-300);
    CHECK(text_is(v, S("-2.5e-300")));
    json_decref(v);

    /* the shortest text that reads back as the same double */
    v = json_real(1.0 / 3.0);
    CHECK(text_is(v, S("0.3333333333333333")));
    json_decref(v);

    v = json_real(0.1 + 0.2);
    CHECK(text_is(v, S("0.30000000000000004")));
    json_decref(v);
}


static void
test_text_literals(void)
{
    CHECK(text_is(json_true(), S("true")));
    CHECK(text_is(json_false(), S("false")));
    CHECK(text_is(json_null(), S("")));
}


static void
test_text_containers(void)
{
    json_t  *v;

    v = json_loads("{\"a\": 1, \"b\": [1, \"x\", null], \"c\": {}}", 0, NULL);
    CHECK(text_is(v, S("{\"a\":1,\"b\":[1,\"x\",null],\"c\":{}}")));
    json_decref(v);

    v = json_loads("[\"caf\\u00e9\", \"q\\\"\"]", 0, NULL);
    CHECK(text_is(v, S("[\"caf\xc3\xa9\",\"q\\\"\"]")));
    json_decref(v);

    v = json_array();
    CHECK(text_is(v, S("[]")));
    json_decref(v);
}


static void
test_text_missing(void)
{
    size_t  len;

    CHECK(pb_json_value_text(NULL, &len) == NULL);
}


static void
test_json_parse(void)
{
    json_t        *doc;
    json_error_t   err;

    /* strings with NUL are kept whole */
    doc = pb_json_parse(S("{\"s\":\"a\\u0000b\"}"), &err);
    CHECK(doc != NULL);
    CHECK(doc && json_string_length(json_object_get(doc, "s")) == 3);
    json_decref(doc);

    /* an integer over 64 bits: the document is still read */
    doc = pb_json_parse(S("{\"n\":123456789012345678901234,\"e\":\"A\"}"),
                        &err);
    CHECK(doc != NULL);
    CHECK(doc && json_is_real(json_object_get(doc, "n")));
    CHECK(doc && strcmp(json_string_value(json_object_get(doc, "e")), "A")
                 == 0);
    json_decref(doc);

    /* small integers stay integers */
    doc = pb_json_parse(S("[1234]"), &err);
    CHECK(doc && json_is_integer(json_array_get(doc, 0)));
    json_decref(doc);

    /* NUL in a key: read as U+FFFD; an escaped backslash is no escape */
    doc = pb_json_parse(S("{\"a\\u0000b\":1,\"e\":\"\\\\u0000\"}"), &err);
    CHECK(doc != NULL);
    CHECK(doc && json_integer_value(json_object_get(doc, "a\xef\xbf\xbd" "b"))
                 == 1);
    CHECK(doc && strcmp(json_string_value(json_object_get(doc, "e")),
                        "\\u0000") == 0);
    json_decref(doc);

    CHECK(pb_json_parse(NULL, 0, &err) == NULL);
    CHECK(pb_json_parse(S("\"just a string\""), &err) == NULL);
    CHECK(pb_json_parse(S("{\"a\":"), &err) == NULL);
    CHECK(pb_json_parse(S("{\"a\":1}{"), &err) == NULL);
}


/* Sets path to a string in doc; whether pb_path_set said it worked. */
static int
set(json_t *doc, const char *path, const char *value)
{
    int  n;

    n = parses(path, strlen(path));

    return n >= 0 && pb_path_set(doc, steps, n, json_string(value)) == 0;
}


static void
test_set_builds_the_path(void)
{
    char    *text;
    json_t  *doc;

    doc = json_object();

    CHECK(set(doc, "$.data.purchase.status", "test"));
    CHECK(set(doc, "$.data.purchase.tx", "T1"));
    CHECK(set(doc, "$.data.items[2].id", "P"));
    CHECK(set(doc, "$['k.x']", "dotted"));

    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(text != NULL
          && strcmp(text, "{\"data\":{\"items\":[null,null,{\"id\":\"P\"}],"
                          "\"purchase\":{\"status\":\"test\",\"tx\":\"T1\"}},"
                          "\"k.x\":\"dotted\"}") == 0);
    free(text);

    /* what it set is what evaluation finds */
    CHECK(text_is(lookup(doc, "$.data.items[2].id"), S("P")));

    /* a later value replaces an earlier one */
    CHECK(set(doc, "$.data.purchase.tx", "T2"));
    CHECK(text_is(lookup(doc, "$.data.purchase.tx"), S("T2")));

    json_decref(doc);

    doc = json_array();
    CHECK(set(doc, "$[1].a", "x"));
    CHECK(text_is(lookup(doc, "$[1].a"), S("x")));
    json_decref(doc);
}


static void
test_set_conflicts(void)
{
    json_t  *doc;

    doc = json_object();

    CHECK(set(doc, "$.a.b", "x"));
    /* through a string, or an index into an object: no */
    CHECK(!set(doc, "$.a.b.c", "y"));
    CHECK(!set(doc, "$.a[0]", "y"));
    CHECK(!set(doc, "$[0]", "y"));
    /* the root itself holds no value */
    CHECK(!set(doc, "$", "y"));
    /* arrays are padded so far only */
    CHECK(!set(doc, "$.big[65]", "y"));
    CHECK(set(doc, "$.big[64]", "y"));
    CHECK(json_array_size(json_object_get(doc, "big")) == 65);

    /* a failure takes the value's reference all the same (no leak) */
    CHECK(pb_path_set(doc, steps, 0, json_string("z")) == -1);

    json_decref(doc);
}


const unit_test_t  jsonpath_tests[] = {
    UNIT_TEST(test_parse_root),
    UNIT_TEST(test_parse_dot_names),
    UNIT_TEST(test_parse_brackets),
    UNIT_TEST(test_parse_mixed),
    UNIT_TEST(test_parse_not_nul_terminated),
    UNIT_TEST(test_parse_index_limits),
    UNIT_TEST(test_parse_max_steps),
    UNIT_TEST(test_parse_failures),
    UNIT_TEST(test_eval_nested),
    UNIT_TEST(test_eval_not_found),
    UNIT_TEST(test_eval_array_root),
    UNIT_TEST(test_text_strings),
    UNIT_TEST(test_text_numbers),
    UNIT_TEST(test_text_literals),
    UNIT_TEST(test_text_containers),
    UNIT_TEST(test_text_missing),
    UNIT_TEST(test_json_parse),
    UNIT_TEST(test_set_builds_the_path),
    UNIT_TEST(test_set_conflicts),
};

const size_t  jsonpath_ntests =
    sizeof(jsonpath_tests) / sizeof(jsonpath_tests[0]);
