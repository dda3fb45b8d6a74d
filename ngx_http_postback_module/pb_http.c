
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include <string.h>

#include "pb_http.h"


enum {
    PB_HTTP_S_VERSION = 0,      /* "HTTP/1." */
    PB_HTTP_S_MINOR,
    PB_HTTP_S_SP,
    PB_HTTP_S_STATUS,
    PB_HTTP_S_REASON,
    PB_HTTP_S_LINE,             /* the start of a header line */
    PB_HTTP_S_NAME,
    PB_HTTP_S_VALUE,
    PB_HTTP_S_END_LF,           /* the empty line's CR was read */
    PB_HTTP_S_BODY,             /* Content-Length, or until the close */
    PB_HTTP_S_CHUNK_SIZE,
    PB_HTTP_S_CHUNK_EXT,
    PB_HTTP_S_CHUNK_DATA,
    PB_HTTP_S_CHUNK_CR,         /* the CRLF after a chunk's data */
    PB_HTTP_S_CHUNK_LF,
    PB_HTTP_S_TRAILER,
    PB_HTTP_S_DONE
};

/* the headers that matter */
enum {
    PB_HTTP_H_OTHER = 0,
    PB_HTTP_H_LENGTH,
    PB_HTTP_H_ENCODING,
    PB_HTTP_H_CONNECTION,
    PB_HTTP_H_RETRY_AFTER
};

/* a header value's number is this many digits at most */
#define PB_HTTP_DIGITS_MAX  18
/* a chunk size is this many hex digits at most */
#define PB_HTTP_HEX_MAX     15

/* the body is read until the close */
#define PB_HTTP_UNTIL_CLOSE  2

/* Connection and Transfer-Encoding tokens seen */
#define PB_HTTP_T_CLOSE       1
#define PB_HTTP_T_KEEP_ALIVE  2
#define PB_HTTP_T_ENCODED     4


static size_t pb_http_plain_run(const unsigned char *p, size_t len,
    size_t max);
static int pb_http_byte(pb_http_response_t *r, unsigned char c);
static int pb_http_status_line(pb_http_response_t *r, unsigned char c);
static int pb_http_header_line(pb_http_response_t *r, unsigned char c);
static int pb_http_value_start(pb_http_response_t *r);
static int pb_http_value(pb_http_response_t *r, unsigned char c);
static int pb_http_value_end(pb_http_response_t *r);
static void pb_http_token(pb_http_response_t *r);
static int pb_http_headers_end(pb_http_response_t *r);
static int pb_http_chunk(pb_http_response_t *r, unsigned char c);
static int pb_http_fail(pb_http_response_t *r, const char *why);
static void pb_http_keep(pb_http_response_t *r, const unsigned char *p,
    size_t n);
static int pb_http_tchar(unsigned char c);
static int pb_http_hex(unsigned char c);


void
pb_http_response_init(pb_http_response_t *r, int head)
{
    memset(r, 0, sizeof(pb_http_response_t));
    r->head = head;
}


int
pb_http_response_feed(pb_http_response_t *r, const unsigned char *buf,
    size_t len, size_t *used)
{
    int     rc;
    size_t  i, n;

    for (i = 0; i < len; i++) {

        if (r->state == PB_HTTP_S_DONE) {
            break;
        }

        /* body bytes in bulk: the state machine sees none of them */
        if (r->state == PB_HTTP_S_BODY || r->state == PB_HTTP_S_CHUNK_DATA) {
            n = len - i;

            if (r->has_length != PB_HTTP_UNTIL_CLOSE && n > r->left) {
                n = (size_t) r->left;
            }

            pb_http_keep(r, buf + i, n);
            i += n - 1;

            if (r->has_length == PB_HTTP_UNTIL_CLOSE
                && r->state == PB_HTTP_S_BODY)
            {
                continue;
            }

            r->left -= n;

            if (r->left == 0) {
                r->state = (r->state == PB_HTTP_S_BODY) ? PB_HTTP_S_DONE
                                                        : PB_HTTP_S_CHUNK_CR;
            }

            continue;
        }

        /* the value of a header not looked at, in bulk to its line's end */
        if (r->state == PB_HTTP_S_VALUE && r->header == PB_HTTP_H_OTHER
            && !r->cr)
        {
            n = pb_http_plain_run(buf + i, len - i,
                                  PB_HTTP_HEADERS_MAX - r->header_bytes);

            if (n) {
                r->header_bytes += n;
                i += n - 1;
                continue;
            }
        }

        rc = pb_http_byte(r, buf[i]);

        if (rc == PB_HTTP_ERROR) {
            return rc;
        }
    }

    *used = i;

    return (r->state == PB_HTTP_S_DONE) ? PB_HTTP_DONE : PB_HTTP_AGAIN;
}


