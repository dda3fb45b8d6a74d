/*
 * pb_journal: framing of the spool's journal records, round trips, torn
 * tails, damaged records, the 'C' and 'F' records of 0.1 journals, and
 * listing a whole journal with its live records.
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

/* what precedes the id: tag, method, created; tag, state */
#define CREATED_FIXED   (8 + 1 + 8)
#define FINISHED_FIXED  (8 + 1)

/* what follows a 'D''s last field: armed, params_at */
#define CREATED_AFTER   (8 + 4)

/* what precedes an 'S''s name: tag, stamp, state, digest */
#define CALLBACK_FIXED  (8 + 8 + 1 + 4)

/*
 * The types of 0.1 journals.  A record of such a type here stands for the
 * frame a 0.1 writer made of it, built by hand: pb_journal_write never
 * writes one.
 */
#define LEGACY_CREATED        'C'
#define LEGACY_FINISHED       'F'
#define LEGACY_CREATED_FIXED  (1 + 8)

/* A string literal as a pb_bytes_t; the literal may contain NULs. */
#define B(lit)  { (const unsigned char *) (lit), sizeof(lit) - 1 }

#define NITEMS(r)  (sizeof(r) / sizeof((r)[0]))


static const pb_journal_record_t  full = {
    .type = PB_JOURNAL_CREATED,
    .tag = 0x8877665544332211ULL,
    .method = 2,
    .created = 1700000000123ULL,
    .id = B("01HZX3\0id"),
    .callback = B(""),
    .event = B("order.paid"),
    .url = B("https://example.com/hook?a=1&b=\xff"),
    .headers = B("Content-Type: application/json\r\n"
                 "X-Bin: \x00\x01\x7f\x80\xfe\xff\r\n"),
    .body = B("{\"k\":\"\0\"}\0\xff"),
    .fields = B("\0\0\0\6" "amount" "\0\0\0\5" "19.99"
                "\0\0\0\0" "\0\0\0\2" "\0\xff"),
    .key = B("T-1\0\xff"),
    .armed = 0x0102030405060708ULL,
    .params_at = 24
};

static const pb_journal_record_t  empty_created = {
    .type = PB_JOURNAL_CREATED,
    .id = B(""), .callback = B(""), .event = B(""), .url = B(""),
    .headers = B(""), .body = B(""), .fields = B(""), .key = B("")
};

static const pb_journal_record_t  finished = {
    .type = PB_JOURNAL_FINISHED,
    .tag = 0x8877665544332211ULL,
    .state = 3,
    .id = B("01HZX3\0id\xff")
};

static const pb_journal_record_t  empty_finished = {
    .type = PB_JOURNAL_FINISHED,
    .id = B("")
};


static int
is_legacy(int type)
{
    return type == LEGACY_CREATED || type == LEGACY_FINISHED;
}


/* r as a 0.1 journal held it. */
static pb_journal_record_t
legacy(const pb_journal_record_t *r)
{
    pb_journal_record_t  old;

    old = *r;
    old.type = (r->type == PB_JOURNAL_FINISHED) ? LEGACY_FINISHED
                                                 : LEGACY_CREATED;
    return old;
}


/* What reading r's frame gives: a 0.1 record has no tag, state, fields. */
static pb_journal_record_t
as_read(const pb_journal_record_t *r)
{
    pb_journal_record_t  want;

    want = *r;

    if (is_legacy(r->type)) {
        want.type = (r->type == LEGACY_FINISHED) ? PB_JOURNAL_FINISHED
                                                 : PB_JOURNAL_CREATED;
        want.tag = 0;
        want.state = 0;
        want.fields.data = NULL;
        want.fields.len = 0;
        want.key.data = NULL;
        want.key.len = 0;
        want.armed = 0;
        want.params_at = 0;
    }

    return want;
}


static unsigned char *
put_bytes(unsigned char *p, const pb_bytes_t *b)
{
    p = unit_put32(p, (uint32_t) b->len);

    if (b->len > 0) {
        memcpy(p, b->data, b->len);
    }

    return p + b->len;
}


/* The length-prefixed fields of r in their order; returns how many. */
static size_t
byte_fields(const pb_journal_record_t *r, const pb_bytes_t **f)
{
    f[0] = &r->id;
    f[1] = &r->callback;
    f[2] = &r->event;
    f[3] = &r->url;
    f[4] = &r->headers;
    f[5] = &r->body;
    f[6] = &r->fields;
    f[7] = &r->key;

    return 8;
}


/* The payload of a 0.1 record, laid out by hand. */
static unsigned char *
legacy_payload(const pb_journal_record_t *r, size_t *size)
{
    size_t             i, n;
    unsigned char     *buf, *p;
    const pb_bytes_t  *f[8];

    if (r->type == LEGACY_FINISHED) {
        *size = 4 + r->id.len;
        buf = unit_alloc(*size);
        put_bytes(buf, &r->id);

        return buf;
    }

    /* all but the fields and the key */
    n = byte_fields(r, f) - 2;

    *size = LEGACY_CREATED_FIXED;

    for (i = 0; i < n; i++) {
        *size += 4 + f[i]->len;
    }

    buf = unit_alloc(*size);

    buf[0] = (unsigned char) r->method;
    p = unit_put32(buf + 1, (uint32_t) (r->created >> 32));
    p = unit_put32(p, (uint32_t) r->created);

    for (i = 0; i < n; i++) {
        p = put_bytes(p, f[i]);
    }

    CHECK(p == buf + *size);

    return buf;
}


/* Frames a hand-made payload, with a correct CRC. */
static unsigned char *
frame(int type, const unsigned char *payload, size_t size, size_t *len)
{
    unsigned char  *buf;

    *len = HEAD + size + TAIL;
    buf = unit_alloc(*len);

    memcpy(buf, "PBJ", 3);
    buf[3] = (unsigned char) type;
    unit_put32(buf + 4, (uint32_t) size);

    if (size > 0) {
        memcpy(buf + HEAD, payload, size);
    }

    unit_put32(buf + HEAD + size, (uint32_t) crc32(0, payload, (uInt) size));

    return buf;
}


