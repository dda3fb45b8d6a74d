/*
 * A delivery's fields (name and value pairs) packed into one byte string,
 * as the zone and the spool keep them: each name and each value as a
 * 4-byte big-endian length and its bytes.  Pure C, no nginx headers.
 */

#ifndef PB_FIELDS_H
#define PB_FIELDS_H

#include <stddef.h>

#include "pb_payload.h"


/* Exact size of the packed list. */
size_t pb_fields_size(const pb_kv_t *kv, size_t n);

/* Packs the list; returns the end of what it wrote. */
unsigned char *pb_fields_pack(unsigned char *dst, const pb_kv_t *kv,
    size_t n);

/*
 * Reads the field at *pos, before end: 1 with *kv pointing into the
 * bytes and *pos past it; 0 at the end, or where the rest is not a whole
 * field (a damaged list is read as far as it is whole).
 */
int pb_fields_next(const unsigned char **pos, const unsigned char *end,
    pb_kv_t *kv);

#endif /* PB_FIELDS_H */
