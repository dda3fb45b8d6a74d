/*
 * Bodies of callback requests.
 */

#include <stdlib.h>
#include <string.h>

#include "pb_escape.h"
#include "pb_payload.h"


/*
 * Values are built inside json_object_set*_new() calls unchecked: those
 * fail on NULL (out of memory) and release the value when they fail.
 */


/* A JSON string of any bytes, invalid UTF-8 replaced by U+FFFD. */
static json_t *
pb_json_text(const char *s, size_t len)
{
    size_t          n;
    json_t         *str;
    unsigned char  *buf;

    n = pb_utf8_sanitize_len((const unsigned char *) s, len);

    /* malloc(0) may return NULL: keep room for one byte */
    buf = malloc(n + 1);
    if (buf == NULL) {
        return NULL;
    }

    pb_utf8_sanitize(buf, (const unsigned char *) s, len);
    str = json_stringn((const char *) buf, n);
    free(buf);

    return str;
}


/* Sets obj[name] = text; both sides made valid UTF-8. */
static int
pb_json_set_text(json_t *obj, const char *name, size_t name_len,
    const char *value, size_t value_len)
{
    int             rc;
    size_t          n;
    unsigned char  *key;

    n = pb_utf8_sanitize_len((const unsigned char *) name, name_len);

    key = malloc(n + 1);
    if (key == NULL) {
        return -1;
    }

    pb_utf8_sanitize(key, (const unsigned char *) name, name_len);

    rc = json_object_setn_new(obj, (const char *) key, n,
                              pb_json_text(value, value_len));
    free(key);

    return rc;
}


static json_t *
pb_json_kv_object(const pb_kv_t *kv, size_t n)
{
    size_t   i;
    json_t  *obj;

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        if (pb_json_set_text(obj, kv[i].name, kv[i].name_len,
                             kv[i].value, kv[i].value_len)
            != 0)
        {
            json_decref(obj);
            return NULL;
        }
    }

    return obj;
}


char *
pb_payload_json(const pb_payload_t *p, size_t *len)
{
    char    *text;
    json_t  *root, *data;

    root = json_object();
    if (root == NULL) {
        return NULL;
    }

    if (json_object_set_new(root, "id", pb_json_text(p->id, strlen(p->id)))
        != 0
        || json_object_set_new(root, "event",
                               pb_json_text(p->event, p->event_len))
           != 0
        || json_object_set_new(root, "callback",
                               pb_json_text(p->callback, strlen(p->callback)))
           != 0
        || json_object_set_new(root, "created_at",
                               pb_json_text(p->created_at,
                                            strlen(p->created_at)))
           != 0
        || json_object_set_new(root, "fields",
                               pb_json_kv_object(p->fields, p->nfields))
           != 0)
    {
        goto failed;
    }

    if (p->nparams > 0
        && json_object_set_new(root, "params",
                               pb_json_kv_object(p->params, p->nparams))
           != 0)
    {
        goto failed;
    }

    /* the caller keeps its reference to the document */
    data = (p->data != NULL) ? json_incref(p->data) : json_null();

    if (json_object_set_new(root, "data", data) != 0) {
        goto failed;
    }

    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);

    if (text == NULL) {
        return NULL;
    }

    *len = strlen(text);

    return text;

failed:

    json_decref(root);

    return NULL;
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
