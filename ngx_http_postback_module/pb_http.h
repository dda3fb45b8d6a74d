/*
 * A receiver's answer to one request, read as its bytes arrive: the
 * status line, the headers that matter (Content-Length, Transfer-Encoding,
 * Connection, Retry-After), the body delimited by its length, by chunks or
 * by the connection's close, and its first bytes kept.  Interim (1xx)
 * answers are skipped.  One pass, byte by byte, so the bytes may come cut
 * anywhere; bounded: a header section over PB_HTTP_HEADERS_MAX bytes or a
 * chunk size that overflows is an error, never more memory.  Pure C, no
 * nginx headers.
 */

#ifndef PB_HTTP_H
#define PB_HTTP_H

#include <stddef.h>
#include <stdint.h>


#define PB_HTTP_KEEP          256           /* body bytes kept */
#define PB_HTTP_HEADERS_MAX   (16 * 1024)   /* status line and headers */

#define PB_HTTP_AGAIN   0       /* more bytes are needed */
#define PB_HTTP_DONE    1       /* the answer is complete */
#define PB_HTTP_ERROR   -1      /* not an answer of HTTP/1.x: see error */


typedef struct {
    /* what the answer said, once the headers are read */
    int                   status;
    int                   keep_alive;   /* the connection can serve another
                                           request once this answer ends */
    uint64_t              retry_after;  /* seconds, 0: none */
    uint64_t              length;       /* Content-Length, if has_length */
    int                   has_length;
    int                   chunked;
    unsigned char         kept[PB_HTTP_KEEP];
    size_t                kept_len;
    const char           *error;        /* PB_HTTP_ERROR: why */

    /* the reader's state */
    int                   head;         /* the request was HEAD */
    int                   state;
    int                   minor;        /* HTTP/1.minor */
    size_t                header_bytes;
    uint64_t              left;         /* of the body, or of a chunk */
    char                  name[24];     /* the header name being read */
    size_t                name_len;
    int                   header;       /* which one it is */
    uint64_t              number;       /* a value being read */
    int                   digits;       /* of it; -1: not a number */
    int                   tokens;       /* PB_HTTP_T_* seen */
    int                   cr;           /* a CR was read: an LF is next */
} pb_http_response_t;


/* A reader for the answer to a request; head: the request was HEAD. */
void pb_http_response_init(pb_http_response_t *r, int head);

/*
 * Reads buf[0..len): PB_HTTP_AGAIN when all of it was read and more is
 * needed; PB_HTTP_DONE when the answer ended, *used bytes of buf into it
 * (what follows is not this answer's); PB_HTTP_ERROR with r->error set.
 */
int pb_http_response_feed(pb_http_response_t *r, const unsigned char *buf,
    size_t len, size_t *used);

/*
 * The connection closed: PB_HTTP_DONE when that ends the answer (a body
 * delimited by the close), else PB_HTTP_ERROR (cut short).
 */
int pb_http_response_eof(pb_http_response_t *r);

#endif /* PB_HTTP_H */
