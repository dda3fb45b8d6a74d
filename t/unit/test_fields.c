/*
 * pb_fields: a delivery's name and value pairs packed as length-prefixed
 * strings, round trips, the layout, and damaged lists read as far as
 * they are whole.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_fields.h"
#include "unit.h"


#define KV(name, value)  { S(name), S(value) }

#define NITEMS(a)  (sizeof(a) / sizeof((a)[0]))


static const pb_kv_t  one[] = {
    KV("amount", "19.99"),
};

static const pb_kv_t  several[] = {
    KV("amount", "19.99"),
    KV("", "empty name"),
    KV("empty value", ""),
    KV("", ""),
    KV("n\0ul", "a\0b\0"),
    KV("bin\xff", "\x80\xfe\xff"),
};


/* Packs kv into exactly pb_fields_size bytes. */
static unsigned char *
pack(const pb_kv_t *kv, size_t n, size_t *len)
{
    unsigned char  *buf;

    *len = pb_fields_size(kv, n);
    buf = unit_alloc(*len);

    CHECK(pb_fields_pack(buf, kv, n) == buf + *len);

    return buf;
}


static int
kv_eq(const pb_kv_t *got, const pb_kv_t *want)
{
    return unit_bytes_eq(got->name, got->name_len, want->name,
                         want->name_len)
           && unit_bytes_eq(got->value, got->value_len, want->value,
                            want->value_len);
}


/*
 * Reads a copy of buf[0..len) of exactly len bytes with pb_fields_next
 * until it stops: the fields read must be want's first ones and point into
 * the copy.  Returns how many it read, *stop how far.
 */
static size_t
read_fields(const unsigned char *buf, size_t len, const pb_kv_t *want,
    size_t nwant, size_t *stop)
{
    size_t                n;
    pb_kv_t               kv;
    unsigned char        *copy;
    const unsigned char  *pos;

    copy = unit_copy(buf, len);
    pos = copy;

    for (n = 0; pb_fields_next(&pos, copy + len, &kv); n++) {
        CHECK(n < nwant);
        if (n >= nwant) {
            break;
        }

        CHECK(kv_eq(&kv, &want[n]));
        CHECK(unit_inside(kv.name, kv.name_len, copy, len));
        CHECK(unit_inside(kv.value, kv.value_len, copy, len));
    }

    CHECK(pos >= copy && pos <= copy + len);
    *stop = (size_t) (pos - copy);

    free(copy);

    return n;
}


static void
check_round_trip(const pb_kv_t *kv, size_t n)
{
    size_t          i, len, size, stop;
    unsigned char  *buf;

    size = 0;

    for (i = 0; i < n; i++) {
        size += 4 + kv[i].name_len + 4 + kv[i].value_len;
    }

    buf = pack(kv, n, &len);

    CHECK(len == size);
    CHECK(read_fields(buf, len, kv, n, &stop) == n);
    CHECK(stop == len);

    free(buf);
}


static void
test_empty_list(void)
{
    pb_kv_t               kv;
    unsigned char         byte;
    const unsigned char  *pos;

    CHECK(pb_fields_size(NULL, 0) == 0);
    CHECK(pb_fields_size(several, 0) == 0);

    byte = 0xa5;
    CHECK(pb_fields_pack(&byte, several, 0) == &byte);
    CHECK(byte == 0xa5);

    check_round_trip(several, 0);

    /* the empty list of a record read from the journal */
    pos = NULL;
    CHECK(pb_fields_next(&pos, NULL, &kv) == 0);
    CHECK(pos == NULL);

    pos = &byte;
    CHECK(pb_fields_next(&pos, &byte, &kv) == 0);
    CHECK(pos == &byte);
}


static void
test_round_trip(void)
{
    size_t   i;
    pb_kv_t  kv;

    check_round_trip(one, NITEMS(one));
    check_round_trip(several, NITEMS(several));

    /* each alone, and every run of them */
    for (i = 0; i < NITEMS(several); i++) {
        check_round_trip(&several[i], 1);
        check_round_trip(several, i);
        check_round_trip(&several[i], NITEMS(several) - i);
    }

    /* lengths that need every byte of their 4 */
    kv.name_len = 0x10203;
    kv.value_len = 0x1020304 - 0x10203;
    kv.name = (const char *) unit_alloc(kv.name_len + kv.value_len);
    kv.value = kv.name + kv.name_len;
    memset((char *) kv.name, 'n', kv.name_len);
    memset((char *) kv.value, '\0', kv.value_len);

    check_round_trip(&kv, 1);

    free((char *) kv.name);
}


