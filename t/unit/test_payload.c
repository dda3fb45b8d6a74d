/*
 * pb_payload: the JSON and form bodies of callback requests.
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pb_payload.h"
#include "unit.h"


#define KV(name, value)  { S(name), S(value) }


static pb_kv_t  fields[] = {
    KV("amount", "19.99"),
    KV("bad\xff" "name", "bad\xc3"),
    KV("quote", "say \"hi\"\n"),
};

static pb_kv_t  params[] = {
    KV("p", "1"),
    KV("nul", "a\0b"),
};


static pb_payload_t
payload(void)
{
    pb_payload_t  p;

    memset(&p, 0, sizeof(p));

    p.id = "0123abcd";
    p.callback = "https://cb.example/x";
    p.created_at = "2024-01-02T03:04:05Z";
    p.event = "conversion";
    p.event_len = sizeof("conversion") - 1;

    return p;
}


/*
 * The body, NUL-terminated in malloc'd memory, *len its length; NULL when
 * the writer does not write exactly pb_payload_json_len bytes.
 */
static char *
body_text(const pb_payload_t *p, size_t *len)
{
    unsigned char  *text, *end;

    *len = pb_payload_json_len(p);

    text = malloc(*len + 1);
    if (text == NULL) {
        abort();
    }

    end = pb_payload_json(text, p);
    *end = '\0';

    if ((size_t) (end - text) != *len) {
        free(text);
        return NULL;
    }

    return (char *) text;
}


/* Builds the body, checks its length and parses it back. */
static json_t *
round_trip(const pb_payload_t *p)
{
    char    *text;
    size_t   len;
    json_t  *body;

    text = body_text(p, &len);
    if (text == NULL) {
        return NULL;
    }

    body = (len == strlen(text))
           ? json_loadb(text, len, JSON_ALLOW_NUL, NULL) : NULL;

    free(text);

    return body;
}


static int
member_is(json_t *obj, const char *key, const char *want, size_t want_len)
{
    json_t  *v;

    v = json_object_get(obj, key);

    return json_is_string(v)
           && unit_bytes_eq(json_string_value(v), json_string_length(v),
                            want, want_len);
}


static int
json_is(const pb_payload_t *p, const char *want)
{
    int      ok;
    char    *text;
    size_t   len;

    text = body_text(p, &len);

    ok = text != NULL && unit_bytes_eq(text, len, want, strlen(want));

    free(text);

    return ok;
}


static int
form_is(const pb_kv_t *kv, size_t n, const char *want, size_t want_len)
{
    int             ok;
    size_t          len;
    unsigned char  *buf, *end;

    len = pb_payload_form_len(kv, n);

    buf = malloc(len);
    if (buf == NULL && len > 0) {
        abort();
    }

    end = pb_payload_form(buf, kv, n);
    ok = (size_t) (end - buf) == len
         && unit_bytes_eq(buf, len, want, want_len);

    free(buf);

    return ok;
}


static void
test_json_layout(void)
{
    pb_payload_t  p;

    p = payload();
    p.fields = fields;
    p.nfields = 1;

    CHECK(json_is(&p, "{\"id\":\"0123abcd\",\"event\":\"conversion\","
                      "\"callback\":\"https://cb.example/x\","
                      "\"created_at\":\"2024-01-02T03:04:05Z\","
                      "\"fields\":{\"amount\":\"19.99\"},\"data\":null}"));

    p.params = params;
    p.nparams = 1;

    CHECK(json_is(&p, "{\"id\":\"0123abcd\",\"event\":\"conversion\","
                      "\"callback\":\"https://cb.example/x\","
                      "\"created_at\":\"2024-01-02T03:04:05Z\","
                      "\"fields\":{\"amount\":\"19.99\"},"
                      "\"params\":{\"p\":\"1\"},\"data\":null}"));
}


static void
test_json_round_trip(void)
{
    json_t        *body, *f;
    pb_payload_t   p;

    p = payload();
    p.fields = fields;
    p.nfields = sizeof(fields) / sizeof(fields[0]);

    body = round_trip(&p);
    CHECK(json_is_object(body));
    CHECK(json_object_size(body) == 6);

    CHECK(member_is(body, "id", S("0123abcd")));
    CHECK(member_is(body, "event", S("conversion")));
    CHECK(member_is(body, "callback", S("https://cb.example/x")));
    CHECK(member_is(body, "created_at", S("2024-01-02T03:04:05Z")));
    CHECK(json_is_null(json_object_get(body, "data")));
    CHECK(json_object_get(body, "params") == NULL);

    f = json_object_get(body, "fields");
    CHECK(json_is_object(f) && json_object_size(f) == 3);
    CHECK(member_is(f, "amount", S("19.99")));
    CHECK(member_is(f, "bad\xef\xbf\xbdname", S("bad\xef\xbf\xbd")));
    CHECK(member_is(f, "quote", S("say \"hi\"\n")));

    json_decref(body);
}


