/*
 * Reads the input as a packed list of fields until pb_fields_next stops.
 * Every field read must point into the input, the rest must not hold a
 * whole field, and what was read must pack, in exactly pb_fields_size
 * bytes, to the bytes it was read from.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_fields.h"


static int
inside(const char *s, size_t len, const uint8_t *buf, size_t size)
{
    const uint8_t  *p;

    p = (const uint8_t *) s;

    return len == 0 || (p >= buf && len <= size && p <= buf + size - len);
}


static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}


/* Whether rest[0..len) starts with a whole name and value. */
static int
whole_field(const uint8_t *rest, size_t len)
{
    size_t  name;

    if (len < 4 || len - 4 < get32(rest)) {
        return 0;
    }

    name = 4 + get32(rest);

    return len - name >= 4 && len - name - 4 >= get32(rest + name);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                n, max, used;
    pb_kv_t              *kv;
    unsigned char        *buf;
    const unsigned char  *pos, *end;

    /* a field takes 8 bytes at least; one more for a failed read */
    max = size / 8;

    kv = malloc((max + 1) * sizeof(pb_kv_t));
    if (kv == NULL) {
        abort();
    }

    pos = data;
    end = data + size;
    n = 0;

    while (pb_fields_next(&pos, end, &kv[n])) {
        if (n == max
            || !inside(kv[n].name, kv[n].name_len, data, size)
            || !inside(kv[n].value, kv[n].value_len, data, size))
        {
            abort();
        }

        n++;
    }

    if (pos < data || pos > end || whole_field(pos, (size_t) (end - pos))) {
        abort();
    }

    used = (size_t) (pos - data);

    /* exactly the size, so ASan catches a write past it */
    if (pb_fields_size(kv, n) != used) {
        abort();
    }

    buf = malloc(used ? used : 1);
    if (buf == NULL) {
        abort();
    }

    if (pb_fields_pack(buf, kv, n) != buf + used
        || (used > 0 && memcmp(buf, data, used) != 0))
    {
        abort();
    }

    free(buf);
    free(kv);

    return 0;
}
