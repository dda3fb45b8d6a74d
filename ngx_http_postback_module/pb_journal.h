/*
 * The spool's journal records, framed so that a torn or damaged record is
 * recognised.  Pure C (zlib's crc32), no nginx headers.
 *
 * A record: "PBJ", its type ('C' created, 'F' finished), the payload's
 * length (4 bytes, big-endian), the payload, its CRC-32 (4 bytes).
 * Payload of 'C': method (1 byte), created (8 bytes, ms), then id,
 * callback, event, url, headers and body, each as a 4-byte length and its
 * bytes.  Payload of 'F': the id, the same way.
 */

#ifndef PB_JOURNAL_H
#define PB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>


#define PB_JOURNAL_CREATED   'C'
#define PB_JOURNAL_FINISHED  'F'

#define PB_JOURNAL_OK        0
#define PB_JOURNAL_TORN      1      /* ends before the record does */
#define PB_JOURNAL_CORRUPT   2      /* not a record here */


typedef struct {
    const unsigned char  *data;
    size_t                len;
} pb_bytes_t;


typedef struct {
    int         type;
    unsigned    method;
    uint64_t    created;
    pb_bytes_t  id;
    pb_bytes_t  callback;
    pb_bytes_t  event;
    pb_bytes_t  url;
    pb_bytes_t  headers;
    pb_bytes_t  body;
} pb_journal_record_t;


/* Exact size of the record's frame. */
size_t pb_journal_size(const pb_journal_record_t *r);

/* Writes the frame; returns its end. */
unsigned char *pb_journal_write(unsigned char *dst,
    const pb_journal_record_t *r);

/*
 * Reads the record at buf[0..len): PB_JOURNAL_OK with *r pointing into buf
 * and *used its frame's size; PB_JOURNAL_TORN when buf ends inside it;
 * PB_JOURNAL_CORRUPT when buf does not start with a valid record (the
 * caller may look for the next "PBJ").
 */
int pb_journal_read(const unsigned char *buf, size_t len,
    pb_journal_record_t *r, size_t *used);

#endif /* PB_JOURNAL_H */
