/*
 * pb_inflate: streaming gzip/zlib decoding into a bounded buffer.
 */

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pb_inflate.h"
#include "unit.h"


#define PLAIN_LEN    10000
#define GZIP_BITS    (15 + 16)
#define ZLIB_BITS    15


static unsigned char  plain[PLAIN_LEN];


/* Compressible but not trivial: lines of 60 shuffled characters. */
static void
make_plain(void)
{
    size_t             i;
    static const char  chars[] = "abcdefghij0123456789";

    for (i = 0; i < PLAIN_LEN; i++) {
        plain[i] = (i % 61 == 60) ? '\n' : chars[(i * 7) % 20];
    }
}


/* Compresses src with deflate; windowBits 31 writes a gzip stream. */
static unsigned char *
compress_with(int window_bits, const unsigned char *src, size_t len,
    size_t *out_len)
{
    z_stream        zs;
    unsigned char  *out;
    size_t          cap;

    memset(&zs, 0, sizeof(zs));

    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 8,
                     Z_DEFAULT_STRATEGY)
        != Z_OK)
    {
        abort();
    }

    cap = deflateBound(&zs, len);
    out = malloc(cap);
    if (out == NULL) {
        abort();
    }

    zs.next_in = (Bytef *) src;
    zs.avail_in = len;
    zs.next_out = out;
    zs.avail_out = cap;

    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        abort();
    }

    *out_len = zs.total_out;
    deflateEnd(&zs);

    return out;
}


static void
test_gzip_byte_by_byte(void)
{
    int             rc;
    size_t          i, gz_len, out_len;
    pb_inflate_t   *z;
    unsigned char  *gz, *out;

    make_plain();
    gz = compress_with(GZIP_BITS, plain, PLAIN_LEN, &gz_len);
    out = malloc(PLAIN_LEN);
    z = pb_inflate_create();
    CHECK(z != NULL && out != NULL);

    out_len = 0;
    rc = PB_INFLATE_OK;

    /* OK for every byte but the last one of the trailer */
    for (i = 0; i < gz_len && rc == PB_INFLATE_OK; i++) {
        rc = pb_inflate_feed(z, &gz[i], 1, out, PLAIN_LEN, &out_len);
    }

    CHECK(rc == PB_INFLATE_DONE);
    CHECK(i == gz_len);
    CHECK(unit_bytes_eq(out, out_len, plain, PLAIN_LEN));

    /* the stream is over: more input changes nothing */
    CHECK(pb_inflate_feed(z, gz, gz_len, out, PLAIN_LEN, &out_len)
          == PB_INFLATE_DONE);
    CHECK(out_len == PLAIN_LEN);

    pb_inflate_destroy(z);
    free(out);
    free(gz);
}


static void
test_zlib_at_once(void)
{
    size_t          z_len, out_len;
    pb_inflate_t   *z;
    unsigned char  *zdata, *out;

    make_plain();
    zdata = compress_with(ZLIB_BITS, plain, PLAIN_LEN, &z_len);
    out = malloc(PLAIN_LEN + 100);
    z = pb_inflate_create();
    CHECK(z != NULL && out != NULL);

    out_len = 0;
    CHECK(pb_inflate_feed(z, zdata, z_len, out, PLAIN_LEN + 100, &out_len)
          == PB_INFLATE_DONE);
    CHECK(unit_bytes_eq(out, out_len, plain, PLAIN_LEN));

    pb_inflate_destroy(z);
    free(out);
    free(zdata);
}


/* Decodes the whole gzip of plain with this cap, in chunks of chunk. */
static int
feed_all(size_t cap, size_t chunk, size_t *out_len, unsigned char *out)
{
    int             rc;
    size_t          i, gz_len, n;
    pb_inflate_t   *z;
    unsigned char  *gz;

    make_plain();
    gz = compress_with(GZIP_BITS, plain, PLAIN_LEN, &gz_len);
    z = pb_inflate_create();
    if (z == NULL) {
        abort();
    }

    *out_len = 0;
    rc = PB_INFLATE_OK;

    for (i = 0; i < gz_len && rc == PB_INFLATE_OK; i += n) {
        n = (gz_len - i < chunk) ? gz_len - i : chunk;
        rc = pb_inflate_feed(z, &gz[i], n, out, cap, out_len);
    }

    pb_inflate_destroy(z);
    free(gz);

    return rc;
}


