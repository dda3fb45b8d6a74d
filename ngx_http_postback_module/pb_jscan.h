/*
 * The JSONPath fields of a JSON body, read in one pass as its bytes
 * arrive, without a tree: every path at once, each value kept as
 * pb_json_value_text(pb_path_eval(pb_json_parse(body), path)) writes it,
 * and the body validated as pb_json_parse validates it (jansson with
 * JSON_ALLOW_NUL, a big integer reading every integer as a real, a
 * \u0000 in a key reading every \u0000 as U+FFFD): the same documents
 * accepted, the same refused.  Pure C, no nginx headers.
 *
 *     js = pb_jscan_init(mem, paths, npaths);    mem: pb_jscan_size()
 *     pb_jscan_feed(js, buf, len);               any number of times
 *     pb_jscan_finish(js);
 *     pb_jscan_value(js, i, &text, &len);        path i's value
 *     pb_jscan_free(js);                         always, at the end
 *
 * Bounded: the state has a fixed size (pb_jscan_size); the only memory it
 * takes as it reads is for the values found, each its own bytes in the
 * body, malloc'd (pb_jscan_free gives it back).  A value that ends
 * replaced (a duplicate key, jansson keeping the last) gives its memory to
 * the next.  Time: each byte is looked at once; the paths are looked at
 * only for values at the depths they reach, and only there are keys
 * decoded; a value found is read again once, at pb_jscan_finish, to write
 * its text (a string unescaped, an object or an array through jansson, as
 * the tree's compact JSON is the text wanted).
 */

#ifndef PB_JSCAN_H
#define PB_JSCAN_H

#include <stddef.h>

#include "pb_jsonpath.h"


#define PB_JSCAN_OK        0
#define PB_JSCAN_REFUSED  -1    /* not JSON: pb_jscan_error says why */
#define PB_JSCAN_NOMEM    -2    /* no memory for a value */

/* jansson's JSON_PARSER_MAX_DEPTH: a value deeper than this is refused */
#define PB_JSCAN_DEPTH_MAX  2048


/* a path as pb_path_parse made it */
typedef struct {
    const pb_path_step_t  *steps;
    size_t                 nsteps;
} pb_jscan_path_t;

typedef struct pb_jscan_s  pb_jscan_t;


/* Bytes of the state of a scanner of npaths paths. */
size_t pb_jscan_size(size_t npaths);

/*
 * A scanner of paths[0..npaths) in mem (pb_jscan_size(npaths) bytes,
 * aligned as malloc aligns).  The steps (not the paths array) must
 * outlive it.  A state fresh from here points nowhere into itself: it can
 * be made once and copied byte for byte for each body.
 */
pb_jscan_t *pb_jscan_init(void *mem, const pb_jscan_path_t *paths,
    size_t npaths);

/*
 * Reads the body's next len bytes, cut anywhere (in a token, an escape, a
 * UTF-8 sequence, a number).  PB_JSCAN_OK, or PB_JSCAN_REFUSED /
 * PB_JSCAN_NOMEM, which every later call returns too.
 */
int pb_jscan_feed(pb_jscan_t *js, const char *buf, size_t len);

/*
 * The body ended: PB_JSCAN_OK and the values written, or as feed.  Once.
 */
int pb_jscan_finish(pb_jscan_t *js);

/*
 * Why the body was refused (a static message: "invalid escape"), and the
 * offset of the byte that made it so (the body's length when it ended
 * early); NULL if it was not.
 */
const char *pb_jscan_error(const pb_jscan_t *js, size_t *offset);

/*
 * After a finish that said PB_JSCAN_OK: 1 with path i's value in *text
 * (*len bytes, may hold NULs, NUL-terminated; valid until pb_jscan_free),
 * or 0 when the document has nothing there.
 */
int pb_jscan_value(const pb_jscan_t *js, size_t i, const char **text,
    size_t *len);

/* Whether a string of the document had a \u0000 escape. */
int pb_jscan_has_nul(const pb_jscan_t *js);

/* Frees the values; js is not used again (but may be freed again). */
void pb_jscan_free(pb_jscan_t *js);

#endif /* PB_JSCAN_H */
