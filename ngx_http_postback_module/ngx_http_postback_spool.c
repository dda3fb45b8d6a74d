
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The spool: an append-only journal of deliveries created and finished,
 * so that pending ones survive a restart, and the place where those the
 * zone has no room for wait (counted, not kept, in the zone).  All its
 * I/O is here, in nginx's thread pool, never under the zone's lock nor on
 * a request's path: a stalled disk stalls no client.
 *
 * - Writing: each worker takes from the zone the records its deliveries
 *   need next, in batches, and appends them (one write, under a shared
 *   flock).  A failed write is retried with the same bytes until it goes
 *   through; what is still not written when nginx stops is logged.
 * - Upkeep, by one worker at a time: reading the journal, from where it
 *   was read up to, or from the oldest delivery waiting there when the
 *   zone has room: what another zone wrote (at a start, everything; after
 *   a reload that replaced the zone, what the old workers wrote) and what
 *   waits for room comes into the zone; and compacting the journal (under
 *   an exclusive flock, so appenders wait, then follow the new file) once
 *   it is mostly finished records.
 * - Records are tagged with the zone that wrote them: a zone ignores its
 *   own when it reads the journal.
 *
 * Nothing is fsync'd but a compacted journal, before it replaces the old.
 */


#include "ngx_http_postback_module.h"
#include "pb_journal.h"
#include <sys/file.h>


/* a write takes this many bytes at most, and one record more */
#define NGX_HTTP_POSTBACK_BATCH_SIZE    (256 * 1024)
#define NGX_HTTP_POSTBACK_BATCH_REFS    512

/* the journal is compacted once this big and mostly finished records */
#define NGX_HTTP_POSTBACK_COMPACT_MIN   (1024 * 1024)

/* the attempts of a delivery of the history read back, at most */
#define NGX_HTTP_POSTBACK_HISTORY_ATTEMPTS  128

/* a failed compaction waits this long, in ms */
#define NGX_HTTP_POSTBACK_COMPACT_WAIT  60000

/* the upkeep's lease, and how often workers look at the journal, in ms */
#define NGX_HTTP_POSTBACK_UPKEEP_LEASE  30000
#define NGX_HTTP_POSTBACK_TICK          1000

/* a failed write is tried again after this much, doubling, at most */
#define NGX_HTTP_POSTBACK_WRITE_RETRY_MIN  100
#define NGX_HTTP_POSTBACK_WRITE_RETRY_MAX  5000

/* the next read, when deliveries came back and more wait, in ms */
#define NGX_HTTP_POSTBACK_REFILL_PACE   100

/* what a worker holds of deliveries waiting for room, at most */
#define NGX_HTTP_POSTBACK_KEPT_MAX      (32 * 1024 * 1024)

/* a writer renews the leases of what it has in hand this often, in ms */
#define NGX_HTTP_POSTBACK_RENEW         10000

/* deliveries read from the journal while running wait this long past
   their callback's timeout: a transfer of an earlier configuration's
   worker may still be in flight and end them */
#define NGX_HTTP_POSTBACK_GRACE         5000


#define NGX_HTTP_POSTBACK_JOB_WRITE     0
#define NGX_HTTP_POSTBACK_JOB_SCAN      1
#define NGX_HTTP_POSTBACK_JOB_COMPACT   2


/* the journal's state in the zone, under the zone's lock */
typedef struct {
    uint64_t                      file;     /* inode read up to tail */
    off_t                         tail;     /* read up to here */
    off_t                         waiting;  /* the oldest that waits for
                                               room is not before: -1 none */
    uint64_t                      waiting_bytes;
    uint64_t                      lost;     /* that waited, not written */
    uint64_t                      bytes;    /* the file's size */
    uint64_t                      write_errors;
    uint64_t                      compactions;
    uint64_t                      compact_after;    /* ms */
    uint64_t                      upkeep_lease;     /* ms */
    ngx_pid_t                     upkeep_owner;
    unsigned                      read:1;   /* read once since made */
    unsigned                      reload:1; /* made by a reload */
    unsigned                      tidy:1;   /* compact: it was read with
                                               finished records */
} ngx_http_postback_spool_sh_t;


/*
 * Work done in a thread: the inputs are set before it is posted, the
 * outputs read in its completion.  What a thread allocates is malloc()'d:
 * nginx's allocators log, and logging is the event loop's.
 */
typedef struct {
    ngx_uint_t                    kind;
    ngx_str_t                    *path;
    ngx_str_t                    *path_new;
    ngx_fd_t                      fd;       /* write: this worker's */
    u_char                       *buf;      /* write: in; others: out */
    size_t                        len;
    off_t                         from;     /* scan: read from here */
    uint64_t                      file;     /* the inode; scan: known */
    off_t                         end;      /* of a write; the file's size */
    uint64_t                      tag;      /* ours */
    uint64_t                      history;  /* bytes of finished ones kept */
    off_t                         tail;     /* compact: read up to here */
    pb_journal_entry_t           *entries;  /* scan: the records read */
    size_t                        nentries;
    size_t                        damaged;  /* scan: bytes skipped */
    off_t                         torn;     /* scan: a torn end, or end */
    off_t                         cut;      /* scan: torn bytes cut off */
    off_t                         old_size; /* compact: the one replaced */
    ngx_err_t                     err;
    const char                   *failed;   /* the call, or a reason */
    ngx_flag_t                    later;    /* compact: read others' first */
    ngx_uint_t                    restored; /* scan: brought into the zone */
    ngx_flag_t                    busy;
#if (NGX_THREADS)
    ngx_thread_task_t            *task;
#endif
} ngx_http_postback_job_t;


/* a batch of records to append, and the leases they are written under */
typedef struct {
    u_char                       *buf;
    size_t                        len;
    size_t                        cap;
    ngx_http_postback_jref_t     *refs;
    ngx_uint_t                    nrefs;
    ngx_uint_t                    refs_cap;
} ngx_http_postback_batch_t;


/* this worker's part */
typedef struct {
    ngx_http_postback_main_conf_t  *pmcf;
    ngx_shm_zone_t                 *shm_zone;
    ngx_log_t                      *log;
    ngx_http_postback_spool_sh_t   *ss;     /* the zone's part */
    uint64_t                        tag;    /* the zone's records' */
    ngx_http_postback_job_t         writer;
    ngx_http_postback_job_t         upkeep;
    ngx_http_postback_batch_t       batch;  /* being written, or failed */
    ngx_http_postback_batch_t       kept;   /* spooled meanwhile */
    u_char                         *attempts;   /* a finished record's */
    size_t                          attempts_cap;
    ngx_msec_t                      backoff;
    uint64_t                        renewed;
    ngx_event_t                     tick;
    ngx_event_t                     retry;
    ngx_connection_t                timer_conn;
    ngx_flag_t                      failing;      /* to write */
    ngx_flag_t                      read_failing;
    ngx_flag_t                      sync;   /* no thread: leaving */
    ngx_flag_t                      read_first;     /* before compacting */
} ngx_http_postback_spool_t;


static ngx_http_postback_spool_sh_t *ngx_http_postback_spool_sh(void);
static void ngx_http_postback_spool_edits(
    ngx_http_postback_main_conf_t *pmcf);
static ngx_int_t ngx_http_postback_job_init(ngx_http_postback_job_t *job,
    ngx_uint_t kind, ngx_cycle_t *cycle);
static ngx_int_t ngx_http_postback_job_post(ngx_http_postback_job_t *job);
static void ngx_http_postback_job_done(ngx_event_t *ev);
static void ngx_http_postback_job_end(ngx_http_postback_job_t *job);
static void ngx_http_postback_job_run(void *data, ngx_log_t *log);
static void ngx_http_postback_job_free(ngx_http_postback_job_t *job);
static size_t ngx_http_postback_batch_put(void *ctx,
    ngx_http_postback_jitem_t *item);
static ngx_int_t ngx_http_postback_batch_room(ngx_http_postback_batch_t *b,
    size_t size, ngx_uint_t nrefs);
static void ngx_http_postback_journal_record(ngx_http_postback_jitem_t *item,
    pb_journal_record_t *rec);
static ngx_uint_t ngx_http_postback_batch_fill(ngx_flag_t zone,
    ngx_flag_t all);
static void ngx_http_postback_batch_clear(ngx_http_postback_batch_t *b);
static void ngx_http_postback_batch_lost(ngx_http_postback_batch_t *b,
    ngx_uint_t end, char *what);
static void ngx_http_postback_spool_end(u_char *id);
static void ngx_http_postback_journal_attempts(
    ngx_http_postback_jitem_t *item, pb_bytes_t *out);
static void ngx_http_postback_journal_attempt(ngx_http_postback_result_t *res,
    pb_journal_attempt_t *a);
static ngx_int_t ngx_http_postback_kept_add(ngx_http_postback_jitem_t *item,
    ngx_flag_t spilled);
static ngx_int_t ngx_http_postback_kept_record(pb_journal_record_t *rec,
    u_char *id, ngx_flag_t spilled);
