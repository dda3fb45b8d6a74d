
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The shared ledger: every delivery with its request and attempts, the
 * per-callback counters and the capture counters, in one slab zone that
 * all workers see and that survives a reload.  A record's state changes
 * in one place, ngx_http_postback_zone_move(), with everything that goes
 * with it.  Only short in-memory work is done under the zone's lock: the
 * journal is written by the spool, after, from what the zone hands out.
 */


#include "ngx_http_postback_module.h"
#include "pb_fields.h"
#include "pb_policy.h"


/* changes whenever the layout below changes: a reload keeps the zone */
#define NGX_HTTP_POSTBACK_ZONE_MAGIC  0x7062000d

/* a claim outlives its transfer's timeout by this much, in ms */
#define NGX_HTTP_POSTBACK_LEASE_MARGIN  5000

/* a writer has a record's next journal record for this long, in ms */
#define NGX_HTTP_POSTBACK_JOURNAL_LEASE  30000

/* removed callbacks the status lists, at most */
#define NGX_HTTP_POSTBACK_REMOVED_SHOWN  64

/* keys evicted, at most, to make room for one record */
#define NGX_HTTP_POSTBACK_KEYS_EVICT_MAX  64

/* due records a pickup passes over, at most, for want of a free slot */
#define NGX_HTTP_POSTBACK_CLAIM_SCAN    1024

/* a record just made or about to go: in no state */
#define NGX_HTTP_POSTBACK_NONE     NGX_HTTP_POSTBACK_STATES

/* for the gauges: a delivery in the journal only, for want of room */
#define NGX_HTTP_POSTBACK_SPILLED  (NGX_HTTP_POSTBACK_STATES + 1)

/* what of a record is in the journal */
#define NGX_HTTP_POSTBACK_JOURNAL_NONE     0
#define NGX_HTTP_POSTBACK_JOURNAL_CREATED  1    /* its created record */
#define NGX_HTTP_POSTBACK_JOURNAL_DONE     2    /* all it needs, or none */


typedef struct ngx_http_postback_attempt_s  ngx_http_postback_attempt_t;

struct ngx_http_postback_attempt_s {
    ngx_http_postback_attempt_t  *next;
    uint64_t                      start;
    ngx_msec_t                    duration;
    ngx_int_t                     status;
    unsigned                      manual:1;     /* asked for by the API */
    size_t                        error_len;
    size_t                        response_len;
    u_char                        data[1];      /* error, response */
};


struct ngx_http_postback_record_s {
    ngx_rbtree_node_t             node;     /* by id; key: the id's hash */
    ngx_rbtree_node_t             due;      /* pending, sending: by time;
                                               finished: by when */
    ngx_queue_t                   queue;    /* the zone's, oldest first */
    ngx_queue_t                   jqueue;   /* the journal's, if queued */
    ngx_http_postback_cb_state_t *cb;
    ngx_http_postback_attempt_t  *attempts;
    ngx_http_postback_attempt_t  *last_attempt;
    uint64_t                      created;
    uint64_t                      armed;    /* scheduled: its key's change */
    uint64_t                      resume;   /* due again after a manual
                                               attempt, 0: now */
    uint64_t                      jlease;   /* ms: a writer has it until */
    off_t                         eat;      /* its finished record's place,
                                               -1: none, or not known */
    ngx_pid_t                     owner;    /* sending: the claimer */
    uint32_t                      jsize;    /* its created record's size */
    uint32_t                      efile;    /* ... in that journal file */
    uint32_t                      nattempts;
    uint32_t                      automatic;    /* of them, scheduled */
    uint32_t                      claims;
    uint32_t                      jclaims;
    unsigned                      state:4;
    unsigned                      method:2;
    unsigned                      test:1;   /* a test send */
    unsigned                      manual:1; /* next attempt asked for */
    unsigned                      resent:1; /* finished, sent once more */
    unsigned                      journal:2;
    unsigned                      queued:1; /* in the journal's queue */
    unsigned                      ended:2;  /* NGX_HTTP_POSTBACK_ENDED_* */
    u_char                        id[NGX_HTTP_POSTBACK_ID_LEN];
    uint32_t                      event_len;
    uint32_t                      key_len;
    uint32_t                      fields_len;
    uint32_t                      url_len;
    uint32_t                      params_at;
    uint32_t                      headers_len;
    uint32_t                      body_len;
    u_char                        data[1];  /* event, key, fields, ... */
};


typedef struct {
    ngx_rbtree_t                  ids;          /* records by id */
    ngx_rbtree_node_t             ids_sentinel;
    ngx_rbtree_t                  due;          /* by time to look at */
    ngx_rbtree_node_t             due_sentinel;
    ngx_rbtree_t                  finished;     /* in the order they ended */
    ngx_rbtree_node_t             finished_sentinel;
    uint64_t                      finished_seq;
    ngx_queue_t                   records;      /* oldest first */
    ngx_queue_t                   journal;      /* their next record due */
    ngx_queue_t                   callbacks;
    ngx_uint_t                    magic;
    ngx_uint_t                    generation;   /* of the configuration */
    uint64_t                      boot;         /* ms, the ids' prefix */
    uint64_t                      tag;          /* its journal records' */
    ngx_atomic_t                  seq;
    ngx_uint_t                    nrecords;
    ngx_uint_t                    nfinished;    /* can be evicted, mostly */
    uint64_t                      evicted;
    uint64_t                      unwritten;    /* in the journal's queue */
    uint64_t                      lost;         /* given up unwritten */
    uint64_t                      journal_live; /* bytes on disk needed */

    /* the journal was read up to there: finished records before it can go */
    off_t                         settled;
    uint32_t                      settled_file;
    uint32_t                      settled_before;   /* the file before */
    void                         *spool;        /* NULL: never a journal */
    ngx_http_postback_keys_t     *keys;
    ngx_flag_t                    journaled;    /* configured with one */
    ngx_flag_t                    history;  /* ... keeping finished ones */
    ngx_flag_t                    sparing_keys; /* restoring the history:
                                                   no key evicted for it */
    ngx_atomic_t                  counters[NGX_HTTP_POSTBACK_COUNTERS];
} ngx_http_postback_shctx_t;


#define ngx_http_postback_record_of(n, member)                               \
    ((ngx_http_postback_record_t *)                                           \
        ((u_char *) (n) - offsetof(ngx_http_postback_record_t, member)))

#define ngx_http_postback_in_due(state)                                       \
    ((state) == NGX_HTTP_POSTBACK_PENDING                                     \
     || (state) == NGX_HTTP_POSTBACK_SENDING                                  \
     || (state) == NGX_HTTP_POSTBACK_SCHEDULED)

/* where a record's parts are */
#define ngx_http_postback_key_of(d)  ((d)->data + (d)->event_len)
#define ngx_http_postback_fields_of(d)                                        \
    (ngx_http_postback_key_of(d) + (d)->key_len)
#define ngx_http_postback_url_of(d)                                           \
    (ngx_http_postback_fields_of(d) + (d)->fields_len)
#define ngx_http_postback_headers_of(d)                                       \
    (ngx_http_postback_url_of(d) + (d)->url_len)
#define ngx_http_postback_body_of(d)                                          \
    (ngx_http_postback_headers_of(d) + (d)->headers_len)


static void ngx_http_postback_zone_configure(ngx_http_postback_cb_state_t *cs,
    ngx_http_postback_cb_conf_t *cb);
static ngx_uint_t ngx_http_postback_zone_end_removed(
    ngx_http_postback_shctx_t *sh);
static void ngx_http_postback_zone_end_orphan(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d);
static void ngx_http_postback_zone_resume(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh);
static void ngx_http_postback_zone_move(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_uint_t state, uint64_t due);
static void ngx_http_postback_zone_gauge(ngx_http_postback_cb_state_t *cs,
    ngx_uint_t state, uint64_t delta);
static void ngx_http_postback_journal_need(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d);
static ngx_http_postback_cb_state_t *ngx_http_postback_zone_named(
    ngx_http_postback_shctx_t *sh, ngx_str_t *name);
static void ngx_http_postback_journal_close(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d);
static void ngx_http_postback_journal_dequeue(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d);
static void ngx_http_postback_journal_set(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_uint_t journal);
static void ngx_http_postback_journal_written(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_http_postback_jref_t *ref);
static void ngx_http_postback_journal_item(ngx_http_postback_record_t *d,
    ngx_http_postback_jitem_t *item);
static void ngx_http_postback_journal_lose(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_log_t *log, const char *what);
static ngx_http_postback_record_t *ngx_http_postback_zone_insert(
    ngx_slab_pool_t *shpool, ngx_http_postback_cb_state_t *cs, u_char *id,
    ngx_http_postback_request_t *req);
static ngx_flag_t ngx_http_postback_zone_fire(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, ngx_http_postback_record_t *d,
    uint64_t now);
static void ngx_http_postback_zone_pin(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_int_t delta);
static void ngx_http_postback_zone_take(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_cb_conf_t *cb, ngx_http_postback_record_t *d,
    uint64_t now, ngx_http_postback_claim_t *claim);
static void ngx_http_postback_zone_lease(ngx_http_postback_record_t *d,
    uint64_t now, ngx_http_postback_jref_t *ref);
static ngx_http_postback_record_t *ngx_http_postback_zone_lookup(
    ngx_http_postback_shctx_t *sh, u_char *id);
static ngx_http_postback_record_t *ngx_http_postback_zone_held(
    ngx_http_postback_shctx_t *sh, ngx_http_postback_jref_t *ref);
static ngx_uint_t ngx_http_postback_zone_rooms(ngx_array_t *callbacks);
static ngx_rbtree_key_t ngx_http_postback_id_key(u_char *id);
static ngx_flag_t ngx_http_postback_zone_still(ngx_http_postback_record_t *d,
    u_char *id);