int
pb_http_response_eof(pb_http_response_t *r)
{
    if (r->state == PB_HTTP_S_DONE
        || (r->state == PB_HTTP_S_BODY
            && r->has_length == PB_HTTP_UNTIL_CLOSE))
    {
        r->state = PB_HTTP_S_DONE;
        r->keep_alive = 0;
        return PB_HTTP_DONE;
    }

    return pb_http_fail(r, r->state < PB_HTTP_S_BODY
                           ? "the connection closed before the headers "
                             "ended"
                           : "the connection closed before the body ended");
}


/*
 * Of the next len bytes, at most max, how many a header value takes with
 * nothing to do: neither a line's end nor a control character
 */

static size_t
pb_http_plain_run(const unsigned char *p, size_t len, size_t max)
{
    size_t  i;

    if (len > max) {
        len = max;
    }

    for (i = 0; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
            break;
        }
    }

    return i;
}


/* one byte outside a body's data */

static int
pb_http_byte(pb_http_response_t *r, unsigned char c)
{
    if (r->state < PB_HTTP_S_BODY || r->state == PB_HTTP_S_TRAILER) {
        if (++r->header_bytes > PB_HTTP_HEADERS_MAX) {
            return pb_http_fail(r, "headers too long");
        }
    }

    if (r->state <= PB_HTTP_S_REASON) {
        return pb_http_status_line(r, c);
    }

    if (r->state <= PB_HTTP_S_END_LF) {
        return pb_http_header_line(r, c);
    }

    return pb_http_chunk(r, c);
}


static int
pb_http_status_line(pb_http_response_t *r, unsigned char c)
{
    static const char  version[] = "HTTP/1.";

    switch (r->state) {

    case PB_HTTP_S_VERSION:
        if (c != (unsigned char) version[r->digits]) {
            return pb_http_fail(r, "not an HTTP/1.x status line");
        }

        if (++r->digits == sizeof(version) - 1) {
            r->state = PB_HTTP_S_MINOR;
        }

        return PB_HTTP_AGAIN;

    case PB_HTTP_S_MINOR:
        if (c < '0' || c > '9') {
            return pb_http_fail(r, "not an HTTP/1.x status line");
        }

        r->minor = c - '0';
        r->state = PB_HTTP_S_SP;
        return PB_HTTP_AGAIN;

    case PB_HTTP_S_SP:
        if (c != ' ') {
            return pb_http_fail(r, "not an HTTP/1.x status line");
        }

        r->status = 0;
        r->digits = 0;
        r->state = PB_HTTP_S_STATUS;
        return PB_HTTP_AGAIN;

    case PB_HTTP_S_STATUS:
        if (r->digits == 3) {
            if (c != ' ' && c != '\r' && c != '\n') {
                return pb_http_fail(r, "a status of more than 3 digits");
            }

            r->state = PB_HTTP_S_REASON;
            return pb_http_status_line(r, c);
        }

        if (c < '0' || c > '9' || (r->digits == 0 && c == '0')) {
            return pb_http_fail(r, "a status that is not 3 digits");
        }

        r->status = r->status * 10 + (c - '0');
        r->digits++;
        return PB_HTTP_AGAIN;

    default: /* PB_HTTP_S_REASON */
        if (c == '\n') {
            r->keep_alive = (r->minor >= 1);
            r->state = PB_HTTP_S_LINE;

        } else if (c < 0x20 && c != '\t' && c != '\r') {
            return pb_http_fail(r, "a control character in the status line");
        }

        return PB_HTTP_AGAIN;
    }
}


static int
pb_http_header_line(pb_http_response_t *r, unsigned char c)
{
    switch (r->state) {

    case PB_HTTP_S_LINE:
        if (c == '\r') {
            r->state = PB_HTTP_S_END_LF;
            return PB_HTTP_AGAIN;
        }

        if (c == '\n') {
            return pb_http_headers_end(r);
        }

        if (!pb_http_tchar(c)) {
            return pb_http_fail(r, "a header line that is not name: value");
        }

        r->name_len = 0;
        r->state = PB_HTTP_S_NAME;
        /* fall through */

    case PB_HTTP_S_NAME:
        if (c == ':') {
            return pb_http_value_start(r);
        }

        if (!pb_http_tchar(c)) {
            return pb_http_fail(r, "a header line that is not name: value");
        }

        if (r->name_len < sizeof(r->name)) {
            r->name[r->name_len] = (char) (c | 0x20);
        }

        r->name_len++;
        return PB_HTTP_AGAIN;

    case PB_HTTP_S_VALUE:
        return pb_http_value(r, c);

    default: /* PB_HTTP_S_END_LF */
        if (c != '\n') {
            return pb_http_fail(r, "a CR alone after the headers");
        }

        return pb_http_headers_end(r);
    }
}


