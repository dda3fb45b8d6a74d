/*
 * pb_journal: framing of the spool's journal records, round trips, torn
 * tails and damaged records.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pb_journal.h"
#include "unit.h"


#define HEAD  8     /* "PBJ", type, payload length */
#define TAIL  4     /* CRC-32 */

/* A string literal as a pb_bytes_t; the literal may contain NULs. */
#define B(lit)  { (const unsigned char *) (lit), sizeof(lit) - 1 }


static unsigned char *
alloc(size_t n)
{
    unsigned char  *p;

    p = malloc(n ? n : 1);
    if (p == NULL) {
        abort();
    }

    return p;
}


/* Writes r into a buffer of exactly pb_journal_size bytes. */
static unsigned char *
encode(const pb_journal_record_t *r, size_t *len)
{
    unsigned char  *buf;

    *len = pb_journal_size(r);
    buf = alloc(*len);

    CHECK(pb_journal_write(buf, r) == buf + *len);

    return buf;
}


static int
bytes_eq(const pb_bytes_t *got, const pb_bytes_t *want)
{
    return unit_bytes_eq(got->data, got->len, want->data, want->len);
}


/* The fields a record of its type has must be the same. */
static int
record_eq(const pb_journal_record_t *got, const pb_journal_record_t *want)
{
    if (got->type != want->type || !bytes_eq(&got->id, &want->id)) {
        return 0;
    }

    if (want->type == PB_JOURNAL_FINISHED) {
        return 1;
    }

    return got->method == want->method
           && got->created == want->created
           && bytes_eq(&got->callback, &want->callback)
           && bytes_eq(&got->event, &want->event)
           && bytes_eq(&got->url, &want->url)
           && bytes_eq(&got->headers, &want->headers)
           && bytes_eq(&got->body, &want->body);
}


/* A non-empty field read must point into the frame. */
static int
inside(const pb_bytes_t *b, const unsigned char *buf, size_t len)
{
    return b->len == 0
           || (b->data >= buf && b->len <= len
               && b->data <= buf + len - b->len);
}


static int
fields_inside(const pb_journal_record_t *r, const unsigned char *buf,
    size_t len)
{
    return inside(&r->id, buf, len) && inside(&r->callback, buf, len)
           && inside(&r->event, buf, len) && inside(&r->url, buf, len)
           && inside(&r->headers, buf, len) && inside(&r->body, buf, len);
}


/* Reads a copy of buf[0..len) of exactly len bytes, for ASan. */
static int
read_copy(const unsigned char *buf, size_t len)
{
    int                   rc;
    size_t                used;
    unsigned char        *copy;
    pb_journal_record_t   r;

    copy = alloc(len);

    if (len > 0) {
        memcpy(copy, buf, len);
    }

    used = 0;
    rc = pb_journal_read(copy, len, &r, &used);

    free(copy);

    return rc;
}


static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}


/* Frames a hand-made payload, with a correct CRC. */
static unsigned char *
frame(int type, const unsigned char *payload, size_t size, size_t *len)
{
    unsigned char  *buf;

    *len = HEAD + size + TAIL;
    buf = alloc(*len);

    memcpy(buf, "PBJ", 3);
    buf[3] = (unsigned char) type;
    put32(buf + 4, (uint32_t) size);

    if (size > 0) {
        memcpy(buf + HEAD, payload, size);
    }

    put32(buf + HEAD + size, (uint32_t) crc32(0, payload, (uInt) size));

    return buf;
}


static const pb_journal_record_t  full = {
    PB_JOURNAL_CREATED, 2, 1700000000123ULL,
    B("01HZX3\0id"),
    B(""),
    B("order.paid"),
    B("https://example.com/hook?a=1&b=\xff"),
    B("Content-Type: application/json\r\nX-Bin: \x00\x01\x7f\x80\xfe\xff\r\n"),
    B("{\"k\":\"\0\"}\0\xff")
};

static const pb_journal_record_t  empty_created = {
    PB_JOURNAL_CREATED, 0, 0,
    B(""), B(""), B(""), B(""), B(""), B("")
};

static const pb_journal_record_t  finished = {
    PB_JOURNAL_FINISHED, 0, 0,
    B("01HZX3\0id\xff"),
    { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 }
};

static const pb_journal_record_t  empty_finished = {
    PB_JOURNAL_FINISHED, 0, 0,
    B(""),
    { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 }
};


