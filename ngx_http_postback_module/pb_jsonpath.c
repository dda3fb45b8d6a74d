/*
 * JSONPath subset used by postback_field.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_jsonpath.h"


/* Fewest significant digits tried when writing a real as text. */
#define PB_REAL_MIN_PRECISION  15
/* Digits that always reproduce a double exactly. */
#define PB_REAL_MAX_PRECISION  17


/* Parses "[N]" or "['key']" / "[\"key\"]" at src[*pos], just after '['. */
static const char *
pb_path_parse_bracket(const char *src, size_t len, size_t *pos,
    pb_path_step_t *step)
{
    char         quote;
    size_t       p, start, digit;
    const char  *end;

    p = *pos;

    if (p == len) {
        return "unterminated \"[\"";
    }

    if (src[p] == '\'' || src[p] == '"') {
        quote = src[p++];
        end = memchr(&src[p], quote, len - p);

        if (end == NULL) {
            return "unterminated quoted key";
        }

        step->key = &src[p];
        step->key_len = end - &src[p];
        step->index = 0;

        p = end - src + 1;

        if (p == len) {
            return "unterminated \"[\"";
        }

        if (src[p] != ']') {
            return "expected \"]\" after quoted key";
        }

        *pos = p + 1;
        return NULL;
    }

    start = p;
    step->key = NULL;
    step->key_len = 0;
    step->index = 0;

    while (p < len && src[p] >= '0' && src[p] <= '9') {
        digit = src[p] - '0';

        if (step->index > (SIZE_MAX - digit) / 10) {
            return "bad array index";
        }

        step->index = step->index * 10 + digit;
        p++;
    }

    if (p == len) {
        return "unterminated \"[\"";
    }

    if (p == start || src[p] != ']') {
        return "bad array index";
    }

    *pos = p + 1;
    return NULL;
}


int
pb_path_parse(const char *src, size_t len, pb_path_step_t *steps,
    size_t max_steps, const char **err)
{
    size_t  p, n, start;

    if (len == 0 || src[0] != '$') {
        *err = "JSONPath must start with \"$\"";
        return -1;
    }

    p = 1;
    n = 0;

    while (p < len) {
        if (n == max_steps) {
            *err = "too many steps in JSONPath";
            return -1;
        }

        if (src[p] == '.') {
            start = ++p;

            while (p < len && src[p] != '.' && src[p] != '[') {
                p++;
            }

            if (p == start) {
                *err = "empty name after \".\"";
                return -1;
            }

            steps[n].key = &src[start];
            steps[n].key_len = p - start;
            steps[n].index = 0;

        } else if (src[p] == '[') {
            p++;
            *err = pb_path_parse_bracket(src, len, &p, &steps[n]);

            if (*err != NULL) {
                return -1;
            }

        } else {
            *err = "expected \".\" or \"[\"";
            return -1;
        }

        n++;
    }

    return (int) n;
}


json_t *
pb_path_eval(json_t *root, const pb_path_step_t *steps, size_t n)
{
    size_t   i;
    json_t  *v;

    v = root;

    for (i = 0; i < n && v != NULL; i++) {
        if (steps[i].key != NULL) {
            v = json_is_object(v)
                ? json_object_getn(v, steps[i].key, steps[i].key_len)
                : NULL;

        } else {
            v = json_is_array(v) ? json_array_get(v, steps[i].index) : NULL;
        }
    }

    return v;
}


/* puts value (a reference it takes, as jansson's _new calls) at a step */

static int
pb_path_put(json_t *container, const pb_path_step_t *step, json_t *value)
{
    if (value == NULL) {
        return -1;
    }

    if (step->key != NULL) {
        if (json_is_object(container)) {
            return json_object_setn_new(container, step->key, step->key_len,
                                        value);
        }

    } else if (json_is_array(container)
               && step->index <= PB_PATH_SET_INDEX_MAX)
    {
        while (json_array_size(container) < step->index) {
            if (json_array_append_new(container, json_null()) != 0) {
                goto failed;
            }
        }

        return (json_array_size(container) == step->index)
               ? json_array_append_new(container, value)
               : json_array_set_new(container, step->index, value);
    }

failed:

    json_decref(value);
    return -1;
}


