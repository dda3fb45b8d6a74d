/*
 * Reads the input as a receiver's answer three ways: whole, byte by byte,
 * and cut where the first byte says; then closes the connection.  Each
 * way must give the same outcome (result, status, keep-alive,
 * Retry-After, kept bytes, bytes used), an error must say why, and
 * nothing may be read past the input (ASan).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_http.h"


typedef struct {
    int                 rc;
    size_t              used;
    pb_http_response_t  r;
} outcome_t;


static void
read_in_pieces(const uint8_t *data, size_t size, size_t step, int head,
    outcome_t *o)
{
    size_t          at, n, u;
    unsigned char  *piece;

    pb_http_response_init(&o->r, head);
    o->rc = PB_HTTP_AGAIN;
    o->used = 0;

    for (at = 0; at < size && o->rc == PB_HTTP_AGAIN; at += n) {
        n = (step > size - at) ? size - at : step;

        /* exactly n bytes, so ASan sees a read past them */
        piece = malloc(n);
        if (piece == NULL) {
            abort();
        }

        memcpy(piece, data + at, n);
        u = 0;
        o->rc = pb_http_response_feed(&o->r, piece, n, &u);
        free(piece);

        if (u > n) {
            abort();
        }

        o->used += (o->rc == PB_HTTP_AGAIN) ? n : u;
    }

    if (o->rc == PB_HTTP_AGAIN) {
        o->rc = pb_http_response_eof(&o->r);
    }

    if ((o->rc == PB_HTTP_ERROR) != (o->r.error != NULL)
        || o->r.kept_len > PB_HTTP_KEEP || o->used > size)
    {
        abort();
    }
}


static void
same(const outcome_t *a, const outcome_t *b)
{
    if (a->rc != b->rc || a->r.status != b->r.status
        || a->r.kept_len != b->r.kept_len
        || memcmp(a->r.kept, b->r.kept, a->r.kept_len) != 0)
    {
        abort();
    }

    if (a->rc == PB_HTTP_DONE
        && (a->used != b->used || a->r.keep_alive != b->r.keep_alive
            || a->r.retry_after != b->r.retry_after))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int        head;
    size_t     step;
    outcome_t  whole, bytes, cut;

    if (size == 0) {
        return 0;
    }

    head = data[0] & 1;
    step = (data[0] >> 1) + 1;
    data++;
    size--;

    read_in_pieces(data, size, size ? size : 1, head, &whole);
    read_in_pieces(data, size, 1, head, &bytes);
    read_in_pieces(data, size, step, head, &cut);

    same(&whole, &bytes);
    same(&whole, &cut);

    return 0;
}