/*
 * The frame of r: pb_journal_write's, in exactly pb_journal_size bytes,
 * or a 0.1 writer's.
 */
static unsigned char *
encode(const pb_journal_record_t *r, size_t *len)
{
    size_t          size;
    unsigned char  *buf, *payload;

    if (is_legacy(r->type)) {
        payload = legacy_payload(r, &size);
        buf = frame(r->type, payload, size, len);
        free(payload);

        return buf;
    }

    *len = pb_journal_size(r);
    buf = unit_alloc(*len);

    CHECK(pb_journal_write(buf, r) == buf + *len);

    return buf;
}


static int
bytes_eq(const pb_bytes_t *got, const pb_bytes_t *want)
{
    return unit_bytes_eq(got->data, got->len, want->data, want->len);
}


/* The fields of want's type must be the same, the others empty. */
static int
record_eq(const pb_journal_record_t *got, const pb_journal_record_t *want)
{
    if (got->type != want->type || got->tag != want->tag
        || !bytes_eq(&got->id, &want->id))
    {
        return 0;
    }

    if (want->type == PB_JOURNAL_FINISHED) {
        return got->state == want->state
               && got->method == 0 && got->created == 0
               && got->callback.len == 0 && got->event.len == 0
               && got->url.len == 0 && got->headers.len == 0
               && got->body.len == 0 && got->fields.len == 0
               && got->key.len == 0 && got->armed == 0;
    }

    if (want->type == PB_JOURNAL_CALLBACK) {
        return got->created == want->created && got->state == want->state
               && got->digest == want->digest
               && bytes_eq(&got->callback, &want->callback);
    }

    return got->state == 0
           && got->method == want->method
           && got->created == want->created
           && bytes_eq(&got->callback, &want->callback)
           && bytes_eq(&got->event, &want->event)
           && bytes_eq(&got->url, &want->url)
           && bytes_eq(&got->headers, &want->headers)
           && bytes_eq(&got->body, &want->body)
           && bytes_eq(&got->fields, &want->fields)
           && bytes_eq(&got->key, &want->key)
           && got->armed == want->armed
           && got->params_at == want->params_at;
}


/* Every field read must point into the frame. */
static int
fields_inside(const pb_journal_record_t *r, const unsigned char *buf,
    size_t len)
{
    size_t             i, n;
    const pb_bytes_t  *f[8];

    n = byte_fields(r, f);

    for (i = 0; i < n; i++) {
        if (!unit_inside(f[i]->data, f[i]->len, buf, len)) {
            return 0;
        }
    }

    return 1;
}


/* Reads a copy of buf[0..len) of exactly len bytes, for ASan. */
static int
read_copy(const unsigned char *buf, size_t len)
{
    int                   rc;
    size_t                used;
    unsigned char        *copy;
    pb_journal_record_t   r;

    copy = unit_copy(buf, len);

    used = 0;
    rc = pb_journal_read(copy, len, &r, &used);

    free(copy);

    return rc;
}


static void
check_round_trip(const pb_journal_record_t *rec)
{
    size_t                len, used;
    unsigned char        *buf;
    pb_journal_record_t   r, want;

    buf = encode(rec, &len);
    want = as_read(rec);

    used = 0;
    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(used == len);
    CHECK(record_eq(&r, &want));
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

    /* a created record has no state to keep */
    r = full;
    r.state = 9;
    check_round_trip(&r);
}


static void
test_finished_round_trip(void)
{
    size_t                len, used;
    unsigned char        *buf;
    pb_journal_record_t   r, want;

    check_round_trip(&finished);
    check_round_trip(&empty_finished);

    /* every state byte */
    r = finished;

    for (r.state = 0; r.state < 256; r.state++) {
        check_round_trip(&r);
    }

    /* an 'E' record keeps tag, state and id, whatever else was set */
    want = full;
    want.type = PB_JOURNAL_FINISHED;
    want.state = 0xfe;
    buf = encode(&want, &len);
    CHECK(len == HEAD + FINISHED_FIXED + 4 + want.id.len + TAIL);

    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(used == len);
    CHECK(r.type == PB_JOURNAL_FINISHED);
    CHECK(r.tag == full.tag && r.state == 0xfe);
    CHECK(bytes_eq(&r.id, &full.id));
    CHECK(r.method == 0 && r.created == 0);
    CHECK(r.callback.len == 0 && r.event.len == 0 && r.url.len == 0
          && r.headers.len == 0 && r.body.len == 0 && r.fields.len == 0);

    free(buf);
}


/* rec must encode to want[0..n), a frame without its CRC, and the CRC. */
static void
check_layout(const pb_journal_record_t *rec, const char *want, size_t n)
{
    size_t          len;
    unsigned char  *buf, *framed;

    buf = encode(rec, &len);
    framed = frame(want[3], (const unsigned char *) want + HEAD, n - HEAD,
                   &n);

    CHECK(memcmp(framed, want, HEAD) == 0);
    CHECK(unit_bytes_eq(buf, len, framed, n));

    free(framed);
    free(buf);
}


