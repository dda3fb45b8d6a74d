/*
 * Escaping of values rendered into callback requests.
 */

#include <stddef.h>

#include <string.h>

#include "pb_escape.h"


#define PB_JSON_REPLACEMENT      "\\ufffd"
#define PB_JSON_REPLACEMENT_LEN  (sizeof(PB_JSON_REPLACEMENT) - 1)
#define PB_UTF8_REPLACEMENT_LEN  3


static const unsigned char  pb_hex[] = "0123456789ABCDEF";

static const unsigned char  pb_base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


static int
pb_uri_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}


size_t
pb_escape_uri_len(const unsigned char *src, size_t len)
{
    size_t  i, n;

    n = len;

    for (i = 0; i < len; i++) {
        if (!pb_uri_unreserved(src[i])) {
            n += 2;
        }
    }

    return n;
}


unsigned char *
pb_escape_uri(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (pb_uri_unreserved(src[i])) {
            *dst++ = src[i];
            continue;
        }

        *dst++ = '%';
        *dst++ = pb_hex[src[i] >> 4];
        *dst++ = pb_hex[src[i] & 0x0f];
    }

    return dst;
}


/*
 * Length of the UTF-8 sequence at p (len > 0) with *valid set, or of its
 * maximal invalid prefix with *valid cleared: replacing each such prefix
 * by one U+FFFD is the substitution Unicode recommends (chapter 3.9).
 * The ranges of the second byte exclude overlong forms, surrogates
 * (ED A0..BF) and code points above U+10FFFF.
 */
static size_t
pb_utf8_next(const unsigned char *p, size_t len, int *valid)
{
    size_t         i, need;
    unsigned char  c, lo, hi;

    c = p[0];
    lo = 0x80;
    hi = 0xbf;

    if (c < 0x80) {
        *valid = 1;
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;

    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        *valid = 0;
        return 1;
    }

    for (i = 1; i <= need; i++) {
        if (i == len || p[i] < lo || p[i] > hi) {
            *valid = 0;
            return i;
        }

        lo = 0x80;
        hi = 0xbf;
    }

    *valid = 1;
    return need + 1;
}


/* The letter of a two-byte escape such as \n, or 0 if c has none. */
static unsigned char
pb_json_short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return 0;
    }
}


/* bytes a JSON string holds as they are: see pb_json_plain_len() */
static const unsigned char  pb_json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /*  !"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* PQRSTUVWXYZ[\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    /* 0x80 and over: UTF-8, to be checked */
};


size_t
pb_json_plain_len(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len && pb_json_plain[p[i]]; i++) {
        /* void */
    }

    return i;
}


static size_t
pb_json_escaped_ascii_len(unsigned char c)
{
    if (pb_json_short_escape(c)) {
        return 2;
    }

    return c < 0x20 ? 6 : 1;
}


size_t
pb_escape_json_len(const unsigned char *src, size_t len)
{
    int     valid;
    size_t  i, n, seq;

    n = 0;

    for (i = 0; i < len; i += seq) {
        seq = pb_json_plain_len(&src[i], len - i);

        if (seq) {
            n += seq;
            continue;
        }

        seq = pb_utf8_next(&src[i], len - i, &valid);

        if (!valid) {
            n += PB_JSON_REPLACEMENT_LEN;

        } else if (seq == 1) {
            n += pb_json_escaped_ascii_len(src[i]);

        } else {
            n += seq;
        }
    }

    return n;
}


static unsigned char *
pb_json_escape_ascii(unsigned char *dst, unsigned char c)
{
    unsigned char  letter;

    letter = pb_json_short_escape(c);

    if (letter) {
        *dst++ = '\\';
        *dst++ = letter;
        return dst;
    }

    if (c >= 0x20) {
        *dst++ = c;
        return dst;
    }

    *dst++ = '\\';
    *dst++ = 'u';
    *dst++ = '0';
    *dst++ = '0';
    *dst++ = pb_hex[c >> 4];
    *dst++ = pb_hex[c & 0x0f];

    return dst;
}


unsigned char *
pb_escape_json(unsigned char *dst, const unsigned char *src, size_t len)
{
    int     valid;
    size_t  i, k, seq;

    for (i = 0; i < len; i += seq) {
        seq = pb_json_plain_len(&src[i], len - i);

        if (seq) {
            memcpy(dst, &src[i], seq);
            dst += seq;
            continue;
        }

        seq = pb_utf8_next(&src[i], len - i, &valid);

        if (!valid) {
            for (k = 0; k < PB_JSON_REPLACEMENT_LEN; k++) {
                *dst++ = PB_JSON_REPLACEMENT[k];
            }

        } else if (seq == 1) {
            dst = pb_json_escape_ascii(dst, src[i]);

        } else {
            for (k = 0; k < seq; k++) {
                *dst++ = src[i + k];
            }
        }
    }

    return dst;
}


size_t
pb_utf8_sanitize_len(const unsigned char *src, size_t len)
{
    int     valid;
    size_t  i, n, seq;

    n = 0;

    for (i = 0; i < len; i += seq) {
        seq = pb_utf8_next(&src[i], len - i, &valid);
        n += valid ? seq : PB_UTF8_REPLACEMENT_LEN;
    }

    return n;
}


unsigned char *
pb_utf8_sanitize(unsigned char *dst, const unsigned char *src, size_t len)
{
    int     valid;
    size_t  i, k, seq;

    for (i = 0; i < len; i += seq) {
        seq = pb_utf8_next(&src[i], len - i, &valid);

        if (!valid) {
            *dst++ = 0xef;
            *dst++ = 0xbf;
            *dst++ = 0xbd;
            continue;
        }

        for (k = 0; k < seq; k++) {
            *dst++ = src[i + k];
        }
    }

    return dst;
}


size_t
pb_header_sanitize(unsigned char *p, size_t len)
{
    size_t  i, replaced;

    replaced = 0;

    for (i = 0; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
            p[i] = ' ';
            replaced++;
        }
    }

    return replaced;
}


size_t
pb_base64_len(size_t len)
{
    return (len + 2) / 3 * 4;
}


unsigned char *
pb_base64(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t  i;

    for (i = 0; i + 2 < len; i += 3) {
        *dst++ = pb_base64_alphabet[src[i] >> 2];
        *dst++ = pb_base64_alphabet[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        *dst++ = pb_base64_alphabet[((src[i + 1] & 0x0f) << 2)
                                    | (src[i + 2] >> 6)];
        *dst++ = pb_base64_alphabet[src[i + 2] & 0x3f];
    }

    if (i + 1 == len) {
        *dst++ = pb_base64_alphabet[src[i] >> 2];
        *dst++ = pb_base64_alphabet[(src[i] & 0x03) << 4];
        *dst++ = '=';
        *dst++ = '=';

    } else if (i + 2 == len) {
        *dst++ = pb_base64_alphabet[src[i] >> 2];
        *dst++ = pb_base64_alphabet[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        *dst++ = pb_base64_alphabet[(src[i + 1] & 0x0f) << 2];
        *dst++ = '=';
    }

    return dst;
}
