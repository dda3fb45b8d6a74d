/*
 * An application/x-www-form-urlencoded body read as a JSON document.
 *
 * The pairs are first put in a tree of our own, each map an ordered map
 * as PHP's arrays: its keys in a list, in the order they came, and in an
 * AA tree, by key, so that a key is found in log n steps whatever the
 * keys (no hash to flood).  Each map keeps its next "[]" index.  The
 * tree is written out as jansson values at the end, where a map with the
 * keys 0..n-1 in order becomes an array.  Decoded keys and values go to
 * one buffer of twice the body (Latin-1 widening at most doubles them),
 * the nodes to chunks freed all at once.
 *
 * The writer walks the document with the names of the value at hand on a
 * stack of its own, and writes each leaf's whole name, then its value.
 * It runs twice over a document, once to count and once to write, the
 * same code both times, so that the count is exact.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_escape.h"
#include "pb_form.h"
#include "pb_jsonpath.h"


#define PB_FORM_NO_INDEX     UINT64_MAX

#define PB_FORM_OOM          "out of memory"

/* 64 bits in decimal, for the keys "[]" makes */
#define PB_FORM_INDEX_LEN    20

#define PB_FORM_CHUNK_MIN    4096
#define PB_FORM_CHUNK_MAX    (1024 * 1024)


typedef struct pb_form_node_s   pb_form_node_t;
typedef struct pb_form_chunk_s  pb_form_chunk_t;


struct pb_form_node_s {
    /* in the map that holds it */
    pb_form_node_t   *left;         /* AA tree, by key */
    pb_form_node_t   *right;
    pb_form_node_t   *next;         /* the keys in order */
    const char       *key;
    size_t            key_len;
    uint64_t          index;        /* of an integer key, or NO_INDEX */
    unsigned          level;        /* AA tree level, 1 for a leaf */

    unsigned          map;          /* a map, or else a string */

    /* a string */
    const char       *value;
    size_t            value_len;

    /* a map */
    pb_form_node_t   *root;
    pb_form_node_t   *first;
    pb_form_node_t   *last;
    uint64_t          next_index;   /* the key of the next "[]" */
};


typedef union {
    void             *p;
    uint64_t          u;
    size_t            s;
} pb_form_align_t;


struct pb_form_chunk_s {
    pb_form_chunk_t  *prev;
    size_t            size;
    size_t            used;
    pb_form_align_t   data[];
};


typedef struct {
    const char       *data;
    size_t            len;
} pb_form_str_t;


/* a name of the writer's path: a key, or an array index */
typedef struct {
    const char       *key;          /* NULL for an index */
    size_t            len;          /* of the key, or the index */
} pb_form_name_t;


typedef struct {
    unsigned char    *dst;
    unsigned          write;        /* or else only count */
    size_t            len;          /* written, or counted */
    size_t            depth;        /* names on the path */
    pb_form_name_t    names[PB_FORM_WRITE_DEPTH_MAX];
} pb_form_writer_t;


typedef struct {
    pb_form_chunk_t  *chunk;
    char             *text;         /* decoded keys and values */
    size_t            text_used;
    pb_form_node_t    root;
} pb_form_t;


/* Frees every chunk and the text buffer. */
static void
pb_form_free(pb_form_t *f)
{
    pb_form_chunk_t  *c, *prev;

    for (c = f->chunk; c != NULL; c = prev) {
        prev = c->prev;
        free(c);
    }

    free(f->text);
}


/* size bytes from the chunks, aligned for a node; NULL on out of memory */
static void *
pb_form_alloc(pb_form_t *f, size_t size)
{
    size_t            chunk_size;
    pb_form_chunk_t  *c;

    size = (size + sizeof(pb_form_align_t) - 1)
           / sizeof(pb_form_align_t) * sizeof(pb_form_align_t);

    c = f->chunk;

    if (c == NULL || c->size - c->used < size) {
        chunk_size = (c == NULL) ? PB_FORM_CHUNK_MIN : c->size * 2;

        if (chunk_size > PB_FORM_CHUNK_MAX) {
            chunk_size = PB_FORM_CHUNK_MAX;
        }

        if (chunk_size < size) {
            chunk_size = size;
        }

        c = malloc(sizeof(pb_form_chunk_t) + chunk_size);
        if (c == NULL) {
            return NULL;
        }

        c->prev = f->chunk;
        c->size = chunk_size;
        c->used = 0;
        f->chunk = c;
    }

    c->used += size;

    return (char *) c->data + c->used - size;
}


