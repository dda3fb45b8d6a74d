/*
 * Reads the input as a form, and checks the document against a model of
 * the rules written plainly here (linear searches, jansson's own UTF-8
 * check), so that the tree, the next "[]" index and the order of keys
 * are checked against something simpler than themselves.  A failure must
 * give the model's message, never "out of memory" (which would hide a
 * string that jansson refuses).  A document must be an object of objects,
 * arrays and strings, no deeper than the limit; and written back as a
 * form, every name and value percent-encoded and arrays indexed, it must
 * read as the same document, in the same order; and so it must as
 * pb_form_write writes it, in exactly pb_form_write_len bytes.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_form.h"


#define DUMP_FLAGS  (JSON_COMPACT | JSON_PRESERVE_ORDER)


typedef struct {
    char    *data;
    size_t   len;
    size_t   size;
} buf_t;


typedef struct model_map_s  model_map_t;

typedef struct {
    const char     *key;
    size_t          key_len;
    const char     *value;
    size_t          value_len;
    model_map_t    *map;            /* NULL for a string */
} model_entry_t;

struct model_map_s {
    model_entry_t  *entries;
    size_t          n;
    uint64_t        next;           /* the key of the next "[]" */
};

typedef struct {
    const char     *data;
    size_t          len;
} model_str_t;


/* decoded keys and values, and the keys "[]" makes */
static char    *model_text;
static size_t   model_used;


static void *
alloc(size_t n)
{
    void  *p;

    p = calloc(1, n ? n : 1);
    if (p == NULL) {
        abort();
    }

    return p;
}


static void
put(buf_t *b, const char *p, size_t len)
{
    if (b->size - b->len < len) {
        b->size = (b->size + len) * 2;
        b->data = realloc(b->data, b->size);

        if (b->data == NULL) {
            abort();
        }
    }

    if (len > 0) {
        memcpy(b->data + b->len, p, len);
    }

    b->len += len;
}


/* Every byte as %XX: nothing is left to be read as '+', '[' or '&'. */
static void
put_encoded(buf_t *b, const char *p, size_t len)
{
    char                esc[3];
    size_t              i;
    static const char   digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        esc[0] = '%';
        esc[1] = digits[(unsigned char) p[i] >> 4];
        esc[2] = digits[p[i] & 0x0f];
        put(b, esc, 3);
    }
}


/*
 * Checks v at depth (the root at 1) and writes its leaves as pairs, path
 * holding the key so far (base then [..] names, encoded).
 */
static void
walk(json_t *v, size_t depth, buf_t *path, buf_t *form)
{
    char         num[24];
    size_t       i, at, n;
    json_t      *item;
    const char  *key;

    if (json_is_string(v)) {
        if (depth == 1) {
            abort();
        }

        if (form->len > 0) {
            put(form, "&", 1);
        }

        put(form, path->data, path->len);
        put(form, "=", 1);
        put_encoded(form, json_string_value(v), json_string_length(v));
        return;
    }

    if (depth > PB_FORM_DEPTH_MAX + 1) {
        abort();
    }

    at = path->len;

    if (json_is_array(v)) {
        if (depth == 1 || json_array_size(v) == 0) {
            abort();
        }

        json_array_foreach(v, i, item) {
            path->len = at;
            put(path, "%5b", 3);
            n = (size_t) snprintf(num, sizeof(num), "%zu", i);
            put(path, num, n);
            put(path, "%5d", 3);
            walk(item, depth + 1, path, form);
        }

        path->len = at;
        return;
    }

    /* no empty map is ever made */
    if (!json_is_object(v) || (depth > 1 && json_object_size(v) == 0)) {
        abort();
    }

    json_object_keylen_foreach(v, key, n, item) {
        path->len = at;

        if (depth > 1) {
            put(path, "%5b", 3);
        }

        /* names are never empty, and have no NUL */
        if (n == 0 || memchr(key, '\0', n) != NULL) {
            abort();
        }

        put_encoded(path, key, n);

        if (depth > 1) {
            put(path, "%5d", 3);
        }

        walk(item, depth + 1, path, form);
    }

    path->len = at;
}


static int
hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/*
 * The model decodes into the text, and widens the result from Latin-1
 * after itself when jansson refuses it as UTF-8.  -1 on a bad escape.
 */