static void
test_layout(void)
{
    static const pb_journal_record_t  e = {
        .type = PB_JOURNAL_FINISHED,
        .tag = 0x0102030405060708ULL,
        .state = 7,
        .id = B("ab")
    };

    static const pb_journal_record_t  d = {
        .type = PB_JOURNAL_CREATED,
        .tag = 0x0102030405060708ULL,
        .method = 'P',
        .created = 0x1112131415161718ULL,
        .id = B("i"), .callback = B("c"), .event = B("e"), .url = B("u"),
        .headers = B(""), .body = B("b"),
        .fields = B("\0\0\0\1" "n" "\0\0\0\1" "v"), .key = B("k"),
        .armed = 0x2122232425262728ULL,
        .params_at = 0x31323334
    };

    static const pb_journal_record_t  cb = {
        .type = PB_JOURNAL_CALLBACK,
        .tag = 0x0102030405060708ULL,
        .created = 0x1112131415161718ULL,
        .state = 4,
        .digest = 0x41424344,
        .callback = B("cb")
    };

    check_layout(&e, S("PBJE" "\0\0\0\x0f"
                       "\1\2\3\4\5\6\7\x08" "\7" "\0\0\0\2" "ab"));

    check_layout(&d, S("PBJD" "\0\0\0\x4d"
                       "\1\2\3\4\5\6\7\x08" "P"
                       "\x11\x12\x13\x14\x15\x16\x17\x18"
                       "\0\0\0\1" "i" "\0\0\0\1" "c" "\0\0\0\1" "e"
                       "\0\0\0\1" "u" "\0\0\0\0" "\0\0\0\1" "b"
                       "\0\0\0\x0a" "\0\0\0\1" "n" "\0\0\0\1" "v"
                       "\0\0\0\1" "k"
                       "\x21\x22\x23\x24\x25\x26\x27\x28"
                       "\x31\x32\x33\x34"));

    check_layout(&cb, S("PBJS" "\0\0\0\x1b"
                        "\1\2\3\4\5\6\7\x08"
                        "\x11\x12\x13\x14\x15\x16\x17\x18" "\4"
                        "\x41\x42\x43\x44" "\0\0\0\2" "cb"));

    /* the hand-made 0.1 frames these tests use */
    check_layout(&(pb_journal_record_t) { .type = LEGACY_FINISHED,
                                          .id = B("ab") },
                 S("PBJF" "\0\0\0\6" "\0\0\0\2" "ab"));
}


static void
test_size_is_written_length(void)
{
    size_t                len;
    unsigned char        *buf;
    pb_journal_record_t   r;

    /* encode() checks the writer's end against pb_journal_size() */
    buf = encode(&empty_created, &len);
    CHECK(len == HEAD + CREATED_FIXED + 8 * 4 + CREATED_AFTER + TAIL);
    free(buf);

    buf = encode(&empty_finished, &len);
    CHECK(len == HEAD + FINISHED_FIXED + 4 + TAIL);
    free(buf);

    buf = encode(&full, &len);
    CHECK(len == HEAD + CREATED_FIXED + 8 * 4 + CREATED_AFTER + TAIL + full.id.len
                 + full.callback.len + full.event.len + full.url.len
                 + full.headers.len + full.body.len + full.fields.len
                 + full.key.len);
    free(buf);

    buf = encode(&finished, &len);
    CHECK(len == HEAD + FINISHED_FIXED + 4 + finished.id.len + TAIL);
    free(buf);

    /* a large body and large fields */
    r = full;
    r.body.len = 100000;
    r.body.data = unit_alloc(r.body.len);
    memset((unsigned char *) r.body.data, 0xa5, r.body.len);
    r.fields.len = 70000;
    r.fields.data = unit_alloc(r.fields.len);
    memset((unsigned char *) r.fields.data, 0x5a, r.fields.len);

    buf = encode(&r, &len);
    CHECK(len == HEAD + CREATED_FIXED + 8 * 4 + CREATED_AFTER + TAIL + r.id.len
                 + r.callback.len + r.event.len + r.url.len + r.headers.len
                 + r.key.len + 100000 + 70000);
    free(buf);

    check_round_trip(&r);
    free((unsigned char *) r.body.data);
    free((unsigned char *) r.fields.data);
}


static void
test_back_to_back(void)
{
    int                   rc;
    size_t                i, n, total, pos, used, len[8];
    unsigned char        *buf, *one[8];
    pb_journal_record_t   r, want, rec[8];

    rec[0] = full;
    rec[1] = finished;
    rec[2] = empty_created;
    rec[3] = legacy(&full);
    rec[4] = full;
    rec[4].id.data = (const unsigned char *) "second";
    rec[4].id.len = 6;
    rec[4].created = UINT64_MAX;
    rec[4].tag = 0;
    rec[5] = legacy(&finished);
    rec[6] = empty_finished;
    rec[7] = legacy(&empty_created);
    n = NITEMS(rec);

    total = 0;

    for (i = 0; i < n; i++) {
        one[i] = encode(&rec[i], &len[i]);
        total += len[i];
    }

    buf = unit_alloc(total);
    pos = 0;

    for (i = 0; i < n; i++) {
        memcpy(buf + pos, one[i], len[i]);
        pos += len[i];
        free(one[i]);
    }

    pos = 0;

    for (i = 0; i < n && pos < total; i++) {
        used = 0;
        rc = pb_journal_read(buf + pos, total - pos, &r, &used);

        CHECK(rc == PB_JOURNAL_OK);
        if (rc != PB_JOURNAL_OK) {
            break;
        }

        want = as_read(&rec[i]);
        CHECK(used == len[i]);
        CHECK(record_eq(&r, &want));
        CHECK(fields_inside(&r, buf + pos, len[i]));

        pos += used;
    }

    CHECK(i == n);
    CHECK(pos == total);

    free(buf);
}


/* full, empty_created, finished, empty_finished, and each as of 0.1 */
static pb_journal_record_t
each_record(size_t i)
{
    pb_journal_record_t  r;

    switch (i % 4) {
    case 0:
        r = full;
        break;
    case 1:
        r = empty_created;
        break;
    case 2:
        r = finished;
        break;
    default:
        r = empty_finished;
        break;
    }

    return (i < 4) ? r : legacy(&r);
}

#define EACH_RECORD  8


