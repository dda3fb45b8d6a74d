
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include <string.h>
#include <zlib.h>

#include "pb_journal.h"


#define PB_JOURNAL_HEAD   8     /* "PBJ", type, length */
#define PB_JOURNAL_TAIL   4     /* CRC-32 */
#define PB_JOURNAL_LIMIT  (256 * 1024 * 1024)


static unsigned char *
pb_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;

    return p + 4;
}


static uint32_t
pb_get32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}


static unsigned char *
pb_put_bytes(unsigned char *p, const pb_bytes_t *b)
{
    p = pb_put32(p, (uint32_t) b->len);

    if (b->len) {
        memcpy(p, b->data, b->len);
    }

    return p + b->len;
}


/* reads a length-prefixed field from p[0..end); NULL when it overruns */

static const unsigned char *
pb_get_bytes(const unsigned char *p, const unsigned char *end, pb_bytes_t *b)
{
    if (end - p < 4) {
        return NULL;
    }

    b->len = pb_get32(p);
    p += 4;

    if ((size_t) (end - p) < b->len) {
        return NULL;
    }

    b->data = p;

    return p + b->len;
}


static size_t
pb_journal_payload_size(const pb_journal_record_t *r)
{
    if (r->type == PB_JOURNAL_FINISHED) {
        return 4 + r->id.len;
    }

    return 1 + 8 + 6 * 4 + r->id.len + r->callback.len + r->event.len
           + r->url.len + r->headers.len + r->body.len;
}


size_t
pb_journal_size(const pb_journal_record_t *r)
{
    return PB_JOURNAL_HEAD + pb_journal_payload_size(r) + PB_JOURNAL_TAIL;
}


unsigned char *
pb_journal_write(unsigned char *dst, const pb_journal_record_t *r)
{
    int             i;
    unsigned char  *payload, *p;

    memcpy(dst, "PBJ", 3);
    dst[3] = (unsigned char) r->type;
    p = pb_put32(dst + 4, (uint32_t) pb_journal_payload_size(r));
    payload = p;

    if (r->type == PB_JOURNAL_FINISHED) {
        p = pb_put_bytes(p, &r->id);

    } else {
        *p++ = (unsigned char) r->method;

        for (i = 56; i >= 0; i -= 8) {
            *p++ = (unsigned char) (r->created >> i);
        }

        p = pb_put_bytes(p, &r->id);
        p = pb_put_bytes(p, &r->callback);
        p = pb_put_bytes(p, &r->event);
        p = pb_put_bytes(p, &r->url);
        p = pb_put_bytes(p, &r->headers);
        p = pb_put_bytes(p, &r->body);
    }

    return pb_put32(p, (uint32_t) crc32(0, payload, (uInt) (p - payload)));
}


int
pb_journal_read(const unsigned char *buf, size_t len, pb_journal_record_t *r,
    size_t *used)
{
    int                   i;
    size_t                size;
    const unsigned char  *p, *end;

    if (len < PB_JOURNAL_HEAD) {
        /* an empty buffer may be NULL: memcmp() must not see it */
        return (len == 0 || memcmp(buf, "PBJ", len < 3 ? len : 3) == 0)
               ? PB_JOURNAL_TORN : PB_JOURNAL_CORRUPT;
    }

    if (memcmp(buf, "PBJ", 3) != 0
        || (buf[3] != PB_JOURNAL_CREATED && buf[3] != PB_JOURNAL_FINISHED))
    {
        return PB_JOURNAL_CORRUPT;
    }

    size = pb_get32(buf + 4);

    if (size > PB_JOURNAL_LIMIT) {
        return PB_JOURNAL_CORRUPT;
    }

    if (len - PB_JOURNAL_HEAD < size + PB_JOURNAL_TAIL) {
        return PB_JOURNAL_TORN;
    }

    p = buf + PB_JOURNAL_HEAD;
    end = p + size;

    if (pb_get32(end) != (uint32_t) crc32(0, p, (uInt) size)) {
        return PB_JOURNAL_CORRUPT;
    }

    memset(r, 0, sizeof(pb_journal_record_t));
    r->type = buf[3];

    if (r->type == PB_JOURNAL_FINISHED) {
        p = pb_get_bytes(p, end, &r->id);

    } else {
        if (size < 9) {
            return PB_JOURNAL_CORRUPT;
        }

        r->method = *p++;

        for (i = 0; i < 8; i++) {
            r->created = r->created << 8 | *p++;
        }

        p = pb_get_bytes(p, end, &r->id);
        p = p ? pb_get_bytes(p, end, &r->callback) : NULL;
        p = p ? pb_get_bytes(p, end, &r->event) : NULL;
        p = p ? pb_get_bytes(p, end, &r->url) : NULL;
        p = p ? pb_get_bytes(p, end, &r->headers) : NULL;
        p = p ? pb_get_bytes(p, end, &r->body) : NULL;
    }

    if (p != end) {
        return PB_JOURNAL_CORRUPT;
    }

    *used = PB_JOURNAL_HEAD + size + PB_JOURNAL_TAIL;

    return PB_JOURNAL_OK;
}