static ngx_http_postback_record_t *ngx_http_postback_zone_claimed(
    ngx_http_postback_shctx_t *sh, ngx_http_postback_claim_t *claim);
static ngx_http_postback_cb_conf_t *ngx_http_postback_zone_conf(
    ngx_array_t *callbacks, ngx_http_postback_cb_state_t *cs);
static void ngx_http_postback_record_request(ngx_http_postback_record_t *d,
    ngx_http_postback_request_t *req);
static void ngx_http_postback_attempt_add(ngx_slab_pool_t *shpool,
    ngx_http_postback_record_t *d, ngx_http_postback_result_t *res);
static void ngx_http_postback_callback_count(ngx_http_postback_cb_state_t *cs,
    ngx_http_postback_result_t *res, ngx_uint_t outcome);
static void ngx_http_postback_zone_apply(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_cb_conf_t *cb, ngx_http_postback_record_t *d,
    ngx_http_postback_result_t *res, ngx_http_postback_recorded_t *out);
static void *ngx_http_postback_zone_alloc(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, size_t size);
static ngx_flag_t ngx_http_postback_evictable(
    ngx_http_postback_shctx_t *sh, ngx_http_postback_record_t *d);
static void ngx_http_postback_zone_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, ngx_http_postback_record_t *d);
static const char *ngx_http_postback_zone_resend(
    ngx_http_postback_shctx_t *sh, ngx_http_postback_record_t *d);
static ngx_int_t ngx_http_postback_zone_view(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_http_postback_view_t *v,
    ngx_flag_t request, ngx_pool_t *pool);
static ngx_int_t ngx_http_postback_zone_selects(
    ngx_http_postback_query_t *query, ngx_http_postback_record_t *d);
static ngx_flag_t ngx_http_postback_zone_contains(u_char *data, size_t len,
    ngx_str_t *text);
static void ngx_http_postback_histogram_add(
    ngx_http_postback_histogram_t *h, ngx_msec_t ms);


/* bounds of the duration histograms' buckets, in ms */
const ngx_msec_t  ngx_http_postback_buckets[NGX_HTTP_POSTBACK_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 1800000, 7200000
};


ngx_int_t
ngx_http_postback_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_postback_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {
        /* a reload, with the zone's name and size unchanged */
        sh = shpool->data;

        if (sh->magic != NGX_HTTP_POSTBACK_ZONE_MAGIC) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "postback_zone \"%V\" was made by another version "
                          "of the module: change its size or name to start "
                          "a fresh one", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        /* the configuration may yet fail: it binds at init_module */
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_postback_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;

    ngx_rbtree_init(&sh->ids, &sh->ids_sentinel, ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->due, &sh->due_sentinel, ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->finished, &sh->finished_sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&sh->records);
    ngx_queue_init(&sh->journal);
    ngx_queue_init(&sh->callbacks);

    sh->keys = ngx_http_postback_keys_zone_init(shpool);
    if (sh->keys == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_POSTBACK_ZONE_MAGIC;
    sh->boot = ngx_http_postback_now();

    /* tells this zone's journal records from those of any other */
    sh->tag = sh->boot << 16 | (ngx_random() & 0xffff);

    shpool->log_ctx = ngx_slab_alloc(shpool,
                                     sizeof(" in postback_zone \"\"")
                                     + shm_zone->shm.name.len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in postback_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is handled by evicting finished records */
    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * Once a configuration can no longer fail (nginx's init_module): gives
 * each configured callback its state, kept across reloads (a disabled one
 * stays so unless its url= changed), ends what removed callbacks left
 * waiting, and follows the spool being configured or not.  The spool's
 * state, once made, stays for the workers of earlier configurations.
 */

ngx_int_t
ngx_http_postback_zone_bind(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t                      i, ended;
    ngx_slab_pool_t                *shpool;
    ngx_http_postback_record_t     *d;
    ngx_http_postback_cb_state_t   *cs;
    ngx_http_postback_cb_conf_t   **cbp;
    ngx_http_postback_shctx_t      *sh;
    ngx_http_postback_main_conf_t  *pmcf;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    pmcf = shm_zone->data;
    cbp = pmcf->callbacks.elts;

    if (pmcf->spool.len && sh->spool == NULL) {
        sh->spool = ngx_http_postback_spool_zone_init(shm_zone);
        if (sh->spool == NULL) {
            return NGX_ERROR;
        }
    }

    /* on a reload the old workers are still using the zone */
    ngx_shmtx_lock(&shpool->mutex);

    sh->journaled = (pmcf->spool.len != 0);
    sh->history = (pmcf->history != 0);

    if (!sh->journaled) {
        /* no journal any more: nothing waits for one */
        while (!ngx_queue_empty(&sh->journal)) {
            d = ngx_queue_data(ngx_queue_head(&sh->journal),
                               ngx_http_postback_record_t, jqueue);
            ngx_http_postback_journal_close(sh, d);
        }
    }

    pmcf->generation = ++sh->generation;

    for (i = 0; i < pmcf->callbacks.nelts; i++) {

        cs = ngx_http_postback_zone_named(sh, &cbp[i]->name);

        if (cs == NULL) {
            cs = ngx_slab_calloc_locked(shpool,
                                        sizeof(ngx_http_postback_cb_state_t));
            if (cs == NULL) {
                ngx_shmtx_unlock(&shpool->mutex);
                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "postback_zone \"%V\" has no room for "
                              "callback \"%V\"", &shm_zone->shm.name,
                              &cbp[i]->name);
                return NGX_ERROR;
            }

            cs->name_len = cbp[i]->name.len;
            ngx_memcpy(cs->name, cbp[i]->name.data, cs->name_len);
            cs->url_digest = cbp[i]->url_digest;
            ngx_queue_insert_tail(&sh->callbacks, &cs->queue);
        }

        ngx_http_postback_zone_configure(cs, cbp[i]);
        cs->generation = sh->generation;
        cbp[i]->state = cs;
    }

    ended = ngx_http_postback_zone_end_removed(sh);

    ngx_shmtx_unlock(&shpool->mutex);

    for (i = 0; i < pmcf->callbacks.nelts; i++) {
        if (cbp[i]->enabled_again) {
            ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                          "postback: callback \"%V\" enabled again: its "
                          "url changed", &cbp[i]->name);
        }
    }

    if (ended) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "postback: %ui deliveries of callbacks no longer "
                      "configured ended failed: \"callback removed\"", ended);
    }

    ngx_http_postback_zone_resume(shpool, sh);

    return NGX_OK;
}


/*
 * Under the lock: a callback's state as configured anew.  Its switch
 * stays; an edited url= is another receiver: enabled, its record clean.
 */

static void
ngx_http_postback_zone_configure(ngx_http_postback_cb_state_t *cs,
    ngx_http_postback_cb_conf_t *cb)
{
    if (cs->url_digest == cb->url_digest) {
        return;
    }

    cs->url_digest = cb->url_digest;
    ngx_memzero(&cs->health, sizeof(pb_health_t));

    if (cs->disabled) {
        cs->disabled = NGX_HTTP_POSTBACK_ENABLED;
        cs->state_changed = ngx_http_postback_now();
        cs->unjournaled = 1;
        cb->enabled_again = 1;
    }
}


/*
 * Under the lock: the waiting deliveries of callbacks no longer
 * configured end at once, failed (timeout events: cancelled); those in
 * flight in an older worker end as their attempt does.  Returns how many.
 */

static ngx_uint_t
ngx_http_postback_zone_end_removed(ngx_http_postback_shctx_t *sh)
{
    ngx_uint_t                   n;
    ngx_queue_t                 *q;
    ngx_http_postback_record_t  *d;

    n = 0;

    for (q = ngx_queue_head(&sh->records);
         q != ngx_queue_sentinel(&sh->records);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_record_t, queue);

        if (d->cb->generation != sh->generation
            && !ngx_http_postback_finished(d->state)
            && d->state != NGX_HTTP_POSTBACK_SENDING)
        {
            ngx_http_postback_zone_end_orphan(sh, d);
            n++;
        }
    }

    return n;
}


/* under the lock: a delivery of a removed callback ends, saying so */

static void
ngx_http_postback_zone_end_orphan(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d)
{
    d->ended = NGX_HTTP_POSTBACK_ENDED_REMOVED;
    d->manual = 0;

    ngx_http_postback_zone_move(sh, d,
                                d->state == NGX_HTTP_POSTBACK_SCHEDULED
                                ? NGX_HTTP_POSTBACK_CANCELLED
                                : NGX_HTTP_POSTBACK_FAILED, 0);
}


/* the paused deliveries of callbacks enabled again go out now */

static void
ngx_http_postback_zone_resume(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh)
{
    uint64_t                     now;
    ngx_queue_t                 *q;
    ngx_http_postback_record_t  *d;

    now = ngx_http_postback_now();

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->records);
         q != ngx_queue_sentinel(&sh->records);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_record_t, queue);

        if (d->state == NGX_HTTP_POSTBACK_PAUSED && !d->cb->disabled) {
            ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                        now);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * Under the lock: the one place a record's state changes, and with it the
 * due tree, the claimer, its callback's gauges and end counters, the pin
 * a scheduled one puts on its key, and what the journal needs of it.
 */

