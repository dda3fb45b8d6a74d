/*
 * JSONPath subset used by postback_field: $.a.b, $.a[0], $['k'], $["k"],
 * $[0] and any mix of them.  Pure C (jansson only), no nginx headers.
 */

#ifndef PB_JSONPATH_H
#define PB_JSONPATH_H

#include <stddef.h>
#include <jansson.h>


#define PB_PATH_MAX_STEPS  32


typedef struct {
    const char  *key;       /* NULL for an array index step */
    size_t       key_len;
    size_t       index;
} pb_path_step_t;


/*
 * Parses src (len bytes, need not be NUL-terminated) into steps.  Keys
 * point into src, so src must outlive the steps.  Returns the number of
 * steps (0 for "$"), or -1 with *err set to a static message.
 */
int pb_path_parse(const char *src, size_t len, pb_path_step_t *steps,
    size_t max_steps, const char **err);

/*
 * Parses an upstream body as an object or an array.  Strings may contain
 * \u0000; a document with an integer too big for 64 bits is read again
 * with every integer as a real, and one with \u0000 in a key (which
 * jansson refuses) with every \u0000 read as U+FFFD, so that its event is
 * not lost.  NULL with *err set when the body is not JSON.
 */
json_t *pb_json_parse(const char *buf, size_t len, json_error_t *err);

/*
 * Every \u0000 escape of JSON text (len bytes) made \ufffd, in place: as
 * pb_json_parse reads a document with one in a key.
 */
void pb_json_nul_to_fffd(char *text, size_t len);

/* Borrowed reference to the value at the path, or NULL. */
json_t *pb_path_eval(json_t *root, const pb_path_step_t *steps, size_t n);

/* Deepest array index pb_path_set pads an array to. */
#define PB_PATH_SET_INDEX_MAX  64

/*
 * Puts value at the path in root, making the objects and arrays on the
 * way (arrays padded with nulls), as a sample document for the path.
 * Takes the reference to value.  0, or -1 when the path goes through a
 * value of another kind, is empty, or indexes past PB_PATH_SET_INDEX_MAX.
 */
int pb_path_set(json_t *root, const pb_path_step_t *steps, size_t n,
    json_t *value);

/* a number as pb_json_number_text writes it: "-1.7976931348623157e308" */
#define PB_JSON_NUMBER_LEN  64

/*
 * The text of an integer or a real into buf (PB_JSON_NUMBER_LEN bytes):
 * integers as JSON writes them, reals with the fewest digits (15 to 17)
 * that read back the same.  Its length, or 0 when it cannot be written.
 */
size_t pb_json_number_text(const json_t *value, char *buf);

/*
 * Text of a value as a field: strings as they are (may contain NUL),
 * integers as JSON writes them, reals with the fewest digits (15 to 17)
 * that read back the same, true/false, null as "",
 * objects and arrays as compact JSON.  Returns malloc'd memory (NUL
 * terminated, *len without the NUL) that the caller frees, or NULL.
 */
char *pb_json_value_text(json_t *value, size_t *len);

#endif /* PB_JSONPATH_H */
