/*
 * Bodies of callback requests.  Pure C, no nginx headers.
 */

#ifndef PB_PAYLOAD_H
#define PB_PAYLOAD_H

#include <stddef.h>


typedef struct {
    const char  *name;
    size_t       name_len;
    const char  *value;     /* any bytes; made valid UTF-8 for JSON */
    size_t       value_len;
} pb_kv_t;


typedef struct {
    const char  *id;            /* NUL terminated */
    const char  *callback;      /* NUL terminated */
    const char  *created_at;    /* NUL terminated, RFC 3339 */
    const char  *event;
    size_t       event_len;
    pb_kv_t     *fields;
    size_t       nfields;
    pb_kv_t     *params;        /* "params" member only when nparams > 0 */
    size_t       nparams;
    const char  *data;          /* the upstream document's JSON text, */
    size_t       data_len;      /* or NULL for null */
} pb_payload_t;


/*
 * The default post_json body, compact but for data:
 * {"id":..,"event":..,"callback":..,"created_at":..,
 *  "fields":{name:value,..},["params":{..},]"data":<document>}
 * Strings are made valid UTF-8; a name given twice is written once, with
 * its last value.  data is copied as it is: it must be JSON text (a
 * document the caller parsed).  pb_payload_json_len is the exact size
 * pb_payload_json writes; it returns the end of what it wrote.
 */
size_t pb_payload_json_len(const pb_payload_t *p);
unsigned char *pb_payload_json(unsigned char *dst, const pb_payload_t *p);

/* name=value&name=value, both sides percent-encoded (pb_escape_uri). */
size_t pb_payload_form_len(const pb_kv_t *kv, size_t n);
unsigned char *pb_payload_form(unsigned char *dst, const pb_kv_t *kv,
    size_t n);

#endif /* PB_PAYLOAD_H */