static void
ngx_http_postback_zone_move(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_uint_t state, uint64_t due)
{
    ngx_uint_t  old;

    old = d->state;

    /* the node is in one tree at most: it leaves it before anything */
    if (ngx_http_postback_in_due(old)) {
        ngx_rbtree_delete(&sh->due, &d->due);

    } else if (ngx_http_postback_finished(old)) {
        ngx_rbtree_delete(&sh->finished, &d->due);
    }

    ngx_http_postback_zone_gauge(d->cb, old, (uint64_t) -1);

    if ((old == NGX_HTTP_POSTBACK_SCHEDULED)
        != (state == NGX_HTTP_POSTBACK_SCHEDULED))
    {
        ngx_http_postback_zone_pin(sh, d,
                                   state == NGX_HTTP_POSTBACK_SCHEDULED
                                   ? 1 : -1);
    }

    d->state = state;

    ngx_http_postback_zone_gauge(d->cb, state, 1);

    if (ngx_http_postback_in_due(state)) {
        d->due.key = due;
        ngx_rbtree_insert(&sh->due, &d->due);
    }

    if (state != NGX_HTTP_POSTBACK_SENDING) {
        d->owner = 0;
    }

    /* a retry asked for ends with the delivery, however it ends */
    if (ngx_http_postback_finished(state)) {
        d->manual = 0;
        d->resent = 0;
    }

    /* eviction looks at finished ones alone, the first ended first */
    if (ngx_http_postback_finished(old)) {
        sh->nfinished--;
    }

    if (ngx_http_postback_finished(state)) {
        sh->nfinished++;
        d->due.key = ++sh->finished_seq;
        ngx_rbtree_insert(&sh->finished, &d->due);
    }

    /* one that ended here, not one of the history read back */
    if (ngx_http_postback_finished(state) && !ngx_http_postback_finished(old)
        && old != NGX_HTTP_POSTBACK_NONE)
    {
        if (state == NGX_HTTP_POSTBACK_DELIVERED) {
            d->cb->delivered++;

        } else if (state == NGX_HTTP_POSTBACK_FAILED) {
            d->cb->failed++;
        }

        ngx_http_postback_journal_need(sh, d);
    }
}


static void
ngx_http_postback_zone_gauge(ngx_http_postback_cb_state_t *cs,
    ngx_uint_t state, uint64_t delta)
{
    switch (state) {

    case NGX_HTTP_POSTBACK_SPILLED:
        cs->in_spool += delta;
        /* fall through */

    case NGX_HTTP_POSTBACK_PENDING:
    case NGX_HTTP_POSTBACK_SENDING:
        cs->pending += delta;
        break;

    case NGX_HTTP_POSTBACK_PAUSED:
        cs->paused += delta;
        break;

    case NGX_HTTP_POSTBACK_SCHEDULED:
        cs->scheduled += delta;
        break;

    default:
        break;
    }
}


/*
 * Under the lock: a finished delivery needs its finished record only if
 * its created record is on disk; one whose created record was never
 * written needs neither, unless a writer has that one in hand, or the
 * journal keeps a history: then both are written.
 */

static void
ngx_http_postback_journal_need(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d)
{
    switch (d->journal) {

    case NGX_HTTP_POSTBACK_JOURNAL_CREATED:
        if (!d->queued) {
            d->queued = 1;
            d->jlease = 0;
            sh->unwritten++;
            ngx_queue_insert_tail(&sh->journal, &d->jqueue);
        }

        break;

    case NGX_HTTP_POSTBACK_JOURNAL_NONE:
        if (d->queued && !sh->history
            && d->jlease <= ngx_http_postback_now())
        {
            ngx_http_postback_journal_close(sh, d);
        }

        break;

    default:
        break;
    }
}


static ngx_http_postback_shctx_t *
ngx_http_postback_zone_ctx(ngx_shm_zone_t *shm_zone)
{
    return ((ngx_slab_pool_t *) shm_zone->shm.addr)->data;
}


void
ngx_http_postback_zone_count(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_counter_e counter, ngx_uint_t n)
{
    ngx_http_postback_shctx_t  *sh;

    sh = ngx_http_postback_zone_ctx(shm_zone);

    (void) ngx_atomic_fetch_add(&sh->counters[counter], n);
}


void
ngx_http_postback_zone_new_id(ngx_shm_zone_t *shm_zone, u_char *id)
{
    ngx_atomic_uint_t           seq;
    ngx_http_postback_shctx_t  *sh;

    sh = ngx_http_postback_zone_ctx(shm_zone);

    seq = ngx_atomic_fetch_add(&sh->seq, 1) + 1;

    ngx_sprintf(id, "msg_%012xL%012xL%Z", sh->boot, (uint64_t) seq);
}


uint64_t
ngx_http_postback_zone_tag(ngx_shm_zone_t *shm_zone)
{
    return ngx_http_postback_zone_ctx(shm_zone)->tag;
}


/* the last configuration that bound the zone */

ngx_uint_t
ngx_http_postback_zone_generation(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t        generation;
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    generation = ((ngx_http_postback_shctx_t *) shpool->data)->generation;
    ngx_shmtx_unlock(&shpool->mutex);

    return generation;
}


void *
ngx_http_postback_zone_spool(ngx_shm_zone_t *shm_zone)
{
    return ngx_http_postback_zone_ctx(shm_zone)->spool;
}


ngx_http_postback_keys_t *
ngx_http_postback_zone_keys(ngx_shm_zone_t *shm_zone)
{
    return ngx_http_postback_zone_ctx(shm_zone)->keys;
}


/*
 * Records a delivery.  NGX_OK: claimed by this worker at once (a slot of
 * cb was free here), *claim filled; NGX_AGAIN: left pending for any
 * worker's pickup; NGX_DECLINED: paused; NGX_BUSY: no room for it, it is
 * to wait in the journal (counted in_spool); NGX_ERROR: no room and no
 * journal, dropped.
 */

ngx_int_t
ngx_http_postback_zone_add(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, u_char *id,
    ngx_http_postback_request_t *req, ngx_http_postback_claim_t *claim)
{
    ngx_int_t                       rc;
    ngx_slab_pool_t                *shpool;
    ngx_http_postback_shctx_t      *sh;
    ngx_http_postback_cb_state_t   *cs;
    ngx_http_postback_record_t     *d;
    ngx_http_postback_main_conf_t  *pmcf;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    cs = cb->state;
    pmcf = shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    /* a timeout event counts when it fires */
    if (!req->armed) {
        cs->events++;
    }

    d = ngx_http_postback_zone_insert(shpool, cs, id, req);

    /* this worker's configuration has the journal that it waits in */
    if (d == NULL && pmcf->spool.len) {
        cs->spooled++;
        ngx_http_postback_zone_gauge(cs, NGX_HTTP_POSTBACK_SPILLED, 1);
        rc = NGX_BUSY;

    } else if (d == NULL) {
        cs->dropped++;
        rc = NGX_ERROR;

    } else if (req->armed) {
        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_SCHEDULED,
                                    req->created);
        rc = NGX_AGAIN;

    } else if (cs->disabled) {
        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_PAUSED, 0);
        rc = NGX_DECLINED;

    } else if (cb->active < cb->max_conns && !ngx_exiting) {
        ngx_http_postback_zone_take(sh, cb, d, req->created, claim);
        rc = NGX_OK;

    } else {
        /* no free slot here, or this worker is leaving: any worker's pickup */
        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                    req->created);
        rc = NGX_AGAIN;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * A delivery read from the journal, due at `due`, its created record of
 * `size` bytes on disk; counted: it is counted in_spool already; room:
 * the zone may have room for it (else it is only counted).  A delivery
 * of a callback a reload removed comes in too, to end failed.  NGX_OK:
 * restored; NGX_DECLINED: the zone has it already; NGX_BUSY: it waits in
 * the journal; NGX_ABORT: its callback is not known.
 */

ngx_int_t
ngx_http_postback_zone_restore(ngx_shm_zone_t *shm_zone,
    ngx_str_t *callback, ngx_http_postback_cb_conf_t *cb, u_char *id,
    ngx_http_postback_request_t *req, size_t size, uint64_t due,
    ngx_flag_t counted, ngx_flag_t room)
{
    ngx_int_t                      rc;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_cb_state_t  *cs;
    ngx_http_postback_record_t    *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    cs = cb ? cb->state : ngx_http_postback_zone_named(sh, callback);

    if (cs == NULL) {
        rc = NGX_ABORT;
        goto done;
    }

    if (ngx_http_postback_zone_lookup(sh, id)) {
        rc = NGX_DECLINED;
        goto done;
    }

    d = room ? ngx_http_postback_zone_insert(shpool, cs, id, req) : NULL;

    if (d == NULL) {
        if (!counted) {
            ngx_http_postback_zone_gauge(cs, NGX_HTTP_POSTBACK_SPILLED, 1);
        }

        rc = NGX_BUSY;
        goto done;
    }

    if (counted) {
        ngx_http_postback_zone_gauge(cs, NGX_HTTP_POSTBACK_SPILLED,
                                     (uint64_t) -1);
    }

    /* its created record is on disk already */
    ngx_http_postback_journal_dequeue(sh, d);
    d->jsize = size;
    ngx_http_postback_journal_set(sh, d, NGX_HTTP_POSTBACK_JOURNAL_CREATED);

    if (req->armed) {
        /* its time, or later if it may be in flight in an older worker */
        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_SCHEDULED,
                                    ngx_max(req->created, due));

    } else {
        /* one of a removed callback is pending: the pickup ends it */
        ngx_http_postback_zone_move(sh, d,
                                    cs->disabled
                                    && cs->generation == sh->generation
                                    ? NGX_HTTP_POSTBACK_PAUSED
                                    : NGX_HTTP_POSTBACK_PENDING,
                                    due);
    }

    rc = NGX_OK;

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * A finished delivery of the journal's history, at a start, with its
 * attempts: shown as it ended, never sent, the first to be evicted.
 * NGX_OK; NGX_DECLINED: its callback is not known, or the zone has it;
 * NGX_BUSY: no room.
 */