/* a header's name was read: which one it is */

static int
pb_http_value_start(pb_http_response_t *r)
{
    size_t  i;

    static const struct {
        const char  *name;
        int          header;
    } headers[] = {
        { "content-length", PB_HTTP_H_LENGTH },
        { "transfer-encoding", PB_HTTP_H_ENCODING },
        { "connection", PB_HTTP_H_CONNECTION },
        { "retry-after", PB_HTTP_H_RETRY_AFTER }
    };

    r->header = PB_HTTP_H_OTHER;

    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        if (r->name_len == strlen(headers[i].name)
            && memcmp(r->name, headers[i].name, r->name_len) == 0)
        {
            r->header = headers[i].header;
            break;
        }
    }

    r->number = 0;
    r->digits = 0;
    r->name_len = 0;
    r->cr = 0;
    r->state = PB_HTTP_S_VALUE;

    return PB_HTTP_AGAIN;
}


static int
pb_http_value(pb_http_response_t *r, unsigned char c)
{
    if (r->cr && c != '\n') {
        return pb_http_fail(r, "a CR alone in a header");
    }

    if (c == '\r') {
        r->cr = 1;
        return PB_HTTP_AGAIN;
    }

    if (c == '\n') {
        r->state = PB_HTTP_S_LINE;
        return pb_http_value_end(r);
    }

    if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return pb_http_fail(r, "a control character in a header");
    }

    switch (r->header) {

    case PB_HTTP_H_LENGTH:
    case PB_HTTP_H_RETRY_AFTER:
        if (r->digits < 0) {
            return PB_HTTP_AGAIN;
        }

        if (c == ' ' || c == '\t') {
            /* white space ends the number: nothing may follow it */
            r->name_len = (r->digits > 0);
            return PB_HTTP_AGAIN;
        }

        if (c < '0' || c > '9' || r->digits == PB_HTTP_DIGITS_MAX
            || r->name_len)
        {
            /* Retry-After may be a date: then it is left out */
            r->digits = -1;
            return PB_HTTP_AGAIN;
        }

        r->number = r->number * 10 + (c - '0');
        r->digits++;
        return PB_HTTP_AGAIN;

    case PB_HTTP_H_ENCODING:
    case PB_HTTP_H_CONNECTION:
        if (c == ',') {
            pb_http_token(r);
            return PB_HTTP_AGAIN;
        }

        if (c != ' ' && c != '\t' && r->name_len < sizeof(r->name)) {
            r->name[r->name_len++] = (char) ((c >= 'A' && c <= 'Z')
                                             ? c | 0x20 : c);
        }

        return PB_HTTP_AGAIN;

    default:
        return PB_HTTP_AGAIN;
    }
}


/* a header's value ended */

static int
pb_http_value_end(pb_http_response_t *r)
{
    switch (r->header) {

    case PB_HTTP_H_LENGTH:
        if (r->digits <= 0) {
            return pb_http_fail(r, "a Content-Length that is not a number");
        }

        if (r->has_length && r->length != r->number) {
            return pb_http_fail(r, "two different Content-Length headers");
        }

        r->has_length = 1;
        r->length = r->number;
        break;

    case PB_HTTP_H_RETRY_AFTER:
        if (r->digits > 0) {
            r->retry_after = r->number;
        }

        break;

    case PB_HTTP_H_ENCODING:
    case PB_HTTP_H_CONNECTION:
        pb_http_token(r);
        break;

    default:
        break;
    }

    return PB_HTTP_AGAIN;
}


/* a token of Transfer-Encoding or Connection ended */

static void
pb_http_token(pb_http_response_t *r)
{
    if (r->name_len == 0) {
        return;
    }

    if (r->header == PB_HTTP_H_ENCODING) {
        /* chunked must be the last coding: this one may not be */
        r->tokens |= PB_HTTP_T_ENCODED;
        r->chunked = (r->name_len == 7 && memcmp(r->name, "chunked", 7) == 0);

    } else if (r->name_len == 5 && memcmp(r->name, "close", 5) == 0) {
        r->tokens |= PB_HTTP_T_CLOSE;

    } else if (r->name_len == 10 && memcmp(r->name, "keep-alive", 10) == 0)
    {
        r->tokens |= PB_HTTP_T_KEEP_ALIVE;
    }

    r->name_len = 0;
}


/* the empty line: what delimits the body, if any */

