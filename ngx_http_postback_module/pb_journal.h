/*
 * The spool's journal records, framed so that a torn or damaged record is
 * recognised.  Pure C (zlib's crc32), no nginx headers.
 *
 * A record: "PBJ", its type, the payload's length (4 bytes, big-endian),
 * the payload, its CRC-32 (4 bytes).  Payload of a created record ('D'):
 * the writer's tag (8 bytes), method (1 byte), created (8 bytes, ms), then
 * id, callback, event, url, headers, body, fields and key, each as a
 * 4-byte length and its bytes, then armed (8 bytes).  Records written
 * before keys existed end after the fields, those written before timeout
 * events after the key: they are read with an empty key, armed 0.
 * Payload of a finished record ('E'): the writer's tag (8 bytes), the
 * state it ended in (1 byte), the id as above, then, when the journal
 * keeps a history, its attempts as one field (pb_journal_attempt_write's,
 * one after another).  Payload of a key record
 * ('K', postback_key's table): the writer's tag (8 bytes), the change's
 * stamp (8 bytes, in created), the key and its last event as above; an
 * empty event: the key left the table.  Created records end with the
 * place of the url's param= query (4 bytes, in params_at); those written
 * before it lack it and read 0.  Payload of a callback record ('S', a
 * callback's switch): the writer's tag (8 bytes), the change's stamp (8
 * bytes, in created), why it is disabled (1 byte, in state, 0: enabled),
 * the digest of its url= (4 bytes), its name as above (in callback).
 *
 * Journals of version 0.1 hold 'C' and 'F' records: 'D' and 'E' without
 * tag, fields and state.  They are read, never written.
 */

#ifndef PB_JOURNAL_H
#define PB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>


#define PB_JOURNAL_CREATED   'D'
#define PB_JOURNAL_FINISHED  'E'
#define PB_JOURNAL_KEY       'K'
#define PB_JOURNAL_CALLBACK  'S'

#define PB_JOURNAL_OK        0
#define PB_JOURNAL_TORN      1      /* ends before the record does */
#define PB_JOURNAL_CORRUPT   2      /* not a record here */


typedef struct {
    const unsigned char  *data;
    size_t                len;
} pb_bytes_t;


typedef struct {
    int         type;
    uint64_t    tag;        /* who wrote it; 0 in a 0.1 journal */
    unsigned    method;
    unsigned    state;      /* finished: how it ended */
    uint64_t    created;    /* key: the change's stamp */
    pb_bytes_t  id;
    pb_bytes_t  callback;
    pb_bytes_t  event;
    pb_bytes_t  url;
    pb_bytes_t  headers;
    pb_bytes_t  body;
    pb_bytes_t  fields;     /* pb_fields packed */
    pb_bytes_t  key;        /* postback_key's value, or empty */
    uint64_t    armed;      /* a timeout event's: its key's change, ms */
    size_t      params_at;  /* created: where the url's param= query is */
    uint32_t    digest;     /* callback: of its url= */
    pb_bytes_t  attempts;   /* finished: its attempts, or empty */
} pb_journal_record_t;


/* an attempt as a finished record keeps it for the history */
typedef struct {
    uint64_t    start;      /* ms since the epoch */
    uint32_t    duration;   /* ms */
    int32_t     status;
    int         manual;
    pb_bytes_t  error;
    pb_bytes_t  response;
} pb_journal_attempt_t;


/* Exact size of the record's frame. */
size_t pb_journal_size(const pb_journal_record_t *r);

/* Writes the frame; returns its end. */
unsigned char *pb_journal_write(unsigned char *dst,
    const pb_journal_record_t *r);

/* Exact size of an attempt's encoding. */
size_t pb_journal_attempt_size(const pb_journal_attempt_t *a);

/* Writes an attempt's encoding; returns its end. */
unsigned char *pb_journal_attempt_write(unsigned char *dst,
    const pb_journal_attempt_t *a);

/*
 * The next attempt of a finished record's attempts, which it moves past:
 * 1, *a pointing into them; 0 at their end; -1 when they are damaged.
 */
int pb_journal_attempt_next(pb_bytes_t *attempts, pb_journal_attempt_t *a);

/* The size of a frame pb_journal_write wrote at p, from its head. */
size_t pb_journal_frame_size(const unsigned char *p);

/*
 * Reads the record at buf[0..len): PB_JOURNAL_OK with *r pointing into buf
 * and *used its frame's size; PB_JOURNAL_TORN when buf ends inside it;
 * PB_JOURNAL_CORRUPT when buf does not start with a valid record (the
 * caller may look for the next "PBJ").
 */
int pb_journal_read(const unsigned char *buf, size_t len,
    pb_journal_record_t *r, size_t *used);


/* a record as a scan of a whole journal finds it */
typedef struct {
    size_t                offset;   /* of its frame */
    size_t                size;     /* of its frame */
    int                   type;
    uint64_t              tag;
    const unsigned char  *id;       /* a key record's: its key; a
                                       callback record's: its name */
    size_t                id_len;
    uint64_t              stamp;    /* a key or callback record's change */
    int                   removed;  /* a key record of a key that left */
    int                   live;     /* set by pb_journal_live */
    int                   history;  /* set by pb_journal_live */
    size_t                finished; /* ... of a created record of the
                                       history: its finished record's
                                       index in the list, plus one */
} pb_journal_entry_t;


/*
 * Lists the records of buf[0..len) in order in e, max of them at most,
 * skipping damaged bytes (counted in *damaged, when not NULL).  *end is
 * where it stopped: at the end, where a record torn by the end of buf
 * begins, or where the record that did not fit in e begins.  Returns how
 * many were listed.
 */
size_t pb_journal_scan(const unsigned char *buf, size_t len,
    pb_journal_entry_t *e, size_t max, size_t *damaged, size_t *end);

/*
 * Marks the live records of the list: of created records, the first of
 * each id that no finished record names; of key and callback records,
 * the latest change of each key or callback (the highest stamp, the last
 * written of equal ones) unless the key left the table.  Returns how
 * many, or -1 when out of memory.  Marks too, as history, the created and
 * finished records of the deliveries finished last (a first created
 * record, a finished one after it) whose records fit in `history` bytes.
 */
long pb_journal_live(pb_journal_entry_t *e, size_t n, uint64_t history);

#endif /* PB_JOURNAL_H */