static void ngx_http_postback_written(ngx_http_postback_job_t *job);
static void ngx_http_postback_spool_retry(ngx_event_t *ev);
static void ngx_http_postback_spool_tick_handler(ngx_event_t *ev);
static ngx_flag_t ngx_http_postback_upkeep_lease(ngx_flag_t keep);
static void ngx_http_postback_upkeep(void);
static void ngx_http_postback_scanned(ngx_http_postback_job_t *job);
static void ngx_http_postback_read_up_to(ngx_http_postback_job_t *job,
    off_t tail, off_t waiting, int64_t waiting_bytes, ngx_flag_t first);
static off_t ngx_http_postback_ingest(ngx_http_postback_job_t *job,
    ngx_flag_t first, int64_t *waiting_bytes);
static void ngx_http_postback_ingest_key(pb_journal_record_t *rec);
static void ngx_http_postback_ingest_callback(pb_journal_record_t *rec);
static void ngx_http_postback_ingest_finished(ngx_http_postback_job_t *job,
    pb_journal_entry_t *e);
static ngx_int_t ngx_http_postback_ingest_one(pb_journal_record_t *rec,
    size_t size, uint64_t grace, ngx_flag_t counted, ngx_flag_t room);
static void ngx_http_postback_ingest_log(ngx_http_postback_job_t *job,
    ngx_flag_t first, ngx_uint_t *counts);
static void ngx_http_postback_compacted(ngx_http_postback_job_t *job);
static void ngx_http_postback_record_req(pb_journal_record_t *rec,
    ngx_http_postback_request_t *req);
static void ngx_http_postback_spool_drain(ngx_flag_t zone, ngx_flag_t all);
static void ngx_http_postback_write_io(ngx_http_postback_job_t *job);
static ngx_int_t ngx_http_postback_current(ngx_http_postback_job_t *job,
    ngx_file_info_t *fd_info);
static void ngx_http_postback_scan_io(ngx_http_postback_job_t *job);
static void ngx_http_postback_compact_io(ngx_http_postback_job_t *job);
static ngx_int_t ngx_http_postback_compact_write(
    ngx_http_postback_job_t *job);
static void ngx_http_postback_sync_dir(ngx_str_t *path);
static ngx_int_t ngx_http_postback_list(ngx_http_postback_job_t *job,
    size_t *end);
static ngx_fd_t ngx_http_postback_open_read(ngx_http_postback_job_t *job,
    ngx_file_info_t *fi);
static ngx_int_t ngx_http_postback_read_all(ngx_http_postback_job_t *job,
    ngx_fd_t fd, off_t from, off_t size);


static ngx_http_postback_spool_t  ngx_http_postback_spool;


/*
 * The journal's state, made with a fresh zone, or when a reload adds the
 * spool to a zone it keeps.  The journal is read by the first worker
 * that looks at it: `nginx -t` and a reload that keeps the zone read and
 * write nothing.  Run as root, the master gives the workers the file.
 */

void *
ngx_http_postback_spool_zone_init(ngx_shm_zone_t *shm_zone)
{
    ngx_slab_pool_t                *shpool;
    ngx_core_conf_t                *ccf;
    ngx_http_postback_spool_sh_t   *ss;
    ngx_http_postback_main_conf_t  *pmcf;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    pmcf = shm_zone->data;

    ss = ngx_slab_calloc(shpool, sizeof(ngx_http_postback_spool_sh_t));
    if (ss == NULL) {
        return NULL;
    }

    ss->reload = !ngx_is_init_cycle(pmcf->cycle->old_cycle);
    ss->waiting = -1;

    if (ngx_test_config || geteuid() != 0) {
        return ss;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(pmcf->cycle->conf_ctx,
                                           ngx_core_module);

    if (chown((char *) pmcf->spool.data, ccf->user, (gid_t) -1) == -1
        && ngx_errno != NGX_ENOENT)
    {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, ngx_errno,
                      "chown() \"%V\" failed", &pmcf->spool);
    }

    return ss;
}


/* under the zone's lock: the figures the status shows */

void
ngx_http_postback_spool_stats(void *spool,
    ngx_http_postback_spool_stats_t *stats)
{
    ngx_http_postback_spool_sh_t  *ss = spool;

    stats->bytes = ss->bytes;
    stats->write_errors = ss->write_errors;
    stats->compactions = ss->compactions;
    stats->lost = ss->lost;
}


static ngx_http_postback_spool_sh_t *
ngx_http_postback_spool_sh(void)
{
    return ngx_http_postback_spool.ss;
}


