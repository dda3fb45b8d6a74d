/*
 * Input: chunk size byte, cap byte, then a compressed stream fed in
 * chunks into a small buffer.  The same bytes are also gzipped here and
 * must decode back exactly, and report FULL with one byte less room.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pb_inflate.h"


#define GZIP_WINDOW_BITS  (15 + 16)


/*
 * Feeds in chunks until the decoder stops asking for more, into a buffer
 * of exactly cap bytes, so ASan catches a write past the cap.  The
 * caller frees *out.
 */
static int
feed(const unsigned char *in, size_t len, size_t chunk, size_t cap,
    unsigned char **out, size_t *out_len)
{
    int            rc;
    size_t         i, n;
    pb_inflate_t  *z;

    z = pb_inflate_create();
    *out = malloc(cap);

    if (z == NULL || (*out == NULL && cap > 0)) {
        abort();
    }

    *out_len = 0;
    rc = PB_INFLATE_OK;

    for (i = 0; i < len && rc == PB_INFLATE_OK; i += n) {
        n = (len - i < chunk) ? len - i : chunk;
        rc = pb_inflate_feed(z, in + i, n, *out, cap, out_len);

        if (rc < PB_INFLATE_OK || rc > PB_INFLATE_ERROR || *out_len > cap) {
            abort();
        }
    }

    pb_inflate_destroy(z);

    return rc;
}


static unsigned char *
gzip(const unsigned char *in, size_t len, size_t *gz_len)
{
    z_stream        zs;
    unsigned char  *gz;
    size_t          cap;

    memset(&zs, 0, sizeof(zs));

    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, GZIP_WINDOW_BITS, 8,
                     Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        abort();
    }

    cap = deflateBound(&zs, len);
    gz = malloc(cap);
    if (gz == NULL) {
        abort();
    }

    zs.next_in = (Bytef *) in;
    zs.avail_in = (uInt) len;
    zs.next_out = gz;
    zs.avail_out = (uInt) cap;

    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        abort();
    }

    *gz_len = zs.total_out;
    deflateEnd(&zs);

    return gz;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    size_t          chunk, cap, gz_len, out_len;
    unsigned char  *gz, *out;

    if (size < 2) {
        return 0;
    }

    chunk = 1 + data[0] % 64;
    cap = (size_t) data[1] * 4;
    data += 2;
    size -= 2;

    feed(data, size, chunk, cap, &out, &out_len);
    free(out);

    gz = gzip(data, size, &gz_len);

    rc = feed(gz, gz_len, chunk, size, &out, &out_len);

    if (rc != PB_INFLATE_DONE || out_len != size
        || (size > 0 && memcmp(out, data, size) != 0))
    {
        abort();
    }

    free(out);

    if (size > 0) {
        rc = feed(gz, gz_len, chunk, size - 1, &out, &out_len);

        if (rc != PB_INFLATE_FULL || out_len != size - 1) {
            abort();
        }

        free(out);
    }

    free(gz);

    return 0;
}