static void
test_truncation_is_torn(void)
{
    size_t                i, len, n;
    unsigned char        *buf;
    pb_journal_record_t   rec;

    for (i = 0; i < EACH_RECORD; i++) {
        rec = each_record(i);
        buf = encode(&rec, &len);

        for (n = 1; n < len; n++) {
            if (read_copy(buf, n) != PB_JOURNAL_TORN) {
                break;
            }
        }

        CHECK(n == len);
        if (n != len) {
            fprintf(stderr, "    record %zu ('%c') not TORN: the first %zu"
                    " of %zu bytes\n", i, rec.type, n, len);
        }

        CHECK(read_copy(buf, len) == PB_JOURNAL_OK);

        free(buf);
    }
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
test_flipped_byte_is_corrupt(void)
{
    int                   rc;
    size_t                r, len, i, k;
    unsigned char        *buf;
    pb_journal_record_t   rec;

    static const unsigned char  masks[] = { 0x01, 0x80, 0x10, 0xff };

    for (r = 0; r < EACH_RECORD; r++) {
        rec = each_record(r);
        buf = encode(&rec, &len);

        /* the payload and the CRC */
        for (i = HEAD; i < len; i++) {
            for (k = 0; k < sizeof(masks); k++) {
                buf[i] ^= masks[k];

                rc = read_copy(buf, len);
                buf[i] ^= masks[k];

                CHECK(rc == PB_JOURNAL_CORRUPT);
                if (rc != PB_JOURNAL_CORRUPT) {
                    fprintf(stderr, "    record %zu: byte %zu of %zu"
                            " ^ 0x%02x: %d\n", r, i, len, masks[k], rc);
                }
            }
        }

        CHECK(read_copy(buf, len) == PB_JOURNAL_OK);

        free(buf);
    }
}


static void
test_wrong_magic_or_type(void)
{
    int                   t;
    size_t                r, len, i;
    unsigned char        *buf;
    pb_journal_record_t   rec;

    static const unsigned char  valid[] = {
        PB_JOURNAL_CREATED, PB_JOURNAL_FINISHED,
        LEGACY_CREATED, LEGACY_FINISHED
    };

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

    free(buf);

    for (r = 0; r < EACH_RECORD; r++) {
        rec = each_record(r);
        buf = encode(&rec, &len);

        /* any other type byte, even where the payload would fit it */
        for (t = 0; t < 256; t++) {
            if (memchr(valid, t, sizeof(valid)) == NULL) {
                buf[3] = (unsigned char) t;
                CHECK(read_copy(buf, len) == PB_JOURNAL_CORRUPT);
            }
        }

        /*
         * another valid type: the CRC holds, the fields do not; an empty
         * record may well read as another type
         */
        for (i = 0; i < sizeof(valid) && r % 2 == 0; i++) {
            buf[3] = valid[i];
            CHECK(read_copy(buf, len)
                  == (valid[i] == rec.type ? PB_JOURNAL_OK
                                           : PB_JOURNAL_CORRUPT));
        }

        free(buf);
    }

    /* a short buffer that is not the start of a record */
    CHECK(read_copy((const unsigned char *) S("X")) == PB_JOURNAL_CORRUPT);
    CHECK(read_copy((const unsigned char *) S("PBX")) == PB_JOURNAL_CORRUPT);
    CHECK(read_copy((const unsigned char *) S("xPBJD\0\0"))
          == PB_JOURNAL_CORRUPT);
}


/*
 * Reads rec's frame with its payload edited, the CRC made right again:
 * cut bytes off the end, extra appended, the 4 bytes at `at` (unless -1)
 * set to field_len.
 */
static int
read_edited(const pb_journal_record_t *rec, size_t cut, const char *extra,
    size_t extra_len, size_t at, uint32_t field_len)
{
    int             rc;
    size_t          len, size, flen;
    unsigned char  *buf, *payload, *framed;

    buf = encode(rec, &len);
    size = len - HEAD - TAIL - cut;

    payload = unit_alloc(size + extra_len);
    memcpy(payload, buf + HEAD, size);

    if (extra_len) {
        memcpy(payload + size, extra, extra_len);
    }

    if (at != (size_t) -1) {
        unit_put32(payload + at, field_len);
    }

    framed = frame(rec->type, payload, size + extra_len, &flen);
    rc = read_copy(framed, flen);

    free(framed);
    free(payload);
    free(buf);

    return rc;
}


#define UNEDITED  0, NULL, 0, (size_t) -1, 0


/* Where the lengths of rec's id and last field are in its payload. */
static void
length_offsets(const pb_journal_record_t *rec, size_t *id_at,
    size_t *last_at, uint32_t *last_len)
{
    size_t          len, after;
    unsigned char  *buf;

    buf = encode(rec, &len);
    free(buf);

    /* what follows the last length-prefixed field: armed..., in a 'D' */
    after = 0;

    switch (rec->type) {
    case PB_JOURNAL_CREATED:
        *id_at = CREATED_FIXED;
        *last_len = (uint32_t) rec->key.len;
        after = CREATED_AFTER;
        break;
    case PB_JOURNAL_CALLBACK:
        *id_at = CALLBACK_FIXED;
        *last_len = (uint32_t) rec->callback.len;
        break;
    case PB_JOURNAL_FINISHED:
        *id_at = FINISHED_FIXED;
        *last_len = (uint32_t) rec->id.len;
        break;
    case LEGACY_CREATED:
        *id_at = LEGACY_CREATED_FIXED;
        *last_len = (uint32_t) rec->body.len;
        break;
    default:
        *id_at = 0;
        *last_len = (uint32_t) rec->id.len;
        break;
    }

    *last_at = len - HEAD - TAIL - after - *last_len - 4;
}


static void
test_length_disagrees_with_fields(void)
{
    size_t                r, id_at, last_at;
    uint32_t              last_len;
    pb_journal_record_t   rec;

    for (r = 0; r < EACH_RECORD; r++) {
        rec = each_record(r);

        /* the unedited frame reads */
        CHECK(read_edited(&rec, UNEDITED) == PB_JOURNAL_OK);

        /* a payload longer than its fields */
        CHECK(read_edited(&rec, 0, S("x"), (size_t) -1, 0)
              == PB_JOURNAL_CORRUPT);
        CHECK(read_edited(&rec, 0, S("\0\0\0\0"), (size_t) -1, 0)
              == PB_JOURNAL_CORRUPT);

        /* a payload shorter than its fields */
        CHECK(read_edited(&rec, 1, NULL, 0, (size_t) -1, 0)
              == PB_JOURNAL_CORRUPT);
        CHECK(read_edited(&rec, 3, NULL, 0, (size_t) -1, 0)
              == PB_JOURNAL_CORRUPT);

        /*
         * Without params_at, a 'D' reads as written before it; without
         * armed too, as written before timeout events.
         */
        if (rec.type == PB_JOURNAL_CREATED) {
            CHECK(read_edited(&rec, 4, NULL, 0, (size_t) -1, 0)
                  == PB_JOURNAL_OK);
            CHECK(read_edited(&rec, 12, NULL, 0, (size_t) -1, 0)
                  == PB_JOURNAL_OK);
        }

        /* the lengths of the id and of the last field: off by one, huge */
        length_offsets(&rec, &id_at, &last_at, &last_len);

        CHECK(read_edited(&rec, 0, NULL, 0, id_at, rec.id.len + 1)
              == PB_JOURNAL_CORRUPT);
        CHECK(read_edited(&rec, 0, NULL, 0, id_at, UINT32_MAX)
              == PB_JOURNAL_CORRUPT);
        CHECK(read_edited(&rec, 0, NULL, 0, last_at, last_len + 1)
              == PB_JOURNAL_CORRUPT);
        CHECK(read_edited(&rec, 0, NULL, 0, last_at, UINT32_MAX)
              == PB_JOURNAL_CORRUPT);

        if (last_len > 0) {
            CHECK(read_edited(&rec, 0, NULL, 0, last_at, last_len - 1)
                  == PB_JOURNAL_CORRUPT);
        }

        if (rec.id.len > 0) {
            CHECK(read_edited(&rec, 0, NULL, 0, id_at, rec.id.len - 1)
                  == PB_JOURNAL_CORRUPT);
        }
    }
}


static void
test_short_payloads(void)
{
    int             rc;
    size_t          i, len;
    unsigned char  *buf;

    static const unsigned char  zeros[64];

    /* payloads of zeros: only the smallest whole one of each type reads */
    static const struct {
        int     type;
        size_t  size;
        int     rc;
    } cases[] = {
        { PB_JOURNAL_CREATED, 0, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, 8, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, 9, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, CREATED_FIXED - 1, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, CREATED_FIXED, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 7 * 4 - 1,
          PB_JOURNAL_CORRUPT },
        /* written before keys: no key at all */
        { PB_JOURNAL_CREATED, CREATED_FIXED + 7 * 4, PB_JOURNAL_OK },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 7 * 4 + 3,
          PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 8 * 4, PB_JOURNAL_OK },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 8 * 4 + 7,
          PB_JOURNAL_CORRUPT },
        /* written before param= queries were placed */
        { PB_JOURNAL_CREATED, CREATED_FIXED + 8 * 4 + 8, PB_JOURNAL_OK },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 8 * 4 + 9,
          PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 8 * 4 + 11,
          PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 8 * 4 + 12, PB_JOURNAL_OK },
        { PB_JOURNAL_CREATED, CREATED_FIXED + 8 * 4 + 13,
          PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CALLBACK, CALLBACK_FIXED - 1, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CALLBACK, CALLBACK_FIXED, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_CALLBACK, CALLBACK_FIXED + 4, PB_JOURNAL_OK },
        { PB_JOURNAL_CALLBACK, CALLBACK_FIXED + 5, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_FINISHED, 0, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_FINISHED, 8, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_FINISHED, FINISHED_FIXED, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_FINISHED, FINISHED_FIXED + 3, PB_JOURNAL_CORRUPT },
        { PB_JOURNAL_FINISHED, FINISHED_FIXED + 4, PB_JOURNAL_OK },
        { LEGACY_CREATED, 0, PB_JOURNAL_CORRUPT },
        { LEGACY_CREATED, 8, PB_JOURNAL_CORRUPT },
        { LEGACY_CREATED, LEGACY_CREATED_FIXED, PB_JOURNAL_CORRUPT },
        { LEGACY_CREATED, LEGACY_CREATED_FIXED + 6 * 4 - 1,
          PB_JOURNAL_CORRUPT },
        { LEGACY_CREATED, LEGACY_CREATED_FIXED + 6 * 4, PB_JOURNAL_OK },
        { LEGACY_CREATED, LEGACY_CREATED_FIXED + 7 * 4, PB_JOURNAL_CORRUPT },
        { LEGACY_FINISHED, 0, PB_JOURNAL_CORRUPT },
        { LEGACY_FINISHED, 3, PB_JOURNAL_CORRUPT },
        { LEGACY_FINISHED, 4, PB_JOURNAL_OK },
        { LEGACY_FINISHED, 5, PB_JOURNAL_CORRUPT },
    };

    for (i = 0; i < NITEMS(cases); i++) {
        buf = frame(cases[i].type, zeros, cases[i].size, &len);

        rc = read_copy(buf, len);

        CHECK(rc == cases[i].rc);
        if (rc != cases[i].rc) {
            fprintf(stderr, "    '%c' payload of %zu zeros\n",
                    cases[i].type, cases[i].size);
        }

        free(buf);
    }
}


