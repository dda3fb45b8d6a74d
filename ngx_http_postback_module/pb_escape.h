/*
 * Escaping of values rendered into callback requests.  Pure C, no nginx
 * headers.  Every *_len function returns the exact output size of its
 * writer; writers return the end of what they wrote.
 */

#ifndef PB_ESCAPE_H
#define PB_ESCAPE_H

#include <stddef.h>


/* RFC 3986: unreserved bytes kept, everything else as %XX (space: %20). */
size_t pb_escape_uri_len(const unsigned char *src, size_t len);
unsigned char *pb_escape_uri(unsigned char *dst, const unsigned char *src,
    size_t len);

/*
 * How many of the bytes at p a JSON string holds as they are, unescaped
 * and needing no UTF-8 check: printable ASCII (and DEL) but '"' and '\\'.
 */
size_t pb_json_plain_len(const unsigned char *p, size_t len);

/*
 * Contents of a JSON string, without the quotes: '"', '\\' and control
 * bytes escaped; invalid UTF-8 sequences become \ufffd, so the output is
 * always valid JSON text.
 */
size_t pb_escape_json_len(const unsigned char *src, size_t len);
unsigned char *pb_escape_json(unsigned char *dst, const unsigned char *src,
    size_t len);

/*
 * Valid UTF-8 copy of src: each invalid sequence becomes U+FFFD (3 bytes).
 * Output is at most 3 * len bytes.
 */
size_t pb_utf8_sanitize_len(const unsigned char *src, size_t len);
unsigned char *pb_utf8_sanitize(unsigned char *dst, const unsigned char *src,
    size_t len);

/*
 * In place: every control byte (< 0x20 except TAB, and 0x7f) becomes a
 * space, so the value cannot end a header line.  Returns how many bytes
 * were replaced.
 */
size_t pb_header_sanitize(unsigned char *p, size_t len);

/* RFC 4648 base64 with padding. */
size_t pb_base64_len(size_t len);
unsigned char *pb_base64(unsigned char *dst, const unsigned char *src,
    size_t len);

#endif /* PB_ESCAPE_H */