static void
test_full_on_small_cap(void)
{
    size_t          out_len;
    unsigned char  *out;

    out = malloc(PLAIN_LEN);
    CHECK(out != NULL);

    CHECK(feed_all(100, 1, &out_len, out) == PB_INFLATE_FULL);
    CHECK(unit_bytes_eq(out, out_len, plain, 100));

    CHECK(feed_all(100, 4096, &out_len, out) == PB_INFLATE_FULL);
    CHECK(unit_bytes_eq(out, out_len, plain, 100));

    CHECK(feed_all(0, 7, &out_len, out) == PB_INFLATE_FULL);
    CHECK(out_len == 0);

    free(out);
}


static void
test_exact_cap(void)
{
    size_t          out_len;
    unsigned char  *out;

    out = malloc(PLAIN_LEN);
    CHECK(out != NULL);

    /* a stream ending exactly at the cap fits */
    CHECK(feed_all(PLAIN_LEN, 1, &out_len, out) == PB_INFLATE_DONE);
    CHECK(unit_bytes_eq(out, out_len, plain, PLAIN_LEN));

    CHECK(feed_all(PLAIN_LEN, 100000, &out_len, out) == PB_INFLATE_DONE);
    CHECK(out_len == PLAIN_LEN);

    CHECK(feed_all(PLAIN_LEN - 1, 1, &out_len, out) == PB_INFLATE_FULL);
    CHECK(unit_bytes_eq(out, out_len, plain, PLAIN_LEN - 1));

    CHECK(feed_all(PLAIN_LEN - 1, 100000, &out_len, out) == PB_INFLATE_FULL);
    CHECK(out_len == PLAIN_LEN - 1);

    free(out);
}


static void
test_full_is_final(void)
{
    size_t          gz_len, out_len;
    pb_inflate_t   *z;
    unsigned char  *gz, out[10];

    make_plain();
    gz = compress_with(GZIP_BITS, plain, PLAIN_LEN, &gz_len);
    z = pb_inflate_create();
    CHECK(z != NULL);

    out_len = 0;
    CHECK(pb_inflate_feed(z, gz, gz_len, out, sizeof(out), &out_len)
          == PB_INFLATE_FULL);
    CHECK(out_len == sizeof(out));
    CHECK(pb_inflate_feed(z, gz, 0, out, sizeof(out), &out_len)
          == PB_INFLATE_FULL);

    pb_inflate_destroy(z);
    free(gz);
}


static void
test_empty_stream(void)
{
    size_t          gz_len, out_len;
    pb_inflate_t   *z;
    unsigned char  *gz, out[1];

    gz = compress_with(GZIP_BITS, plain, 0, &gz_len);
    z = pb_inflate_create();
    CHECK(z != NULL);

    /* nothing to write, so even a zero cap is not FULL */
    out_len = 0;
    CHECK(pb_inflate_feed(z, gz, gz_len, out, 0, &out_len)
          == PB_INFLATE_DONE);
    CHECK(out_len == 0);

    pb_inflate_destroy(z);
    free(gz);
}