static void
check_round_trip(const pb_journal_record_t *want)
{
    size_t                len, used;
    unsigned char        *buf;
    pb_journal_record_t   r;

    buf = encode(want, &len);

    used = 0;
    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(used == len);
    CHECK(record_eq(&r, want));
    CHECK(fields_inside(&r, buf, len));

    free(buf);
}


static void
test_created_round_trip(void)
{
    pb_journal_record_t  r;

    check_round_trip(&full);
    check_round_trip(&empty_created);

    /* every method byte */
    r = full;

    for (r.method = 0; r.method < 256; r.method++) {
        check_round_trip(&r);
    }
}


static void
test_finished_round_trip(void)
{
    size_t                len, used;
    unsigned char        *buf;
    pb_journal_record_t   r, want;

    check_round_trip(&finished);
    check_round_trip(&empty_finished);

    /* an 'F' record keeps only the id, whatever else was set */
    want = full;
    want.type = PB_JOURNAL_FINISHED;
    buf = encode(&want, &len);
    CHECK(len == HEAD + 4 + want.id.len + TAIL);

    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(used == len);
    CHECK(r.type == PB_JOURNAL_FINISHED);
    CHECK(bytes_eq(&r.id, &full.id));
    CHECK(r.method == 0 && r.created == 0);
    CHECK(r.callback.len == 0 && r.event.len == 0 && r.url.len == 0
          && r.headers.len == 0 && r.body.len == 0);

    free(buf);
}


static void
test_layout(void)
{
    size_t          len;
    uint32_t        crc;
    unsigned char  *buf, want[HEAD + 6 + TAIL];

    static const pb_journal_record_t  f = {
        PB_JOURNAL_FINISHED, 0, 0, B("ab"),
        { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 }
    };

    buf = encode(&f, &len);

    memcpy(want, "PBJF\0\0\0\6\0\0\0\2ab", HEAD + 6);
    crc = (uint32_t) crc32(0, want + HEAD, 6);
    put32(want + HEAD + 6, crc);

    CHECK(unit_bytes_eq(buf, len, want, sizeof(want)));

    free(buf);
}


static void
test_size_is_written_length(void)
{
    size_t                len;
    unsigned char        *buf;
    pb_journal_record_t   r;

    /* encode() checks the writer's end against pb_journal_size() */
    buf = encode(&empty_created, &len);
    CHECK(len == HEAD + 1 + 8 + 6 * 4 + TAIL);
    free(buf);

    buf = encode(&empty_finished, &len);
    CHECK(len == HEAD + 4 + TAIL);
    free(buf);

    buf = encode(&full, &len);
    CHECK(len == HEAD + 1 + 8 + 6 * 4 + TAIL + full.id.len
                 + full.callback.len + full.event.len + full.url.len
                 + full.headers.len + full.body.len);
    free(buf);

    buf = encode(&finished, &len);
    CHECK(len == HEAD + 4 + finished.id.len + TAIL);
    free(buf);

    /* a large body */
    r = full;
    r.body.len = 100000;
    r.body.data = alloc(r.body.len);
    memset((unsigned char *) r.body.data, 0xa5, r.body.len);

    buf = encode(&r, &len);
    CHECK(len == HEAD + 1 + 8 + 6 * 4 + TAIL + r.id.len + r.callback.len
                 + r.event.len + r.url.len + r.headers.len + 100000);
    free(buf);

    check_round_trip(&r);
    free((unsigned char *) r.body.data);
}


static void
test_back_to_back(void)
{
    int                   rc;
    size_t                i, n, total, len, pos, used;
    unsigned char        *buf, *p;
    pb_journal_record_t   r, second;

    const pb_journal_record_t  *records[5];

    second = full;
    second.id.data = (const unsigned char *) "second";
    second.id.len = 6;
    second.created = UINT64_MAX;

    records[0] = &full;
    records[1] = &finished;
    records[2] = &empty_created;
    records[3] = &second;
    records[4] = &empty_finished;
    n = sizeof(records) / sizeof(records[0]);

    total = 0;

    for (i = 0; i < n; i++) {
        total += pb_journal_size(records[i]);
    }

    buf = alloc(total);
    p = buf;

    for (i = 0; i < n; i++) {
        p = pb_journal_write(p, records[i]);
    }

    CHECK(p == buf + total);

    pos = 0;

    for (i = 0; i < n && pos < total; i++) {
        used = 0;
        rc = pb_journal_read(buf + pos, total - pos, &r, &used);

        CHECK(rc == PB_JOURNAL_OK);
        if (rc != PB_JOURNAL_OK) {
            break;
        }

        len = pb_journal_size(records[i]);
        CHECK(used == len);
        CHECK(record_eq(&r, records[i]));
        CHECK(fields_inside(&r, buf + pos, len));

        pos += used;
    }

    CHECK(i == n);
    CHECK(pos == total);

    free(buf);
}


