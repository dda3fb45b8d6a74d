/*
 * Streaming gzip/deflate decoding of a captured upstream body into a
 * bounded buffer.  Pure C (zlib), no nginx headers.
 */

#ifndef PB_INFLATE_H
#define PB_INFLATE_H

#include <stddef.h>


#define PB_INFLATE_OK     0     /* consumed, more input may follow */
#define PB_INFLATE_DONE   1     /* end of the compressed stream */
#define PB_INFLATE_FULL   2     /* output would exceed out_cap */
#define PB_INFLATE_ERROR  3     /* corrupt input or out of memory */


typedef struct pb_inflate_s  pb_inflate_t;


/* gzip (and zlib) headers auto-detected.  NULL on out of memory. */
pb_inflate_t *pb_inflate_create(void);

/*
 * Decodes in[0..in_len) appending to out at *out_len, never past out_cap.
 * Returns one of PB_INFLATE_*.  Data after the end of the stream is
 * ignored.  DONE, FULL (out filled up to out_cap) and ERROR are final:
 * later calls return them again.
 */
int pb_inflate_feed(pb_inflate_t *z, const unsigned char *in, size_t in_len,
    unsigned char *out, size_t out_cap, size_t *out_len);

void pb_inflate_destroy(pb_inflate_t *z);

#endif /* PB_INFLATE_H */
