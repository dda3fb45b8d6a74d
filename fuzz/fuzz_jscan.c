/*
 * The scanner against the tree, jansson being the oracle: a body and a
 * few JSONPaths read both ways (pb_jscan, and pb_json_value_text of
 * pb_path_eval of pb_json_parse) must give the same values, or both
 * refuse the body.  The input: a byte saying where the body is cut, then
 * JSONPaths separated by tabs up to the first newline (those that do not
 * parse are left out; a few fixed ones are always read), then the body.
 * The scanner is a copy of a fresh state, fed pieces of exactly their
 * bytes, so that ASan sees a read past one.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_jscan.h"


#define MAX_PATHS  12


typedef struct {
    pb_jscan_path_t  paths[MAX_PATHS];
    pb_path_step_t   steps[MAX_PATHS][PB_PATH_MAX_STEPS];
    size_t           n;
} path_set_t;


static const char  *fixed[] = {
    "$", "$.a", "$[0]", "$.a.b", "$[1].a[0]", "$['']", "$.a[2]['k']"
};


static void
add_path(path_set_t *set, const char *src, size_t len)
{
    int          n;
    const char  *err;

    if (set->n == MAX_PATHS) {
        return;
    }

    n = pb_path_parse(src, len, set->steps[set->n], PB_PATH_MAX_STEPS, &err);
    if (n < 0) {
        return;
    }

    set->paths[set->n].steps = set->steps[set->n];
    set->paths[set->n].nsteps = (size_t) n;
    set->n++;
}


/* the fixed paths, then those of the input's first line */

static void
read_paths(path_set_t *set, const char *line, size_t len)
{
    size_t       i;
    const char  *tab;

    set->n = 0;

    for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        add_path(set, fixed[i], strlen(fixed[i]));
    }

    while (len > 0) {
        tab = memchr(line, '\t', len);
        i = tab ? (size_t) (tab - line) : len;
        add_path(set, line, i);
        i += (tab != NULL);
        line += i;
        len -= i;
    }
}


/* cut 0: whole; 1: byte by byte; else pieces of 1 to cut bytes */

static int
scan(pb_jscan_t *js, const char *body, size_t len, unsigned cut)
{
    int        rc;
    char      *piece;
    size_t     at, n;
    uint32_t   random;

    random = cut;
    rc = PB_JSCAN_OK;

    for (at = 0; at < len && rc == PB_JSCAN_OK; at += n) {
        random = random * 1103515245 + 12345;
        n = (cut == 0) ? len : (cut == 1) ? 1 : 1 + (random >> 16) % cut;
        n = (n > len - at) ? len - at : n;

        piece = malloc(n);
        if (piece == NULL) {
            abort();
        }

        memcpy(piece, body + at, n);
        rc = pb_jscan_feed(js, piece, n);
        free(piece);
    }

    return (rc == PB_JSCAN_OK) ? pb_jscan_finish(js) : rc;
}


static void
compare(pb_jscan_t *js, json_t *doc, const path_set_t *set)
{
    char        *want;
    size_t       i, got_len, want_len;
    json_t      *v;
    const char  *got;

    for (i = 0; i < set->n; i++) {
        v = pb_path_eval(doc, set->paths[i].steps, set->paths[i].nsteps);

        if (!pb_jscan_value(js, i, &got, &got_len)) {
            if (v != NULL) {
                abort();
            }

            continue;
        }

        want = (v != NULL) ? pb_json_value_text(v, &want_len) : NULL;

        if (want == NULL || got_len != want_len || got[got_len] != '\0'
            || memcmp(got, want, got_len) != 0)
        {
            abort();
        }

        free(want);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            rc;
    void          *fresh, *mem;
    size_t         len, offset;
    json_t        *doc;
    path_set_t     set;
    const char    *in, *body, *nl;
    json_error_t   err;

    if (size == 0) {
        return 0;
    }

    in = (const char *) data + 1;
    len = size - 1;
    nl = memchr(in, '\n', len);

    read_paths(&set, in, nl ? (size_t) (nl - in) : 0);
    body = nl ? nl + 1 : in;
    len -= body - in;

    fresh = malloc(pb_jscan_size(set.n));
    mem = malloc(pb_jscan_size(set.n));
    if (fresh == NULL || mem == NULL) {
        abort();
    }

    pb_jscan_init(fresh, set.paths, set.n);
    memcpy(mem, fresh, pb_jscan_size(set.n));

    rc = scan(mem, body, len, data[0]);
    doc = pb_json_parse(body, len, &err);

    if (rc == PB_JSCAN_NOMEM || (rc == PB_JSCAN_OK) != (doc != NULL)) {
        abort();
    }

    if (rc == PB_JSCAN_OK) {
        compare(mem, doc, &set);

    } else if (pb_jscan_error(mem, &offset) == NULL || offset > len) {
        abort();
    }

    json_decref(doc);
    pb_jscan_free(mem);
    free(mem);
    free(fresh);

    return 0;
}