static int
model_decode(const char *src, size_t len, model_str_t *out)
{
    size_t          i, n, w;
    char           *s;
    json_t         *str;
    unsigned char   c;

    s = model_text + model_used;
    n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] != '%') {
            s[n++] = (src[i] == '+') ? ' ' : src[i];
            continue;
        }

        if (len - i < 3 || hex(src[i + 1]) < 0 || hex(src[i + 2]) < 0) {
            return -1;
        }

        s[n++] = (char) (hex(src[i + 1]) * 16 + hex(src[i + 2]));
        i += 2;
    }

    str = json_stringn(s, n);

    if (str != NULL) {
        json_decref(str);
        out->data = s;
        out->len = n;
        model_used += n;
        return 0;
    }

    w = n;

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];

        if (c < 0x80) {
            s[w++] = (char) c;

        } else {
            s[w++] = (char) (0xc0 | (c >> 6));
            s[w++] = (char) (0x80 | (c & 0x3f));
        }
    }

    out->data = s + n;
    out->len = w - n;
    model_used += w;

    return 0;
}


static int
model_integer(const char *key, size_t len, uint64_t *v)
{
    size_t  i;

    if (len == 0 || len > 9 || (len > 1 && key[0] == '0')) {
        return 0;
    }

    *v = 0;

    for (i = 0; i < len; i++) {
        if (key[i] < '0' || key[i] > '9') {
            return 0;
        }

        *v = *v * 10 + (uint64_t) (key[i] - '0');
    }

    return 1;
}


/* The entry of key in m, found by a linear search or added last. */
static model_entry_t *
model_entry(model_map_t *m, const char *key, size_t len)
{
    size_t          i;
    uint64_t        v;
    model_entry_t  *e;

    for (i = 0; i < m->n; i++) {
        e = &m->entries[i];

        if (e->key_len == len && memcmp(e->key, key, len) == 0) {
            return e;
        }
    }

    /* one more each time: slow, but this is the model */
    m->entries = realloc(m->entries, (m->n + 1) * sizeof(model_entry_t));
    if (m->entries == NULL) {
        abort();
    }

    e = &m->entries[m->n++];
    memset(e, 0, sizeof(model_entry_t));
    e->key = key;
    e->key_len = len;
    e->value = "";

    if (model_integer(key, len, &v) && v >= m->next) {
        m->next = v + 1;
    }

    return e;
}


static void
model_free(model_map_t *m)
{
    size_t  i;

    for (i = 0; i < m->n; i++) {
        if (m->entries[i].map != NULL) {
            model_free(m->entries[i].map);
        }
    }

    free(m->entries);
    free(m);
}


/* Puts value at names[0..n) from root. */
static void
model_put(model_map_t *root, model_str_t *names, size_t n, model_str_t *value)
{
    int             w;
    char           *key;
    size_t          i;
    model_map_t    *m;
    model_entry_t  *e;

    m = root;

    for (i = 0; i < n; i++) {
        if (i > 0 && names[i].len == 0) {
            key = model_text + model_used;
            w = sprintf(key, "%llu", (unsigned long long) m->next++);
            model_used += (size_t) w;
            e = model_entry(m, key, (size_t) w);

        } else {
            e = model_entry(m, names[i].data, names[i].len);
        }

        if (i + 1 < n) {
            if (e->map == NULL) {
                e->map = alloc(sizeof(model_map_t));
            }

            m = e->map;
            continue;
        }

        if (e->map != NULL) {
            model_free(e->map);
            e->map = NULL;
        }

        e->value = value->data;
        e->value_len = value->len;
    }
}


/* Whether m's keys are "0", "1", .. in order. */
static int
model_list(model_map_t *m)
{
    char    num[24];
    size_t  i, n;

    for (i = 0; i < m->n; i++) {
        n = (size_t) snprintf(num, sizeof(num), "%zu", i);

        if (m->entries[i].key_len != n
            || memcmp(m->entries[i].key, num, n) != 0)
        {
            return 0;
        }
    }

    return 1;
}


static json_t *
model_json(model_map_t *m, int root)
{
    int             array;
    size_t          i;
    json_t         *json, *v;
    model_entry_t  *e;

    array = !root && model_list(m);
    json = array ? json_array() : json_object();

    for (i = 0; i < m->n; i++) {
        e = &m->entries[i];
        v = e->map ? model_json(e->map, 0)
                   : json_stringn(e->value, e->value_len);

        if (array) {
            json_array_append_new(json, v);

        } else {
            json_object_setn_new(json, e->key, e->key_len, v);
        }
    }

    return json;
}


static int
space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


/*
 * Splits a key as the rules say: "base[k1]..[kn]" or one flat name.
 * Returns the number of names (0: skip the pair), or -1: too deep.
 */