ngx_int_t
ngx_http_postback_spool_init(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf)
{
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    if (pmcf->spool.len == 0) {
        return NGX_OK;
    }

    sp->pmcf = pmcf;
    sp->shm_zone = pmcf->shm_zone;
    sp->ss = ngx_http_postback_zone_spool(pmcf->shm_zone);
    sp->log = cycle->log;
    sp->tag = ngx_http_postback_zone_tag(pmcf->shm_zone);

    if (ngx_http_postback_job_init(&sp->writer, NGX_HTTP_POSTBACK_JOB_WRITE,
                                   cycle)
        != NGX_OK
        || ngx_http_postback_job_init(&sp->upkeep, NGX_HTTP_POSTBACK_JOB_SCAN,
                                      cycle)
           != NGX_OK
        || ngx_http_postback_batch_room(&sp->batch,
                                        NGX_HTTP_POSTBACK_BATCH_SIZE,
                                        NGX_HTTP_POSTBACK_BATCH_REFS)
           != NGX_OK
        || ngx_http_postback_batch_room(&sp->kept,
                                        NGX_HTTP_POSTBACK_BATCH_SIZE,
                                        NGX_HTTP_POSTBACK_BATCH_REFS)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_postback_timer_init(&sp->tick,
                                 ngx_http_postback_spool_tick_handler,
                                 &sp->timer_conn, cycle->log, 1);
    ngx_http_postback_timer_init(&sp->retry, ngx_http_postback_spool_retry,
                                 &sp->timer_conn, cycle->log, 1);

    /* soon: a fresh zone waits for its first read of the journal */
    ngx_add_timer(&sp->tick, ngx_random() % 50 + 1);

    ngx_http_postback_spool_edits(pmcf);

    return NGX_OK;
}


/* callbacks a url= edit enabled, for the journal */

static void
ngx_http_postback_spool_edits(ngx_http_postback_main_conf_t *pmcf)
{
    uint64_t                       changed;
    ngx_uint_t                     i;
    ngx_http_postback_cb_conf_t  **cbp;

    cbp = pmcf->callbacks.elts;

    for (i = 0; i < pmcf->callbacks.nelts; i++) {
        if (ngx_http_postback_zone_unjournaled(pmcf->shm_zone, cbp[i],
                                               &changed))
        {
            ngx_http_postback_spool_callback(cbp[i],
                                             NGX_HTTP_POSTBACK_ENABLED,
                                             changed);
        }
    }
}


static ngx_int_t
ngx_http_postback_job_init(ngx_http_postback_job_t *job, ngx_uint_t kind,
    ngx_cycle_t *cycle)
{
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    job->kind = kind;
    job->path = &sp->pmcf->spool;
    job->path_new = &sp->pmcf->spool_new;
    job->history = sp->pmcf->history;
    job->fd = NGX_INVALID_FILE;

#if (NGX_THREADS)
    job->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (job->task == NULL) {
        return NGX_ERROR;
    }

    job->task->ctx = job;
    job->task->handler = ngx_http_postback_job_run;
    job->task->event.handler = ngx_http_postback_job_done;
    job->task->event.data = job;
    job->task->event.log = cycle->log;
#endif

    return NGX_OK;
}


/*
 * Runs the job in nginx's thread pool; its end comes back on the event
 * loop.  Without threads, or as the process leaves, it runs here, now.
 */

static ngx_int_t
ngx_http_postback_job_post(ngx_http_postback_job_t *job)
{
    job->busy = 1;
    job->err = 0;
    job->failed = NULL;
    job->later = 0;

#if (NGX_THREADS)

    if (!ngx_http_postback_spool.sync) {
        if (ngx_thread_task_post(ngx_http_postback_spool.pmcf->thread_pool,
                                 job->task)
            == NGX_OK)
        {
            return NGX_OK;
        }

        job->busy = 0;

        return NGX_ERROR;
    }

#endif

    ngx_http_postback_job_run(job, ngx_http_postback_spool.log);
    ngx_http_postback_job_end(job);

    return NGX_OK;
}


static void
ngx_http_postback_job_run(void *data, ngx_log_t *log)
{
    ngx_http_postback_job_t  *job = data;

    switch (job->kind) {

    case NGX_HTTP_POSTBACK_JOB_WRITE:
        ngx_http_postback_write_io(job);
        break;

    case NGX_HTTP_POSTBACK_JOB_SCAN:
        ngx_http_postback_scan_io(job);
        break;

    default: /* NGX_HTTP_POSTBACK_JOB_COMPACT */
        ngx_http_postback_compact_io(job);
        break;
    }
}


static void
ngx_http_postback_job_done(ngx_event_t *ev)
{
    ngx_http_postback_job_end(ev->data);
}


static void
ngx_http_postback_job_end(ngx_http_postback_job_t *job)
{
    job->busy = 0;

    switch (job->kind) {

    case NGX_HTTP_POSTBACK_JOB_WRITE:
        ngx_http_postback_written(job);
        ngx_http_postback_spool_flush();
        return;

    case NGX_HTTP_POSTBACK_JOB_SCAN:
        ngx_http_postback_scanned(job);
        break;

    default: /* NGX_HTTP_POSTBACK_JOB_COMPACT */
        ngx_http_postback_compacted(job);
        break;
    }

    ngx_http_postback_job_free(job);
}


/* what an upkeep job's thread allocated */

static void
ngx_http_postback_job_free(ngx_http_postback_job_t *job)
{
    free(job->buf);
    free(job->entries);

    job->buf = NULL;
    job->len = 0;
    job->entries = NULL;
    job->nentries = 0;
}


/*
 * A delivery the zone has no room for waits in the journal: its created
 * record is written from here, with the next batch.  While writes fail,
 * what this worker holds so is bounded: past that, it is dropped.
 */

void
ngx_http_postback_spool_keep(ngx_shm_zone_t *shm_zone, ngx_str_t *callback,
    u_char *id, ngx_http_postback_request_t *req)
{
    ngx_http_postback_jitem_t   item;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    ngx_memzero(&item, sizeof(ngx_http_postback_jitem_t));
    item.id = id;
    item.callback = *callback;
    item.req = *req;

    if (sp->shm_zone == NULL || sp->sync
        || sp->kept.len >= NGX_HTTP_POSTBACK_KEPT_MAX
        || ngx_http_postback_kept_add(&item, 1) != NGX_OK)
    {
        ngx_http_postback_log_lost(ngx_cycle->log, NULL,
                                   "dropped, zone full and spool not "
                                   "written", callback, &req->event,
                                   &req->fields);
        ngx_http_postback_zone_spilled(shm_zone, callback, -1, 1);
    }
}


/*
 * A delivery of a callback that is not configured, read from the journal:
 * its finished record, failed, so that it is not read as pending again.
 */

static void
ngx_http_postback_spool_end(u_char *id)
{
    ngx_http_postback_jitem_t  item;

    ngx_memzero(&item, sizeof(ngx_http_postback_jitem_t));
    item.finished = 1;
    item.state = NGX_HTTP_POSTBACK_FAILED;
    item.id = id;

    (void) ngx_http_postback_kept_add(&item, 0);
}


/* a record for the next batch, written from here */

static ngx_int_t
ngx_http_postback_kept_add(ngx_http_postback_jitem_t *item,
    ngx_flag_t spilled)
{
    pb_journal_record_t  rec;

    ngx_http_postback_journal_record(item, &rec);

    return ngx_http_postback_kept_record(&rec, item->id, spilled);
}


/* a record into the next batch; id: its delivery's, or NULL */

static ngx_int_t
ngx_http_postback_kept_record(pb_journal_record_t *rec, u_char *id,
    ngx_flag_t spilled)
{
    size_t                      size;
    ngx_http_postback_jref_t   *ref;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    size = pb_journal_size(rec);

    if (ngx_http_postback_batch_room(&sp->kept, size, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    pb_journal_write(sp->kept.buf + sp->kept.len, rec);
    sp->kept.len += size;

    ref = &sp->kept.refs[sp->kept.nrefs++];
    ngx_memzero(ref, sizeof(ngx_http_postback_jref_t));
    ref->spilled = spilled;

    if (id) {
        ngx_memcpy(ref->id, id, NGX_HTTP_POSTBACK_ID_LEN);
    }

    return NGX_OK;
}


/*
 * A change of the key table (an empty event: the key left it), for the
 * journal; the zone's lock may be held: only memory is touched.  Past
 * what a worker holds while writes fail, a change is not written: a
 * restart then forgets it.
 */

void
ngx_http_postback_spool_key(ngx_str_t *key, ngx_str_t *event,
    uint64_t changed)
{
    pb_journal_record_t         rec;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    if (sp->shm_zone == NULL || sp->kept.len >= NGX_HTTP_POSTBACK_KEPT_MAX) {
        return;
    }

    ngx_memzero(&rec, sizeof(pb_journal_record_t));
    rec.type = PB_JOURNAL_KEY;
    rec.tag = sp->tag;
    rec.created = changed;
    rec.key.data = key->data;
    rec.key.len = key->len;
    rec.event.data = event->data;
    rec.event.len = event->len;

    (void) ngx_http_postback_kept_record(&rec, NULL, 0);
}


/*
 * A callback's switch changed (why: 0, enabled), for the journal, so a
 * restart keeps it while its url= stays the same.
 */

void
ngx_http_postback_spool_callback(ngx_http_postback_cb_conf_t *cb,
    ngx_uint_t why, uint64_t changed)
{
    pb_journal_record_t         rec;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    if (sp->shm_zone == NULL) {
        return;
    }

    ngx_memzero(&rec, sizeof(pb_journal_record_t));
    rec.type = PB_JOURNAL_CALLBACK;
    rec.tag = sp->tag;
    rec.created = changed;
    rec.state = why;
    rec.digest = cb->url_digest;
    rec.callback.data = cb->name.data;
    rec.callback.len = cb->name.len;

    if (ngx_http_postback_kept_record(&rec, NULL, 0) == NGX_OK) {
        ngx_http_postback_spool_flush();
    }
}


/*
 * Appends what the zone's deliveries need, a batch at a time: one write
 * in flight per worker; a failed one is tried again, with the same
 * bytes, before anything else.
 */

void
ngx_http_postback_spool_flush(void)
{
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    /*
     * Nothing is appended before the journal was read once: a torn end
     * left by a crash is cut off first.
     */
    if (sp->shm_zone == NULL || sp->sync || sp->writer.busy
        || sp->retry.timer_set || !sp->ss->read
        || ngx_http_postback_batch_fill(1, 0) == 0)
    {
        return;
    }

    sp->writer.buf = sp->batch.buf;
    sp->writer.len = sp->batch.len;

    if (ngx_http_postback_job_post(&sp->writer) != NGX_OK) {
        ngx_add_timer(&sp->retry, NGX_HTTP_POSTBACK_WRITE_RETRY_MAX);
    }
}


/*
 * An empty batch gets, with `zone`, the records the zone hands out (all:
 * even those another writer has in hand), up to its size, then those
 * kept here.  Returns how many it holds.
 */

static ngx_uint_t
ngx_http_postback_batch_fill(ngx_flag_t zone, ngx_flag_t all)
{
    u_char                     *p;
    ngx_uint_t                  i;
    ngx_http_postback_batch_t   swap;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    if (sp->batch.nrefs) {
        /* a failed write, tried again as it was */
        return sp->batch.nrefs;
    }

    if (zone) {
        sp->batch.nrefs = ngx_http_postback_zone_journal_take(
                              sp->shm_zone, ngx_http_postback_batch_put,
                              &sp->batch, sp->batch.refs,
                              NGX_HTTP_POSTBACK_BATCH_REFS, all);
    }

    /*
     * Then those kept here: a key's change goes on disk after the
     * deliveries it let through, never before them.
     */
    if (sp->batch.nrefs == 0) {
        swap = sp->batch;
        sp->batch = sp->kept;
        sp->kept = swap;

    } else if (sp->kept.nrefs
               && ngx_http_postback_batch_room(&sp->batch, sp->kept.len,
                                               sp->kept.nrefs)
                  == NGX_OK)
    {
        ngx_memcpy(sp->batch.buf + sp->batch.len, sp->kept.buf,
                   sp->kept.len);
        ngx_memcpy(&sp->batch.refs[sp->batch.nrefs], sp->kept.refs,
                   sp->kept.nrefs * sizeof(ngx_http_postback_jref_t));
        sp->batch.len += sp->kept.len;
        sp->batch.nrefs += sp->kept.nrefs;
        ngx_http_postback_batch_clear(&sp->kept);
    }

    /* each record's place in the batch: frames are back to back */
    p = sp->batch.buf;

    for (i = 0; i < sp->batch.nrefs; i++) {
        sp->batch.refs[i].offset = p - sp->batch.buf;
        sp->batch.refs[i].size = pb_journal_frame_size(p);

        if (sp->batch.refs[i].whole) {
            sp->batch.refs[i].size += pb_journal_frame_size(
                                          p + sp->batch.refs[i].size);
        }

        p += sp->batch.refs[i].size;
    }

    sp->renewed = ngx_http_postback_now();

    return sp->batch.nrefs;
}


/* under the zone's lock: one record into the batch; 0: it is full */

static size_t
ngx_http_postback_batch_put(void *ctx, ngx_http_postback_jitem_t *item)
{
    size_t                      size;
    pb_journal_record_t         rec, fin;
    ngx_http_postback_jitem_t   end;
    ngx_http_postback_batch_t  *b = ctx;

    ngx_http_postback_journal_record(item, &rec);
    size = pb_journal_size(&rec);

    if (item->whole) {
        end = *item;
        end.finished = 1;
        ngx_http_postback_journal_record(&end, &fin);
        size += pb_journal_size(&fin);
    }

    /* one record bigger than a batch goes alone */
    if (b->len && b->len + size > NGX_HTTP_POSTBACK_BATCH_SIZE) {
        return 0;
    }

    /* the refs have their room: they must not move while taken */
    if (ngx_http_postback_batch_room(b, size, 0) != NGX_OK) {
        return 0;
    }

    /* created and finished in one write: a crash leaves both or neither */
    if (item->whole) {
        pb_journal_write(pb_journal_write(b->buf + b->len, &rec), &fin);

    } else {
        pb_journal_write(b->buf + b->len, &rec);
    }

    b->len += size;

    return size;
}


/* the batch holds `size` more bytes and `nrefs` more refs */

static ngx_int_t
ngx_http_postback_batch_room(ngx_http_postback_batch_t *b, size_t size,
    ngx_uint_t nrefs)
{
    u_char                    *buf;
    size_t                     cap;
    ngx_uint_t                 n;
    ngx_http_postback_jref_t  *refs;

    if (b->len + size > b->cap) {
        cap = ngx_max(b->cap * 2, b->len + size);

        buf = ngx_alloc(cap, ngx_cycle->log);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        if (b->len) {
            ngx_memcpy(buf, b->buf, b->len);
        }

        ngx_free(b->buf);
        b->buf = buf;
        b->cap = cap;
    }

    if (b->nrefs + nrefs > b->refs_cap) {
        n = ngx_max(b->refs_cap * 2, b->nrefs + nrefs);

        refs = ngx_alloc(n * sizeof(ngx_http_postback_jref_t),
                         ngx_cycle->log);
        if (refs == NULL) {
            return NGX_ERROR;
        }

        if (b->nrefs) {
            ngx_memcpy(refs, b->refs,
                       b->nrefs * sizeof(ngx_http_postback_jref_t));
        }

        ngx_free(b->refs);
        b->refs = refs;
        b->refs_cap = n;
    }

    return NGX_OK;
}


static void
ngx_http_postback_batch_clear(ngx_http_postback_batch_t *b)
{
    b->len = 0;
    b->nrefs = 0;
}


/* a journal item as a record, tagged with this zone */

static void
ngx_http_postback_journal_record(ngx_http_postback_jitem_t *item,
    pb_journal_record_t *rec)
{
    ngx_http_postback_request_t  *req;

    ngx_memzero(rec, sizeof(pb_journal_record_t));

    rec->tag = ngx_http_postback_spool.tag;
    rec->id.data = item->id;
    rec->id.len = NGX_HTTP_POSTBACK_ID_LEN;

    if (item->finished) {
        rec->type = PB_JOURNAL_FINISHED;
        rec->state = item->state;

        if (ngx_http_postback_spool.pmcf->history) {
            ngx_http_postback_journal_attempts(item, &rec->attempts);
        }

        return;
    }

    req = &item->req;

    rec->type = PB_JOURNAL_CREATED;
    rec->method = req->method;
    rec->created = req->created;
    rec->callback.data = item->callback.data;
    rec->callback.len = item->callback.len;
    rec->event.data = req->event.data;
    rec->event.len = req->event.len;
    rec->url.data = req->url.data;
    rec->url.len = req->url.len;
    rec->params_at = req->params_at;
    rec->headers.data = req->headers.data;
    rec->headers.len = req->headers.len;
    rec->body.data = req->body.data;
    rec->body.len = req->body.len;
    rec->fields.data = req->fields.data;
    rec->fields.len = req->fields.len;
    rec->key.data = req->key.data;
    rec->key.len = req->key.len;
    rec->armed = req->armed;
}


/*
 * Under the zone's lock: a finished delivery's attempts, encoded for the
 * history in this worker's buffer; none when memory runs out.
 */

static void
ngx_http_postback_journal_attempts(ngx_http_postback_jitem_t *item,
    pb_bytes_t *out)
{
    u_char                      *p;
    void                        *cursor;
    size_t                       size;
    pb_journal_attempt_t         a;
    ngx_http_postback_result_t   res;
    ngx_http_postback_spool_t   *sp = &ngx_http_postback_spool;

    size = 0;
    cursor = item->attempts;

    while (ngx_http_postback_zone_attempt_next(&cursor, &res)) {
        ngx_http_postback_journal_attempt(&res, &a);
        size += pb_journal_attempt_size(&a);
    }

    if (size > sp->attempts_cap) {
        p = ngx_alloc(size, ngx_cycle->log);
        if (p == NULL) {
            return;
        }

        ngx_free(sp->attempts);
        sp->attempts = p;
        sp->attempts_cap = size;
    }

    p = sp->attempts;
    cursor = item->attempts;

    while (ngx_http_postback_zone_attempt_next(&cursor, &res)) {
        ngx_http_postback_journal_attempt(&res, &a);
        p = pb_journal_attempt_write(p, &a);
    }

    out->data = sp->attempts;
    out->len = size;
}


static void
ngx_http_postback_journal_attempt(ngx_http_postback_result_t *res,
    pb_journal_attempt_t *a)
{
    a->start = res->start;
    a->duration = (uint32_t) res->duration;
    a->status = (int32_t) res->status;
    a->manual = res->manual ? 1 : 0;
    a->error.data = res->error.data;
    a->error.len = res->error.len;
    a->response.data = res->response.data;
    a->response.len = res->response.len;
}


/*
 * A batch's write ended: its records are on disk, each at its place, or
 * the same bytes are tried again soon.
 */

static void
ngx_http_postback_written(ngx_http_postback_job_t *job)
{
    off_t                          start, at;
    ngx_uint_t                     i;
    ngx_http_postback_jref_t      *ref;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_spool_t     *sp = &ngx_http_postback_spool;
    ngx_http_postback_spool_sh_t  *ss;

    shpool = (ngx_slab_pool_t *) sp->shm_zone->shm.addr;
    ss = ngx_http_postback_spool_sh();

    if (job->failed) {
        ngx_shmtx_lock(&shpool->mutex);
        ss->write_errors++;
        ngx_shmtx_unlock(&shpool->mutex);

        /* one line per streak of failures; the counter counts them all */
        if (!sp->failing) {
            ngx_log_error(NGX_LOG_ERR, sp->log, job->err,
                          "postback: writing to spool \"%V\" failed: %s; "
                          "%ui records kept, tried again", job->path,
                          job->failed, sp->batch.nrefs);
        }

        sp->failing = 1;
        sp->backoff = sp->backoff ? ngx_min(sp->backoff * 2,
                                            NGX_HTTP_POSTBACK_WRITE_RETRY_MAX)
                                  : NGX_HTTP_POSTBACK_WRITE_RETRY_MIN;

        ngx_add_timer(&sp->retry, sp->backoff);
        return;
    }

    if (sp->failing) {
        ngx_log_error(NGX_LOG_NOTICE, sp->log, 0,
                      "postback: writing to spool \"%V\" works again",
                      job->path);
        sp->failing = 0;
    }

    sp->backoff = 0;

    /* each record's place in the journal; -1 where it is not known */
    start = (job->end < 0) ? -1 : job->end - (off_t) sp->batch.len;

    for (i = 0; i < sp->batch.nrefs; i++) {
        ref = &sp->batch.refs[i];
        ref->file = job->file;
        ref->offset = (start < 0) ? -1 : start + ref->offset;
    }

    ngx_http_postback_zone_journal_end(sp->shm_zone, sp->batch.refs,
                                       sp->batch.nrefs,
                                       NGX_HTTP_POSTBACK_WRITTEN, NULL);

    ngx_shmtx_lock(&shpool->mutex);

    ss->bytes += sp->batch.len;

    /* deliveries waiting for room are read back from where they are */
    for (i = 0; i < sp->batch.nrefs; i++) {
        ref = &sp->batch.refs[i];

        if (!ref->spilled) {
            continue;
        }

        ss->waiting_bytes += ref->size;

        /* another file than the one read: from its start, to be sure */
        at = (ref->offset < 0 || job->file != ss->file) ? 0 : ref->offset;

        if (ss->waiting == -1 || ss->waiting > at) {
            ss->waiting = at;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_postback_batch_clear(&sp->batch);
}


static void
ngx_http_postback_spool_retry(ngx_event_t *ev)
{
    ngx_http_postback_spool_flush();
}


/*
 * Every worker, each second: the leases of what its writer has in hand go
 * on, what no writer took is written, and the upkeep is done by one.
 */

static void
ngx_http_postback_spool_tick_handler(ngx_event_t *ev)
{
    uint64_t                    now;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    now = ngx_http_postback_now();

    if ((sp->batch.nrefs || sp->kept.nrefs)
        && now - sp->renewed >= NGX_HTTP_POSTBACK_RENEW)
    {
        ngx_http_postback_zone_journal_end(sp->shm_zone, sp->batch.refs,
                                           sp->batch.nrefs,
                                           NGX_HTTP_POSTBACK_IN_HAND, NULL);
        sp->renewed = now;
    }

    ngx_http_postback_spool_flush();

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_http_postback_upkeep();
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, NGX_HTTP_POSTBACK_TICK);
    }
}


/* one worker at a time does the upkeep: this one, now? */

static ngx_flag_t
ngx_http_postback_upkeep_lease(ngx_flag_t keep)
{
    uint64_t                       now;
    ngx_flag_t                     ours;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_spool_sh_t  *ss;

    shpool = (ngx_slab_pool_t *) ngx_http_postback_spool.shm_zone->shm.addr;
    now = ngx_http_postback_now();
    ours = 0;

    ngx_shmtx_lock(&shpool->mutex);

    ss = ngx_http_postback_spool_sh();

    if (ss && (ss->upkeep_owner == ngx_pid || ss->upkeep_lease <= now)) {
        ss->upkeep_owner = keep ? ngx_pid : 0;
        ss->upkeep_lease = keep ? now + NGX_HTTP_POSTBACK_UPKEEP_LEASE : 0;
        ours = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return ours;
}


/*
 * The upkeep's next job: a compaction once the journal is mostly finished
 * records; else a read: from where it was read up to, or, when the zone
 * has room, from the oldest delivery waiting there.
 */

static void
ngx_http_postback_upkeep(void)
{
    uint64_t                       now, live;
    ngx_flag_t                     refill;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_job_t       *job;
    ngx_http_postback_spool_t     *sp = &ngx_http_postback_spool;
    ngx_http_postback_spool_sh_t  *ss;

    job = &sp->upkeep;

    /* a job in flight keeps the lease: no other worker reads meanwhile */
    if (!ngx_http_postback_upkeep_lease(1) || job->busy) {
        return;
    }

    shpool = (ngx_slab_pool_t *) sp->shm_zone->shm.addr;
    now = ngx_http_postback_now();
    live = ngx_http_postback_zone_journal_live(sp->shm_zone);
    refill = ngx_http_postback_zone_in_spool(sp->shm_zone)
             && ngx_http_postback_zone_has_room(sp->shm_zone);

    ngx_shmtx_lock(&shpool->mutex);

    ss = ngx_http_postback_spool_sh();

    job->kind = NGX_HTTP_POSTBACK_JOB_SCAN;
    job->file = ss->file;
    job->tail = ss->tail;
    job->from = (refill && ss->waiting != -1 && ss->waiting < ss->tail)
                ? ss->waiting : ss->tail;
    job->tag = sp->tag;

    live += ss->waiting_bytes;

    if (ss->read && !sp->read_first && ss->compact_after <= now
        && (ss->tidy
            || (ss->bytes >= NGX_HTTP_POSTBACK_COMPACT_MIN
                && live * 4 + sp->pmcf->history * 2 <= ss->bytes)))
    {
        job->kind = NGX_HTTP_POSTBACK_JOB_COMPACT;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_http_postback_job_post(job);
}


/*
 * What a read found, from job->from to job->end: others' records,
 * ingested; a torn end that could not be cut off is read again next
 * time.
 */

static void
ngx_http_postback_scanned(ngx_http_postback_job_t *job)
{
    off_t                          waiting;
    int64_t                        waiting_bytes;
    ngx_flag_t                     first;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_spool_t     *sp = &ngx_http_postback_spool;
    ngx_http_postback_spool_sh_t  *ss;

    if (job->failed) {
        /* one line per streak of failures */
        if (!sp->read_failing) {
            ngx_log_error(NGX_LOG_ERR, sp->log, job->err,
                          "postback: reading spool \"%V\" failed: %s",
                          job->path, job->failed);
            sp->read_failing = 1;
        }

        return;
    }

    sp->read_failing = 0;
    sp->read_first = 0;

    if (job->damaged) {
        ngx_log_error(NGX_LOG_WARN, sp->log, 0,
                      "postback: spool \"%V\" has %uz damaged bytes, "
                      "skipped", job->path, job->damaged);
    }

    shpool = (ngx_slab_pool_t *) sp->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    ss = ngx_http_postback_spool_sh();
    first = !ss->read;
    ngx_shmtx_unlock(&shpool->mutex);

    if (job->cut) {
        ngx_log_error(NGX_LOG_WARN, sp->log, 0,
                      "postback: spool \"%V\" ends with a torn record of %O "
                      "bytes, skipped (cut off)", job->path, job->cut);
    }

    waiting = ngx_http_postback_ingest(job, first, &waiting_bytes);

    /* job->torn: where a torn record begins (to be read again), or the end */
    ngx_http_postback_read_up_to(job, job->torn, waiting, waiting_bytes,
                                 first);

    /* finished deliveries written before it can leave the zone now */
    ngx_http_postback_zone_journal_settled(sp->shm_zone, job->file,
                                           job->torn);

    /* more wait: as room frees (finished ones go), soon, not in a second */
    if (waiting != -1
        && (job->restored || ngx_http_postback_zone_has_room(sp->shm_zone)))
    {
        if (sp->tick.timer_set) {
            ngx_del_timer(&sp->tick);
        }

        ngx_add_timer(&sp->tick, NGX_HTTP_POSTBACK_REFILL_PACE);
    }
}


/* the journal is read up to tail; the oldest that waits for room: waiting */

static void
ngx_http_postback_read_up_to(ngx_http_postback_job_t *job, off_t tail,
    off_t waiting, int64_t waiting_bytes, ngx_flag_t first)
{
    uint64_t                       live;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_spool_sh_t  *ss;

    shpool = (ngx_slab_pool_t *) ngx_http_postback_spool.shm_zone->shm.addr;
    live = ngx_http_postback_zone_journal_live(
                                        ngx_http_postback_spool.shm_zone);

    ngx_shmtx_lock(&shpool->mutex);

    ss = ngx_http_postback_spool_sh();

    ss->tail = tail;
    ss->file = job->file;
    ss->bytes = ngx_max(ss->bytes, (uint64_t) job->end);
    ss->waiting_bytes += waiting_bytes;
    ss->read = 1;

    /* a journal read at a start is rewritten if anything in it is done */
    if (first) {
        ss->tidy = (ss->bytes > live + ss->waiting_bytes
                               + ngx_http_postback_spool.pmcf->history);
    }

    /* read from the oldest waiting one: what still waits is after it */
    if (job->from <= ss->waiting || ss->waiting == -1) {
        ss->waiting = waiting;

    } else if (waiting != -1 && waiting < ss->waiting) {
        ss->waiting = waiting;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * The live created records read that the zone does not have come in, as
 * room allows: others' (at a start, every record is another zone's), and
 * those that were waiting for room.  Others' finished records end the
 * zone's copies.  Returns the place of the first one that still waits
 * for room, or -1.
 */

static off_t
ngx_http_postback_ingest(ngx_http_postback_job_t *job, ngx_flag_t first,
    int64_t *waiting_bytes)
{
    off_t                       at, waiting;
    size_t                      i, used;
    uint64_t                    grace;
    ngx_int_t                   rc;
    ngx_flag_t                  counted, start, room;
    ngx_uint_t                  counts[4];
    pb_journal_entry_t         *e;
    pb_journal_record_t         rec;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    ngx_memzero(counts, sizeof(counts));
    waiting = -1;
    room = 1;
    *waiting_bytes = 0;

    /* at a start, not after a reload: nothing of them is in flight */
    start = (first && !ngx_http_postback_spool_sh()->reload);

    /*
     * The keys and callbacks' switches first: the timeout events read back
     * are checked on the keys, deliveries of a disabled callback paused.
     */
    for (i = 0; i < job->nentries; i++) {
        e = &job->entries[i];

        if (e->type == PB_JOURNAL_CREATED || e->type == PB_JOURNAL_FINISHED
            || !e->live || e->tag == job->tag)
        {
            continue;
        }

        (void) pb_journal_read(job->buf + e->offset, e->size, &rec, &used);

        if (rec.type == PB_JOURNAL_KEY) {
            ngx_http_postback_ingest_key(&rec);

        } else {
            ngx_http_postback_ingest_callback(&rec);
        }
    }

    for (i = 0; i < job->nentries; i++) {
        e = &job->entries[i];
        at = job->from + (off_t) e->offset;

        /* waiting ones are counted once, when first read */
        counted = (e->tag == job->tag || at < job->tail);

        if (e->type == PB_JOURNAL_CREATED && e->history && first) {
            ngx_http_postback_ingest_finished(job, e);
            continue;
        }

        if ((e->type == PB_JOURNAL_CREATED && !e->live)
            || (e->type == PB_JOURNAL_FINISHED && counted)
            || e->type == PB_JOURNAL_KEY || e->type == PB_JOURNAL_CALLBACK)
        {
            continue;
        }

        (void) pb_journal_read(job->buf + e->offset, e->size, &rec, &used);

        if (rec.type == PB_JOURNAL_FINISHED) {
            if (rec.id.len == NGX_HTTP_POSTBACK_ID_LEN) {
                ngx_http_postback_zone_finished_elsewhere(sp->shm_zone,
                    (u_char *) rec.id.data, rec.state);
            }

            continue;
        }

        /* another's may still be in flight in an older worker */
        grace = (start || e->tag == job->tag) ? 0 : NGX_HTTP_POSTBACK_GRACE;

        rc = ngx_http_postback_ingest_one(&rec, e->size, grace, counted,
                                          room);

        /* the first that finds no room: the others are only counted */
        if (rc == 1 && waiting == -1) {
            waiting = at;
            room = 0;
        }

        /* the bytes, and what was not counted before */
        if (counted && (rc == 0 || rc == 2)) {
            *waiting_bytes -= e->size;

        } else if (!counted && rc == 1) {
            *waiting_bytes += e->size;
        }

        if (!counted || rc == 0) {
            counts[rc]++;
        }
    }

    ngx_http_postback_ingest_log(job, first, counts);

    if (counts[0]) {
        ngx_http_postback_deliver_soon();
    }

    job->restored = counts[0];

    return waiting;
}


static void
ngx_http_postback_ingest_log(ngx_http_postback_job_t *job, ngx_flag_t first,
    ngx_uint_t *counts)
{
    if (first && (counts[0] || counts[1] || counts[2])) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_postback_spool.log, 0,
                      "postback: spool \"%V\": %ui pending deliveries "
                      "restored, %ui kept in the spool for want of room, "
                      "%ui of callbacks no longer configured left out",
                      job->path, counts[0], counts[1], counts[2]);

    } else if (!first && job->from >= job->tail && counts[0] + counts[1]) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_postback_spool.log, 0,
                      "postback: spool \"%V\": %ui deliveries of an earlier "
                      "configuration taken over", job->path,
                      counts[0] + counts[1]);
    }
}


/* another zone's key record, or this one's of before a start */

static void
ngx_http_postback_ingest_key(pb_journal_record_t *rec)
{
    ngx_str_t  key, event;

    key.data = (u_char *) rec->key.data;
    key.len = rec->key.len;
    event.data = (u_char *) rec->event.data;
    event.len = rec->event.len;

    ngx_http_postback_keys_restore(ngx_http_postback_spool.shm_zone, &key,
                                   &event, rec->created);
}


/*
 * A delivery of the journal's history, read at a start: its created
 * record, and its finished one with the attempts.
 */

static void
ngx_http_postback_ingest_finished(ngx_http_postback_job_t *job,
    pb_journal_entry_t *e)
{
    size_t                       used, n;
    ngx_str_t                    name;
    pb_bytes_t                   rest;
    pb_journal_entry_t          *end;
    pb_journal_record_t          rec, fin;
    pb_journal_attempt_t         a;
    ngx_http_postback_result_t   attempts[NGX_HTTP_POSTBACK_HISTORY_ATTEMPTS];
    ngx_http_postback_request_t  req;

    end = &job->entries[e->finished - 1];

    (void) pb_journal_read(job->buf + e->offset, e->size, &rec, &used);
    (void) pb_journal_read(job->buf + end->offset, end->size, &fin, &used);

    if (rec.method > NGX_HTTP_POSTBACK_POST_JSON
        || rec.id.len != NGX_HTTP_POSTBACK_ID_LEN)
    {
        return;
    }

    /* attempts= is 100 at most: more are manual ones, the last left out */
    rest = fin.attempts;

    for (n = 0;
         n < NGX_HTTP_POSTBACK_HISTORY_ATTEMPTS
         && pb_journal_attempt_next(&rest, &a) == 1;
         n++)
    {
        ngx_memzero(&attempts[n], sizeof(ngx_http_postback_result_t));
        attempts[n].start = a.start;
        attempts[n].duration = a.duration;
        attempts[n].status = a.status;
        attempts[n].manual = a.manual;
        attempts[n].error.data = (u_char *) a.error.data;
        attempts[n].error.len = a.error.len;
        attempts[n].response.data = (u_char *) a.response.data;
        attempts[n].response.len = a.response.len;
    }

    name.data = (u_char *) rec.callback.data;
    name.len = rec.callback.len;

    ngx_http_postback_record_req(&rec, &req);

    (void) ngx_http_postback_zone_restore_finished(
               ngx_http_postback_spool.shm_zone, &name,
               (u_char *) rec.id.data, &req, fin.state, attempts, n);
}


/* a callback's switch of before a start */

static void
ngx_http_postback_ingest_callback(pb_journal_record_t *rec)
{
    ngx_str_t  name;

    name.data = (u_char *) rec->callback.data;
    name.len = rec->callback.len;

    ngx_http_postback_zone_callback_restore(ngx_http_postback_spool.shm_zone,
                                            &name, rec->state, rec->digest,
                                            rec->created);
}


/*
 * One created record into the zone (room: if there may be room for it),
 * due `grace` past its callback's timeout: 0 restored; 1 it waits for
 * room; 2 left out: damaged, or of a callback not known (then it is
 * written finished, not to be read as pending again); 3 the zone has it.
 */

static ngx_int_t
ngx_http_postback_ingest_one(pb_journal_record_t *rec, size_t size,
    uint64_t grace, ngx_flag_t counted, ngx_flag_t room)
{
    ngx_str_t                     name;
    ngx_http_postback_request_t   req;
    ngx_http_postback_cb_conf_t  *cb;
    ngx_http_postback_spool_t    *sp = &ngx_http_postback_spool;

    if (rec->method > NGX_HTTP_POSTBACK_POST_JSON
        || rec->id.len != NGX_HTTP_POSTBACK_ID_LEN)
    {
        return 2;
    }

    name.data = (u_char *) rec->callback.data;
    name.len = rec->callback.len;

    cb = ngx_http_postback_find_callback(sp->pmcf, &name);

    ngx_http_postback_record_req(rec, &req);

    switch (ngx_http_postback_zone_restore(sp->shm_zone, &name, cb,
                (u_char *) rec->id.data, &req, size,
                ngx_http_postback_now()
                + ((grace && cb) ? cb->timeout + grace : 0),
                counted, room))
    {
    case NGX_OK:
        return 0;

    case NGX_BUSY:
        return 1;

    case NGX_ABORT:
        ngx_http_postback_spool_end((u_char *) rec->id.data);
        return 2;

    default: /* NGX_DECLINED */
        return 3;
    }
}


static void
ngx_http_postback_record_req(pb_journal_record_t *rec,
    ngx_http_postback_request_t *req)
{
    ngx_memzero(req, sizeof(ngx_http_postback_request_t));

    req->method = rec->method;
    req->created = rec->created;
    req->armed = rec->armed;
    req->event.data = (u_char *) rec->event.data;
    req->event.len = rec->event.len;
    req->fields.data = (u_char *) rec->fields.data;
    req->fields.len = rec->fields.len;
    req->key.data = (u_char *) rec->key.data;
    req->key.len = rec->key.len;
    req->url.data = (u_char *) rec->url.data;
    req->url.len = rec->url.len;
    req->params_at = rec->params_at;
    req->headers.data = (u_char *) rec->headers.data;
    req->headers.len = rec->headers.len;
    req->body.data = (u_char *) rec->body.data;
    req->body.len = rec->body.len;
}


/* the journal was rewritten: its new size; waiting ones are in it */

static void
ngx_http_postback_compacted(ngx_http_postback_job_t *job)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_spool_t     *sp = &ngx_http_postback_spool;
    ngx_http_postback_spool_sh_t  *ss;

    shpool = (ngx_slab_pool_t *) sp->shm_zone->shm.addr;
    ss = ngx_http_postback_spool_sh();

    if (job->later) {
        /* another zone's records are to be read first */
        sp->read_first = 1;
        return;
    }

    if (job->failed) {
        ngx_log_error(NGX_LOG_ERR, sp->log, job->err,
                      "postback: spool \"%V\" not compacted: %s; the journal "
                      "is kept as it is", job->path, job->failed);

        ngx_shmtx_lock(&shpool->mutex);
        ss->compact_after = ngx_http_postback_now()
                            + NGX_HTTP_POSTBACK_COMPACT_WAIT;
        ngx_shmtx_unlock(&shpool->mutex);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, sp->log, 0,
                  "postback: spool compacted from %O to %O bytes",
                  job->old_size, job->end);

    ngx_shmtx_lock(&shpool->mutex);

    ss->file = job->file;
    ss->tail = job->end;
    ss->bytes = job->end;
    ss->waiting = (ss->waiting == -1) ? -1 : 0;
    ss->tidy = 0;
    ss->compactions++;

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_postback_zone_journal_settled(sp->shm_zone, job->file, job->end);
}


/*
 * Leaving.  The thread pool has stopped, with the jobs posted before it
 * done: their ends run here, and from now the spool writes at once.
 */

void
ngx_http_postback_spool_leave(void)
{
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    if (sp->shm_zone == NULL) {
        return;
    }

    sp->sync = 1;

#if (NGX_THREADS)
    if (sp->writer.busy) {
        ngx_http_postback_job_end(&sp->writer);
    }

    if (sp->upkeep.busy) {
        ngx_http_postback_job_end(&sp->upkeep);
    }
#endif
}


void
ngx_http_postback_spool_exit(ngx_cycle_t *cycle)
{
    ngx_flag_t                  last;
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    if (sp->shm_zone == NULL) {
        return;
    }

    (void) ngx_http_postback_upkeep_lease(0);

    /*
     * What this worker holds is written now; when no newer configuration
     * shares the zone (nginx stops, or a reload replaced the zone), so is
     * everything the zone still needs, and what cannot be written is
     * logged as lost.  Else the others write it.
     */

    if (sp->retry.timer_set) {
        ngx_del_timer(&sp->retry);
    }

    if (sp->tick.timer_set) {
        ngx_del_timer(&sp->tick);
    }

    last = (ngx_http_postback_zone_generation(sp->shm_zone)
            == sp->pmcf->generation);

    ngx_http_postback_spool_drain(last, 0);

    if (sp->writer.fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(sp->writer.fd);
        sp->writer.fd = NGX_INVALID_FILE;
    }

    sp->shm_zone = NULL;
}


/*
 * The master, as nginx stops, after its workers: what the zone still
 * needs is written, whoever had it in hand; what cannot be is logged.
 */

void
ngx_http_postback_spool_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_postback_spool_t      *sp = &ngx_http_postback_spool;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_postback_module);

    if (pmcf == NULL || pmcf->spool.len == 0 || pmcf->shm_zone == NULL
        || ngx_http_postback_zone_spool(pmcf->shm_zone) == NULL)
    {
        return;
    }

    sp->pmcf = pmcf;
    sp->shm_zone = pmcf->shm_zone;
    sp->ss = ngx_http_postback_zone_spool(pmcf->shm_zone);
    sp->log = cycle->log;
    sp->tag = ngx_http_postback_zone_tag(pmcf->shm_zone);
    sp->sync = 1;

    if (ngx_http_postback_job_init(&sp->writer, NGX_HTTP_POSTBACK_JOB_WRITE,
                                   cycle)
        != NGX_OK
        || ngx_http_postback_batch_room(&sp->batch,
                                        NGX_HTTP_POSTBACK_BATCH_SIZE,
                                        NGX_HTTP_POSTBACK_BATCH_REFS)
           != NGX_OK)
    {
        return;
    }

    ngx_http_postback_spool_drain(1, 1);

    if (sp->writer.fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(sp->writer.fd);
    }

    sp->shm_zone = NULL;
}


