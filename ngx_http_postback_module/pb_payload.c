/*
 * Bodies of callback requests.
 */

#include <stdlib.h>
#include <string.h>

#include "pb_escape.h"
#include "pb_payload.h"


/*
 * The JSON body is written directly, not built as a jansson tree and
 * dumped: that was a third of a worker's instructions per delivery.
 */


/* "text", its bytes escaped (invalid UTF-8 as U+FFFD) */

static size_t
pb_json_string_len(const char *s, size_t len)
{
    return 2 + pb_escape_json_len((const unsigned char *) s, len);
}


static unsigned char *
pb_json_string(unsigned char *dst, const char *s, size_t len)
{
    *dst++ = '"';
    dst = pb_escape_json(dst, (const unsigned char *) s, len);
    *dst++ = '"';

    return dst;
}


/*
 * Whether kv[i] is written: a name given again is written once, where it
 * came first, with the value it got last (as a JSON object keeps it).
 */

static int
pb_kv_first(const pb_kv_t *kv, size_t i)
{
    size_t  j;

    for (j = 0; j < i; j++) {
        if (kv[j].name_len == kv[i].name_len
            && memcmp(kv[j].name, kv[i].name, kv[i].name_len) == 0)
        {
            return 0;
        }
    }

    return 1;
}


static const pb_kv_t *
pb_kv_last(const pb_kv_t *kv, size_t n, size_t i)
{
    size_t  j;

    for (j = n; j-- > i; /* void */) {
        if (kv[j].name_len == kv[i].name_len
            && memcmp(kv[j].name, kv[i].name, kv[i].name_len) == 0)
        {
            return &kv[j];
        }
    }

    return &kv[i];
}


/* {"name":"value",...} */

static size_t
pb_json_kv_len(const pb_kv_t *kv, size_t n)
{
    size_t          i, len;
    const pb_kv_t  *last;

    len = 2;

    for (i = 0; i < n; i++) {
        if (!pb_kv_first(kv, i)) {
            continue;
        }

        last = pb_kv_last(kv, n, i);
        len += (len > 2) + pb_json_string_len(kv[i].name, kv[i].name_len)
               + 1 + pb_json_string_len(last->value, last->value_len);
    }

    return len;
}


static unsigned char *
pb_json_kv(unsigned char *dst, const pb_kv_t *kv, size_t n)
{
    size_t          i;
    unsigned char  *start;
    const pb_kv_t  *last;

    *dst++ = '{';
    start = dst;

    for (i = 0; i < n; i++) {
        if (!pb_kv_first(kv, i)) {
            continue;
        }

        if (dst != start) {
            *dst++ = ',';
        }

        last = pb_kv_last(kv, n, i);
        dst = pb_json_string(dst, kv[i].name, kv[i].name_len);
        *dst++ = ':';
        dst = pb_json_string(dst, last->value, last->value_len);
    }

    *dst++ = '}';

    return dst;
}


#define PB_ID          "{\"id\":"
#define PB_EVENT       ",\"event\":"
#define PB_CALLBACK    ",\"callback\":"
#define PB_CREATED_AT  ",\"created_at\":"
#define PB_FIELDS      ",\"fields\":"
#define PB_PARAMS      ",\"params\":"
#define PB_DATA        ",\"data\":"
#define PB_NULL        "null"

#define pb_literal(dst, s)  (memcpy(dst, s, sizeof(s) - 1), dst + sizeof(s) - 1)


size_t
pb_payload_json_len(const pb_payload_t *p)
{
    size_t  n;

    n = sizeof(PB_ID PB_EVENT PB_CALLBACK PB_CREATED_AT PB_FIELDS PB_DATA "}")
        - 1
        + pb_json_string_len(p->id, strlen(p->id))
        + pb_json_string_len(p->event, p->event_len)
        + pb_json_string_len(p->callback, strlen(p->callback))
        + pb_json_string_len(p->created_at, strlen(p->created_at))
        + pb_json_kv_len(p->fields, p->nfields)
        + (p->data ? p->data_len : sizeof(PB_NULL) - 1);

    if (p->nparams > 0) {
        n += sizeof(PB_PARAMS) - 1 + pb_json_kv_len(p->params, p->nparams);
    }

    return n;
}


unsigned char *
pb_payload_json(unsigned char *dst, const pb_payload_t *p)
{
    dst = pb_literal(dst, PB_ID);
    dst = pb_json_string(dst, p->id, strlen(p->id));
    dst = pb_literal(dst, PB_EVENT);
    dst = pb_json_string(dst, p->event, p->event_len);
    dst = pb_literal(dst, PB_CALLBACK);
    dst = pb_json_string(dst, p->callback, strlen(p->callback));
    dst = pb_literal(dst, PB_CREATED_AT);
    dst = pb_json_string(dst, p->created_at, strlen(p->created_at));
    dst = pb_literal(dst, PB_FIELDS);
    dst = pb_json_kv(dst, p->fields, p->nfields);

    if (p->nparams > 0) {
        dst = pb_literal(dst, PB_PARAMS);
        dst = pb_json_kv(dst, p->params, p->nparams);
    }

    dst = pb_literal(dst, PB_DATA);

    if (p->data) {
        memcpy(dst, p->data, p->data_len);
        dst += p->data_len;

    } else {
        dst = pb_literal(dst, PB_NULL);
    }

    *dst++ = '}';

    return dst;
}


size_t
pb_payload_form_len(const pb_kv_t *kv, size_t n)
{
    size_t  i, len;

    len = 0;

    for (i = 0; i < n; i++) {
        /* '=' and the '&' before every pair but the first */
        len += (i > 0) + 1
               + pb_escape_uri_len((const unsigned char *) kv[i].name,
                                   kv[i].name_len)
               + pb_escape_uri_len((const unsigned char *) kv[i].value,
                                   kv[i].value_len);
    }

    return len;
}


unsigned char *
pb_payload_form(unsigned char *dst, const pb_kv_t *kv, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (i > 0) {
            *dst++ = '&';
        }

        dst = pb_escape_uri(dst, (const unsigned char *) kv[i].name,
                            kv[i].name_len);
        *dst++ = '=';
        dst = pb_escape_uri(dst, (const unsigned char *) kv[i].value,
                            kv[i].value_len);
    }

    return dst;
}
