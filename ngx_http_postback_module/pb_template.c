/*
 * Parsing of callback value templates.
 */

#include <stddef.h>

#include "pb_template.h"


static int
pb_tpl_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '_';
}


static size_t
pb_tpl_name_end(const char *src, size_t pos, size_t len)
{
    while (pos < len && pb_tpl_name_char(src[pos])) {
        pos++;
    }

    return pos;
}


static int
pb_tpl_add(pb_tpl_part_t *parts, size_t *n, size_t max, int is_var,
    const char *s, size_t len, const char **err)
{
    if (*n == max) {
        *err = "too many parts in template";
        return -1;
    }

    parts[*n].is_var = is_var;
    parts[*n].s = s;
    parts[*n].len = len;
    (*n)++;

    return 0;
}


int
pb_tpl_parse(const char *src, size_t len, pb_tpl_part_t *parts,
    size_t max, const char **err)
{
    size_t       i, n, name, end, next;
    const char  *literal;

    n = 0;
    literal = NULL;
    i = 0;

    while (i < len) {
        if (src[i] != '$'
            || i + 1 == len
            || (src[i + 1] != '{' && !pb_tpl_name_char(src[i + 1])))
        {
            if (literal == NULL) {
                literal = &src[i];
            }

            i++;
            continue;
        }

        if (src[i + 1] == '{') {
            name = i + 2;
            end = pb_tpl_name_end(src, name, len);

            if (end == len) {
                *err = "unclosed \"${\"";
                return -1;
            }

            if (src[end] != '}') {
                *err = "invalid character in \"${name}\"";
                return -1;
            }

            if (end == name) {
                *err = "empty \"${}\"";
                return -1;
            }

            next = end + 1;

        } else {
            name = i + 1;
            end = pb_tpl_name_end(src, name, len);
            next = end;
        }

        if (literal != NULL) {
            if (pb_tpl_add(parts, &n, max, 0, literal, &src[i] - literal, err)
                != 0)
            {
                return -1;
            }

            literal = NULL;
        }

        if (pb_tpl_add(parts, &n, max, 1, &src[name], end - name, err) != 0) {
            return -1;
        }

        i = next;
    }

    if (literal != NULL
        && pb_tpl_add(parts, &n, max, 0, literal, &src[len] - literal, err)
           != 0)
    {
        return -1;
    }

    return (int) n;
}