static void
test_extremes(void)
{
    size_t               i;
    pb_journal_record_t  r;

    static const uint64_t  values[] = {
        0, 1, 0xff, 0x100, 0xffffffffULL, 0x100000000ULL,
        0x0102030405060708ULL, 0x7fffffffffffffffULL,
        0x8000000000000000ULL, UINT64_MAX - 1, UINT64_MAX
    };

    for (i = 0; i < NITEMS(values); i++) {
        r = full;
        r.created = values[i];
        check_round_trip(&r);

        r.tag = values[i];
        check_round_trip(&r);

        r = legacy(&r);
        check_round_trip(&r);

        r = finished;
        r.tag = values[i];
        check_round_trip(&r);
    }

    r = empty_created;
    r.created = UINT64_MAX;
    r.tag = UINT64_MAX;
    check_round_trip(&r);
}


static void
test_legacy_created(void)
{
    size_t                len, used;
    unsigned char        *buf;
    pb_journal_record_t   r;

    /* a 'C' frame as 0.1 wrote it */
    static const char  payload[] =
        "\x07" "\0\0\x01\x8b\xcf\xe5\x68\x7b"
        "\0\0\0\2" "i\0" "\0\0\0\3" "cb1" "\0\0\0\1" "e"
        "\0\0\0\4" "http" "\0\0\0\0" "\0\0\0\3" "{\xff}";

    buf = frame(LEGACY_CREATED, (const unsigned char *) payload,
                sizeof(payload) - 1, &len);

    used = 0;
    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(used == len);
    CHECK(r.type == PB_JOURNAL_CREATED);
    CHECK(r.tag == 0 && r.state == 0);
    CHECK(r.method == 7);
    CHECK(r.created == 1700000000123ULL);
    CHECK(unit_bytes_eq(r.id.data, r.id.len, S("i\0")));
    CHECK(unit_bytes_eq(r.callback.data, r.callback.len, S("cb1")));
    CHECK(unit_bytes_eq(r.event.data, r.event.len, S("e")));
    CHECK(unit_bytes_eq(r.url.data, r.url.len, S("http")));
    CHECK(r.headers.len == 0);
    CHECK(unit_bytes_eq(r.body.data, r.body.len, S("{\xff}")));
    CHECK(r.fields.len == 0);
    CHECK(fields_inside(&r, buf, len));

    free(buf);

    check_round_trip(&(pb_journal_record_t) { .type = LEGACY_CREATED });
}


