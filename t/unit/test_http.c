/*
 * pb_http: a receiver's answers read whole, cut at every place and byte
 * by byte (the same outcome each way), their framing (length, chunks,
 * close), what their headers say, and the answers refused.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_http.h"
#include "unit.h"


#define NITEMS(a)  (sizeof(a) / sizeof((a)[0]))


/* an answer fed in pieces of `step` bytes (0: whole) then closed if eof */
static int
read_answer(pb_http_response_t *r, const char *text, size_t len, size_t step,
    int head, int eof, size_t *used)
{
    int             rc;
    size_t          at, n, u;
    unsigned char  *piece;

    pb_http_response_init(r, head);
    rc = PB_HTTP_AGAIN;
    *used = 0;

    for (at = 0; at < len && rc == PB_HTTP_AGAIN; at += n) {
        n = (step == 0 || step > len - at) ? len - at : step;
        u = 0;
        piece = unit_copy(text + at, n);
        rc = pb_http_response_feed(r, piece, n, &u);
        free(piece);
        *used += (rc == PB_HTTP_AGAIN) ? n : u;
    }

    if (rc == PB_HTTP_AGAIN && eof) {
        rc = pb_http_response_eof(r);
    }

    return rc;
}


typedef struct {
    const char  *text;
    size_t       len;
    int          head;
    int          eof;           /* the connection closes after the text */
    int          rc;
    int          status;
    int          keep_alive;
    uint64_t     retry_after;
    const char  *kept;
    size_t       used;          /* 0: all of it */
} answer_t;

#define A(lit)  (lit), (sizeof(lit) - 1)


