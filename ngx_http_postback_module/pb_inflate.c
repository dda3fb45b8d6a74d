/*
 * Streaming gzip/deflate decoding into a bounded buffer.
 */

#include <limits.h>
#include <stdlib.h>

#include <zlib.h>

#include "pb_inflate.h"


/* Largest window, plus 32: detect a gzip or zlib header. */
#define PB_INFLATE_WINDOW_BITS  (15 + 32)


struct pb_inflate_s {
    z_stream  zs;
    int       state;    /* PB_INFLATE_OK until the stream is over */
};


pb_inflate_t *
pb_inflate_create(void)
{
    pb_inflate_t  *z;

    /* zeroed: default zlib allocator and no input yet */
    z = calloc(1, sizeof(pb_inflate_t));
    if (z == NULL) {
        return NULL;
    }

    if (inflateInit2(&z->zs, PB_INFLATE_WINDOW_BITS) != Z_OK) {
        free(z);
        return NULL;
    }

    z->state = PB_INFLATE_OK;

    return z;
}


/*
 * Once the output is at out_cap, zlib still gets one spare byte to write:
 * if it does, the stream does not fit; if it does not, the stream may
 * end exactly at out_cap.  Input dropped after DONE, FULL or ERROR
 * cannot be fed again, so those states are final.
 */
int
pb_inflate_feed(pb_inflate_t *z, const unsigned char *in, size_t in_len,
    unsigned char *out, size_t out_cap, size_t *out_len)
{
    int            rc;
    uInt           chunk, avail;
    size_t         room;
    unsigned char  spare;
    z_stream      *zs;

    if (z->state != PB_INFLATE_OK) {
        return z->state;
    }

    zs = &z->zs;

    for ( ;; ) {
        /* uInt counts may be narrower than size_t */
        if (zs->avail_in == 0) {
            chunk = in_len > UINT_MAX ? UINT_MAX : (uInt) in_len;
            zs->next_in = (Bytef *) in;
            zs->avail_in = chunk;
            in += chunk;
            in_len -= chunk;
        }

        room = out_cap > *out_len ? out_cap - *out_len : 0;

        if (room == 0) {
            zs->next_out = &spare;
            avail = 1;

        } else {
            zs->next_out = out + *out_len;
            avail = room > UINT_MAX ? UINT_MAX : (uInt) room;
        }

        zs->avail_out = avail;

        rc = inflate(zs, Z_NO_FLUSH);

        if (room == 0 && zs->avail_out == 0) {
            z->state = PB_INFLATE_FULL;
            return z->state;
        }

        *out_len += avail - zs->avail_out;

        if (rc == Z_STREAM_END) {
            z->state = PB_INFLATE_DONE;
            return z->state;
        }

        /* Z_BUF_ERROR: no progress possible, all input is consumed */
        if (rc == Z_BUF_ERROR && zs->avail_in == 0 && in_len == 0) {
            return PB_INFLATE_OK;
        }

        if (rc != Z_OK) {
            z->state = PB_INFLATE_ERROR;
            return z->state;
        }

        if (zs->avail_in == 0 && in_len == 0 && zs->avail_out != 0) {
            return PB_INFLATE_OK;
        }
    }
}


void
pb_inflate_destroy(pb_inflate_t *z)
{
    if (z == NULL) {
        return;
    }

    inflateEnd(&z->zs);
    free(z);
}