static void
test_partial_input(void)
{
    size_t          gz_len, out_len;
    pb_inflate_t   *z;
    unsigned char  *gz, *out;

    make_plain();
    gz = compress_with(GZIP_BITS, plain, PLAIN_LEN, &gz_len);
    out = malloc(PLAIN_LEN);
    z = pb_inflate_create();
    CHECK(z != NULL && out != NULL);

    out_len = 0;
    CHECK(pb_inflate_feed(z, gz, 0, out, PLAIN_LEN, &out_len)
          == PB_INFLATE_OK);
    CHECK(out_len == 0);

    /* without the last byte of the trailer the stream is not over */
    CHECK(pb_inflate_feed(z, gz, gz_len - 1, out, PLAIN_LEN, &out_len)
          == PB_INFLATE_OK);
    CHECK(out_len == PLAIN_LEN);

    CHECK(pb_inflate_feed(z, &gz[gz_len - 1], 1, out, PLAIN_LEN, &out_len)
          == PB_INFLATE_DONE);

    pb_inflate_destroy(z);
    free(out);
    free(gz);
}


static void
test_trailing_garbage_ignored(void)
{
    size_t          gz_len, out_len;
    pb_inflate_t   *z;
    unsigned char  *gz, *buf, out[16];

    gz = compress_with(GZIP_BITS, (const unsigned char *) "hello", 5,
                       &gz_len);
    buf = malloc(gz_len + 7);
    z = pb_inflate_create();
    CHECK(z != NULL && buf != NULL);

    memcpy(buf, gz, gz_len);
    memcpy(buf + gz_len, "garbage", 7);

    out_len = 0;
    CHECK(pb_inflate_feed(z, buf, gz_len + 7, out, sizeof(out), &out_len)
          == PB_INFLATE_DONE);
    CHECK(unit_bytes_eq(out, out_len, S("hello")));

    pb_inflate_destroy(z);
    free(buf);
    free(gz);
}


static void
test_error_on_garbage(void)
{
    size_t          out_len;
    pb_inflate_t   *z;
    unsigned char   out[64];

    z = pb_inflate_create();
    CHECK(z != NULL);

    out_len = 0;
    CHECK(pb_inflate_feed(z, (const unsigned char *) S("this is not gzip"),
                          out, sizeof(out), &out_len)
          == PB_INFLATE_ERROR);
    CHECK(out_len == 0);

    /* an error is final */
    CHECK(pb_inflate_feed(z, (const unsigned char *) S("x"), out,
                          sizeof(out), &out_len)
          == PB_INFLATE_ERROR);

    pb_inflate_destroy(z);
}


static void
test_error_on_bad_crc(void)
{
    int             rc;
    size_t          gz_len, out_len, i;
    pb_inflate_t   *z;
    unsigned char  *gz, *out;

    make_plain();
    gz = compress_with(GZIP_BITS, plain, PLAIN_LEN, &gz_len);
    out = malloc(PLAIN_LEN);
    z = pb_inflate_create();
    CHECK(z != NULL && out != NULL);

    /* the trailer is CRC32 then ISIZE, 4 bytes each */
    gz[gz_len - 8] ^= 0x01;

    out_len = 0;
    rc = PB_INFLATE_OK;

    for (i = 0; i < gz_len && rc == PB_INFLATE_OK; i++) {
        rc = pb_inflate_feed(z, &gz[i], 1, out, PLAIN_LEN, &out_len);
    }

    CHECK(rc == PB_INFLATE_ERROR);

    pb_inflate_destroy(z);
    free(out);
    free(gz);
}


static void
test_destroy_null(void)
{
    pb_inflate_destroy(NULL);
}


const unit_test_t  inflate_tests[] = {
    UNIT_TEST(test_gzip_byte_by_byte),
    UNIT_TEST(test_zlib_at_once),
    UNIT_TEST(test_full_on_small_cap),
    UNIT_TEST(test_exact_cap),
    UNIT_TEST(test_full_is_final),
    UNIT_TEST(test_empty_stream),
    UNIT_TEST(test_partial_input),
    UNIT_TEST(test_trailing_garbage_ignored),
    UNIT_TEST(test_error_on_garbage),
    UNIT_TEST(test_error_on_bad_crc),
    UNIT_TEST(test_destroy_null),
};

const size_t  inflate_ntests =
    sizeof(inflate_tests) / sizeof(inflate_tests[0]);