ngx_int_t
ngx_http_postback_zone_restore_finished(ngx_shm_zone_t *shm_zone,
    ngx_str_t *callback, u_char *id, ngx_http_postback_request_t *req,
    ngx_uint_t state, ngx_http_postback_result_t *attempts, ngx_uint_t n)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_cb_state_t  *cs;
    ngx_http_postback_record_t    *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    if (!ngx_http_postback_finished(state)) {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&shpool->mutex);

    cs = ngx_http_postback_zone_named(sh, callback);

    if (cs == NULL || ngx_http_postback_zone_lookup(sh, id)) {
        rc = NGX_DECLINED;
        goto done;
    }

    /* history is worth less than a key: a key lost sends a status twice */
    sh->sparing_keys = 1;

    d = ngx_http_postback_zone_insert(shpool, cs, id, req);
    if (d == NULL) {
        sh->sparing_keys = 0;
        rc = NGX_BUSY;
        goto done;
    }

    /* both its records are on disk */
    ngx_http_postback_journal_close(sh, d);

    for (i = 0; i < n; i++) {
        ngx_http_postback_attempt_add(shpool, d, &attempts[i]);
    }

    sh->sparing_keys = 0;

    ngx_http_postback_zone_move(sh, d, state, 0);
    rc = NGX_OK;

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * Under the lock (the journal's writer holds it): the attempt at *cursor,
 * from a journal item's attempts, pointing into the zone; 0: no more.
 */

ngx_flag_t
ngx_http_postback_zone_attempt_next(void **cursor,
    ngx_http_postback_result_t *res)
{
    ngx_http_postback_attempt_t  *a;

    a = *cursor;
    if (a == NULL) {
        return 0;
    }

    ngx_memzero(res, sizeof(ngx_http_postback_result_t));
    res->start = a->start;
    res->duration = a->duration;
    res->status = a->status;
    res->manual = a->manual;
    res->error.data = a->data;
    res->error.len = a->error_len;
    res->response.data = a->data + a->error_len;
    res->response.len = a->response_len;

    *cursor = a->next;

    return 1;
}


/* under the lock: the state of a callback by name, configured or not */

static ngx_http_postback_cb_state_t *
ngx_http_postback_zone_named(ngx_http_postback_shctx_t *sh, ngx_str_t *name)
{
    ngx_queue_t                   *q;
    ngx_http_postback_cb_state_t  *cs;

    for (q = ngx_queue_head(&sh->callbacks);
         q != ngx_queue_sentinel(&sh->callbacks);
         q = ngx_queue_next(q))
    {
        cs = ngx_queue_data(q, ngx_http_postback_cb_state_t, queue);

        if (cs->name_len == name->len
            && ngx_strncmp(cs->name, name->data, name->len) == 0)
        {
            return cs;
        }
    }

    return NULL;
}


/*
 * Another zone's worker (an nginx of an earlier configuration) finished a
 * delivery this zone has too: its finished record is on disk already.
 */

void
ngx_http_postback_zone_finished_elsewhere(ngx_shm_zone_t *shm_zone,
    u_char *id, ngx_uint_t state)
{
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_shctx_t   *sh;
    ngx_http_postback_record_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_lookup(sh, id);

    if (d && !ngx_http_postback_finished(d->state)
        && d->state != NGX_HTTP_POSTBACK_SENDING)
    {
        ngx_http_postback_journal_close(sh, d);
        ngx_http_postback_zone_move(sh, d,
                                    ngx_http_postback_finished(state)
                                    ? state : NGX_HTTP_POSTBACK_DELIVERED,
                                    0);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * Under the lock: a new record, in no state yet, with its whole request,
 * or (full 0) its event and fields only.
 */

static ngx_http_postback_record_t *
ngx_http_postback_zone_insert(ngx_slab_pool_t *shpool,
    ngx_http_postback_cb_state_t *cs, u_char *id,
    ngx_http_postback_request_t *req)
{
    u_char                      *p;
    size_t                       size;
    ngx_http_postback_shctx_t   *sh;
    ngx_http_postback_record_t  *d;

    sh = shpool->data;

    size = offsetof(ngx_http_postback_record_t, data)
           + req->event.len + req->key.len + req->fields.len + req->url.len
           + req->headers.len + req->body.len;

    d = ngx_http_postback_zone_alloc(shpool, sh, size);
    if (d == NULL) {
        return NULL;
    }

    ngx_memzero(d, offsetof(ngx_http_postback_record_t, data));

    d->cb = cs;
    d->state = NGX_HTTP_POSTBACK_NONE;
    d->eat = -1;
    d->created = req->created;
    d->armed = req->armed;
    d->method = req->method;
    d->test = req->test ? 1 : 0;
    ngx_memcpy(d->id, id, NGX_HTTP_POSTBACK_ID_LEN);

    d->event_len = req->event.len;
    d->key_len = req->key.len;
    d->fields_len = req->fields.len;
    d->url_len = req->url.len;
    d->params_at = req->params_at;
    d->headers_len = req->headers.len;
    d->body_len = req->body.len;

    p = ngx_cpymem(d->data, req->event.data, req->event.len);
    p = ngx_cpymem(p, req->key.data, req->key.len);
    p = ngx_cpymem(p, req->fields.data, req->fields.len);
    p = ngx_cpymem(p, req->url.data, req->url.len);
    p = ngx_cpymem(p, req->headers.data, req->headers.len);
    ngx_memcpy(p, req->body.data, req->body.len);

    d->node.key = ngx_http_postback_id_key(id);
    ngx_rbtree_insert(&sh->ids, &d->node);
    ngx_queue_insert_tail(&sh->records, &d->queue);
    sh->nrecords++;
    cs->records++;

    if (sh->journaled) {
        /* its created record is to be written */
        d->queued = 1;
        sh->unwritten++;
        ngx_queue_insert_tail(&sh->journal, &d->jqueue);

    } else {
        d->journal = NGX_HTTP_POSTBACK_JOURNAL_DONE;
    }

    return d;
}


/*
 * Under the lock: a timeout event's time came.  Unless its key changed
 * since it was armed (then it is cancelled: 0), it is now an event like
 * any other, pending at once.
 */

static ngx_flag_t
ngx_http_postback_zone_fire(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, ngx_http_postback_record_t *d,
    uint64_t now)
{
    ngx_http_postback_request_t  req;

    ngx_http_postback_record_request(d, &req);

    if (!ngx_http_postback_keys_fire_locked(shpool, sh->keys, &req.key,
                                            &req.event, d->armed,
                                            d->created))
    {
        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_CANCELLED, 0);
        sh->counters[NGX_HTTP_POSTBACK_TIMEOUT_CANCELLED]++;
        return 0;
    }

    d->cb->events++;
    sh->counters[NGX_HTTP_POSTBACK_TIMEOUT_FIRED]++;
    ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_PENDING, now);

    return 1;
}


/* under the lock: a scheduled record keeps its key from eviction */

static void
ngx_http_postback_zone_pin(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_int_t delta)
{
    ngx_str_t  key;

    key.data = ngx_http_postback_key_of(d);
    key.len = d->key_len;

    ngx_http_postback_keys_pin_locked(sh->keys, &key, delta);
}


/* under the lock: this worker claims d for a transfer */

static void
ngx_http_postback_zone_take(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_cb_conf_t *cb, ngx_http_postback_record_t *d,
    uint64_t now, ngx_http_postback_claim_t *claim)
{
    d->claims++;
    d->owner = ngx_pid;
    ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_SENDING,
                                now + cb->timeout
                                + NGX_HTTP_POSTBACK_LEASE_MARGIN);

    /* the claim takes one of this worker's slots of the callback */
    cb->active++;

    claim->cb = cb;
    claim->record = d;
    claim->claim = d->claims;
    ngx_memcpy(claim->id, d->id, NGX_HTTP_POSTBACK_ID_LEN);
}


/* under the lock: this worker has d's next journal record in hand */

static void
ngx_http_postback_zone_lease(ngx_http_postback_record_t *d, uint64_t now,
    ngx_http_postback_jref_t *ref)
{
    d->jclaims++;
    d->jlease = now + NGX_HTTP_POSTBACK_JOURNAL_LEASE;

    ngx_memzero(ref, sizeof(ngx_http_postback_jref_t));
    ref->record = d;
    ref->claim = d->jclaims;
    ref->offset = -1;
    ngx_memcpy(ref->id, d->id, NGX_HTTP_POSTBACK_ID_LEN);
}


/*
 * A record's key in the ids tree: its id's sequence number, so that new
 * records go down the tree's rightmost path, which stays in the cache.
 * Ids of other boots (restored) may share it; an id that is not one of
 * ours gets a key no record has.
 */

static ngx_rbtree_key_t
ngx_http_postback_id_key(u_char *id)
{
    ngx_int_t  seq;

    seq = ngx_hextoi(id + NGX_HTTP_POSTBACK_ID_LEN - 12, 12);

    return (seq == NGX_ERROR) ? (ngx_rbtree_key_t) -1
                              : (ngx_rbtree_key_t) seq;
}


/*
 * Under the lock: the record of an id, or NULL.  Records are keyed by
 * ngx_http_postback_id_key(): the first of the equal keys is found, then
 * those after it.
 */