/*
 * Writes at once, batch by batch, what this worker holds and (zone) what
 * the zone needs (all: even what another writer has in hand).  At the
 * first failure each delivery not on disk at all is logged as lost.
 */

static void
ngx_http_postback_spool_drain(ngx_flag_t zone, ngx_flag_t all)
{
    u_char                      what[NGX_MAX_PATH + 64];
    ngx_http_postback_spool_t  *sp = &ngx_http_postback_spool;

    while (ngx_http_postback_batch_fill(zone, all)) {
        sp->writer.buf = sp->batch.buf;
        sp->writer.len = sp->batch.len;
        sp->writer.err = 0;
        sp->writer.failed = NULL;

        ngx_http_postback_write_io(&sp->writer);

        if (sp->writer.failed) {
            break;
        }

        ngx_http_postback_written(&sp->writer);
    }

    if (sp->batch.nrefs == 0) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, sp->log, sp->writer.err,
                  "postback: writing to spool \"%V\" failed: %s, as %s",
                  &sp->pmcf->spool, sp->writer.failed,
                  zone ? "nginx stops" : "this worker leaves");

    ngx_snprintf(what, sizeof(what), "lost, not written to spool \"%V\"%Z",
                 &sp->pmcf->spool);

    /* the zone's records are the other workers' to write, while any is */
    do {
        ngx_http_postback_batch_lost(&sp->batch,
                                     zone ? NGX_HTTP_POSTBACK_UNWRITTEN
                                          : NGX_HTTP_POSTBACK_RELEASED,
                                     (char *) what);

    } while (ngx_http_postback_batch_fill(zone, all));
}


