/*
 * Runs every escaper on the input.  Each *_len must match what its writer
 * writes, and each output must decode back: percent-encoding and base64
 * to the input, the JSON string to the UTF-8 sanitized input.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pb_escape.h"


static const char  base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


/* Exact sizes, so ASan catches a writer that goes past its *_len. */
static unsigned char *
alloc(size_t n)
{
    unsigned char  *p;

    p = malloc(n);
    if (p == NULL && n > 0) {
        abort();
    }

    return p;
}


static int
same(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}


static int
unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}


static int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


static void
check_uri(const unsigned char *in, size_t size)
{
    int             hi, lo;
    size_t          n, i, k;
    unsigned char  *out, c;

    n = pb_escape_uri_len(in, size);
    out = alloc(n);

    if ((size_t) (pb_escape_uri(out, in, size) - out) != n) {
        abort();
    }

    /* decodes while comparing with the input */
    k = 0;

    for (i = 0; i < n; i++) {
        c = out[i];

        if (c == '%') {
            if (n - i < 3) {
                abort();
            }

            hi = hex_value(out[i + 1]);
            lo = hex_value(out[i + 2]);

            if (hi < 0 || lo < 0) {
                abort();
            }

            c = (unsigned char) (hi << 4 | lo);

            if (unreserved(c)) {
                abort();
            }

            i += 2;

        } else if (!unreserved(c)) {
            abort();
        }

        if (k == size || in[k++] != c) {
            abort();
        }
    }

    if (k != size) {
        abort();
    }

    free(out);
}


/* Returns the sanitized copy of the input, checked to be stable. */
static unsigned char *
check_utf8(const unsigned char *in, size_t size, size_t *len)
{
    size_t          n;
    unsigned char  *clean, *again;

    n = pb_utf8_sanitize_len(in, size);
    clean = alloc(n);

    if (n > 3 * size || (size_t) (pb_utf8_sanitize(clean, in, size) - clean)
                        != n)
    {
        abort();
    }

    /* valid UTF-8 goes through unchanged */
    if (pb_utf8_sanitize_len(clean, n) != n) {
        abort();
    }

    again = alloc(n);
    pb_utf8_sanitize(again, clean, n);

    if (!same(again, clean, n)) {
        abort();
    }

    free(again);

    *len = n;

    return clean;
}


static void
check_json(const unsigned char *in, size_t size)
{
    size_t          n, clean_len;
    json_t         *str;
    unsigned char  *out, *quoted, *clean;

    n = pb_escape_json_len(in, size);
    out = alloc(n);

    if ((size_t) (pb_escape_json(out, in, size) - out) != n) {
        abort();
    }

    quoted = alloc(n + 2);
    quoted[0] = '"';
    memcpy(quoted + 1, out, n);
    quoted[n + 1] = '"';

    str = json_loadb((const char *) quoted, n + 2,
                     JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    /* \ufffd reads back as the U+FFFD that sanitizing writes */
    clean = check_utf8(in, size, &clean_len);

    if (!json_is_string(str)
        || json_string_length(str) != clean_len
        || !same(json_string_value(str), clean, clean_len))
    {
        abort();
    }

    json_decref(str);
    free(clean);
    free(quoted);
    free(out);
}


static void
check_header(const unsigned char *in, size_t size)
{
    size_t          i, changed;
    unsigned char  *copy;

    copy = alloc(size);

    if (size > 0) {
        memcpy(copy, in, size);
    }

    changed = 0;

    for (i = 0; i < size; i++) {
        if ((in[i] < 0x20 && in[i] != '\t') || in[i] == 0x7f) {
            changed++;
        }
    }

    if (pb_header_sanitize(copy, size) != changed) {
        abort();
    }

    for (i = 0; i < size; i++) {
        if (copy[i] != in[i] && copy[i] != ' ') {
            abort();
        }

        if ((copy[i] < 0x20 && copy[i] != '\t') || copy[i] == 0x7f) {
            abort();
        }
    }

    free(copy);
}


static void
check_base64(const unsigned char *in, size_t size)
{
    int             pad;
    size_t          n, i, j, k;
    uint32_t        bits;
    const char     *digit;
    unsigned char  *out;

    n = pb_base64_len(size);
    out = alloc(n);

    if ((size_t) (pb_base64(out, in, size) - out) != n || n % 4 != 0) {
        abort();
    }

    k = 0;

    for (i = 0; i < n; i += 4) {
        bits = 0;
        pad = 0;

        for (j = 0; j < 4; j++) {
            if (out[i + j] == '=') {
                /* only the last group ends with one or two '=' */
                if (i + 4 != n || j < 2) {
                    abort();
                }

                pad++;
                bits <<= 6;
                continue;
            }

            digit = memchr(base64_alphabet, out[i + j], 64);

            if (pad || digit == NULL) {
                abort();
            }

            bits = bits << 6 | (uint32_t) (digit - base64_alphabet);
        }

        for (j = 0; j < (size_t) (3 - pad); j++) {
            if (k == size || in[k++] != ((bits >> (16 - 8 * j)) & 0xff)) {
                abort();
            }
        }
    }

    if (k != size) {
        abort();
    }

    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_uri(data, size);
    check_json(data, size);
    check_header(data, size);
    check_base64(data, size);

    return 0;
}