/* kv must pack to want[0..want_len). */
static void
check_layout(const pb_kv_t *kv, size_t n, const char *want, size_t want_len)
{
    size_t          len;
    unsigned char  *buf;

    buf = pack(kv, n, &len);
    CHECK(unit_bytes_eq(buf, len, want, want_len));
    free(buf);
}


static void
test_layout(void)
{
    static const pb_kv_t  two[] = {
        KV("a", ""),
        KV("", "\0x"),
    };

    check_layout(one, 1, S("\0\0\0\6" "amount" "\0\0\0\5" "19.99"));
    check_layout(two, 2, S("\0\0\0\1" "a" "\0\0\0\0"
                           "\0\0\0\0" "\0\0\0\2" "\0x"));
}


/* A prefix reads the fields wholly inside it, and stops after them. */
static void
test_truncated_read_as_far_as_whole(void)
{
    size_t          i, n, len, whole, end, stop;
    unsigned char  *buf;

    buf = pack(several, NITEMS(several), &len);

    for (n = 0; n <= len; n++) {
        whole = 0;
        end = 0;

        for (i = 0; i < NITEMS(several); i++) {
            if (end + pb_fields_size(&several[i], 1) > n) {
                break;
            }

            end += pb_fields_size(&several[i], 1);
            whole++;
        }

        CHECK(read_fields(buf, n, several, NITEMS(several), &stop) == whole);
        CHECK(stop == end);
        if (stop != end) {
            fprintf(stderr, "    a prefix of %zu: stopped at %zu, not %zu\n",
                    n, stop, end);
        }
    }

    free(buf);
}


/* The second field's name (at) or value (at + 4 + its name) overruns. */
static void
check_overrun(size_t at, uint32_t field_len)
{
    size_t          len, stop;
    unsigned char  *buf;

    buf = pack(several, 3, &len);
    unit_put32(buf + at, field_len);

    CHECK(read_fields(buf, len, several, 1, &stop) == 1);
    CHECK(stop == pb_fields_size(several, 1));

    free(buf);
}


static void
test_length_overruns(void)
{
    size_t  name_at, value_at, left;

    name_at = pb_fields_size(several, 1);
    value_at = name_at + 4 + several[1].name_len;

    /* what is left after each length */
    left = pb_fields_size(several, 3) - name_at - 4;

    check_overrun(name_at, (uint32_t) left + 1);
    check_overrun(name_at, UINT32_MAX);
    check_overrun(name_at, 0x80000000u);

    left -= several[1].name_len + 4;

    check_overrun(value_at, (uint32_t) left + 1);
    check_overrun(value_at, UINT32_MAX);
}


/* A length that ends exactly at the end is whole. */
static void
test_length_to_the_end(void)
{
    size_t          len, value_at, stop;
    pb_kv_t         want[2];
    unsigned char  *buf;

    buf = pack(several, 3, &len);
    value_at = pb_fields_size(several, 1) + 4 + several[1].name_len;
    unit_put32(buf + value_at, (uint32_t) (len - value_at - 4));

    /* the second value takes in the third field */
    want[0] = several[0];
    want[1].name = several[1].name;
    want[1].name_len = several[1].name_len;
    want[1].value = (const char *) buf + value_at + 4;
    want[1].value_len = len - value_at - 4;

    CHECK(read_fields(buf, len, want, 2, &stop) == 2);
    CHECK(stop == len);

    free(buf);
}


const unit_test_t  fields_tests[] = {
    UNIT_TEST(test_empty_list),
    UNIT_TEST(test_round_trip),
    UNIT_TEST(test_layout),
    UNIT_TEST(test_truncated_read_as_far_as_whole),
    UNIT_TEST(test_length_overruns),
    UNIT_TEST(test_length_to_the_end),
};

const size_t  fields_ntests = sizeof(fields_tests) / sizeof(fields_tests[0]);