/*
 * A batch that cannot be written: the zone's records are lost (the zone
 * logs those not on disk at all) or left to others (end); those waiting
 * for room, held here only, are logged from the batch.
 */

static void
ngx_http_postback_batch_lost(ngx_http_postback_batch_t *b, ngx_uint_t end,
    char *what)
{
    size_t                          used;
    ngx_str_t                       callback;
    ngx_uint_t                      i;
    pb_journal_record_t             rec;
    ngx_slab_pool_t                *shpool;
    ngx_http_postback_request_t     req;
    ngx_http_postback_spool_t      *sp = &ngx_http_postback_spool;

    ngx_http_postback_zone_journal_end(sp->shm_zone, b->refs, b->nrefs, end,
                                       what);

    shpool = (ngx_slab_pool_t *) sp->shm_zone->shm.addr;

    for (i = 0; i < b->nrefs; i++) {
        if (!b->refs[i].spilled
            || pb_journal_read(b->buf + b->refs[i].offset, b->refs[i].size,
                               &rec, &used)
               != PB_JOURNAL_OK)
        {
            continue;
        }

        ngx_http_postback_record_req(&rec, &req);
        callback.data = (u_char *) rec.callback.data;
        callback.len = rec.callback.len;

        ngx_http_postback_log_lost(sp->log, b->refs[i].id, what, &callback,
                                   &req.event, &req.fields);
        ngx_http_postback_zone_spilled(sp->shm_zone, &callback, -1, 0);

        ngx_shmtx_lock(&shpool->mutex);
        ngx_http_postback_spool_sh()->lost++;
        ngx_shmtx_unlock(&shpool->mutex);
    }

    ngx_http_postback_batch_clear(b);
}