static void
test_legacy_finished(void)
{
    size_t                len, used;
    unsigned char        *buf;
    pb_journal_record_t   r;

    buf = frame(LEGACY_FINISHED, (const unsigned char *) S("\0\0\0\3" "a\0b"),
                &len);

    used = 0;
    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(used == len);
    CHECK(r.type == PB_JOURNAL_FINISHED);
    CHECK(r.tag == 0 && r.state == 0);
    CHECK(unit_bytes_eq(r.id.data, r.id.len, S("a\0b")));
    CHECK(r.method == 0 && r.created == 0 && r.fields.len == 0);
    CHECK(fields_inside(&r, buf, len));

    free(buf);
}


static void
test_legacy_extra_bytes_corrupt(void)
{
    pb_journal_record_t  c, f;

    c = legacy(&full);
    f = legacy(&finished);

    /* what a 'D' or 'E' has more: an empty fields, a state byte */
    CHECK(read_edited(&c, 0, S("\0\0\0\0"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&f, 0, S("\3"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);

    /* a tag in front does not make it one of 0.1 either */
    CHECK(read_edited(&c, 0, S("\0\0\0\0\0\0\0\0\0"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
    CHECK(read_edited(&f, 0, S("\0\0\0\0\0\0\0\0\0"), (size_t) -1, 0)
          == PB_JOURNAL_CORRUPT);
}


/* A 0.1 record is written back as a 'D' or 'E' of tag 0. */
static void
test_legacy_written_as_current(void)
{
    size_t                r, len, used, n;
    unsigned char        *buf, *again;
    pb_journal_record_t   rec, got, back, want;

    for (r = 4; r < EACH_RECORD; r++) {
        rec = each_record(r);
        buf = encode(&rec, &len);

        CHECK(pb_journal_read(buf, len, &got, &used) == PB_JOURNAL_OK);

        n = pb_journal_size(&got);
        again = unit_alloc(n);
        CHECK(pb_journal_write(again, &got) == again + n);

        /* the tag, fields, key, armed, or the tag and state, are added */
        if (rec.type == LEGACY_CREATED) {
            CHECK(again[3] == PB_JOURNAL_CREATED);
            CHECK(n == len + 8 + 4 + 4 + CREATED_AFTER);

        } else {
            CHECK(again[3] == PB_JOURNAL_FINISHED);
            CHECK(n == len + 8 + 1);
        }

        want = as_read(&rec);
        CHECK(pb_journal_read(again, n, &back, &used) == PB_JOURNAL_OK);
        CHECK(used == n);
        CHECK(record_eq(&back, &want));

        free(again);
        free(buf);
    }
}


/* a created or finished record of id, tag 7, framed into buf at *len */
static void
append(unsigned char *buf, size_t *len, int type, const char *id)
{
    pb_journal_record_t  r;

    memset(&r, 0, sizeof(r));
    r.type = type;
    r.tag = 7;
    r.id.data = (const unsigned char *) id;
    r.id.len = strlen(id);

    if (type == PB_JOURNAL_CREATED) {
        r.event.data = (const unsigned char *) "APPROVED";
        r.event.len = 8;
    }

    CHECK(pb_journal_write(buf + *len, &r)
          == buf + *len + pb_journal_size(&r));
    CHECK(pb_journal_frame_size(buf + *len) == pb_journal_size(&r));

    *len += pb_journal_size(&r);
}


static void
test_scan_lists_in_order(void)
{
    size_t               len, n, end, damaged, at[4];
    unsigned char        buf[1024];
    pb_journal_entry_t   e[8];

    len = 0;
    at[0] = len;
    append(buf, &len, PB_JOURNAL_CREATED, "a");
    at[1] = len;
    append(buf, &len, PB_JOURNAL_FINISHED, "a");

    /* bytes of nothing between records: skipped, counted */
    memcpy(buf + len, "xyz", 3);
    len += 3;

    at[2] = len;
    append(buf, &len, PB_JOURNAL_CREATED, "b");
    at[3] = len;
    append(buf, &len, PB_JOURNAL_CREATED, "c");

    /* a record torn by the end: where the list stops */
    memcpy(buf + len, "PBJD\0\0\1", 7);

    damaged = 0;
    n = pb_journal_scan(buf, len + 7, e, 8, &damaged, &end);

    CHECK(n == 4);
    CHECK(damaged == 3);
    CHECK(end == len);
    CHECK(e[0].offset == at[0] && e[0].type == PB_JOURNAL_CREATED);
    CHECK(e[1].offset == at[1] && e[1].type == PB_JOURNAL_FINISHED);
    CHECK(e[2].offset == at[2] && e[2].size == at[3] - at[2]);
    CHECK(e[3].offset == at[3] && e[3].tag == 7);
    CHECK(e[3].id_len == 1 && e[3].id[0] == 'c');

    /* no torn end: the end of the bytes */
    CHECK(pb_journal_scan(buf, len, e, 8, NULL, &end) == 4 && end == len);
}


static void
test_scan_stops_at_max(void)
{
    size_t               len, n, end, second;
    unsigned char        buf[512];
    pb_journal_entry_t   e[2];

    len = 0;
    append(buf, &len, PB_JOURNAL_CREATED, "a");
    append(buf, &len, PB_JOURNAL_CREATED, "b");
    second = len;
    append(buf, &len, PB_JOURNAL_CREATED, "c");

    n = pb_journal_scan(buf, len, e, 2, NULL, &end);

    CHECK(n == 2);
    CHECK(end == second);

    /* the rest, from where it stopped */
    n = pb_journal_scan(buf + end, len - end, e, 2, NULL, &end);

    CHECK(n == 1 && e[0].offset == 0 && end == len - second);
}


static void
test_live(void)
{
    size_t               len, n, end;
    unsigned char        buf[1024];
    pb_journal_entry_t   e[8];

    len = 0;
    append(buf, &len, PB_JOURNAL_CREATED, "a");     /* finished below */
    append(buf, &len, PB_JOURNAL_CREATED, "b");     /* live */
    append(buf, &len, PB_JOURNAL_FINISHED, "a");
    append(buf, &len, PB_JOURNAL_CREATED, "b");     /* written twice */
    append(buf, &len, PB_JOURNAL_FINISHED, "z");    /* of nothing here */
    append(buf, &len, PB_JOURNAL_CREATED, "c");     /* live */

    n = pb_journal_scan(buf, len, e, 8, NULL, &end);

    CHECK(n == 6);
    CHECK(pb_journal_live(e, n, 0) == 2);
    CHECK(!e[0].live && e[1].live && !e[2].live);
    CHECK(!e[3].live && !e[4].live && e[5].live);

    CHECK(pb_journal_live(e, 0, 0) == 0);
}


/* a key record of key, stamp, event (NULL: the key left), framed in */
static void
append_key(unsigned char *buf, size_t *len, const char *key, uint64_t stamp,
    const char *event)
{
    pb_journal_record_t  r;

    memset(&r, 0, sizeof(r));
    r.type = PB_JOURNAL_KEY;
    r.tag = 7;
    r.created = stamp;
    r.key.data = (const unsigned char *) key;
    r.key.len = strlen(key);
    r.event.data = (const unsigned char *) event;
    r.event.len = event ? strlen(event) : 0;

    CHECK(pb_journal_write(buf + *len, &r)
          == buf + *len + pb_journal_size(&r));
    CHECK(pb_journal_size(&r)
          == HEAD + 8 + 8 + 4 + r.key.len + 4 + r.event.len + TAIL);

    *len += pb_journal_size(&r);
}


static void
test_key_records(void)
{
    size_t               len, n, end, used;
    unsigned char        buf[1024];
    pb_journal_entry_t   e[8];
    pb_journal_record_t  r;

    len = 0;
    append_key(buf, &len, "T-1", 1000, "STARTED");
    append_key(buf, &len, "T-1", 1002, "APPROVED");     /* live */
    append_key(buf, &len, "T-1", 1001, "REFUNDED");     /* written late */
    append_key(buf, &len, "T-2", 1003, "STARTED");
    append_key(buf, &len, "T-2", 1004, NULL);           /* left */
    append_key(buf, &len, "a", 5, "X");                 /* live: not "a"'s */
    append(buf, &len, PB_JOURNAL_FINISHED, "a");

    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(r.type == PB_JOURNAL_KEY && r.tag == 7 && r.created == 1000);
    CHECK(r.key.len == 3 && memcmp(r.key.data, "T-1", 3) == 0);
    CHECK(r.event.len == 7 && memcmp(r.event.data, "STARTED", 7) == 0);
    CHECK(r.id.len == 0 && r.armed == 0);

    n = pb_journal_scan(buf, len, e, 8, NULL, &end);

    CHECK(n == 7 && end == len);
    CHECK(e[0].id_len == 3 && memcmp(e[0].id, "T-1", 3) == 0);
    CHECK(e[1].stamp == 1002 && !e[1].removed && e[4].removed);

    CHECK(pb_journal_live(e, n, 0) == 2);
    CHECK(!e[0].live && e[1].live && !e[2].live);
    CHECK(!e[3].live && !e[4].live && e[5].live && !e[6].live);

    /* equal stamps: the last written */
    len = 0;
    append_key(buf, &len, "k", 9, "A");
    append_key(buf, &len, "k", 9, "B");
    n = pb_journal_scan(buf, len, e, 8, NULL, &end);
    CHECK(pb_journal_live(e, n, 0) == 1 && !e[0].live && e[1].live);
}


/* a callback record of name, stamp, why, framed in */
static void
append_callback(unsigned char *buf, size_t *len, const char *name,
    uint64_t stamp, unsigned why)
{
    pb_journal_record_t  r;

    memset(&r, 0, sizeof(r));
    r.type = PB_JOURNAL_CALLBACK;
    r.tag = 7;
    r.created = stamp;
    r.state = why;
    r.digest = 0xdeadbeef;
    r.callback.data = (const unsigned char *) name;
    r.callback.len = strlen(name);

    CHECK(pb_journal_write(buf + *len, &r)
          == buf + *len + pb_journal_size(&r));
    CHECK(pb_journal_size(&r)
          == HEAD + CALLBACK_FIXED + 4 + r.callback.len + TAIL);

    *len += pb_journal_size(&r);
}


/* callbacks' switches: the latest of each name, apart from keys and ids */
static void
test_callback_records(void)
{
    size_t               len, n, end, used;
    unsigned char        buf[1024];
    pb_journal_entry_t   e[8];
    pb_journal_record_t  r;

    len = 0;
    append_callback(buf, &len, "members", 1000, 4);
    append_callback(buf, &len, "members", 1002, 0);     /* live */
    append_callback(buf, &len, "members", 1001, 3);     /* written late */
    append_key(buf, &len, "members", 1, "X");           /* live: a key */
    append_callback(buf, &len, "tracker", 5, 1);        /* live */
    append(buf, &len, PB_JOURNAL_FINISHED, "tracker");

    CHECK(pb_journal_read(buf, len, &r, &used) == PB_JOURNAL_OK);
    CHECK(r.type == PB_JOURNAL_CALLBACK && r.tag == 7 && r.created == 1000);
    CHECK(r.state == 4 && r.digest == 0xdeadbeef);
    CHECK(r.callback.len == 7 && memcmp(r.callback.data, "members", 7) == 0);

    n = pb_journal_scan(buf, len, e, 8, NULL, &end);

    CHECK(n == 6 && end == len);
    CHECK(e[0].id_len == 7 && memcmp(e[0].id, "members", 7) == 0);
    CHECK(e[1].stamp == 1002 && !e[1].removed);

    CHECK(pb_journal_live(e, n, 0) == 3);
    CHECK(!e[0].live && e[1].live && !e[2].live);
    CHECK(e[3].live && e[4].live && !e[5].live);
}


/* attempts round trip in a finished record; damaged ones are refused */
static void
test_attempts(void)
{
    size_t                len, used, n;
    unsigned char         blob[256], *buf, *p;
    pb_bytes_t            rest;
    pb_journal_record_t   r, got;
    pb_journal_attempt_t  a[2], b;

    memset(a, 0, sizeof(a));
    a[0].start = 1700000000123ULL;
    a[0].duration = 42;
    a[0].status = 503;
    a[0].error.data = (const unsigned char *) "reset";
    a[0].error.len = 5;
    a[1].start = 1700000005000ULL;
    a[1].duration = 7;
    a[1].status = 200;
    a[1].manual = 1;
    a[1].response.data = (const unsigned char *) "ok\0\xff";
    a[1].response.len = 4;

    p = pb_journal_attempt_write(blob, &a[0]);
    CHECK((size_t) (p - blob) == pb_journal_attempt_size(&a[0]));
    p = pb_journal_attempt_write(p, &a[1]);

    r = finished;
    r.attempts.data = blob;
    r.attempts.len = p - blob;

    buf = encode(&r, &len);
    CHECK(len == HEAD + FINISHED_FIXED + 4 + r.id.len + 4 + r.attempts.len
                 + TAIL);
    CHECK(pb_journal_read(buf, len, &got, &used) == PB_JOURNAL_OK);
    CHECK(used == len);

    rest = got.attempts;
    for (n = 0; pb_journal_attempt_next(&rest, &b) == 1; n++) {
        CHECK(n < 2);
        CHECK(b.start == a[n].start && b.duration == a[n].duration
              && b.status == a[n].status && b.manual == a[n].manual);
        CHECK(bytes_eq(&b.error, &a[n].error));
        CHECK(bytes_eq(&b.response, &a[n].response));
    }
    CHECK(n == 2 && rest.len == 0);
    free(buf);

    /* a blob cut short, or a manual byte that is not 0 or 1: damaged */
    r.attempts.len--;
    buf = encode(&r, &len);
    CHECK(pb_journal_read(buf, len, &got, &used) == PB_JOURNAL_CORRUPT);
    free(buf);

    r.attempts.len++;
    blob[16] = 2;
    buf = encode(&r, &len);
    CHECK(pb_journal_read(buf, len, &got, &used) == PB_JOURNAL_CORRUPT);
    free(buf);

    /* an 'E' without attempts reads with none */
    buf = encode(&finished, &len);
    CHECK(pb_journal_read(buf, len, &got, &used) == PB_JOURNAL_OK);
    CHECK(got.attempts.len == 0);
    rest = got.attempts;
    CHECK(pb_journal_attempt_next(&rest, &b) == 0);
    free(buf);
}


/* the last finished deliveries whose records fit in the history */
static void
test_history(void)
{
    size_t              len, n, end, one;
    unsigned char       buf[2048];
    pb_journal_entry_t  e[16];

    len = 0;
    append(buf, &len, PB_JOURNAL_CREATED, "a");     /* 0: finished first */
    one = len;
    append(buf, &len, PB_JOURNAL_CREATED, "b");     /* 1: finished last */
    append(buf, &len, PB_JOURNAL_CREATED, "c");     /* 2: pending */
    append(buf, &len, PB_JOURNAL_FINISHED, "a");    /* 3 */
    append(buf, &len, PB_JOURNAL_CREATED, "d");     /* 4: finished 2nd */
    append(buf, &len, PB_JOURNAL_FINISHED, "d");    /* 5 */
    append(buf, &len, PB_JOURNAL_FINISHED, "b");    /* 6 */
    append(buf, &len, PB_JOURNAL_FINISHED, "e");    /* 7: no created */

    n = pb_journal_scan(buf, len, e, 16, NULL, &end);
    CHECK(n == 8);

    /* no history: the pending one alone */
    CHECK(pb_journal_live(e, n, 0) == 1);
    CHECK(e[2].live);
    for (end = 0; end < n; end++) {
        CHECK(!e[end].history && e[end].finished == 0);
    }

    /* room for two deliveries: the two finished last, b and d */
    CHECK(pb_journal_live(e, n, 2 * (one + e[3].size)) == 1);
    CHECK(e[1].history && e[6].history && e[1].finished == 7);
    CHECK(e[4].history && e[5].history && e[4].finished == 6);
    CHECK(!e[0].history && !e[3].history && e[0].finished == 0);
    CHECK(!e[2].history && !e[7].history);
    CHECK(!e[1].live && !e[4].live);

    /* room for all: a too */
    CHECK(pb_journal_live(e, n, 1000000) == 1);
    CHECK(e[0].history && e[3].history && e[0].finished == 4);
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
    UNIT_TEST(test_short_payloads),
    UNIT_TEST(test_extremes),
    UNIT_TEST(test_legacy_created),
    UNIT_TEST(test_legacy_finished),
    UNIT_TEST(test_legacy_extra_bytes_corrupt),
    UNIT_TEST(test_legacy_written_as_current),
    UNIT_TEST(test_scan_lists_in_order),
    UNIT_TEST(test_scan_stops_at_max),
    UNIT_TEST(test_live),
    UNIT_TEST(test_key_records),
    UNIT_TEST(test_callback_records),
    UNIT_TEST(test_attempts),
    UNIT_TEST(test_history),
};

const size_t  journal_ntests =
    sizeof(journal_tests) / sizeof(journal_tests[0]);