static int
pb_http_headers_end(pb_http_response_t *r)
{
    if (r->status < 200) {
        /* an interim answer: the real one follows */
        r->state = PB_HTTP_S_VERSION;
        r->digits = 0;
        r->tokens = 0;
        r->chunked = 0;
        r->has_length = 0;
        r->retry_after = 0;
        return PB_HTTP_AGAIN;
    }

    if (r->tokens & PB_HTTP_T_CLOSE) {
        r->keep_alive = 0;

    } else if (r->tokens & PB_HTTP_T_KEEP_ALIVE) {
        r->keep_alive = 1;
    }

    if (r->head || r->status == 204 || r->status == 304) {
        r->state = PB_HTTP_S_DONE;
        return PB_HTTP_AGAIN;
    }

    if (r->tokens & PB_HTTP_T_ENCODED) {
        /* a length beside a coding says nothing: trust neither after */
        if (r->has_length) {
            r->keep_alive = 0;
            r->has_length = 0;
        }

        if (r->chunked) {
            r->header_bytes = 0;
            r->state = PB_HTTP_S_CHUNK_SIZE;
            return PB_HTTP_AGAIN;
        }
    }

    if (!r->has_length) {
        r->has_length = PB_HTTP_UNTIL_CLOSE;
        r->keep_alive = 0;
        r->state = PB_HTTP_S_BODY;
        return PB_HTTP_AGAIN;
    }

    r->left = r->length;
    r->state = (r->length == 0) ? PB_HTTP_S_DONE : PB_HTTP_S_BODY;

    return PB_HTTP_AGAIN;
}


/* the framing of chunks: sizes, extensions, CRLFs, trailers */

static int
pb_http_chunk(pb_http_response_t *r, unsigned char c)
{
    int  h;

    switch (r->state) {

    case PB_HTTP_S_CHUNK_SIZE:
        h = pb_http_hex(c);

        if (h >= 0) {
            if (r->digits == PB_HTTP_HEX_MAX) {
                return pb_http_fail(r, "a chunk size too large");
            }

            r->left = r->left * 16 + (uint64_t) h;
            r->digits++;
            return PB_HTTP_AGAIN;
        }

        if (r->digits == 0) {
            return pb_http_fail(r, "a chunk without a size");
        }

        if (c != ';' && c != '\r' && c != '\n' && c != ' ' && c != '\t') {
            return pb_http_fail(r, "a bad chunk size");
        }

        r->state = PB_HTTP_S_CHUNK_EXT;
        /* fall through */

    case PB_HTTP_S_CHUNK_EXT:
        if (c != '\n') {
            return (c < 0x20 && c != '\t' && c != '\r')
                   ? pb_http_fail(r, "a control character in a chunk")
                   : PB_HTTP_AGAIN;
        }

        r->digits = 0;

        if (r->left == 0) {
            r->header_bytes = 0;
            r->cr = 0;
            r->name_len = 0;
            r->state = PB_HTTP_S_TRAILER;
            return PB_HTTP_AGAIN;
        }

        r->state = PB_HTTP_S_CHUNK_DATA;
        return PB_HTTP_AGAIN;

    case PB_HTTP_S_CHUNK_CR:
        if (c == '\r') {
            r->state = PB_HTTP_S_CHUNK_LF;
            return PB_HTTP_AGAIN;
        }

        /* fall through */

    case PB_HTTP_S_CHUNK_LF:
        if (c != '\n') {
            return pb_http_fail(r, "a chunk longer than its size");
        }

        r->left = 0;
        r->state = PB_HTTP_S_CHUNK_SIZE;
        return PB_HTTP_AGAIN;

    default: /* PB_HTTP_S_TRAILER: header lines, up to an empty one */
        if (c == '\n') {
            r->state = (r->name_len == 0) ? PB_HTTP_S_DONE
                                          : PB_HTTP_S_TRAILER;
            r->name_len = 0;
            return PB_HTTP_AGAIN;
        }

        if (c != '\r') {
            r->name_len = 1;
        }

        return PB_HTTP_AGAIN;
    }
}


static int
pb_http_fail(pb_http_response_t *r, const char *why)
{
    r->error = why;
    r->keep_alive = 0;

    return PB_HTTP_ERROR;
}


/* the body's first bytes are kept */

static void
pb_http_keep(pb_http_response_t *r, const unsigned char *p, size_t n)
{
    if (r->kept_len < PB_HTTP_KEEP) {
        if (n > PB_HTTP_KEEP - r->kept_len) {
            n = PB_HTTP_KEEP - r->kept_len;
        }

        memcpy(r->kept + r->kept_len, p, n);
        r->kept_len += n;
    }
}


/* RFC 9110's tchar: what a header name is made of */

static int
pb_http_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9')
           || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}


static int
pb_http_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}