int
pb_path_set(json_t *root, const pb_path_step_t *steps, size_t n,
    json_t *value)
{
    size_t   i;
    json_t  *v, *next;

    v = root;

    for (i = 0; i < n; i++) {
        next = pb_path_eval(v, &steps[i], 1);

        if (next != NULL && i + 1 < n) {
            v = next;
            continue;
        }

        /* the last step takes the value, the others a new container */
        next = (i + 1 == n) ? json_incref(value)
               : (steps[i + 1].key != NULL) ? json_object() : json_array();

        if (pb_path_put(v, &steps[i], next) != 0) {
            break;
        }

        v = next;
    }

    json_decref(value);

    return (n > 0 && i == n) ? 0 : -1;
}


static char *
pb_text_copy(const char *s, size_t n, size_t *len)
{
    char  *text;

    text = malloc(n + 1);
    if (text == NULL) {
        return NULL;
    }

    memcpy(text, s, n);
    text[n] = '\0';
    *len = n;

    return text;
}


/*
 * jansson writes reals with 17 significant digits, so 19.99 would become
 * "19.989999999999998" in a callback URL: the fewest digits from 15 that
 * still read back as the same double.  No allocation; the same value
 * always gives the same text.
 */

size_t
pb_json_number_text(const json_t *value, char *buf)
{
    int     precision;
    char   *end;
    size_t  n;

    if (json_is_integer(value)) {
        n = json_dumpb(value, buf, PB_JSON_NUMBER_LEN,
                       JSON_ENCODE_ANY | JSON_COMPACT);

        return (n < PB_JSON_NUMBER_LEN) ? n : 0;
    }

    for (precision = PB_REAL_MIN_PRECISION; ; precision++) {
        n = json_dumpb(value, buf, PB_JSON_NUMBER_LEN - 1,
                       JSON_ENCODE_ANY | JSON_COMPACT
                       | JSON_REAL_PRECISION(precision));

        if (n == 0 || n >= PB_JSON_NUMBER_LEN - 1) {
            return 0;
        }

        if (precision == PB_REAL_MAX_PRECISION) {
            return n;
        }

        /* jansson writes the C locale's '.', which nginx keeps */
        buf[n] = '\0';

        if (strtod(buf, &end) == json_real_value(value) && end == buf + n) {
            return n;
        }
    }
}


char *
pb_json_value_text(json_t *value, size_t *len)
{
    char    *text, number[PB_JSON_NUMBER_LEN];
    size_t   n;

    if (json_is_string(value)) {
        return pb_text_copy(json_string_value(value),
                            json_string_length(value), len);
    }

    if (json_is_null(value)) {
        return pb_text_copy("", 0, len);
    }

    if (json_is_number(value)) {
        n = pb_json_number_text(value, number);

        return n ? pb_text_copy(number, n, len) : NULL;
    }

    text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);

    if (text == NULL) {
        return NULL;
    }

    *len = strlen(text);

    return text;
}


void
pb_json_nul_to_fffd(char *text, size_t len)
{
    size_t  i;

    for (i = 0; i + 1 < len; i++) {
        if (text[i] != '\\') {
            continue;
        }

        /* the escaped byte is skipped: "\\u0000" is no \u0000 */
        i++;

        if (text[i] == 'u' && len - i > 4 && memcmp(&text[i + 1], "0000", 4)
                                             == 0)
        {
            memcpy(&text[i + 1], "fffd", 4);
            i += 4;
        }
    }
}


/* a copy of buf without \u0000: jansson refuses NUL in object keys */

static char *
pb_json_without_nul(const char *buf, size_t len)
{
    char  *copy;

    copy = malloc(len + 1);
    if (copy == NULL) {
        return NULL;
    }

    memcpy(copy, buf, len);
    pb_json_nul_to_fffd(copy, len);

    return copy;
}


json_t *
pb_json_parse(const char *buf, size_t len, json_error_t *err)
{
    char    *copy;
    json_t  *doc;
    size_t   flags;

    flags = JSON_ALLOW_NUL;

    /* json_loadb() refuses a NULL buffer even when len is 0 */
    doc = json_loadb(buf ? buf : "", len, flags, err);

    if (doc == NULL && json_error_code(err) == json_error_numeric_overflow) {
        /* jansson has no big integers: keep the event, lose the digits */
        flags |= JSON_DECODE_INT_AS_REAL;
        doc = json_loadb(buf, len, flags, err);
    }

    if (doc == NULL && json_error_code(err) == json_error_null_byte_in_key) {
        copy = pb_json_without_nul(buf, len);
        if (copy == NULL) {
            return NULL;
        }

        doc = json_loadb(copy, len, flags, err);

        if (doc == NULL && json_error_code(err)
                           == json_error_numeric_overflow)
        {
            doc = json_loadb(copy, len, flags | JSON_DECODE_INT_AS_REAL, err);
        }

        free(copy);
    }

    return doc;
}