/* The value of a hex digit, or -1. */
static int
pb_form_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * Whether p[0..len) is UTF-8 as RFC 3629 (and jansson) has it: no
 * overlong forms, no surrogates, nothing above U+10FFFF.
 */
static int
pb_form_utf8(const unsigned char *p, size_t len)
{
    size_t         i, k, need;
    unsigned char  c, lo, hi;

    for (i = 0; i < len; i += need + 1) {
        c = p[i];
        lo = 0x80;
        hi = 0xbf;

        if (c < 0x80) {
            need = 0;

        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;

        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            lo = (c == 0xe0) ? 0xa0 : 0x80;
            hi = (c == 0xed) ? 0x9f : 0xbf;

        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            lo = (c == 0xf0) ? 0x90 : 0x80;
            hi = (c == 0xf4) ? 0x8f : 0xbf;

        } else {
            return 0;
        }

        if (len - i - 1 < need) {
            return 0;
        }

        for (k = 1; k <= need; k++) {
            if (p[i + k] < lo || p[i + k] > hi) {
                return 0;
            }

            lo = 0x80;
            hi = 0xbf;
        }
    }

    return 1;
}


/*
 * Decodes src ('+' and %XX) at the end of the text buffer, widened from
 * Latin-1 to UTF-8 in place when it is not UTF-8: it then takes at most
 * twice len.  -1 on a bad percent-escape.
 */
static int
pb_form_decode(pb_form_t *f, const char *src, size_t len, pb_form_str_t *out)
{
    int             hi, lo;
    size_t          i, n, high;
    unsigned char   c, *start, *dst, *s;

    start = (unsigned char *) f->text + f->text_used;
    dst = start;

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];

        if (c == '+') {
            c = ' ';

        } else if (c == '%') {
            if (len - i < 3) {
                return -1;
            }

            hi = pb_form_hex((unsigned char) src[i + 1]);
            lo = pb_form_hex((unsigned char) src[i + 2]);

            if (hi < 0 || lo < 0) {
                return -1;
            }

            c = (unsigned char) (hi << 4 | lo);
            i += 2;
        }

        *dst++ = c;
    }

    n = dst - start;

    if (!pb_form_utf8(start, n)) {
        high = 0;

        for (i = 0; i < n; i++) {
            high += start[i] >> 7;
        }

        /* from the end, so that nothing is overwritten before it is read */
        s = start + n;
        dst = start + n + high;

        while (s > start) {
            c = *--s;

            if (c < 0x80) {
                *--dst = c;

            } else {
                *--dst = (unsigned char) (0x80 | (c & 0x3f));
                *--dst = (unsigned char) (0xc0 | (c >> 6));
            }
        }

        n += high;
    }

    out->data = (const char *) start;
    out->len = n;
    f->text_used += n;

    return 0;
}


/*
 * Splits a decoded key into its names: the base, then each [..] (empty
 * for "[]"), into names[0..PB_FORM_DEPTH_MAX].  Returns their number, 0
 * for a pair to skip, -1 when too deep; a key that is not well formed is
 * one name.
 */
static int
pb_form_names(const char *key, size_t len, pb_form_str_t *names)
{
    size_t       n, base_len;
    const char  *p, *q, *end;

    names[0].data = key;
    names[0].len = len;

    p = memchr(key, '[', len);
    if (p == NULL) {
        return len ? 1 : 0;
    }

    base_len = p - key;
    end = key + len;
    n = 1;

    while (p < end) {
        if (*p != '[') {
            return 1;
        }

        for (q = p + 1; q < end && *q != '[' && *q != ']'; q++) {
            /* void */
        }

        if (q == end || *q != ']') {
            return 1;
        }

        /* counted on: the key must be checked to its end to be nested */
        if (n <= PB_FORM_DEPTH_MAX) {
            names[n].data = p + 1;
            names[n].len = q - p - 1;
        }

        n++;
        p = q + 1;
    }

    if (n > PB_FORM_DEPTH_MAX + 1) {
        return -1;
    }

    names[0].len = base_len;

    return base_len ? (int) n : 0;
}


/* The integer of a canonical decimal key of at most 9 digits. */
static uint64_t
pb_form_index(const char *key, size_t len)
{
    size_t    i;
    uint64_t  v;

    if (len == 0 || len > PB_FORM_INDEX_DIGITS
        || (key[0] == '0' && len > 1))
    {
        return PB_FORM_NO_INDEX;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (key[i] < '0' || key[i] > '9') {
            return PB_FORM_NO_INDEX;
        }

        v = v * 10 + (uint64_t) (key[i] - '0');
    }

    return v;
}