static void
test_json_invalid_utf8(void)
{
    json_t        *body;
    pb_payload_t   p;

    p = payload();
    p.event = "ev\x80\xed\xa0\x80";
    p.event_len = 6;
    p.id = "id\xfe";

    body = round_trip(&p);
    CHECK(json_is_object(body));
    CHECK(member_is(body, "event", S("ev\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                     "\xef\xbf\xbd")));
    CHECK(member_is(body, "id", S("id\xef\xbf\xbd")));

    json_decref(body);
}


static void
test_json_params(void)
{
    json_t        *body, *pr;
    pb_payload_t   p;

    p = payload();
    p.params = params;
    p.nparams = sizeof(params) / sizeof(params[0]);

    body = round_trip(&p);
    pr = json_object_get(body, "params");
    CHECK(json_is_object(pr) && json_object_size(pr) == 2);
    CHECK(member_is(pr, "p", S("1")));
    CHECK(member_is(pr, "nul", S("a\0b")));
    CHECK(json_object_size(json_object_get(body, "fields")) == 0);
    json_decref(body);

    /* no member at all without params, even with a params pointer */
    p.nparams = 0;
    body = round_trip(&p);
    CHECK(json_is_object(body));
    CHECK(json_object_get(body, "params") == NULL);
    json_decref(body);
}


static void
test_json_data(void)
{
    static const char  text[] =
        "{\"x\": [1, 2.5, \"s\"], \"y\": {\"z\": null}}";
    json_t            *doc, *body;
    pb_payload_t       p;

    doc = json_loads(text, 0, NULL);
    CHECK(doc != NULL);

    p = payload();
    p.data = text;
    p.data_len = sizeof(text) - 1;

    body = round_trip(&p);
    CHECK(json_equal(json_object_get(body, "data"), doc));
    json_decref(body);

    /* the document's text as given, not written again */
    CHECK(json_is(&p, "{\"id\":\"0123abcd\",\"event\":\"conversion\","
                      "\"callback\":\"https://cb.example/x\","
                      "\"created_at\":\"2024-01-02T03:04:05Z\","
                      "\"fields\":{},"
                      "\"data\":{\"x\": [1, 2.5, \"s\"], "
                      "\"y\": {\"z\": null}}}"));

    json_decref(doc);
}


static void
test_json_repeated_name(void)
{
    static pb_kv_t  twice[] = { KV("a", "1"), KV("b", "2"), KV("a", "3") };
    pb_payload_t    p;

    p = payload();
    p.fields = twice;
    p.nfields = 3;

    /* written once, where it came first, with its last value */
    CHECK(json_is(&p, "{\"id\":\"0123abcd\",\"event\":\"conversion\","
                      "\"callback\":\"https://cb.example/x\","
                      "\"created_at\":\"2024-01-02T03:04:05Z\","
                      "\"fields\":{\"a\":\"3\",\"b\":\"2\"},\"data\":null}"));
}


static void
test_json_nul_in_name(void)
{
    static pb_kv_t  nul_name[] = { KV("a\0b", "v") };
    pb_payload_t    p;

    p = payload();
    p.fields = nul_name;
    p.nfields = 1;

    CHECK(json_is(&p, "{\"id\":\"0123abcd\",\"event\":\"conversion\","
                      "\"callback\":\"https://cb.example/x\","
                      "\"created_at\":\"2024-01-02T03:04:05Z\","
                      "\"fields\":{\"a\\u0000b\":\"v\"},\"data\":null}"));
}


static void
test_form(void)
{
    static pb_kv_t  kv[] = {
        KV("a", "1"),
        KV("b c", "x&y=z+w"),
        KV("caf\xc3\xa9", "100%"),
    };

    CHECK(form_is(kv, 0, S("")));
    CHECK(form_is(kv, 1, S("a=1")));
    CHECK(form_is(kv, 3,
                  S("a=1&b%20c=x%26y%3Dz%2Bw&caf%C3%A9=100%25")));
}


static void
test_form_empty_pairs(void)
{
    static pb_kv_t  kv[] = {
        KV("", ""),
        KV("", ""),
        KV("k", "\0"),
    };

    CHECK(form_is(kv, 1, S("=")));
    CHECK(form_is(kv, 3, S("=&=&k=%00")));
}


const unit_test_t  payload_tests[] = {
    UNIT_TEST(test_json_layout),
    UNIT_TEST(test_json_round_trip),
    UNIT_TEST(test_json_invalid_utf8),
    UNIT_TEST(test_json_params),
    UNIT_TEST(test_json_data),
    UNIT_TEST(test_json_repeated_name),
    UNIT_TEST(test_json_nul_in_name),
    UNIT_TEST(test_form),
    UNIT_TEST(test_form_empty_pairs),
};

const size_t  payload_ntests =
    sizeof(payload_tests) / sizeof(payload_tests[0]);