static const answer_t  answers[] = {
    { A("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0, 0,
      PB_HTTP_DONE, 200, 1, 0, "ok", 0 },
    /* what follows the answer is not its own */
    { A("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nHTTP/1.1"), 0, 0,
      PB_HTTP_DONE, 201, 1, 0, "", 43 },
    { A("HTTP/1.1 200\r\ncontent-length:  3 \r\n\r\nabc"), 0, 0,
      PB_HTTP_DONE, 200, 1, 0, "abc", 0 },
    { A("HTTP/1.1 200 OK\nContent-Length: 1\n\nx"), 0, 0,
      PB_HTTP_DONE, 200, 1, 0, "x", 0 },
    { A("HTTP/1.0 200 OK\r\n\r\nuntil the close"), 0, 1,
      PB_HTTP_DONE, 200, 0, 0, "until the close", 0 },
    { A("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0"
        "\r\n\r\n"), 0, 0, PB_HTTP_DONE, 200, 1, 0, "", 0 },
    { A("HTTP/1.1 503 Busy\r\nConnection: Keep-Alive, CLOSE\r\n"
        "Retry-After: 120\r\nContent-Length: 4\r\n\r\nbusy"), 0, 0,
      PB_HTTP_DONE, 503, 0, 120, "busy", 0 },
    { A("HTTP/1.1 429 Slow\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n"
        "Content-Length: 0\r\n\r\n"), 0, 0, PB_HTTP_DONE, 429, 1, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n"), 0, 0,
      PB_HTTP_DONE, 200, 1, 0, "abc0123456789", 0 },
    { A("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        "0\r\n\r\n"), 0, 0, PB_HTTP_DONE, 200, 1, 0, "", 0 },
    /* a length beside chunks: chunks, and the connection not reused */
    { A("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n"
        "Transfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"), 0, 0,
      PB_HTTP_DONE, 200, 0, 0, "z", 0 },
    /* a coding without chunks: until the close */
    { A("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz"), 0, 1,
      PB_HTTP_DONE, 200, 0, 0, "zz", 0 },
    { A("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"), 0, 0,
      PB_HTTP_DONE, 204, 1, 0, "", 0 },
    { A("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), 0, 0,
      PB_HTTP_DONE, 304, 1, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), 1, 0,
      PB_HTTP_DONE, 200, 1, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"), 0, 1,
      PB_HTTP_ERROR, 200, 0, 0, "ab", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Le"), 0, 1,
      PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"), 0, 0,
      PB_HTTP_AGAIN, 200, 1, 0, "ab", 0 },

    /* refused */
    { A("HTTP/2 200\r\n\r\n"), 0, 0, PB_HTTP_ERROR, 0, 0, 0, "", 0 },
    { A("ICY 200 OK\r\n\r\n"), 0, 0, PB_HTTP_ERROR, 0, 0, 0, "", 0 },
    { A("HTTP/1.1 2000 OK\r\n\r\n"), 0, 0, PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 20 OK\r\n\r\n"), 0, 0, PB_HTTP_ERROR, 20, 0, 0, "", 0 },
    { A("HTTP/1.1 099 OK\r\n\r\n"), 0, 0, PB_HTTP_ERROR, 0, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
      0, 0, PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n"), 0, 0,
      PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), 0, 0,
      PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n"),
      0, 0, PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), 0, 0,
      PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"), 0, 0,
      PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\n folded\r\n\r\n"), 0, 0,
      PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n"), 0, 0,
      PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1000000000000000\r\n"), 0, 0, PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\nabc\r\n"), 0, 0, PB_HTTP_ERROR, 200, 0, 0, "ab", 0 },
    { A("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "x\r\n"), 0, 0, PB_HTTP_ERROR, 200, 0, 0, "", 0 },
    { A("HTTP/1.1 200 OK\r\n\r\r\n"), 0, 0, PB_HTTP_ERROR, 200, 0, 0, "", 0 },
};


static void
check_answer(size_t i, const answer_t *a, size_t step)
{
    int                 rc;
    size_t              used;
    pb_http_response_t  r;

    rc = read_answer(&r, a->text, a->len, step, a->head, a->eof, &used);

    CHECK(rc == a->rc);
    if (rc != a->rc) {
        fprintf(stderr, "    answer %zu, step %zu: %d, not %d (%s)\n", i,
                step, rc, a->rc, r.error ? r.error : "");
        return;
    }

    CHECK(rc != PB_HTTP_ERROR || r.error != NULL);
    CHECK(r.status == a->status);
    CHECK(unit_bytes_eq(r.kept, r.kept_len, a->kept, strlen(a->kept)));

    if (rc == PB_HTTP_DONE) {
        CHECK(r.keep_alive == a->keep_alive);
        CHECK(r.retry_after == a->retry_after);
        CHECK(used == (a->used ? a->used : a->len));
        if (used != (a->used ? a->used : a->len)) {
            fprintf(stderr, "    answer %zu, step %zu: used %zu\n", i, step,
                    used);
        }
    }
}


/* every answer read whole, in two pieces cut anywhere, byte by byte */
static void
test_answers(void)
{
    size_t  i, step;

    for (i = 0; i < NITEMS(answers); i++) {
        check_answer(i, &answers[i], 0);

        for (step = 1; step < answers[i].len; step++) {
            check_answer(i, &answers[i], step);
        }
    }
}


/* a large body: its first bytes kept, its end found */
static void
test_large_body(void)
{
    int                 rc;
    char                head[64];
    size_t              n, used;
    unsigned char       body[5000];
    pb_http_response_t  r;

    memset(body, 'b', sizeof(body));
    body[0] = 'a';
    n = (size_t) snprintf(head, sizeof(head),
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                          sizeof(body));

    pb_http_response_init(&r, 0);
    CHECK(pb_http_response_feed(&r, (unsigned char *) head, n, &used)
          == PB_HTTP_AGAIN);
    rc = pb_http_response_feed(&r, body, sizeof(body), &used);
    CHECK(rc == PB_HTTP_DONE && used == sizeof(body));
    CHECK(r.kept_len == PB_HTTP_KEEP && r.kept[0] == 'a'
          && r.kept[PB_HTTP_KEEP - 1] == 'b');
}


/* headers past the bound are refused, not kept */
static void
test_headers_bounded(void)
{
    int                 rc;
    size_t              i, used;
    pb_http_response_t  r;

    static const char   start[] = "HTTP/1.1 200 OK\r\n";
    static const char   line[] = "X-Filler: 0123456789012345678901234567\r\n";

    pb_http_response_init(&r, 0);
    rc = pb_http_response_feed(&r, (const unsigned char *) start,
                               sizeof(start) - 1, &used);

    for (i = 0; i < 1000 && rc == PB_HTTP_AGAIN; i++) {
        rc = pb_http_response_feed(&r, (const unsigned char *) line,
                                   sizeof(line) - 1, &used);
    }

    CHECK(rc == PB_HTTP_ERROR);
    CHECK(i * (sizeof(line) - 1) <= PB_HTTP_HEADERS_MAX + sizeof(line));
    CHECK(r.error && strstr(r.error, "too long"));

    /* endless interim answers too */
    pb_http_response_init(&r, 0);

    for (i = 0, rc = PB_HTTP_AGAIN; i < 10000 && rc == PB_HTTP_AGAIN; i++) {
        rc = pb_http_response_feed(&r, (const unsigned char *)
                                   "HTTP/1.1 100 Continue\r\n\r\n", 25,
                                   &used);
    }

    CHECK(rc == PB_HTTP_ERROR);
}


const unit_test_t  http_tests[] = {
    UNIT_TEST(test_answers),
    UNIT_TEST(test_large_body),
    UNIT_TEST(test_headers_bounded),
};

const size_t  http_ntests = sizeof(http_tests) / sizeof(http_tests[0]);