/*
 * Keys ordered by their integer, the others after them by length, then
 * bytes: any total order does, and integers compare fast.  An integer
 * key is canonical, so the same integer is the same key.
 */
static int
pb_form_cmp(const char *key, size_t len, uint64_t index,
    const pb_form_node_t *node)
{
    if (index != node->index) {
        return (index < node->index) ? -1 : 1;
    }

    if (index != PB_FORM_NO_INDEX) {
        return 0;
    }

    if (len != node->key_len) {
        return (len < node->key_len) ? -1 : 1;
    }

    return len ? memcmp(key, node->key, len) : 0;
}


/* AA tree: a left child on the same level turned into a right one. */
static pb_form_node_t *
pb_form_skew(pb_form_node_t *t)
{
    pb_form_node_t  *l;

    l = t->left;

    if (l == NULL || l->level != t->level) {
        return t;
    }

    t->left = l->right;
    l->right = t;

    return l;
}


/* AA tree: two right children on one level, the middle one raised. */
static pb_form_node_t *
pb_form_split(pb_form_node_t *t)
{
    pb_form_node_t  *r;

    r = t->right;

    if (r == NULL || r->right == NULL || r->right->level != t->level) {
        return t;
    }

    t->right = r->left;
    r->left = t;
    r->level++;

    return r;
}


/* Inserts node, whose key t does not hold, in t; returns the new root. */
static pb_form_node_t *
pb_form_insert(pb_form_node_t *t, pb_form_node_t *node)
{
    if (t == NULL) {
        return node;
    }

    if (pb_form_cmp(node->key, node->key_len, node->index, t) < 0) {
        t->left = pb_form_insert(t->left, node);

    } else {
        t->right = pb_form_insert(t->right, node);
    }

    return pb_form_split(pb_form_skew(t));
}


/* Makes node an empty map, in place (its old contents dropped). */
static void
pb_form_make_map(pb_form_node_t *node)
{
    node->map = 1;
    node->root = NULL;
    node->first = NULL;
    node->last = NULL;
    node->next_index = 0;
}


/*
 * Adds key, which map does not hold, last to map, as an empty string:
 * keys point into the text buffer or the chunks, which outlive the tree.
 */
static pb_form_node_t *
pb_form_add(pb_form_t *f, pb_form_node_t *map, const char *key, size_t len,
    uint64_t index)
{
    pb_form_node_t  *node;

    node = pb_form_alloc(f, sizeof(pb_form_node_t));
    if (node == NULL) {
        return NULL;
    }

    memset(node, 0, sizeof(pb_form_node_t));
    node->level = 1;
    node->key = key;
    node->key_len = len;
    node->index = index;
    node->value = "";

    if (index != PB_FORM_NO_INDEX && index >= map->next_index) {
        map->next_index = index + 1;
    }

    map->root = pb_form_insert(map->root, node);

    if (map->last == NULL) {
        map->first = node;

    } else {
        map->last->next = node;
    }

    map->last = node;

    return node;
}


