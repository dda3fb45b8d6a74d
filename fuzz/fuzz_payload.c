/*
 * Builds both bodies from fields split out of the input and checks that
 * the JSON one parses back with the expected members.
 *
 * Input: one control byte (bit 0: attach a document as "data"; bits 1-3:
 * how many of the last pairs are params), then lines: the event, then
 * "name=value" pairs.  Names stop at a NUL too: jansson cannot read back
 * keys with NUL (they are valid JSON, the payload writes them as \u0000).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pb_escape.h"
#include "pb_payload.h"


#define MAX_PAIRS  64


static const char  doc_text[] =
    "{\"x\": [1, 2.5, \"s\", null, true], \"y\": {}}";
static json_t      *doc;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    doc = json_loads(doc_text, 0,
                     NULL);

    if (doc == NULL) {
        abort();
    }

    return 0;
}


static size_t
field_len(const char *s, size_t len, int stop)
{
    const char  *end;

    end = memchr(s, stop, len);

    return end ? (size_t) (end - s) : len;
}


/* The string member must read back as the sanitized bytes. */
static void
check_text(json_t *obj, const char *key, const char *s, size_t len)
{
    size_t          n;
    json_t         *v;
    unsigned char  *clean;

    n = pb_utf8_sanitize_len((const unsigned char *) s, len);

    clean = malloc(n + 1);
    if (clean == NULL) {
        abort();
    }

    pb_utf8_sanitize(clean, (const unsigned char *) s, len);

    v = json_object_get(obj, key);

    if (!json_is_string(v) || json_string_length(v) != n
        || (n > 0 && memcmp(json_string_value(v), clean, n) != 0))
    {
        abort();
    }

    free(clean);
}


static void
check_form(const pb_kv_t *kv, size_t n)
{
    size_t          len;
    unsigned char  *form;

    len = pb_payload_form_len(kv, n);

    form = malloc(len);
    if (form == NULL && len > 0) {
        abort();
    }

    if ((size_t) (pb_payload_form(form, kv, n) - form) != len) {
        abort();
    }

    free(form);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *text, *end;
    size_t          npairs, nparams, pos, line, eq, len;
    json_t         *body, *fields, *params;
    pb_kv_t         pairs[MAX_PAIRS];
    const char     *s;
    pb_payload_t    p;

    if (size == 0) {
        return 0;
    }

    s = (const char *) data + 1;
    size--;

    memset(&p, 0, sizeof(p));
    p.id = "id";
    p.callback = "cb";
    p.created_at = "2024-01-02T03:04:05Z";
    p.data = (data[0] & 1) ? doc_text : NULL;
    p.data_len = sizeof(doc_text) - 1;

    p.event = s;
    p.event_len = field_len(s, size, '\n');
    pos = p.event_len + 1;
    npairs = 0;

    while (pos < size && npairs < MAX_PAIRS) {
        line = field_len(s + pos, size - pos, '\n');
        eq = field_len(s + pos, line, '=');

        pairs[npairs].name = s + pos;
        pairs[npairs].name_len = field_len(s + pos, eq, '\0');
        pairs[npairs].value = s + pos + eq + (eq < line);
        pairs[npairs].value_len = line - eq - (eq < line);

        npairs++;
        pos += line + 1;
    }

    nparams = (size_t) (data[0] >> 1 & 7);
    if (nparams > npairs) {
        nparams = npairs;
    }

    p.fields = pairs;
    p.nfields = npairs - nparams;
    p.params = pairs + p.nfields;
    p.nparams = nparams;

    len = pb_payload_json_len(&p);

    text = malloc(len + 1);
    if (text == NULL) {
        return 0;
    }

    end = (char *) pb_payload_json((unsigned char *) text, &p);
    *end = '\0';

    /* exactly the length announced, and no NUL inside */
    if (end != text + len || len != strlen(text)) {
        abort();
    }

    body = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(body)) {
        abort();
    }

    check_text(body, "id", p.id, strlen(p.id));
    check_text(body, "event", p.event, p.event_len);

    fields = json_object_get(body, "fields");
    params = json_object_get(body, "params");

    if (!json_is_object(fields)
        || json_object_size(fields) > p.nfields
        || (nparams > 0) != json_is_object(params)
        || json_object_size(params) > nparams
        || !json_equal(json_object_get(body, "data"),
                       p.data ? doc : json_null()))
    {
        abort();
    }

    json_decref(body);
    free(text);

    check_form(pairs, npairs);

    return 0;
}