static int
model_names(const char *key, size_t len, model_str_t *names)
{
    size_t  i, j, n, base;

    for (base = 0; base < len && key[base] != '['; base++) {
        /* void */
    }

    names[0].data = key;
    names[0].len = len;

    if (base == len) {
        return len ? 1 : 0;
    }

    n = 1;

    for (i = base; i < len; i = j + 1) {
        if (key[i] != '[') {
            return 1;
        }

        for (j = i + 1; j < len && key[j] != ']'; j++) {
            if (key[j] == '[') {
                return 1;
            }
        }

        if (j == len) {
            return 1;
        }

        if (n <= PB_FORM_DEPTH_MAX) {
            names[n].data = key + i + 1;
            names[n].len = j - i - 1;
        }

        n++;
    }

    if (n > PB_FORM_DEPTH_MAX + 1) {
        return -1;
    }

    names[0].len = base;

    return base ? (int) n : 0;
}


/* The model's document, or NULL with *err. */
static json_t *
model_parse(const char *p, size_t size, const char **err)
{
    int           n;
    size_t        i, j, eq;
    json_t       *doc;
    model_str_t   key, value, names[PB_FORM_DEPTH_MAX + 1];
    model_map_t  *root;

    while (size > 0 && space(p[0])) {
        p++;
        size--;
    }

    while (size > 0 && space(p[size - 1])) {
        size--;
    }

    /* each decoded text and its widened copy: 3 times its bytes; and 21
     * bytes a "[]" */
    model_text = alloc(14 * size + 64);
    model_used = 0;
    root = alloc(sizeof(model_map_t));
    doc = NULL;
    *err = NULL;

    for (i = 0; i < size; i = j + 1) {
        for (j = i; j < size && p[j] != '&'; j++) {
            /* void */
        }

        if (j == i) {
            continue;
        }

        for (eq = i; eq < j && p[eq] != '='; eq++) {
            /* void */
        }

        value.data = "";
        value.len = 0;

        if (model_decode(p + i, eq - i, &key) != 0
            || (eq < j && model_decode(p + eq + 1, j - eq - 1, &value) != 0))
        {
            *err = "invalid percent-encoding";
            goto done;
        }

        if (memchr(key.data, '\0', key.len) != NULL) {
            *err = "NUL byte in a key";
            goto done;
        }

        n = model_names(key.data, key.len, names);

        if (n < 0) {
            *err = "nesting too deep";
            goto done;
        }

        if (n > 0) {
            model_put(root, names, (size_t) n, &value);
        }
    }

    doc = model_json(root, 1);

done:

    model_free(root);
    free(model_text);

    return doc;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *dump, *model_dump, *again_dump;
    size_t          len;
    buf_t           path, form;
    json_t         *doc, *model, *again;
    const char     *err, *model_err;
    unsigned char  *written, *end;

    err = NULL;
    doc = pb_form_parse((const char *) data, size, &err);
    model = model_parse((const char *) data, size, &model_err);

    if (doc == NULL) {
        if (model != NULL || err == NULL || strcmp(err, model_err) != 0) {
            abort();
        }

        return 0;
    }

    if (model == NULL || !json_is_object(doc)) {
        abort();
    }

    dump = json_dumps(doc, DUMP_FLAGS);
    model_dump = json_dumps(model, DUMP_FLAGS);

    if (dump == NULL || model_dump == NULL || strcmp(dump, model_dump) != 0) {
        abort();
    }

    memset(&path, 0, sizeof(buf_t));
    memset(&form, 0, sizeof(buf_t));

    walk(doc, 1, &path, &form);

    again = pb_form_parse(form.data, form.len, &err);
    again_dump = again ? json_dumps(again, DUMP_FLAGS) : NULL;

    if (again_dump == NULL || strcmp(dump, again_dump) != 0) {
        abort();
    }

    free(again_dump);
    json_decref(again);

    /* exactly len bytes, so that ASan sees a write past them */
    len = pb_form_write_len(doc);
    written = malloc(len ? len : 1);
    if (written == NULL) {
        abort();
    }

    end = pb_form_write(written, doc);

    if ((size_t) (end - written) != len) {
        abort();
    }

    again = pb_form_parse((const char *) written, len, &err);
    again_dump = again ? json_dumps(again, DUMP_FLAGS) : NULL;

    if (again_dump == NULL || !json_equal(doc, again)
        || strcmp(dump, again_dump) != 0)
    {
        abort();
    }

    free(again_dump);
    json_decref(again);
    free(written);
    free(path.data);
    free(form.data);
    free(model_dump);
    free(dump);
    json_decref(model);
    json_decref(doc);

    return 0;
}