/* The entry of key in map, found or added; NULL on out of memory. */
static pb_form_node_t *
pb_form_child(pb_form_t *f, pb_form_node_t *map, const char *key,
    size_t len)
{
    int              rc;
    uint64_t         index;
    pb_form_node_t  *node;

    index = pb_form_index(key, len);

    for (node = map->root; node != NULL; /* void */) {
        rc = pb_form_cmp(key, len, index, node);

        if (rc == 0) {
            return node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return pb_form_add(f, map, key, len, index);
}


/*
 * The entry "[]" adds to map, under its next index.  An integer key
 * (9 digits at most) above all the others is new; a longer one may be
 * there already, as a key given in the body.
 */
static pb_form_node_t *
pb_form_append(pb_form_t *f, pb_form_node_t *map)
{
    char      *key, digits[PB_FORM_INDEX_LEN];
    size_t     len;
    uint64_t   v, index;

    v = map->next_index;
    len = 0;

    do {
        digits[PB_FORM_INDEX_LEN - ++len] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    key = pb_form_alloc(f, len);
    if (key == NULL) {
        return NULL;
    }

    memcpy(key, &digits[PB_FORM_INDEX_LEN - len], len);

    index = pb_form_index(key, len);

    /* past 9 digits, the key is no integer but "[]" goes on counting */
    map->next_index++;

    if (index != PB_FORM_NO_INDEX) {
        return pb_form_add(f, map, key, len, index);
    }

    return pb_form_child(f, map, key, len);
}


/* Puts value at names[0..n) in the tree; -1 on out of memory. */
static int
pb_form_put(pb_form_t *f, const pb_form_str_t *names, size_t n,
    const pb_form_str_t *value)
{
    size_t           i;
    pb_form_node_t  *map, *node;

    map = &f->root;

    for (i = 0; i < n; i++) {
        if (names[i].len == 0) {
            node = pb_form_append(f, map);

        } else {
            node = pb_form_child(f, map, names[i].data, names[i].len);
        }

        if (node == NULL) {
            return -1;
        }

        if (i + 1 < n) {
            if (!node->map) {
                pb_form_make_map(node);
            }

            map = node;
            continue;
        }

        node->map = 0;
        node->value = value->data;
        node->value_len = value->len;
    }

    return 0;
}


/* Reads one pair, not empty; NULL, or the message of a malformed body. */
static const char *
pb_form_pair(pb_form_t *f, const char *pair, size_t len)
{
    int             n;
    size_t          key_len;
    const char     *eq;
    pb_form_str_t   key, value, names[PB_FORM_DEPTH_MAX + 1];

    eq = memchr(pair, '=', len);
    key_len = (eq != NULL) ? (size_t) (eq - pair) : len;

    if (pb_form_decode(f, pair, key_len, &key) != 0) {
        return "invalid percent-encoding";
    }

    if (eq == NULL) {
        value.data = "";
        value.len = 0;

    } else if (pb_form_decode(f, eq + 1, len - key_len - 1, &value) != 0) {
        return "invalid percent-encoding";
    }

    if (key.len && memchr(key.data, '\0', key.len) != NULL) {
        return "NUL byte in a key";
    }

    n = pb_form_names(key.data, key.len, names);

    if (n < 0) {
        return "nesting too deep";
    }

    if (n > 0 && pb_form_put(f, names, (size_t) n, &value) != 0) {
        return PB_FORM_OOM;
    }

    return NULL;
}


/*
 * The JSON of a node: a string, or a map as an array when its keys are
 * 0..n-1 in order (never the root), or else as an object.
 */
static json_t *
pb_form_json(const pb_form_node_t *node, int root)
{
    int                    array;
    json_t                *json, *v;
    uint64_t               i;
    const pb_form_node_t  *c;

    if (!node->map) {
        return json_stringn(node->value, node->value_len);
    }

    array = !root;
    i = 0;

    for (c = node->first; c != NULL && array; c = c->next) {
        array = (c->index == i++);
    }

    json = array ? json_array() : json_object();
    if (json == NULL) {
        return NULL;
    }

    for (c = node->first; c != NULL; c = c->next) {
        v = pb_form_json(c, 0);

        /* the *_new calls take v, NULL included */
        if ((array ? json_array_append_new(json, v)
                   : json_object_setn_new(json, c->key, c->key_len, v))
            != 0)
        {
            json_decref(json);
            return NULL;
        }
    }

    return json;
}


/* Spaces, tabs, CRs and LFs. */
static int
pb_form_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


json_t *
pb_form_parse(const char *buf, size_t len, const char **err)
{
    json_t      *doc;
    pb_form_t    f;
    const char  *p, *end, *amp, *msg;

    while (len > 0 && pb_form_space(buf[0])) {
        buf++;
        len--;
    }

    while (len > 0 && pb_form_space(buf[len - 1])) {
        len--;
    }

    if (len == 0) {
        doc = json_object();
        if (doc == NULL) {
            *err = PB_FORM_OOM;
        }

        return doc;
    }

    memset(&f, 0, sizeof(pb_form_t));
    pb_form_make_map(&f.root);

    /* every key and value decoded, each at most doubled by Latin-1 */
    f.text = (len <= SIZE_MAX / 2) ? malloc(2 * len) : NULL;
    if (f.text == NULL) {
        *err = PB_FORM_OOM;
        return NULL;
    }

    end = buf + len;

    for (p = buf; p < end; p = amp + 1) {
        amp = memchr(p, '&', end - p);
        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            continue;
        }

        msg = pb_form_pair(&f, p, amp - p);

        if (msg != NULL) {
            pb_form_free(&f);
            *err = msg;
            return NULL;
        }
    }

    doc = pb_form_json(&f.root, 1);

    pb_form_free(&f);

    if (doc == NULL) {
        *err = PB_FORM_OOM;
    }

    return doc;
}


/* Writes (or counts) len bytes as they are. */
static void
pb_form_out(pb_form_writer_t *w, const char *p, size_t len)
{
    if (w->write) {
        memcpy(w->dst, p, len);
        w->dst += len;
    }

    w->len += len;
}


/* Writes (or counts) len bytes percent-encoded. */
static void
pb_form_out_escaped(pb_form_writer_t *w, const char *p, size_t len)
{
    unsigned char  *end;

    if (!w->write) {
        w->len += pb_escape_uri_len((const unsigned char *) p, len);
        return;
    }

    end = pb_escape_uri(w->dst, (const unsigned char *) p, len);
    w->len += end - w->dst;
    w->dst = end;
}


/* Writes (or counts) an index in decimal: digits need no encoding. */
static void
pb_form_out_index(pb_form_writer_t *w, size_t index)
{
    char    digits[PB_FORM_INDEX_LEN];
    size_t  len;

    len = 0;

    do {
        digits[PB_FORM_INDEX_LEN - ++len] = (char) ('0' + index % 10);
        index /= 10;
    } while (index);

    pb_form_out(w, &digits[PB_FORM_INDEX_LEN - len], len);
}


/* Writes (or counts) one pair: the path's names, '=', the value. */
static void
pb_form_out_pair(pb_form_writer_t *w, const char *value, size_t len)
{
    size_t                 i;
    const pb_form_name_t  *name;

    if (w->len > 0) {
        pb_form_out(w, "&", 1);
    }

    for (i = 0; i < w->depth; i++) {
        name = &w->names[i];

        if (i > 0) {
            pb_form_out(w, "%5B", 3);
        }

        if (name->key != NULL) {
            pb_form_out_escaped(w, name->key, name->len);

        } else {
            pb_form_out_index(w, name->len);
        }

        if (i > 0) {
            pb_form_out(w, "%5D", 3);
        }
    }

    pb_form_out(w, "=", 1);
    pb_form_out_escaped(w, value, len);
}


/*
 * Writes (or counts) the pairs of value at the path: its own pair for a
 * leaf, its members' or elements' for a container under fewer than
 * PB_FORM_WRITE_DEPTH_MAX names; null writes nothing.
 */
static void
pb_form_walk(pb_form_writer_t *w, const json_t *value)
{
    char         buf[PB_JSON_NUMBER_LEN];
    void        *iter;
    size_t       i, n;
    json_t      *object;
    const char  *key;

    switch (json_typeof(value)) {

    case JSON_OBJECT:
        if (w->depth == PB_FORM_WRITE_DEPTH_MAX) {
            return;
        }

        /* jansson's iteration takes no const, but leaves object as it is */
        object = (json_t *) value;

        for (iter = json_object_iter(object);
             iter != NULL;
             iter = json_object_iter_next(object, iter))
        {
            key = json_object_iter_key(iter);
            w->names[w->depth].key = key;
            w->names[w->depth].len = json_object_iter_key_len(iter);
            w->depth++;
            pb_form_walk(w, json_object_iter_value(iter));
            w->depth--;
        }

        return;

    case JSON_ARRAY:
        if (w->depth == PB_FORM_WRITE_DEPTH_MAX) {
            return;
        }

        n = json_array_size(value);

        for (i = 0; i < n; i++) {
            w->names[w->depth].key = NULL;
            w->names[w->depth].len = i;
            w->depth++;
            pb_form_walk(w, json_array_get(value, i));
            w->depth--;
        }

        return;

    default:
        break;
    }

    /* a leaf at the root has no name */
    if (w->depth == 0) {
        return;
    }

    switch (json_typeof(value)) {

    case JSON_STRING:
        pb_form_out_pair(w, json_string_value(value),
                         json_string_length(value));
        return;

    case JSON_INTEGER:
    case JSON_REAL:
        n = pb_json_number_text(value, buf);

        if (n > 0) {
            pb_form_out_pair(w, buf, n);
        }

        return;

    case JSON_TRUE:
        pb_form_out_pair(w, "1", 1);
        return;

    case JSON_FALSE:
        pb_form_out_pair(w, "0", 1);
        return;

    default: /* JSON_NULL */
        return;
    }
}


size_t
pb_form_write_len(const json_t *doc)
{
    pb_form_writer_t  w;

    w.dst = NULL;
    w.write = 0;
    w.len = 0;
    w.depth = 0;

    if (doc != NULL) {
        pb_form_walk(&w, doc);
    }

    return w.len;
}


unsigned char *
pb_form_write(unsigned char *dst, const json_t *doc)
{
    pb_form_writer_t  w;

    w.dst = dst;
    w.write = 1;
    w.len = 0;
    w.depth = 0;

    if (doc != NULL) {
        pb_form_walk(&w, doc);
    }

    return w.dst;
}
