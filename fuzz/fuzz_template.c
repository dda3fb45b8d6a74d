/*
 * Parses the input as a template and checks that the parts rebuild it:
 * literals and names in order, separated only by "$" or "${" .. "}".
 */

#include <stdint.h>
#include <stdlib.h>

#include "pb_template.h"


#define MAX_PARTS  64


static int
name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '_';
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             i, n;
    size_t          pos, k;
    const char     *src, *err;
    pb_tpl_part_t   parts[MAX_PARTS];

    src = (const char *) data;
    err = NULL;

    n = pb_tpl_parse(src, size, parts, MAX_PARTS, &err);

    if (n < 0) {
        if (n != -1 || err == NULL) {
            abort();
        }

        return 0;
    }

    if (n > MAX_PARTS) {
        abort();
    }

    pos = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].len == 0 || parts[i].s < src
            || parts[i].len > size
            || parts[i].s > src + size - parts[i].len)
        {
            abort();
        }

        if (!parts[i].is_var) {
            /* adjacent literals must have been merged */
            if (parts[i].s != src + pos
                || (i > 0 && !parts[i - 1].is_var))
            {
                abort();
            }

            /* a '$' in a literal must not start a reference */
            for (k = pos; k < pos + parts[i].len; k++) {
                if (src[k] == '$' && k + 1 < size
                    && (src[k + 1] == '{' || name_char(src[k + 1])))
                {
                    abort();
                }
            }

            pos += parts[i].len;
            continue;
        }

        for (k = 0; k < parts[i].len; k++) {
            if (!name_char(parts[i].s[k])) {
                abort();
            }
        }

        if (parts[i].s == src + pos + 1 && src[pos] == '$') {
            pos += 1 + parts[i].len;

            /* an unbraced name takes every name character that follows */
            if (pos < size && name_char(src[pos])) {
                abort();
            }

        } else if (parts[i].s == src + pos + 2 && src[pos] == '$'
                   && src[pos + 1] == '{'
                   && pos + 2 + parts[i].len < size
                   && src[pos + 2 + parts[i].len] == '}')
        {
            pos += 3 + parts[i].len;

        } else {
            abort();
        }
    }

    if (pos != size) {
        abort();
    }

    return 0;
}
