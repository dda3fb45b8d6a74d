
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include <stdint.h>
#include <string.h>

#include "pb_fields.h"


static unsigned char *
pb_fields_put(unsigned char *p, const char *s, size_t len)
{
    p[0] = (unsigned char) (len >> 24);
    p[1] = (unsigned char) (len >> 16);
    p[2] = (unsigned char) (len >> 8);
    p[3] = (unsigned char) len;

    if (len) {
        memcpy(p + 4, s, len);
    }

    return p + 4 + len;
}


/* one length-prefixed string at p, before end; NULL when it overruns */

static const unsigned char *
pb_fields_get(const unsigned char *p, const unsigned char *end,
    const char **s, size_t *len)
{
    if (end - p < 4) {
        return NULL;
    }

    *len = (size_t) p[0] << 24 | (size_t) p[1] << 16 | (size_t) p[2] << 8
           | p[3];
    p += 4;

    if ((size_t) (end - p) < *len) {
        return NULL;
    }

    *s = (const char *) p;

    return p + *len;
}


size_t
pb_fields_size(const pb_kv_t *kv, size_t n)
{
    size_t  i, size;

    size = 0;

    for (i = 0; i < n; i++) {
        size += 8 + kv[i].name_len + kv[i].value_len;
    }

    return size;
}


unsigned char *
pb_fields_pack(unsigned char *dst, const pb_kv_t *kv, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        dst = pb_fields_put(dst, kv[i].name, kv[i].name_len);
        dst = pb_fields_put(dst, kv[i].value, kv[i].value_len);
    }

    return dst;
}


int
pb_fields_next(const unsigned char **pos, const unsigned char *end,
    pb_kv_t *kv)
{
    const unsigned char  *p;

    p = pb_fields_get(*pos, end, &kv->name, &kv->name_len);
    p = p ? pb_fields_get(p, end, &kv->value, &kv->value_len) : NULL;

    if (p == NULL) {
        return 0;
    }

    *pos = p;

    return 1;
}