/* ------------------------------------------------------------------ */
/* in a thread: file I/O only                                          */


/*
 * Appends the batch, under the exclusive lock, and tells where it ended.
 * A write that fails half-way is cut off again: no torn record is left
 * for others to append after.
 */

static void
ngx_http_postback_write_io(ngx_http_postback_job_t *job)
{
    u_char           *p;
    size_t            left;
    ssize_t           n;
    ngx_file_info_t   fi;

    if (ngx_http_postback_current(job, &fi) != NGX_OK) {
        return;
    }

    for (p = job->buf, left = job->len; left; p += n, left -= n) {
        n = write(job->fd, p, left);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            job->err = (n == -1) ? ngx_errno : NGX_ENOSPC;
            job->failed = "write()";
            break;
        }
    }

    if (job->failed && ngx_is_file(&fi)
        && ftruncate(job->fd, fi.st_size) == -1)
    {
        /* the torn part stays: a reader skips it */
        job->err = ngx_errno;
        job->failed = "write(), then ftruncate()";
    }

    /* with O_APPEND, the offset is the end of this write: -1 in a pipe */
    job->end = job->failed ? -1 : lseek(job->fd, 0, SEEK_CUR);

    (void) flock(job->fd, LOCK_UN);
}


/*
 * This worker's descriptor is the journal's, opened (again, after a
 * compaction replaced the file or someone removed it) and locked for a
 * write: writers, readers and compactions take turns.  *fd_info: the
 * file as it is before the write.
 */