static void
check_every_prefix_torn(const pb_journal_record_t *rec)
{
    size_t          len, n;
    unsigned char  *buf;

    buf = encode(rec, &len);

    for (n = 1; n < len; n++) {
        if (read_copy(buf, n) != PB_JOURNAL_TORN) {
            break;
        }
    }

    CHECK(n == len);
    if (n != len) {
        fprintf(stderr, "    not TORN: the first %zu of %zu bytes\n", n, len);
    }

    CHECK(read_copy(buf, len) == PB_JOURNAL_OK);

    free(buf);
}


static void
test_truncation_is_torn(void)
{
    check_every_prefix_torn(&full);
    check_every_prefix_torn(&empty_created);
    check_every_prefix_torn(&finished);
    check_every_prefix_torn(&empty_finished);
}


static void
test_empty_buffer(void)
{
    int                   rc;
    size_t                used;
    unsigned char         byte;
    pb_journal_record_t   r;

    byte = 'P';
    rc = pb_journal_read(&byte, 0, &r, &used);
    CHECK(rc == PB_JOURNAL_TORN || rc == PB_JOURNAL_CORRUPT);

    /* the empty buffer of an empty file */
    rc = pb_journal_read(NULL, 0, &r, &used);
    CHECK(rc == PB_JOURNAL_TORN || rc == PB_JOURNAL_CORRUPT);
}


static void
check_flips_corrupt(const pb_journal_record_t *rec)
{
    int             rc;
    size_t          len, i, k;
    unsigned char  *buf;

    static const unsigned char  masks[] = { 0x01, 0x80, 0x10, 0xff };

    buf = encode(rec, &len);

    /* the payload and the CRC */
    for (i = HEAD; i < len; i++) {
        for (k = 0; k < sizeof(masks); k++) {
            buf[i] ^= masks[k];

            rc = read_copy(buf, len);
            buf[i] ^= masks[k];

            CHECK(rc == PB_JOURNAL_CORRUPT);
            if (rc != PB_JOURNAL_CORRUPT) {
                fprintf(stderr, "    byte %zu of %zu ^ 0x%02x: %d\n",
                        i, len, masks[k], rc);
            }
        }
    }

    CHECK(read_copy(buf, len) == PB_JOURNAL_OK);

    free(buf);
}


static void
test_flipped_byte_is_corrupt(void)
{
    check_flips_corrupt(&full);
    check_flips_corrupt(&empty_created);
    check_flips_corrupt(&finished);
    check_flips_corrupt(&empty_finished);
}


static void
test_wrong_magic_or_type(void)
{
    size_t          len, i;
    unsigned char  *buf;

    static const unsigned char  types[] = { 0, 'c', 'f', 'X', 'D', 0xff };

    buf = encode(&full, &len);

    for (i = 0; i < 3; i++) {
        buf[i] ^= 0x20;
        CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
        buf[i] ^= 0x20;
    }

    memcpy(buf, "PBK", 3);
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    memcpy(buf, "\0\0\0", 3);
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    memcpy(buf, "PBJ", 3);

    for (i = 0; i < sizeof(types); i++) {
        buf[3] = types[i];
        CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    }

    /* the other valid type: the CRC holds, the fields do not */
    buf[3] = PB_JOURNAL_FINISHED;
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);

    buf[3] = PB_JOURNAL_CREATED;
    CHECK(read_copy(buf, len) == PB_JOURNAL_OK);

    free(buf);

    buf = encode(&finished, &len);
    buf[3] = PB_JOURNAL_CREATED;
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    free(buf);

    /* a short buffer that is not the start of a record */
    CHECK(read_copy((const unsigned char *) S("X")) == PB_JOURNAL_CORRUPT);
    CHECK(read_copy((const unsigned char *) S("PBX")) == PB_JOURNAL_CORRUPT);
    CHECK(read_copy((const unsigned char *) S("xPBJC\0\0"))
          == PB_JOURNAL_CORRUPT);
}