static ngx_http_postback_record_t *
ngx_http_postback_zone_lookup(ngx_http_postback_shctx_t *sh, u_char *id)
{
    ngx_rbtree_key_t             hash;
    ngx_rbtree_node_t           *node, *first, *sentinel;
    ngx_http_postback_record_t  *d;

    hash = ngx_http_postback_id_key(id);

    node = sh->ids.root;
    sentinel = sh->ids.sentinel;
    first = NULL;

    while (node != sentinel) {
        if (node->key >= hash) {
            first = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    for (node = first;
         node && node->key == hash;
         node = ngx_rbtree_next(&sh->ids, node))
    {
        d = ngx_http_postback_record_of(node, node);

        if (ngx_memcmp(id, d->id, NGX_HTTP_POSTBACK_ID_LEN) == 0) {
            return d;
        }
    }

    return NULL;
}


/* under the lock: the record of a journal lease, if it still holds */

static ngx_http_postback_record_t *
ngx_http_postback_zone_held(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_jref_t *ref)
{
    ngx_http_postback_record_t  *d;

    d = ref->record;

    /* no record: a delivery the zone had no room for */
    return (d && ngx_http_postback_zone_still(d, ref->id)
            && d->jclaims == ref->claim)
           ? d : NULL;
}


/*
 * Under the lock: whether the record a worker kept a pointer to is still
 * the one of that id.  Its memory stays in the zone whatever became of it
 * (ended, evicted, reused): its id says, no lookup needed.
 */

static ngx_flag_t
ngx_http_postback_zone_still(ngx_http_postback_record_t *d, u_char *id)
{
    return ngx_memcmp(d->id, id, NGX_HTTP_POSTBACK_ID_LEN) == 0;
}


/* under the lock: the record of a claim, if the claim still holds */

static ngx_http_postback_record_t *
ngx_http_postback_zone_claimed(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_claim_t *claim)
{
    ngx_http_postback_record_t  *d;

    d = claim->record;

    if (!ngx_http_postback_zone_still(d, claim->id)
        || d->state != NGX_HTTP_POSTBACK_SENDING
        || d->owner != ngx_pid
        || d->claims != claim->claim)
    {
        return NULL;
    }

    return d;
}


/*
 * Under the lock: the callbacks a walk of the due records can do something
 * for, those with a free slot of this worker's and the disabled ones (their
 * due records are paused).  None: the walk is not worth its cost.
 */

static ngx_uint_t
ngx_http_postback_zone_rooms(ngx_array_t *callbacks)
{
    ngx_uint_t                     i, rooms;
    ngx_http_postback_cb_conf_t  **cbp;

    cbp = callbacks->elts;
    rooms = 0;

    for (i = 0; i < callbacks->nelts; i++) {
        if (cbp[i]->active < cbp[i]->max_conns || cbp[i]->state->disabled) {
            rooms++;
        }
    }

    return rooms;
}


/* the configuration of a callback state, or NULL: not configured here */

static ngx_http_postback_cb_conf_t *
ngx_http_postback_zone_conf(ngx_array_t *callbacks,
    ngx_http_postback_cb_state_t *cs)
{
    ngx_uint_t                     i;
    ngx_http_postback_cb_conf_t  **cbp;

    cbp = callbacks->elts;

    for (i = 0; i < callbacks->nelts; i++) {
        if (cbp[i]->state == cs) {
            return cbp[i];
        }
    }

    return NULL;
}


/*
 * Takes due deliveries for this worker: pending ones whose time has come
 * and sending ones whose claim expired (their worker died), as long as
 * their callback has a free slot here.  Returns how many were taken;
 * *backlog tells that due ones were left for want of a slot or of room,
 * *next when the first one not yet due will be (0: none).
 */

ngx_uint_t
ngx_http_postback_zone_claim(ngx_shm_zone_t *shm_zone, ngx_array_t *callbacks,
    ngx_http_postback_claim_t *out, ngx_uint_t max, ngx_flag_t *backlog,
    uint64_t *next_due)
{
    uint64_t                      now;
    ngx_uint_t                    n, skipped, rooms;
    ngx_slab_pool_t              *shpool;
    ngx_rbtree_node_t            *node, *next, *root, *sentinel;
    ngx_http_postback_shctx_t    *sh;
    ngx_http_postback_record_t   *d;
    ngx_http_postback_cb_conf_t  *cb;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    now = ngx_http_postback_now();
    n = 0;
    skipped = 0;
    *backlog = 0;
    *next_due = 0;

    ngx_shmtx_lock(&shpool->mutex);

    rooms = ngx_http_postback_zone_rooms(callbacks);

    root = sh->due.root;
    sentinel = sh->due.sentinel;

    for (node = (root == sentinel) ? NULL : ngx_rbtree_min(root, sentinel);
         node && rooms && n < max;
         node = next)
    {
        if (node->key > now) {
            break;
        }

        next = ngx_rbtree_next(&sh->due, node);
        d = ngx_http_postback_record_of(node, due);
        cb = ngx_http_postback_zone_conf(callbacks, d->cb);

        if (cb == NULL) {
            if (d->cb->generation != sh->generation) {
                /* a reload removed its callback: nothing can send it */
                ngx_http_postback_zone_end_orphan(sh, d);
            }

            /* else a callback new in a reload: left to the new workers */
            continue;
        }

        if (d->state == NGX_HTTP_POSTBACK_SCHEDULED
            && !ngx_http_postback_zone_fire(shpool, sh, d, now))
        {
            continue;
        }

        /* a manual attempt goes even while its callback is disabled */
        if (d->cb->disabled && !d->manual) {
            ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_PAUSED, 0);
            continue;
        }

        if (cb->active >= cb->max_conns) {
            *backlog = 1;

            /* a long backlog of full callbacks: not all of it each time */
            if (++skipped == NGX_HTTP_POSTBACK_CLAIM_SCAN) {
                break;
            }

            continue;
        }

        ngx_http_postback_zone_take(sh, cb, d, now, &out[n++]);

        if (cb->active == cb->max_conns && !d->cb->disabled) {
            rooms--;
        }
    }

    /* where the walk stopped: due records left, or when the next is */
    if (node && node->key <= now) {
        *backlog = 1;

    } else if (node) {
        *next_due = node->key;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/*
 * The request of a record just claimed, read without the lock: a claimed
 * record is neither changed nor evicted while its claim holds, and the
 * engine copies what it keeps before the claim can run out.
 */

void
ngx_http_postback_zone_request(ngx_http_postback_claim_t *claim,
    ngx_http_postback_request_t *req)
{
    ngx_http_postback_record_request(claim->record, req);
}


/* a record's request, pointing into the record */

static void
ngx_http_postback_record_request(ngx_http_postback_record_t *d,
    ngx_http_postback_request_t *req)
{
    req->method = d->method;
    req->created = d->created;
    req->armed = d->armed;
    req->test = d->test;

    req->event.data = d->data;
    req->event.len = d->event_len;
    req->key.data = ngx_http_postback_key_of(d);
    req->key.len = d->key_len;
    req->fields.data = ngx_http_postback_fields_of(d);
    req->fields.len = d->fields_len;
    req->url.data = ngx_http_postback_url_of(d);
    req->url.len = d->url_len;
    req->params_at = d->params_at;
    req->headers.data = ngx_http_postback_headers_of(d);
    req->headers.len = d->headers_len;
    req->body.data = ngx_http_postback_body_of(d);
    req->body.len = d->body_len;
}


/*
 * Records an attempt and what it makes of the delivery and of its
 * callback's health, switch included; *out tells the worker what changed.
 */

void
ngx_http_postback_zone_record_attempt(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim, ngx_http_postback_result_t *res,
    ngx_http_postback_recorded_t *out)
{
    ngx_uint_t                     outcome;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_record_t    *d;
    ngx_http_postback_cb_state_t  *cs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_memzero(out, sizeof(ngx_http_postback_recorded_t));

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_claimed(sh, claim);
    if (d == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        out->decision = (ngx_uint_t) -1;
        return;
    }

    cs = d->cb;

    /* a manual attempt is marked, and kept out of the schedule */
    res->manual = d->manual;

    if (!d->manual) {
        d->automatic++;
    }

    outcome = pb_policy_outcome(res->status, res->error.len != 0);

    ngx_http_postback_attempt_add(shpool, d, res);
    ngx_http_postback_callback_count(cs, res, outcome);

    out->stamp = ngx_http_postback_now();
    out->failing_since = cs->health.failing_since;

    if (pb_policy_attempted(&cs->health, outcome == PB_OUTCOME_2XX,
                            pb_policy_wrong_url(res->status, res->wrong_url),
                            res->start))
    {
        out->failing = (cs->health.failing_since != 0);
        out->recovered = !out->failing;
    }

    ngx_http_postback_zone_apply(sh, claim->cb, d, res, out);

    out->automatic = d->automatic;
    out->failures = cs->health.failures;
    out->paused = cs->paused;

    ngx_shmtx_unlock(&shpool->mutex);
}


/* under the lock: the attempt joins the record's history, room allowing */

static void
ngx_http_postback_attempt_add(ngx_slab_pool_t *shpool,
    ngx_http_postback_record_t *d, ngx_http_postback_result_t *res)
{
    ngx_http_postback_attempt_t  *a;

    d->nattempts++;

    a = ngx_http_postback_zone_alloc(shpool, shpool->data,
                                     offsetof(ngx_http_postback_attempt_t,
                                              data)
                                     + res->error.len + res->response.len);
    if (a == NULL) {
        return;
    }

    a->next = NULL;
    a->start = res->start;
    a->duration = res->duration;
    a->status = res->status;
    a->manual = res->manual ? 1 : 0;
    a->error_len = res->error.len;
    a->response_len = res->response.len;
    ngx_memcpy(ngx_cpymem(a->data, res->error.data, res->error.len),
               res->response.data, res->response.len);

    if (d->last_attempt) {
        d->last_attempt->next = a;

    } else {
        d->attempts = a;
    }

    d->last_attempt = a;
}


static void
ngx_http_postback_callback_count(ngx_http_postback_cb_state_t *cs,
    ngx_http_postback_result_t *res, ngx_uint_t outcome)
{
    size_t  len;

    cs->attempts++;
    cs->outcomes[outcome]++;
    ngx_http_postback_histogram_add(&cs->attempt_duration, res->duration);
    pb_minutes_add(&cs->last_hour, ngx_http_postback_now(),
                   outcome == PB_OUTCOME_2XX);
    cs->last_attempt = res->start;
    cs->last_status = res->status;
    cs->last_latency = res->duration;

    len = ngx_min(res->error.len, NGX_HTTP_POSTBACK_ERROR_MAX);
    ngx_memcpy(cs->last_error, res->error.data, len);
    cs->last_error_len = len;
}


/*
 * Under the lock: what the policy makes of the attempt, for the record
 * (moved to its next state) and for its callback (disabled by a rule).
 */

static void
ngx_http_postback_zone_apply(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_cb_conf_t *cb, ngx_http_postback_record_t *d,
    ngx_http_postback_result_t *res, ngx_http_postback_recorded_t *out)
{
    uint64_t                       now, delay;
    ngx_uint_t                     why;
    pb_disable_rules_t             rules;
    pb_policy_attempt_t            pa;
    ngx_http_postback_cb_state_t  *cs;

    cs = d->cb;
    now = out->stamp;
    why = PB_DISABLE_NONE;

    pa.status = (int) res->status;
    pa.error = (res->error.len != 0);
    pa.retry_after = res->retry_after;
    pa.attempt = d->automatic;
    pa.attempts = cb->attempts;
    pa.manual = d->manual;
    pa.resent = d->resent;
    pa.retry = cb->retry;
    pa.nretry = cb->nretry;
    pa.random = (uint32_t) ngx_random();

    d->manual = 0;
    d->resent = 0;

    out->decision = pb_policy_decide(&pa, &delay);

    switch (out->decision) {

    case PB_POLICY_DELIVERED:
        if (!pa.resent) {
            ngx_http_postback_histogram_add(&cs->delivery_latency,
                                            (ngx_msec_t) (now - d->created));
        }

        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_DELIVERED, 0);
        return;

    case PB_POLICY_RETRY:
        out->due = now + delay;
        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                    out->due);
        break;

    case PB_POLICY_RESUME:
        out->due = ngx_max(d->resume, now);
        ngx_http_postback_zone_move(sh, d,
                                    cs->disabled ? NGX_HTTP_POSTBACK_PAUSED
                                                 : NGX_HTTP_POSTBACK_PENDING,
                                    out->due);
        break;

    case PB_POLICY_GONE:
        why = PB_DISABLE_GONE;
        /* fall through */

    default: /* PB_POLICY_FAILED */
        ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_FAILED, 0);

        /* a manual attempt is outside the rules, this one too */
        if (!pa.resent) {
            cs->health.failures++;
        }

        break;
    }

    rules.after = cb->disable_after;
    rules.after_time = cb->disable_after_time;
    rules.on_error = cb->disable_on_error;

    if (why == PB_DISABLE_NONE) {
        why = pb_policy_disables(&cs->health, &rules, now);
    }

    if (why != PB_DISABLE_NONE && !cs->disabled) {
        cs->disabled = why;
        cs->disables++;
        cs->state_changed = now;
        out->disabled = why;
    }
}