static ngx_int_t
ngx_http_postback_current(ngx_http_postback_job_t *job,
    ngx_file_info_t *fd_info)
{
    ngx_uint_t       tries;
    ngx_file_info_t  path_info;

    for (tries = 0; tries < 3; tries++) {

        if (job->fd == NGX_INVALID_FILE) {
            job->fd = ngx_open_file(job->path->data, NGX_FILE_APPEND,
                                    NGX_FILE_CREATE_OR_OPEN,
                                    NGX_FILE_OWNER_ACCESS);
            if (job->fd == NGX_INVALID_FILE) {
                job->err = ngx_errno;
                job->failed = ngx_open_file_n;
                return NGX_ERROR;
            }
        }

        if (flock(job->fd, LOCK_EX) == -1) {
            job->err = ngx_errno;
            job->failed = "flock()";
            return NGX_ERROR;
        }

        if (ngx_fd_info(job->fd, fd_info) == NGX_FILE_ERROR) {
            job->err = ngx_errno;
            job->failed = ngx_fd_info_n;
            (void) flock(job->fd, LOCK_UN);
            return NGX_ERROR;
        }

        if (ngx_file_info(job->path->data, &path_info) != NGX_FILE_ERROR
            && path_info.st_ino == fd_info->st_ino
            && path_info.st_dev == fd_info->st_dev)
        {
            job->file = (uint64_t) fd_info->st_ino;
            return NGX_OK;
        }

        (void) flock(job->fd, LOCK_UN);
        (void) ngx_close_file(job->fd);
        job->fd = NGX_INVALID_FILE;
    }

    job->failed = "the journal was replaced again and again";

    return NGX_ERROR;
}


