/*
 * Templates of callback values (url path and query, param=, header=,
 * body=): literal text with $name or ${name} variable references.  Each
 * variable's value is escaped for where it lands when rendered; the
 * parsing lives here, the evaluation in the nginx glue.  Pure C.
 */

#ifndef PB_TEMPLATE_H
#define PB_TEMPLATE_H

#include <stddef.h>


typedef struct {
    int          is_var;    /* 1: s/len is a variable name, without '$' */
    const char  *s;
    size_t       len;
} pb_tpl_part_t;


/*
 * Splits src into literal and variable parts pointing into src.  A name
 * is [A-Za-z0-9_]+; "${name}" may be followed by name characters.  A '$'
 * not followed by a name or '{' is literal.  Adjacent literal bytes form
 * one part.  Returns the number of parts, or -1 with *err set (unclosed
 * "${", empty "${}", a non-name byte inside "${}", more than max parts).
 */
int pb_tpl_parse(const char *src, size_t len, pb_tpl_part_t *parts,
    size_t max, const char **err);

#endif /* PB_TEMPLATE_H */