/*
 * A claim this worker will not send: due again now, for any worker.  Only
 * claims no transfer was started for are handed back.
 */

void
ngx_http_postback_zone_release(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim)
{
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_record_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_claimed(shpool->data, claim);
    if (d) {
        ngx_http_postback_zone_move(shpool->data, d,
                                    NGX_HTTP_POSTBACK_PENDING,
                                    ngx_http_postback_now());
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * Under the lock; makes room by evicting the finished records that the
 * journal needs nothing more of, those that ended first first, then the
 * least recently seen keys.
 */

static void *
ngx_http_postback_zone_alloc(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, size_t size)
{
    void                        *p;
    ngx_uint_t                   n;
    ngx_rbtree_node_t           *node, *next, *root, *sentinel;
    ngx_http_postback_record_t  *d;

    p = ngx_slab_alloc_locked(shpool, size);
    if (p) {
        return p;
    }

    root = sh->finished.root;
    sentinel = sh->finished.sentinel;

    /* not past the pending ones: a backlog must not make this O(n) */
    for (node = (root == sentinel) ? NULL : ngx_rbtree_min(root, sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&sh->finished, node);
        d = ngx_http_postback_record_of(node, due);

        if (!ngx_http_postback_evictable(sh, d)) {
            continue;
        }

        ngx_http_postback_zone_free(shpool, sh, d);
        sh->evicted++;

        p = ngx_slab_alloc_locked(shpool, size);
        if (p) {
            return p;
        }
    }

    /* keys are small: a few evicted do not make a page, many would */
    for (n = 0;
         n < NGX_HTTP_POSTBACK_KEYS_EVICT_MAX && !sh->sparing_keys
         && ngx_http_postback_keys_evict_locked(shpool, sh->keys);
         n++)
    {
        p = ngx_slab_alloc_locked(shpool, size);
        if (p) {
            return p;
        }
    }

    return NULL;
}


/*
 * Under the lock: a finished record can go once the journal needs nothing
 * more of it, and no read of the journal that started before its finished
 * record was written is left to find its created record live: else that
 * read would take it for a delivery waiting for room.
 */

static ngx_flag_t
ngx_http_postback_evictable(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d)
{
    if (!ngx_http_postback_finished(d->state) || d->queued) {
        return 0;
    }

    return d->eat < 0
           || d->efile == sh->settled_before
           || (d->efile == sh->settled_file && d->eat < sh->settled);
}


/*
 * The journal (of inode file) was read, or rewritten, up to `at`: reads
 * started from now on will find what was written before it.
 */

void
ngx_http_postback_zone_journal_settled(ngx_shm_zone_t *shm_zone,
    uint64_t file, off_t at)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_postback_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    if ((uint32_t) file != sh->settled_file) {
        sh->settled_before = sh->settled_file;
        sh->settled_file = (uint32_t) file;
    }

    sh->settled = at;

    ngx_shmtx_unlock(&shpool->mutex);
}


/* under the lock: the record goes, leaving its state's gauges first */

static void
ngx_http_postback_zone_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, ngx_http_postback_record_t *d)
{
    ngx_http_postback_attempt_t  *a, *next;

    ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_NONE, 0);

    for (a = d->attempts; a; a = next) {
        next = a->next;
        ngx_slab_free_locked(shpool, a);
    }

    ngx_rbtree_delete(&sh->ids, &d->node);
    ngx_queue_remove(&d->queue);

    if (d->queued) {
        ngx_queue_remove(&d->jqueue);
        sh->unwritten--;
    }

    sh->nrecords--;
    d->cb->records--;

    ngx_slab_free_locked(shpool, d);
}


u_char *
ngx_http_postback_time_text(u_char *buf, uint64_t ms)
{
    ngx_uint_t  milli;
    ngx_tm_t    tm;

    /* the second's text, made once a second: each capture writes one */
    static time_t  second = -1;
    static u_char  text[sizeof("2026-11-22T18:34:44") - 1];

    if ((time_t) (ms / 1000) != second) {
        second = (time_t) (ms / 1000);
        ngx_gmtime(second, &tm);

        (void) ngx_sprintf(text, "%4d-%02d-%02dT%02d:%02d:%02d",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                           tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
    }

    milli = (ngx_uint_t) (ms % 1000);

    buf = ngx_cpymem(buf, text, sizeof(text));
    *buf++ = '.';
    *buf++ = (u_char) ('0' + milli / 100);
    *buf++ = (u_char) ('0' + milli / 10 % 10);
    *buf++ = (u_char) ('0' + milli % 10);
    *buf++ = 'Z';

    return buf;
}


static void
ngx_http_postback_histogram_add(ngx_http_postback_histogram_t *h,
    ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_POSTBACK_BUCKETS; i++) {
        if (ms <= ngx_http_postback_buckets[i]) {
            break;
        }
    }

    h->count[i]++;
    h->sum += ms;
}


/*
 * What the status shows, copied under the lock into the request's pool:
 * the counters, the callbacks as configured, the newest deliveries that
 * the query selects.  The answer is built after, without the lock.
 */

