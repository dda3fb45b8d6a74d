/*
 * Parses the input as a JSONPath; a path that parses is set in a sample
 * document (where evaluation must then find the value), and evaluated
 * against a fixed nested document, the value found turned to text.
 */

#include <stdint.h>
#include <stdlib.h>

#include "pb_jsonpath.h"


static json_t  *doc;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    doc = json_loads("{\"a\": {\"b\": [1, 2.5, {\"c\": \"x\\u0000y\"}],"
                     " \"d\": null},"
                     " \"e\": [true, false, [], {}, -7, 1e300],"
                     " \"f\": \"str\","
                     " \"\": {\"\": 0},"
                     " \"k.x[y]\": {\"n\": -1e-5, \"o\": [[[\"deep\"]]]}}",
                     JSON_ALLOW_NUL, NULL);

    if (doc == NULL) {
        abort();
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              i, n;
    char            *text;
    size_t           len;
    json_t          *v, *sample, *value;
    const char      *src, *err;
    pb_path_step_t   steps[PB_PATH_MAX_STEPS];

    src = (const char *) data;
    err = NULL;

    n = pb_path_parse(src, size, steps, PB_PATH_MAX_STEPS, &err);

    if (n < 0) {
        if (n != -1 || err == NULL) {
            abort();
        }

        return 0;
    }

    if (n > PB_PATH_MAX_STEPS) {
        abort();
    }

    /* keys must point into the input */
    for (i = 0; i < n; i++) {
        if (steps[i].key != NULL
            && (steps[i].key < src
                || steps[i].key_len > size
                || steps[i].key > src + size - steps[i].key_len))
        {
            abort();
        }
    }

    sample = (n && steps[0].key == NULL) ? json_array() : json_object();
    value = json_string("sample");

    if (pb_path_set(sample, steps, n, json_incref(value)) == 0
        && pb_path_eval(sample, steps, n) != value)
    {
        abort();
    }

    json_decref(value);
    json_decref(sample);

    v = pb_path_eval(doc, steps, n);
    if (v == NULL) {
        return 0;
    }

    text = pb_json_value_text(v, &len);
    if (text == NULL || text[len] != '\0') {
        abort();
    }

    free(text);

    return 0;
}