/*
 * Reads the journal from job->from (from the start if it is another file
 * than job->file), under the shared lock: no write is half done then.  A
 * torn record at its end (a crash in the middle of a write) is cut off,
 * under the exclusive lock, before anything is appended after it.
 */

static void
ngx_http_postback_scan_io(ngx_http_postback_job_t *job)
{
    size_t           end;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    job->end = 0;
    job->torn = 0;
    job->cut = 0;

    fd = ngx_http_postback_open_read(job, &fi);

    if (fd == NGX_INVALID_FILE) {
        if (job->err == NGX_ENOENT) {
            /* no journal yet */
            job->err = 0;
            job->failed = NULL;
            job->file = 0;
        }

        return;
    }

    if (flock(fd, LOCK_SH) == -1 || ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        job->err = ngx_errno;
        job->failed = "flock()";
        goto done;
    }

    if ((uint64_t) fi.st_ino != job->file || job->from > fi.st_size) {
        job->from = 0;
    }

    job->file = (uint64_t) fi.st_ino;
    job->end = fi.st_size;

    if (ngx_http_postback_read_all(job, fd, job->from, fi.st_size) != NGX_OK
        || ngx_http_postback_list(job, &end) != NGX_OK)
    {
        goto done;
    }

    job->torn = job->from + (off_t) end;

    /* the lock changes hands: only if nothing was appended meanwhile */
    if (job->torn < job->end
        && flock(fd, LOCK_EX) == 0
        && ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
        && fi.st_size == job->end
        && ftruncate(fd, job->torn) == 0)
    {
        job->cut = job->end - job->torn;
        job->end = job->torn;
    }

done:

    (void) ngx_close_file(fd);
}


/* the records of job->buf, and which created ones are live */

static ngx_int_t
ngx_http_postback_list(ngx_http_postback_job_t *job, size_t *end)
{
    size_t               n, max, at;
    pb_journal_entry_t  *e;

    job->damaged = 0;
    job->nentries = 0;
    max = 0;
    at = 0;

    do {
        /* the list grows as it goes: 50 bytes or so make a record */
        max = max ? max * 2 : job->len / 512 + 16;

        e = realloc(job->entries, max * sizeof(pb_journal_entry_t));
        if (e == NULL) {
            job->failed = "out of memory";
            return NGX_ERROR;
        }

        job->entries = e;

        n = pb_journal_scan(job->buf + at, job->len - at,
                            e + job->nentries, max - job->nentries,
                            &job->damaged, end);

        for (e += job->nentries; n; n--, e++, job->nentries++) {
            e->offset += at;
        }

        at += *end;
        *end = at;

    } while (job->nentries == max);

    if (pb_journal_live(job->entries, job->nentries, job->history) < 0) {
        job->failed = "out of memory";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the journal, opened to be read: a regular file only */

static ngx_fd_t
ngx_http_postback_open_read(ngx_http_postback_job_t *job, ngx_file_info_t *fi)
{
    ngx_fd_t  fd;

    /* not blocking on a FIFO left in its place; a torn end is cut off */
    fd = ngx_open_file(job->path->data, NGX_FILE_RDWR|NGX_FILE_NONBLOCK,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        job->err = ngx_errno;
        job->failed = ngx_open_file_n;
        return NGX_INVALID_FILE;
    }

    if (ngx_fd_info(fd, fi) == NGX_FILE_ERROR) {
        job->err = ngx_errno;
        job->failed = ngx_fd_info_n;
        (void) ngx_close_file(fd);
        return NGX_INVALID_FILE;
    }

    if (!ngx_is_file(fi)) {
        job->failed = "not a regular file";
        (void) ngx_close_file(fd);
        return NGX_INVALID_FILE;
    }

    return fd;
}


/* job->buf: the bytes of fd from `from` to `size` */

static ngx_int_t
ngx_http_postback_read_all(ngx_http_postback_job_t *job, ngx_fd_t fd,
    off_t from, off_t size)
{
    size_t   len;
    ssize_t  n;

    job->len = 0;
    job->buf = malloc((size_t) (size - from) + 1);

    if (job->buf == NULL) {
        job->failed = "out of memory";
        return NGX_ERROR;
    }

    while (job->len < (size_t) (size - from)) {
        len = (size_t) (size - from) - job->len;
        n = pread(fd, job->buf + job->len, len, from + (off_t) job->len);

        if (n == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        if (n <= 0) {
            /* shorter than it was: what was read is read */
            if (n == -1) {
                job->err = ngx_errno;
                job->failed = "pread()";
                return NGX_ERROR;
            }

            break;
        }

        job->len += n;
    }

    return NGX_OK;
}


/*
 * Rewrites the journal with its live created, key and callback records,
 * under an exclusive lock: appenders wait, then follow the new file.
 * Records of another zone not read yet put it off.  The new file is
 * fsync'd before it replaces the old one; a failure leaves the old one as
 * it is.
 */

static void
ngx_http_postback_compact_io(ngx_http_postback_job_t *job)
{
    size_t           i, end;
    ngx_fd_t         fd;
    ngx_file_info_t  fi, pi;

    fd = ngx_http_postback_open_read(job, &fi);
    if (fd == NGX_INVALID_FILE) {
        return;
    }

    if (flock(fd, LOCK_EX) == -1) {
        job->err = ngx_errno;
        job->failed = "flock()";
        goto done;
    }

    /* the file the lock is on is still the journal, as it is now */
    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_info(job->path->data, &pi) == NGX_FILE_ERROR
        || pi.st_ino != fi.st_ino)
    {
        job->failed = "the journal was replaced meanwhile";
        goto done;
    }

    job->old_size = fi.st_size;

    if (ngx_http_postback_read_all(job, fd, 0, fi.st_size) != NGX_OK
        || ngx_http_postback_list(job, &end) != NGX_OK)
    {
        goto done;
    }

    for (i = 0; i < job->nentries; i++) {
        if (job->entries[i].offset >= (size_t) job->tail
            && job->entries[i].tag != job->tag)
        {
            job->later = 1;
            goto done;
        }
    }

    (void) ngx_http_postback_compact_write(job);

done:

    (void) ngx_close_file(fd);
}


/* the live records into the journal's rewrite, which replaces it */

static ngx_int_t
ngx_http_postback_compact_write(ngx_http_postback_job_t *job)
{
    size_t               i;
    ssize_t              n;
    ngx_fd_t             fd;
    ngx_file_info_t      fi;
    pb_journal_entry_t  *e;

    /* made anew: an older one's mode must not stay */
    (void) ngx_delete_file(job->path_new->data);

    fd = ngx_open_file(job->path_new->data, NGX_FILE_WRONLY,
                       NGX_FILE_TRUNCATE, NGX_FILE_OWNER_ACCESS);
    if (fd == NGX_INVALID_FILE) {
        job->err = ngx_errno;
        job->failed = ngx_open_file_n " of the rewrite";
        return NGX_ERROR;
    }

    for (i = 0; i < job->nentries; i++) {
        e = &job->entries[i];

        if (!(e->live || e->history)
            || (e->type == PB_JOURNAL_CREATED
                && e->id_len != NGX_HTTP_POSTBACK_ID_LEN))
        {
            continue;
        }

        n = write(fd, job->buf + e->offset, e->size);

        if (n != (ssize_t) e->size) {
            job->err = (n == -1) ? ngx_errno : NGX_ENOSPC;
            job->failed = "write() of the rewrite";
            goto failed;
        }
    }

    if (fsync(fd) == -1 || ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        job->err = ngx_errno;
        job->failed = "fsync() of the rewrite";
        goto failed;
    }

    (void) ngx_close_file(fd);

    if (ngx_rename_file(job->path_new->data, job->path->data)
        == NGX_FILE_ERROR)
    {
        job->err = ngx_errno;
        job->failed = ngx_rename_file_n;
        (void) ngx_delete_file(job->path_new->data);
        return NGX_ERROR;
    }

    ngx_http_postback_sync_dir(job->path);

    job->file = (uint64_t) fi.st_ino;
    job->end = fi.st_size;

    return NGX_OK;

failed:

    (void) ngx_close_file(fd);
    (void) ngx_delete_file(job->path_new->data);

    return NGX_ERROR;
}


/* a rename lasts once the directory of its file is on disk */

static void
ngx_http_postback_sync_dir(ngx_str_t *path)
{
    u_char    *slash;
    u_char     dir[NGX_MAX_PATH];
    size_t     len;
    ngx_fd_t   fd;

    for (slash = path->data + path->len;
         slash > path->data && *slash != '/';
         slash--)
    {
        /* void */
    }

    len = slash - path->data;

    if (len == 0 || len >= NGX_MAX_PATH) {
        return;
    }

    *ngx_cpymem(dir, path->data, len) = '\0';

    fd = ngx_open_file(dir, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd != NGX_INVALID_FILE) {
        (void) fsync(fd);
        (void) ngx_close_file(fd);
    }
}