ngx_int_t
ngx_http_postback_zone_snapshot(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_query_t *query, ngx_http_postback_snapshot_t *snap,
    ngx_pool_t *pool)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    ngx_slab_pool_t                *shpool;
    ngx_http_postback_shctx_t      *sh;
    ngx_http_postback_record_t     *d;
    ngx_http_postback_cb_state_t   *cs;
    ngx_http_postback_cb_conf_t   **cbp;
    ngx_http_postback_main_conf_t  *pmcf;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    pmcf = shm_zone->data;
    cbp = pmcf->callbacks.elts;

    ngx_memzero(snap, sizeof(ngx_http_postback_snapshot_t));

    snap->nconfigured = pmcf->callbacks.nelts;
    snap->callbacks = ngx_palloc(pool, (snap->nconfigured
                                        + NGX_HTTP_POSTBACK_REMOVED_SHOWN + 1)
                                       * sizeof(ngx_http_postback_cb_state_t));
    snap->deliveries = ngx_palloc(pool, (query->limit + 1)
                                        * sizeof(ngx_http_postback_view_t));

    if (snap->callbacks == NULL || snap->deliveries == NULL) {
        return NGX_ERROR;
    }

    snap->size = shm_zone->shm.size;
    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

    snap->used = shm_zone->shm.size - shpool->pfree * ngx_pagesize;
    snap->records = sh->nrecords;
    snap->evicted = sh->evicted;
    ngx_http_postback_keys_stats(sh->keys, &snap->keys);

    for (i = 0; i < NGX_HTTP_POSTBACK_COUNTERS; i++) {
        snap->counters[i] = sh->counters[i];
    }

    if (sh->spool) {
        ngx_http_postback_spool_stats(sh->spool, &snap->spool);
        snap->spool.unwritten = sh->unwritten;
        snap->spool.lost = sh->lost;
        snap->spool.live = sh->journal_live;
    }

    for (i = 0; i < snap->nconfigured; i++) {
        snap->callbacks[i] = *cbp[i]->state;
    }

    snap->ncallbacks = i;

    /* removed ones, while their history lasts */
    for (q = ngx_queue_head(&sh->callbacks);
         q != ngx_queue_sentinel(&sh->callbacks)
         && snap->ncallbacks < i + NGX_HTTP_POSTBACK_REMOVED_SHOWN;
         q = ngx_queue_next(q))
    {
        cs = ngx_queue_data(q, ngx_http_postback_cb_state_t, queue);

        if (cs->generation != sh->generation && cs->records) {
            snap->callbacks[snap->ncallbacks++] = *cs;
        }
    }

    for (q = ngx_queue_last(&sh->records);
         q != ngx_queue_sentinel(&sh->records)
         && snap->ndeliveries < query->limit;
         q = ngx_queue_prev(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_record_t, queue);

        if (!ngx_http_postback_zone_selects(query, d)) {
            continue;
        }

        rc = ngx_http_postback_zone_view(sh, d,
                                         &snap->deliveries[snap->ndeliveries],
                                         0, pool);
        if (rc != NGX_OK) {
            break;
        }

        snap->ndeliveries++;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


static ngx_int_t
ngx_http_postback_zone_selects(ngx_http_postback_query_t *query,
    ngx_http_postback_record_t *d)
{
    pb_kv_t        field;
    const u_char  *pos, *end;

    if (query->state != -1 && d->state != (ngx_uint_t) query->state) {
        return 0;
    }

    if (query->callback.len
        && (query->callback.len != d->cb->name_len
            || ngx_strncmp(query->callback.data, d->cb->name,
                           d->cb->name_len) != 0))
    {
        return 0;
    }

    if (query->event.len
        && (query->event.len != d->event_len
            || ngx_strncmp(query->event.data, d->data, d->event_len) != 0))
    {
        return 0;
    }

    if (query->text.len == 0
        || ngx_http_postback_zone_contains(d->id, NGX_HTTP_POSTBACK_ID_LEN,
                                           &query->text)
        || ngx_http_postback_zone_contains(d->data, d->event_len,
                                           &query->text)
        || ngx_http_postback_zone_contains(ngx_http_postback_key_of(d),
                                           d->key_len, &query->text))
    {
        return 1;
    }

    pos = ngx_http_postback_fields_of(d);
    end = pos + d->fields_len;

    while (pb_fields_next(&pos, end, &field)) {
        if (ngx_http_postback_zone_contains((u_char *) field.value,
                                            field.value_len, &query->text))
        {
            return 1;
        }
    }

    return 0;
}


/* q=: text in bytes, without regard to ASCII case */

static ngx_flag_t
ngx_http_postback_zone_contains(u_char *data, size_t len, ngx_str_t *text)
{
    return len >= text->len
           && ngx_strlcasestrn(data, data + len, text->data, text->len - 1)
              != NULL;
}


/* one delivery with its request, copied into the pool; NGX_DECLINED: none */

ngx_int_t
ngx_http_postback_zone_find(ngx_shm_zone_t *shm_zone, ngx_str_t *id,
    ngx_http_postback_view_t *view, ngx_pool_t *pool)
{
    ngx_int_t                    rc;
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_record_t  *d;

    if (id->len != NGX_HTTP_POSTBACK_ID_LEN) {
        return NGX_DECLINED;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_lookup(shpool->data, id->data);

    rc = d ? ngx_http_postback_zone_view(shpool->data, d, view, 1, pool)
           : NGX_DECLINED;

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * Under the lock: a copy of a record in the pool, with its attempts, and
 * with its headers and body when asked.
 */

static ngx_int_t
ngx_http_postback_zone_view(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_http_postback_view_t *v,
    ngx_flag_t request, ngx_pool_t *pool)
{
    u_char                       *p;
    size_t                        size;
    ngx_uint_t                    i;
    ngx_http_postback_attempt_t  *a;
    ngx_http_postback_result_t   *r;

    ngx_http_postback_record_request(d, &v->req);

    if (!request) {
        v->req.headers.len = 0;
        v->req.body.len = 0;
    }

    size = d->cb->name_len + v->req.event.len + v->req.key.len
           + v->req.fields.len + v->req.url.len + v->req.headers.len
           + v->req.body.len;

    for (a = d->attempts; a; a = a->next) {
        size += a->error_len + a->response_len;
    }

    v->nattempts = 0;
    v->attempts = ngx_palloc(pool, (d->nattempts + 1)
                                   * sizeof(ngx_http_postback_result_t));
    p = ngx_pnalloc(pool, size + 1);

    if (v->attempts == NULL || p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(v->id, d->id, NGX_HTTP_POSTBACK_ID_LEN);
    v->removed = (d->cb->generation != sh->generation);
    v->state = d->state;
    v->ended = d->ended;
    v->due = (d->state == NGX_HTTP_POSTBACK_PENDING) ? d->due.key : 0;

    v->callback.data = p;
    v->callback.len = d->cb->name_len;
    p = ngx_cpymem(p, d->cb->name, d->cb->name_len);

    /* the request's parts, moved from the record to the pool */
    size = v->req.event.len + v->req.key.len + v->req.fields.len
           + v->req.url.len;
    ngx_memcpy(p, d->data, size);
    v->req.event.data = p;
    v->req.key.data = p + v->req.event.len;
    v->req.fields.data = v->req.key.data + v->req.key.len;
    v->req.url.data = v->req.fields.data + v->req.fields.len;
    p += size;

    v->req.headers.data = p;
    p = ngx_cpymem(p, ngx_http_postback_headers_of(d), v->req.headers.len);
    v->req.body.data = p;
    p = ngx_cpymem(p, ngx_http_postback_body_of(d), v->req.body.len);

    for (a = d->attempts, i = 0; a; a = a->next, i++) {
        r = &v->attempts[i];

        r->start = a->start;
        r->duration = a->duration;
        r->status = a->status;
        r->retry_after = 0;
        r->manual = a->manual;
        r->error.data = p;
        r->error.len = a->error_len;
        r->response.data = p + a->error_len;
        r->response.len = a->response_len;
        p = ngx_cpymem(p, a->data, a->error_len + a->response_len);
    }

    v->nattempts = i;

    return NGX_OK;
}


/*
 * A delivery sent again now, at the operator's word: one attempt outside
 * its schedule, even while its callback is disabled.  A pending or paused
 * one keeps its schedule after; a finished one gets that attempt alone.
 * NGX_OK; NGX_DECLINED: not known; NGX_BUSY: it cannot go now, *why says
 * why.
 */

ngx_int_t
ngx_http_postback_zone_retry(ngx_shm_zone_t *shm_zone, ngx_str_t *id,
    const char **why)
{
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_shctx_t   *sh;
    ngx_http_postback_record_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    d = (id->len == NGX_HTTP_POSTBACK_ID_LEN)
        ? ngx_http_postback_zone_lookup(sh, id->data) : NULL;

    *why = d ? ngx_http_postback_zone_resend(sh, d) : NULL;

    ngx_shmtx_unlock(&shpool->mutex);

    if (d == NULL) {
        return NGX_DECLINED;
    }

    return *why ? NGX_BUSY : NGX_OK;
}


/*
 * The deliveries of a callback in a state (failed or paused) sent again
 * as ngx_http_postback_zone_retry() sends one; returns how many.
 */

ngx_uint_t
ngx_http_postback_zone_retry_all(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, ngx_uint_t state)
{
    ngx_uint_t                   n;
    ngx_queue_t                 *q;
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_shctx_t   *sh;
    ngx_http_postback_record_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->records);
         q != ngx_queue_sentinel(&sh->records);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_record_t, queue);

        if (d->cb == cb->state && d->state == state
            && ngx_http_postback_zone_resend(sh, d) == NULL)
        {
            n++;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/* under the lock: d due now for a manual attempt; else why it cannot be */

static const char *
ngx_http_postback_zone_resend(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d)
{
    if (d->cb->generation != sh->generation) {
        return "its callback was removed from the configuration";
    }

    if (d->manual) {
        return "a retry of it is already waiting to be sent";
    }

    switch (d->state) {

    case NGX_HTTP_POSTBACK_SENDING:
        return "it is being sent";

    case NGX_HTTP_POSTBACK_SCHEDULED:
        return "a timeout event not yet fired";

    case NGX_HTTP_POSTBACK_CANCELLED:
        return "a timeout event cancelled: its key changed in time";

    default:
        break;
    }

    d->resume = (d->state == NGX_HTTP_POSTBACK_PENDING) ? d->due.key : 0;
    d->resent = ngx_http_postback_finished(d->state);
    d->ended = NGX_HTTP_POSTBACK_ENDED_ATTEMPTS;
    d->manual = 1;
    d->cb->manual++;

    ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                ngx_http_postback_now());

    return NULL;
}


/*
 * The status API switches a callback; enabling it resumes its paused
 * ones.  Returns when, for the journal.
 */

uint64_t
ngx_http_postback_zone_switch(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, ngx_flag_t enable)
{
    uint64_t                       now;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_cb_state_t  *cs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    cs = cb->state;
    now = ngx_http_postback_now();

    ngx_shmtx_lock(&shpool->mutex);

    if (enable) {
        cs->disabled = NGX_HTTP_POSTBACK_ENABLED;
        ngx_memzero(&cs->health, sizeof(pb_health_t));

    } else {
        cs->disabled = NGX_HTTP_POSTBACK_DISABLED_API;
    }

    cs->state_changed = now;

    ngx_shmtx_unlock(&shpool->mutex);

    if (enable) {
        ngx_http_postback_zone_resume(shpool, shpool->data);
    }

    return now;
}


/*
 * Whether cb was enabled by an edit of its url= that the journal does not
 * know yet (the master, which made it, writes no journal): the first
 * worker to ask writes it, *changed is when.
 */

ngx_flag_t
ngx_http_postback_zone_unjournaled(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, uint64_t *changed)
{
    ngx_flag_t        unjournaled;
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    unjournaled = cb->state->unjournaled && !cb->state->disabled;
    cb->state->unjournaled = 0;
    *changed = cb->state->state_changed;

    ngx_shmtx_unlock(&shpool->mutex);

    return unjournaled;
}


/*
 * A callback's switch as the journal last had it, at a start: it holds
 * if the callback's url= is still the one it was made for, and nothing
 * newer changed it.
 */

void
ngx_http_postback_zone_callback_restore(ngx_shm_zone_t *shm_zone,
    ngx_str_t *name, ngx_uint_t disabled, uint32_t url_digest,
    uint64_t stamp)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_cb_state_t  *cs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    if (disabled >= NGX_HTTP_POSTBACK_DISABLED_WHYS) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    cs = ngx_http_postback_zone_named(sh, name);

    if (cs && cs->generation == sh->generation
        && cs->url_digest == url_digest && stamp > cs->state_changed)
    {
        cs->disabled = disabled;
        cs->state_changed = stamp;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (disabled == NGX_HTTP_POSTBACK_ENABLED) {
        ngx_http_postback_zone_resume(shpool, sh);
    }
}


/*
 * Hands a writer the journal records that deliveries need next, oldest
 * first, as long as put() takes them (it copies them, under the lock),
 * and leases them to this worker.  all: taken from other writers too (at
 * the end, when no other is left).
 */

ngx_uint_t
ngx_http_postback_zone_journal_take(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_jput_pt put, void *ctx, ngx_http_postback_jref_t *out,
    ngx_uint_t max, ngx_flag_t all)
{
    uint64_t                     now;
    ngx_uint_t                   n;
    ngx_queue_t                 *q, *next;
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_jitem_t    item;
    ngx_http_postback_shctx_t   *sh;
    ngx_http_postback_record_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    now = ngx_http_postback_now();
    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->journal);
         q != ngx_queue_sentinel(&sh->journal) && n < max;
         q = next)
    {
        next = ngx_queue_next(q);
        d = ngx_queue_data(q, ngx_http_postback_record_t, jqueue);

        if (d->jlease > now && !all) {
            continue;
        }

        /* sent again before its finished record was written: once it ends */
        if (d->journal == NGX_HTTP_POSTBACK_JOURNAL_CREATED
            && !ngx_http_postback_finished(d->state))
        {
            continue;
        }

        ngx_http_postback_journal_item(d, &item);

        item.whole = (d->journal == NGX_HTTP_POSTBACK_JOURNAL_NONE
                      && ngx_http_postback_finished(d->state)
                      && sh->history);

        if (put(ctx, &item) == 0) {
            break;
        }

        ngx_http_postback_zone_lease(d, now, &out[n]);
        out[n++].whole = item.whole;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/* under the lock: the journal record d needs next */

static void
ngx_http_postback_journal_item(ngx_http_postback_record_t *d,
    ngx_http_postback_jitem_t *item)
{
    item->finished = (d->journal == NGX_HTTP_POSTBACK_JOURNAL_CREATED);
    item->state = d->state;
    item->id = d->id;
    item->callback.data = d->cb->name;
    item->callback.len = d->cb->name_len;
    item->attempts = d->attempts;

    ngx_http_postback_record_request(d, &item->req);
}


/*
 * Under the lock: a delivery whose created record can never be written
 * ends failed, with a log line naming it, as a dropped one.
 */

static void
ngx_http_postback_journal_lose(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_log_t *log, const char *what)
{
    ngx_str_t  name, event, fields;

    name.data = d->cb->name;
    name.len = d->cb->name_len;
    event.data = d->data;
    event.len = d->event_len;
    fields.data = ngx_http_postback_fields_of(d);
    fields.len = d->fields_len;

    ngx_http_postback_log_lost(log, d->id, what, &name, &event, &fields);

    sh->lost++;
    d->ended = NGX_HTTP_POSTBACK_ENDED_LOST;
    ngx_http_postback_journal_close(sh, d);
    ngx_http_postback_zone_move(sh, d, NGX_HTTP_POSTBACK_FAILED, 0);
}


/* under the lock: d needs nothing more of the journal */

static void
ngx_http_postback_journal_close(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d)
{
    ngx_http_postback_journal_dequeue(sh, d);
    ngx_http_postback_journal_set(sh, d, NGX_HTTP_POSTBACK_JOURNAL_DONE);
}


/* under the lock: out of the journal's queue; its journal state stays */

static void
ngx_http_postback_journal_dequeue(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d)
{
    if (d->queued) {
        ngx_queue_remove(&d->jqueue);
        d->queued = 0;
        sh->unwritten--;
    }
}


/*
 * Under the lock: what of d is on disk; the zone counts the bytes of
 * created records on disk whose deliveries are not finished there.
 */

static void
ngx_http_postback_journal_set(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_uint_t journal)
{
    if (d->journal == NGX_HTTP_POSTBACK_JOURNAL_CREATED) {
        sh->journal_live -= d->jsize;
    }

    d->journal = journal;

    if (journal == NGX_HTTP_POSTBACK_JOURNAL_CREATED) {
        sh->journal_live += d->jsize;
    }
}


/* the bytes of the journal that unfinished deliveries and keys need */

uint64_t
ngx_http_postback_zone_journal_live(ngx_shm_zone_t *shm_zone)
{
    uint64_t                    live;
    ngx_slab_pool_t            *shpool;
    ngx_http_postback_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);
    live = sh->journal_live + ngx_http_postback_keys_journal_bytes(sh->keys);
    ngx_shmtx_unlock(&shpool->mutex);

    return live;
}


/*
 * What became of the journal records a writer took, refs: written (each
 * at its ref's place); still in hand (their leases go on); left for
 * another writer; or never to be written, as nginx stops (a delivery not
 * on disk at all is lost, and logged with `what`).
 */

void
ngx_http_postback_zone_journal_end(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_jref_t *refs, ngx_uint_t n, ngx_uint_t end,
    const char *what)
{
    uint64_t                     now;
    ngx_uint_t                   i;
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_shctx_t   *sh;
    ngx_http_postback_record_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    now = ngx_http_postback_now();

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < n; i++) {
        d = ngx_http_postback_zone_held(sh, &refs[i]);

        /* no record, or taken over and written by another worker too */
        if (d == NULL || !d->queued) {
            continue;
        }

        switch (end) {

        case NGX_HTTP_POSTBACK_WRITTEN:
            ngx_http_postback_journal_written(sh, d, &refs[i]);
            break;

        case NGX_HTTP_POSTBACK_IN_HAND:
            d->jlease = now + NGX_HTTP_POSTBACK_JOURNAL_LEASE;
            break;

        case NGX_HTTP_POSTBACK_RELEASED:
            d->jlease = 0;
            break;

        default: /* NGX_HTTP_POSTBACK_UNWRITTEN */
            if (d->journal == NGX_HTTP_POSTBACK_JOURNAL_NONE
                && !ngx_http_postback_finished(d->state))
            {
                ngx_http_postback_journal_lose(sh, d, ngx_cycle->log, what);

            } else {
                /* finished: at worst it is sent once more after a start */
                ngx_http_postback_journal_close(sh, d);
            }

            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* under the lock: d's next journal record is on disk, at ref's place */

static void
ngx_http_postback_journal_written(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_record_t *d, ngx_http_postback_jref_t *ref)
{
    d->jlease = 0;

    /* a whole one's records are one write: read both or neither */
    if (d->journal != NGX_HTTP_POSTBACK_JOURNAL_NONE || ref->whole) {
        d->eat = ref->offset;
        d->efile = (uint32_t) ref->file;
        ngx_http_postback_journal_close(sh, d);
        return;
    }

    d->jsize = ref->size;
    ngx_http_postback_journal_set(sh, d, NGX_HTTP_POSTBACK_JOURNAL_CREATED);

    /* a finished one stays queued: its finished record is next */
    if (!ngx_http_postback_finished(d->state)) {
        ngx_http_postback_journal_dequeue(sh, d);
    }
}


/*
 * Whether a delivery from the journal would find room: a page free, or
 * finished records to evict (mostly: those the journal needs stay).
 */

ngx_flag_t
ngx_http_postback_zone_has_room(ngx_shm_zone_t *shm_zone)
{
    ngx_flag_t                  room;
    ngx_slab_pool_t            *shpool;
    ngx_http_postback_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);
    room = (shpool->pfree > 0 || sh->nfinished > 0);
    ngx_shmtx_unlock(&shpool->mutex);

    return room;
}


/* how many deliveries wait in the journal only, all callbacks */

uint64_t
ngx_http_postback_zone_in_spool(ngx_shm_zone_t *shm_zone)
{
    uint64_t                       n;
    ngx_queue_t                   *q;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_cb_state_t  *cs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->callbacks);
         q != ngx_queue_sentinel(&sh->callbacks);
         q = ngx_queue_next(q))
    {
        cs = ngx_queue_data(q, ngx_http_postback_cb_state_t, queue);
        n += cs->in_spool;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/*
 * A delivery of the callback named waits in the journal only (delta 1),
 * or no longer, never having got there (-1; dropped: counted so).
 */

void
ngx_http_postback_zone_spilled(ngx_shm_zone_t *shm_zone, ngx_str_t *callback,
    ngx_int_t delta, ngx_flag_t dropped)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_cb_state_t  *cs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    cs = ngx_http_postback_zone_named(shpool->data, callback);
    if (cs) {
        ngx_http_postback_zone_gauge(cs, NGX_HTTP_POSTBACK_SPILLED,
                                     (uint64_t) delta);
        cs->dropped += dropped ? 1 : 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}
