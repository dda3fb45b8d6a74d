/*
 * An application/x-www-form-urlencoded body read as a JSON document, so
 * that postback_field's JSONPath applies to forms as to JSON.  Pure C
 * (jansson only), no nginx headers.
 *
 * The body:
 *   - Spaces, tabs, CRs and LFs before and after the whole body are
 *     ignored.  The body is split at each '&' (';' separates nothing);
 *     empty pairs ("a=1&&b=2", a trailing '&') are skipped.
 *   - A pair is key=value, split at its first '='; a pair without '=' is
 *     a key with the empty string as value.
 *   - In keys and values, '+' is a space and %XX (either case) the byte
 *     XX.  A '%' not followed by two hex digits, anywhere, makes the body
 *     malformed ("invalid percent-encoding").
 *   - A decoded key or value that is not valid UTF-8 is read as
 *     ISO-8859-1 (each of its bytes as U+0000..U+00FF), as the Latin-1
 *     forms of some payment providers.  A NUL byte (%00) is kept in a
 *     value; in a key, it makes the body malformed.
 *   - Every value is a JSON string; an empty body is the object {}.
 *
 * PHP-style keys, read after decoding (so a%5Bb%5D is a[b]):
 *   - A key "base[k1][k2]..[kn]", base not empty and without '[', no '['
 *     or ']' inside any ki, and nothing after the last ']', nests: it
 *     puts the value at root.base.k1...kn.  "[]" appends (see below).
 *     Any other key ("a[b", "a[b]c", "a]b", "[a") is taken as it is, as
 *     one flat key.  A nested key with an empty base ("[a]=1") and the
 *     empty key ("=1") skip their pair, as PHP does.
 *   - More than PB_FORM_DEPTH_MAX bracket groups in a nested key make the
 *     body malformed ("nesting too deep"): the document nests at most
 *     PB_FORM_DEPTH_MAX + 1 objects and arrays, the root included.
 *   - A percent-encoding error, a NUL in a key or too deep a nesting
 *     fails the body even in a pair that would be skipped.
 *   - PHP's renaming of '.' and ' ' to '_' in names is not done.
 *
 * The document is built as PHP builds $_POST, each container an ordered
 * map, then written as PHP's json_encode writes it:
 *   - A key seen again keeps its first place.  The last value wins: a
 *     string replaces a string or a container, and a key used as a
 *     container ("a=1&a[b]=2") replaces a string by an empty map first.
 *   - Integer keys are the canonical non-negative decimals of at most 9
 *     digits ("0", "17", not "017", "-1" or "1.0").  "[]" appends with
 *     the key one more than the largest integer key the map has had,
 *     0 when it has had none; "a[][x]=1&a[][y]=2" makes two elements.
 *   - In the end, a map whose keys are exactly "0", "1", .., "n-1" in
 *     that order is a JSON array; any other map is a JSON object, in the
 *     order of its keys.  The root is always an object.
 *
 *   venda[codigo]=1&comissoes[0][valor]=2
 *       {"venda":{"codigo":"1"},"comissoes":[{"valor":"2"}]}
 *   a[]=x&a[]=y            {"a":["x","y"]}
 *   a[1]=x&a[0]=y          {"a":{"1":"x","0":"y"}}
 *
 * The time taken grows as n log n in the number of pairs; the memory, in
 * proportion to the body.
 *
 * The inverse, pb_form_write, writes a document as a form with PHP-style
 * keys, as http_build_query does (method=post_form with no param= and no
 * body=, for receivers such as Monetizze's):
 *   - Pairs name=value joined by '&', in the document's order (jansson
 *     keeps the order members were added in).
 *   - At the root, an object's members are bare names ("a=1") and an
 *     array's elements are "0=..", "1=..".  Below it, an object's member
 *     is name[key], an array's element name[0], name[1], .. (explicit
 *     indexes, any number of them).
 *   - A string is written as it is; an integer or a real as jansson
 *     writes it, a real with the fewest digits (15 to 17) that read back
 *     as the same double, as pb_json_value_text writes it ("2.5", not
 *     "2.5000000000000000"); true is "1", false "0" (as PHP).
 *   - null, and an empty object or array, is left out (no pair); so is a
 *     root that is not an object or an array.  An empty document writes
 *     nothing: the empty body.
 *   - Names and values are percent-encoded by pb_escape_uri: every byte
 *     but A-Z a-z 0-9 - . _ ~ as %XX, a space as %20 (not '+'), and the
 *     brackets as %5B and %5D, as http_build_query writes them.
 *   - A value under more than PB_FORM_WRITE_DEPTH_MAX names (the root's
 *     member or element counted as one) is left out, so that the writer
 *     never recurses deeper than that.
 *
 *   {"venda":{"codigo":"1"},"comissoes":[{"nome":"a","valor":2.5}]}
 *       venda%5Bcodigo%5D=1&comissoes%5B0%5D%5Bnome%5D=a
 *       &comissoes%5B0%5D%5Bvalor%5D=2.5      (one line)
 *
 * pb_form_parse reads back what pb_form_write writes of a document that
 * pb_form_parse made; in general, of an object of objects, arrays and
 * strings, with no empty container, no empty key, no '[' or ']' in a key
 * below the root, and no more than PB_FORM_DEPTH_MAX + 1 names to a
 * value.  Other documents lose what a form cannot say (types, nulls, an
 * object with the keys "0".."n-1" read back as an array).
 */

#ifndef PB_FORM_H
#define PB_FORM_H

#include <stddef.h>
#include <jansson.h>


/* Most bracket groups in a key: a[1][2]..[32]. */
#define PB_FORM_DEPTH_MAX    32

/* Most digits of an integer key: up to 999999999. */
#define PB_FORM_INDEX_DIGITS  9


/* Most names to a value pb_form_write writes: a[1][2]..[63]. */
#define PB_FORM_WRITE_DEPTH_MAX  64


/*
 * Reads buf (len bytes, need not be NUL-terminated; NULL when len is 0)
 * as a form: a json_t object (new reference) or NULL with *err set to a
 * static message ("invalid percent-encoding", "NUL byte in a key",
 * "nesting too deep", "out of memory").
 */
json_t *pb_form_parse(const char *buf, size_t len, const char **err);

/*
 * Writes doc (NULL writes nothing) as a form, as the rules above say, and
 * returns the end of what it wrote; pb_form_write_len is the exact size it
 * writes.  Neither allocates.
 */
size_t pb_form_write_len(const json_t *doc);
unsigned char *pb_form_write(unsigned char *dst, const json_t *doc);

#endif /* PB_FORM_H */