/* Frames rec's payload changed by edit, with the CRC made right again. */
static int
read_edited(const pb_journal_record_t *rec, size_t cut, const char *extra,
    size_t extra_len, size_t at, uint32_t field_len)
{
    int             rc;
    size_t          len, size, flen;
    unsigned char  *buf, *payload, *framed;

    buf = encode(rec, &len);
    size = len - HEAD - TAIL - cut;

    payload = alloc(size + extra_len);
    memcpy(payload, buf + HEAD, size);

    if (extra_len) {
        memcpy(payload + size, extra, extra_len);
    }

    if (at != (size_t) -1) {
        put32(payload + at, field_len);
    }

    framed = frame(rec->type, payload, size + extra_len, &flen);
    rc = read_copy(framed, flen);

    free(framed);
    free(payload);
    free(buf);

    return rc;
}


static void
test_length_disagrees_with_fields(void)
{
    size_t          len, body_at, id_at;
    unsigned char  *buf;

    static const unsigned char  nine[9] = { 1, 0, 0, 0, 0, 0, 0, 0, 7 };
    static const unsigned char  four[4] = { 0, 0, 0, 0 };

    /* the unedited frame reads */
    CHECK(read_edited(&full, 0, NULL, 0, (size_t) -1, 0) == PB_JOURNAL_OK);
    CHECK(read_edited(&finished, 0, NULL, 0, (size_t) -1, 0)
          == PB_JOURNAL_OK);

    /* a payload longer than its fields */
    CHECK(read_edited(&full, 0, S("x"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&empty_created, 0, S("\0\0\0\0"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&finished, 0, S("x"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&empty_finished, 0, S("\0\0\0\0"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);

    /* a payload shorter than its fields */
    CHECK(read_edited(&full, 1, NULL, 0, (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&empty_created, 1, NULL, 0, (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&empty_created, 4, NULL, 0, (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&finished, 1, NULL, 0, (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&empty_finished, 1, NULL, 0, (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);

    /* a field's length off by one either way, or huge */
    buf = encode(&full, &len);
    id_at = 1 + 8;
    body_at = len - HEAD - TAIL - full.body.len - 4;
    free(buf);

    CHECK(read_edited(&full, 0, NULL, 0, body_at, full.body.len + 1)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&full, 0, NULL, 0, body_at, full.body.len - 1)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&full, 0, NULL, 0, id_at, full.id.len + 1)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&full, 0, NULL, 0, id_at, full.id.len - 1)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&full, 0, NULL, 0, id_at, UINT32_MAX)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&finished, 0, NULL, 0, 0, finished.id.len + 1)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&finished, 0, NULL, 0, 0, UINT32_MAX)
          == PB_JOURNAL_CORRUPT);

    /* payloads too short for the fixed fields */
    buf = frame(PB_JOURNAL_CREATED, nine, 0, &len);
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    free(buf);

    buf = frame(PB_JOURNAL_CREATED, nine, 8, &len);
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    free(buf);

    buf = frame(PB_JOURNAL_CREATED, nine, 9, &len);
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    free(buf);

    buf = frame(PB_JOURNAL_FINISHED, four, 0, &len);
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    free(buf);

    buf = frame(PB_JOURNAL_FINISHED, four, 3, &len);
    CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
    free(buf);

    /* the smallest 'F' record is valid */
    buf = frame(PB_JOURNAL_FINISHED, four, 4, &len);
    CHECK(read_copy(buf, len) == PB_JOURNAL_OK);
    free(buf);
}


static void
test_created_extremes(void)
{
    size_t               i;
    pb_journal_record_t  r;

    static const uint64_t  values[] = {
        0, 1, 0xff, 0x100, 0xffffffffULL, 0x100000000ULL,
        0x0102030405060708ULL, 0x7fffffffffffffffULL,
        0x8000000000000000ULL, UINT64_MAX - 1, UINT64_MAX
    };

    r = full;

    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        r.created = values[i];
        check_round_trip(&r);
    }

    r = empty_created;
    r.created = UINT64_MAX;
    check_round_trip(&r);
}


const unit_test_t  journal_tests[] = {
    UNIT_TEST(test_created_round_trip),
    UNIT_TEST(test_finished_round_trip),
    UNIT_TEST(test_layout),
    UNIT_TEST(test_size_is_written_length),
    UNIT_TEST(test_back_to_back),
    UNIT_TEST(test_truncation_is_torn),
    UNIT_TEST(test_empty_buffer),
    UNIT_TEST(test_flipped_byte_is_corrupt),
    UNIT_TEST(test_wrong_magic_or_type),
    UNIT_TEST(test_length_disagrees_with_fields),
    UNIT_TEST(test_created_extremes),
};

const size_t  journal_ntests =
    sizeof(journal_tests) / sizeof(journal_tests[0]);
