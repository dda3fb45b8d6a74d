
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The shared ledger: every delivery with its request and attempts, the
 * per-callback counters and the capture counters, in one slab zone that
 * all workers see and that survives a reload.
 */


#include "ngx_http_postback_module.h"
#include "pb_backoff.h"
#include "pb_escape.h"


/* changes whenever the layout below changes: a reload keeps the zone */
#define NGX_HTTP_POSTBACK_ZONE_MAGIC  0x70620006

/* a claim outlives its transfer's timeout by this much, in ms */
#define NGX_HTTP_POSTBACK_LEASE_MARGIN  5000

/* due records a pickup passes over, at most, for want of a free slot */
#define NGX_HTTP_POSTBACK_CLAIM_SCAN    1024

/* the spool is rewritten once this big and mostly finished records */
#define NGX_HTTP_POSTBACK_COMPACT_MIN   (1024 * 1024)


typedef struct {
    ngx_rbtree_t                  rbtree;       /* deliveries by number */
    ngx_rbtree_node_t             sentinel;
    ngx_rbtree_t                  due;          /* by time to look at */
    ngx_rbtree_node_t             due_sentinel;
    ngx_queue_t                   deliveries;   /* oldest first */
    ngx_queue_t                   callbacks;
    ngx_uint_t                    magic;
    ngx_uint_t                    generation;   /* of the configuration */
    uint64_t                      boot;         /* ms, the ids' prefix */
    ngx_atomic_t                  seq;
    ngx_uint_t                    records;
    uint64_t                      evicted;

    /* the spool: bytes in it, bytes of records still pending in it */
    ngx_uint_t                    journal_generation;
    uint64_t                      journal_bytes;
    uint64_t                      journal_live;
    ngx_uint_t                    spooled_only;     /* not in the zone */
    ngx_flag_t                    journal_static;   /* cannot compact */

    ngx_atomic_t                  counters[NGX_HTTP_POSTBACK_COUNTERS];
} ngx_http_postback_shctx_t;


static void ngx_http_postback_zone_resume(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh);
static void ngx_http_postback_zone_schedule(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_delivery_t *d, ngx_uint_t state, uint64_t due);
static void ngx_http_postback_zone_take(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_callback_t *cb, ngx_http_postback_delivery_t *d,
    uint64_t now, ngx_http_postback_claim_t *claim);
static ngx_http_postback_delivery_t *ngx_http_postback_zone_numbered(
    ngx_http_postback_shctx_t *sh, ngx_rbtree_key_t key);
static ngx_http_postback_delivery_t *ngx_http_postback_zone_claimed(
    ngx_http_postback_shctx_t *sh, ngx_http_postback_claim_t *claim);
static ngx_http_postback_delivery_t *ngx_http_postback_zone_insert(
    ngx_slab_pool_t *shpool, ngx_http_postback_cb_shm_t *cs, u_char *id,
    ngx_rbtree_key_t key, ngx_http_postback_request_t *req);
static void ngx_http_postback_zone_end(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_delivery_t *d, ngx_uint_t state);
static void ngx_http_postback_zone_compact(ngx_http_postback_shctx_t *sh);
static void ngx_http_postback_record_request(ngx_http_postback_delivery_t *d,
    ngx_http_postback_request_t *req);
static ngx_http_postback_shctx_t *ngx_http_postback_zone_ctx(
    ngx_shm_zone_t *shm_zone);
static void *ngx_http_postback_zone_alloc(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, size_t size);
static void ngx_http_postback_zone_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, ngx_http_postback_delivery_t *d);
static ngx_int_t ngx_http_postback_zone_bind(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_shctx_t *sh);
static ngx_http_postback_delivery_t *ngx_http_postback_zone_lookup(
    ngx_http_postback_shctx_t *sh, ngx_str_t *id);
static ngx_http_postback_delivery_t *ngx_http_postback_delivery_copy(
    ngx_http_postback_delivery_t *d, ngx_flag_t request, ngx_pool_t *pool);
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

        return ngx_http_postback_zone_bind(shm_zone, sh);
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_postback_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_rbtree_insert_value);
    ngx_rbtree_init(&sh->due, &sh->due_sentinel, ngx_rbtree_insert_value);
    ngx_queue_init(&sh->deliveries);
    ngx_queue_init(&sh->callbacks);

    sh->magic = NGX_HTTP_POSTBACK_ZONE_MAGIC;
    sh->boot = ngx_http_postback_now();

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

    if (ngx_http_postback_zone_bind(shm_zone, sh) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a fresh zone: the pending deliveries of the last run are in the spool */
    if (((ngx_http_postback_main_conf_t *) shm_zone->data)->spool.len) {
        return ngx_http_postback_spool_replay(shm_zone);
    }

    return NGX_OK;
}


/* gives each configured callback its counters, kept across reloads */

static ngx_int_t
ngx_http_postback_zone_bind(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_shctx_t *sh)
{
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    ngx_slab_pool_t                *shpool;
    ngx_http_postback_cb_shm_t     *cs;
    ngx_http_postback_callback_t  **cbp;
    ngx_http_postback_main_conf_t  *pmcf;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    pmcf = shm_zone->data;
    cbp = pmcf->callbacks.elts;

    /* on a reload the old workers are still using the zone */
    ngx_shmtx_lock(&shpool->mutex);

    sh->generation++;

    for (i = 0; i < pmcf->callbacks.nelts; i++) {

        for (q = ngx_queue_head(&sh->callbacks);
             q != ngx_queue_sentinel(&sh->callbacks);
             q = ngx_queue_next(q))
        {
            cs = ngx_queue_data(q, ngx_http_postback_cb_shm_t, queue);

            if (cs->name_len == cbp[i]->name.len
                && ngx_strncmp(cs->name, cbp[i]->name.data, cs->name_len)
                   == 0)
            {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&sh->callbacks)) {
            cs = ngx_slab_calloc_locked(shpool,
                                        sizeof(ngx_http_postback_cb_shm_t));
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
            ngx_queue_insert_tail(&sh->callbacks, &cs->queue);
        }

        /* a reload switches a disabled callback on again */
        cs->disabled = 0;
        cs->generation = sh->generation;
        cbp[i]->shm = cs;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_postback_zone_resume(shpool, sh);

    return NGX_OK;
}


/* the paused deliveries of callbacks enabled again go out now */

static void
ngx_http_postback_zone_resume(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh)
{
    uint64_t                       now;
    ngx_queue_t                   *q;
    ngx_http_postback_delivery_t  *d;

    now = ngx_http_postback_now();

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->deliveries);
         q != ngx_queue_sentinel(&sh->deliveries);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_delivery_t, queue);

        if (d->state == NGX_HTTP_POSTBACK_PAUSED && !d->cb->disabled) {
            d->cb->paused--;
            d->cb->pending++;
            ngx_http_postback_zone_schedule(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                            now);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* under the lock: a new state, and when the due tree looks at it again */

static void
ngx_http_postback_zone_schedule(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_delivery_t *d, ngx_uint_t state, uint64_t due)
{
    if (d->state == NGX_HTTP_POSTBACK_PENDING
        || d->state == NGX_HTTP_POSTBACK_SENDING)
    {
        ngx_rbtree_delete(&sh->due, &d->due);
    }

    d->state = state;

    if (state == NGX_HTTP_POSTBACK_PENDING
        || state == NGX_HTTP_POSTBACK_SENDING)
    {
        d->due.key = due;
        ngx_rbtree_insert(&sh->due, &d->due);
    }

    if (state != NGX_HTTP_POSTBACK_SENDING) {
        d->owner = 0;
    }
}


/* under the lock: a delivery is finished, in the zone and in the spool */

static void
ngx_http_postback_zone_end(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_delivery_t *d, ngx_uint_t state)
{
    ngx_http_postback_zone_schedule(sh, d, state, 0);

    sh->journal_bytes += ngx_http_postback_spool_finished(
                                           sh->journal_generation, d->id);
    sh->journal_live -= ngx_min(d->journal_size, sh->journal_live);
    d->journal_size = 0;

    ngx_http_postback_zone_compact(sh);
}


/*
 * Under the lock: a spool that is mostly finished records is rewritten
 * with the pending ones, from the zone.  Not while records wait in the
 * spool only (for want of room): they are known to its file alone.
 */

static void
ngx_http_postback_zone_compact(ngx_http_postback_shctx_t *sh)
{
    size_t                         size;
    uint64_t                       live, before;
    ngx_fd_t                       fd;
    ngx_str_t                      name;
    ngx_flag_t                     ok;
    ngx_queue_t                   *q;
    ngx_http_postback_request_t    req;
    ngx_http_postback_delivery_t  *d;

    if (sh->journal_static
        || sh->spooled_only
        || sh->journal_bytes < NGX_HTTP_POSTBACK_COMPACT_MIN
        || sh->journal_live * 4 > sh->journal_bytes)
    {
        return;
    }

    fd = ngx_http_postback_spool_rewrite();
    if (fd == NGX_INVALID_FILE) {
        sh->journal_static = 1;
        return;
    }

    live = 0;
    ok = 1;

    for (q = ngx_queue_head(&sh->deliveries);
         q != ngx_queue_sentinel(&sh->deliveries);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_delivery_t, queue);

        if (ngx_http_postback_finished(d)) {
            continue;
        }

        name.data = d->cb->name;
        name.len = d->cb->name_len;

        ngx_http_postback_record_request(d, &req);

        size = ngx_http_postback_spool_rewrite_add(fd, &name, d->id, &req);
        if (size == 0) {
            ok = 0;
            break;
        }

        d->journal_size = size;
        live += size;
    }

    if (ngx_http_postback_spool_rewrite_commit(fd, sh->journal_generation, ok)
        != NGX_OK)
    {
        sh->journal_static = 1;
        return;
    }

    before = sh->journal_bytes;

    sh->journal_generation++;
    sh->journal_bytes = live;
    sh->journal_live = live;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "postback: spool compacted from %uL to %uL bytes",
                  before, live);
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


/*
 * Records a delivery.  NGX_OK: claimed by this worker at once (a slot of
 * cb was free here), *claim filled; NGX_AGAIN: left pending for any
 * worker's pickup; NGX_DECLINED: paused or spooled; NGX_ERROR: no room,
 * dropped.
 */

ngx_int_t
ngx_http_postback_zone_add(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_callback_t *cb, u_char *id,
    ngx_http_postback_request_t *req, ngx_http_postback_claim_t *claim)
{
    size_t                         size;
    ngx_int_t                      rc;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_cb_shm_t    *cs;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_delivery_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    cs = cb->shm;

    ngx_shmtx_lock(&shpool->mutex);

    cs->events++;

    d = ngx_http_postback_zone_insert(shpool, cs, id,
                                      ngx_hextoi(id + 4 + 12, 12), req);
    rc = NGX_DECLINED;

    size = ngx_http_postback_spool_created(sh->journal_generation, &cb->name,
                                           id, req);
    sh->journal_bytes += size;
    sh->journal_live += size;

    if (d == NULL) {
        /* with a spool it waits there for a start with room */
        if (size) {
            cs->spooled++;
            sh->spooled_only++;

        } else {
            cs->dropped++;
            rc = NGX_ERROR;
        }

        ngx_shmtx_unlock(&shpool->mutex);
        return rc;
    }

    d->journal_size = size;

    if (cs->disabled) {
        cs->paused++;

    } else if (cb->active < cb->max_conns) {
        cs->pending++;
        ngx_http_postback_zone_take(sh, cb, d, req->created, claim);
        rc = NGX_OK;

    } else {
        /* this worker has no free slot for it: any worker's pickup will */
        rc = NGX_AGAIN;
        cs->pending++;
        ngx_http_postback_zone_schedule(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                        req->created);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * A pending delivery from the spool, at start: NGX_OK, or NGX_AGAIN when
 * the zone has no room for it.
 */

ngx_int_t
ngx_http_postback_zone_restore(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_callback_t *cb, u_char *id,
    ngx_http_postback_request_t *req, size_t size)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_delivery_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    /* a number of this zone's: ids of another run may repeat numbers */
    d = ngx_http_postback_zone_insert(shpool, cb->shm, id, ++sh->seq, req);

    /* its record is in the compacted journal either way */
    sh->journal_bytes += size;
    sh->journal_live += size;

    if (d) {
        d->journal_size = size;
        cb->shm->pending++;
        ngx_http_postback_zone_schedule(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                        ngx_http_postback_now());

    } else {
        sh->spooled_only++;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return d ? NGX_OK : NGX_AGAIN;
}


/* under the lock: a new record, in no state yet */

static ngx_http_postback_delivery_t *
ngx_http_postback_zone_insert(ngx_slab_pool_t *shpool,
    ngx_http_postback_cb_shm_t *cs, u_char *id, ngx_rbtree_key_t key,
    ngx_http_postback_request_t *req)
{
    u_char                        *p;
    size_t                         size;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_delivery_t  *d;

    sh = shpool->data;

    size = offsetof(ngx_http_postback_delivery_t, data)
           + req->event.len + req->url.len + req->headers.len + req->body.len;

    d = ngx_http_postback_zone_alloc(shpool, sh, size);
    if (d == NULL) {
        return NULL;
    }

    ngx_memzero(d, offsetof(ngx_http_postback_delivery_t, data));

    d->node.key = key;
    d->cb = cs;
    d->created = req->created;
    d->method = req->method;
    d->test = req->test ? 1 : 0;
    ngx_memcpy(d->id, id, NGX_HTTP_POSTBACK_ID_LEN);

    d->event_len = req->event.len;
    d->url_len = req->url.len;
    d->headers_len = req->headers.len;
    d->body_len = req->body.len;

    p = ngx_cpymem(d->data, req->event.data, req->event.len);
    p = ngx_cpymem(p, req->url.data, req->url.len);
    p = ngx_cpymem(p, req->headers.data, req->headers.len);
    ngx_memcpy(p, req->body.data, req->body.len);

    ngx_rbtree_insert(&sh->rbtree, &d->node);
    ngx_queue_insert_tail(&sh->deliveries, &d->queue);
    sh->records++;

    /* not in the due tree yet: schedule() must not take it out */
    d->state = NGX_HTTP_POSTBACK_PAUSED;

    return d;
}


/* under the lock: this worker claims d for a transfer */

static void
ngx_http_postback_zone_take(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_callback_t *cb, ngx_http_postback_delivery_t *d,
    uint64_t now, ngx_http_postback_claim_t *claim)
{
    d->claims++;
    d->owner = ngx_pid;
    ngx_http_postback_zone_schedule(sh, d, NGX_HTTP_POSTBACK_SENDING,
                                    now + cb->timeout
                                    + NGX_HTTP_POSTBACK_LEASE_MARGIN);

    /* the claim takes one of this worker's slots of the callback */
    cb->active++;

    claim->cb = cb;
    claim->d = d;
    claim->key = d->node.key;
    claim->claim = d->claims;
}


/* under the lock: the record of a number, or NULL */

static ngx_http_postback_delivery_t *
ngx_http_postback_zone_numbered(ngx_http_postback_shctx_t *sh,
    ngx_rbtree_key_t key)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel && node->key != key) {
        node = (key < node->key) ? node->left : node->right;
    }

    /* node is the record's first member */
    return (node != sentinel) ? (ngx_http_postback_delivery_t *) node : NULL;
}


/* under the lock: the record of a claim, if the claim still holds */

static ngx_http_postback_delivery_t *
ngx_http_postback_zone_claimed(ngx_http_postback_shctx_t *sh,
    ngx_http_postback_claim_t *claim)
{
    if (ngx_http_postback_zone_numbered(sh, claim->key) != claim->d
        || claim->d->state != NGX_HTTP_POSTBACK_SENDING
        || claim->d->owner != ngx_pid
        || claim->d->claims != claim->claim)
    {
        return NULL;
    }

    return claim->d;
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
    uint64_t                        now;
    ngx_uint_t                      i, n, skipped;
    ngx_slab_pool_t                *shpool;
    ngx_rbtree_node_t              *node, *next, *root, *sentinel;
    ngx_http_postback_shctx_t      *sh;
    ngx_http_postback_delivery_t   *d;
    ngx_http_postback_callback_t  **cbp, *cb;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    cbp = callbacks->elts;
    now = ngx_http_postback_now();
    n = 0;
    skipped = 0;
    *backlog = 0;
    *next_due = 0;

    ngx_shmtx_lock(&shpool->mutex);

    root = sh->due.root;
    sentinel = sh->due.sentinel;

    if (root == sentinel) {
        ngx_shmtx_unlock(&shpool->mutex);
        return 0;
    }

    for (node = ngx_rbtree_min(root, sentinel); node; node = next) {

        if (node->key > now) {
            *next_due = node->key;
            break;
        }

        next = ngx_rbtree_next(&sh->due, node);

        d = (ngx_http_postback_delivery_t *)
                ((u_char *) node
                 - offsetof(ngx_http_postback_delivery_t, due));

        cb = NULL;

        for (i = 0; i < callbacks->nelts; i++) {
            if (cbp[i]->shm == d->cb) {
                cb = cbp[i];
                break;
            }
        }

        if (cb == NULL) {
            if (d->cb->generation == sh->generation) {
                /* a callback new in a reload: left to the new workers */
                continue;
            }

            /* a reload removed its callback: nothing can send it */
            d->cb->pending--;
            d->cb->failed++;
            ngx_http_postback_zone_end(sh, d, NGX_HTTP_POSTBACK_FAILED);
            continue;
        }

        if (d->cb->disabled) {
            d->cb->pending--;
            d->cb->paused++;
            ngx_http_postback_zone_schedule(sh, d, NGX_HTTP_POSTBACK_PAUSED,
                                            0);
            continue;
        }

        if (cb->active >= cb->max_conns || n == max) {
            *backlog = 1;

            /* a long backlog of full callbacks: not all of it each time */
            if (++skipped == NGX_HTTP_POSTBACK_CLAIM_SCAN) {
                break;
            }

            continue;
        }

        ngx_http_postback_zone_take(sh, cb, d, now, &out[n++]);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/*
 * The request of a record just claimed, read without the lock: a claimed
 * record is neither changed nor evicted, and curl copies what it keeps.
 */

void
ngx_http_postback_zone_request(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim, ngx_http_postback_request_t *req,
    u_char *id)
{
    ngx_http_postback_record_request(claim->d, req);

    ngx_memcpy(id, claim->d->id, NGX_HTTP_POSTBACK_ID_LEN);
}


/* a record's request, pointing into the record */

static void
ngx_http_postback_record_request(ngx_http_postback_delivery_t *d,
    ngx_http_postback_request_t *req)
{
    req->method = d->method;
    req->created = d->created;

    req->event.data = d->data;
    req->event.len = d->event_len;
    req->url.data = req->event.data + d->event_len;
    req->url.len = d->url_len;
    req->headers.data = req->url.data + d->url_len;
    req->headers.len = d->headers_len;
    req->body.data = req->headers.data + d->headers_len;
    req->body.len = d->body_len;
}


/* records an attempt; returns when the delivery is due again (0: never) */

uint64_t
ngx_http_postback_zone_finish(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim, ngx_http_postback_result_t *res,
    ngx_log_t *log)
{
    size_t                         len;
    uint64_t                       now, delay, due;
    ngx_uint_t                     manual, resent, outcome;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_cb_shm_t    *cs;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_attempt_t   *a;
    ngx_http_postback_callback_t  *cb;
    ngx_http_postback_delivery_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    cb = claim->cb;
    now = ngx_http_postback_now();
    due = 0;

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_claimed(sh, claim);
    if (d == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "postback: callback \"%V\": an attempt outlived its "
                      "claim, another worker took the delivery over; its "
                      "outcome is not recorded", &cb->name);
        return 0;
    }

    cs = d->cb;

    /* a manual attempt is marked; a finished delivery resent gets one */
    manual = d->manual;
    resent = d->resent;
    d->manual = 0;
    d->resent = 0;

    a = ngx_http_postback_zone_alloc(shpool, sh,
                                     offsetof(ngx_http_postback_attempt_t, data)
                                     + res->error.len + res->response.len);
    if (a) {
        a->next = NULL;
        a->start = res->start;
        a->duration = res->duration;
        a->status = res->status;
        a->manual = manual;
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

    if (res->error.len || res->status < 200 || res->status > 599) {
        outcome = NGX_HTTP_POSTBACK_OUTCOME_ERROR;

    } else {
        outcome = NGX_HTTP_POSTBACK_OUTCOME_2XX + res->status / 100 - 2;
    }

    d->nattempts++;
    cs->attempts++;
    cs->outcomes[outcome]++;
    ngx_http_postback_histogram_add(&cs->attempt_duration, res->duration);
    cs->last_attempt = res->start;
    cs->last_status = res->status;
    cs->last_latency = res->duration;

    len = ngx_min(res->error.len, NGX_HTTP_POSTBACK_ERROR_MAX);
    ngx_memcpy(cs->last_error, res->error.data, len);
    cs->last_error_len = len;

    /* a 2xx whose body then timed out or broke is no success */
    if (outcome == NGX_HTTP_POSTBACK_OUTCOME_2XX) {
        ngx_http_postback_zone_end(sh, d, NGX_HTTP_POSTBACK_DELIVERED);
        cs->pending--;
        cs->delivered++;
        cs->consecutive_failures = 0;

        if (!resent) {
            ngx_http_postback_histogram_add(&cs->delivery_latency,
                                            (ngx_msec_t) (now - d->created));
        }

        goto done;
    }

    if (res->status == 410) {   /* Gone: the receiver says stop */
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "postback: callback \"%V\" disabled: its receiver "
                      "answered 410 Gone", &cb->name);
        cs->disabled = NGX_HTTP_POSTBACK_DISABLED_GONE;
        cs->state_changed = now;

    } else if (!resent && d->nattempts < cb->attempts) {
        delay = pb_backoff_delay(cb->retry, cb->nretry, d->nattempts,
                                 (uint32_t) ngx_random(), res->retry_after);

        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "postback: callback \"%V\" delivery %*s: attempt %ui "
                      "of %ui failed, next in %uL ms", &cb->name,
                      (size_t) NGX_HTTP_POSTBACK_ID_LEN, d->id, d->nattempts,
                      cb->attempts, delay);

        due = now + delay;
        ngx_http_postback_zone_schedule(sh, d, NGX_HTTP_POSTBACK_PENDING, due);
        goto done;
    }

    ngx_http_postback_zone_end(sh, d, NGX_HTTP_POSTBACK_FAILED);
    cs->pending--;
    cs->failed++;
    cs->consecutive_failures++;

    if (cb->disable_after && cs->consecutive_failures >= cb->disable_after
        && !cs->disabled)
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "postback: callback \"%V\" disabled after %uL failed "
                      "deliveries in a row", &cb->name,
                      cs->consecutive_failures);
        cs->disabled = NGX_HTTP_POSTBACK_DISABLED_FAILS;
        cs->state_changed = now;
    }

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return due;
}


/* a worker going away hands its unfinished claims back */

void
ngx_http_postback_zone_release(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_delivery_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_claimed(shpool->data, claim);
    if (d) {
        ngx_http_postback_zone_schedule(shpool->data, d,
                                        NGX_HTTP_POSTBACK_PENDING,
                                        ngx_http_postback_now());
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* under the lock; makes room by evicting the oldest finished records */

static void *
ngx_http_postback_zone_alloc(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, size_t size)
{
    void                          *p;
    ngx_queue_t                   *q, *next;
    ngx_http_postback_delivery_t  *d;

    p = ngx_slab_alloc_locked(shpool, size);
    if (p) {
        return p;
    }

    for (q = ngx_queue_head(&sh->deliveries);
         q != ngx_queue_sentinel(&sh->deliveries);
         q = next)
    {
        next = ngx_queue_next(q);
        d = ngx_queue_data(q, ngx_http_postback_delivery_t, queue);

        if (!ngx_http_postback_finished(d)) {
            continue;
        }

        ngx_http_postback_zone_free(shpool, sh, d);
        sh->evicted++;

        p = ngx_slab_alloc_locked(shpool, size);
        if (p) {
            return p;
        }
    }

    return NULL;
}


static void
ngx_http_postback_zone_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_shctx_t *sh, ngx_http_postback_delivery_t *d)
{
    ngx_http_postback_attempt_t  *a, *next;

    for (a = d->attempts; a; a = next) {
        next = a->next;
        ngx_slab_free_locked(shpool, a);
    }

    ngx_rbtree_delete(&sh->rbtree, &d->node);
    ngx_queue_remove(&d->queue);
    sh->records--;

    ngx_slab_free_locked(shpool, d);
}


u_char *
ngx_http_postback_time_text(u_char *buf, uint64_t ms)
{
    ngx_tm_t  tm;

    ngx_gmtime((time_t) (ms / 1000), &tm);

    return ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                       (int) (ms % 1000));
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
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    ngx_slab_pool_t                *shpool;
    ngx_http_postback_shctx_t      *sh;
    ngx_http_postback_delivery_t   *d;
    ngx_http_postback_callback_t  **cbp;
    ngx_http_postback_main_conf_t  *pmcf;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;
    pmcf = shm_zone->data;
    cbp = pmcf->callbacks.elts;

    ngx_memzero(snap, sizeof(ngx_http_postback_snapshot_t));

    snap->ncallbacks = pmcf->callbacks.nelts;
    snap->callbacks = ngx_palloc(pool, (snap->ncallbacks + 1)
                                       * sizeof(ngx_http_postback_cb_shm_t));
    snap->deliveries = ngx_palloc(pool, (query->limit + 1) * sizeof(void *));

    if (snap->callbacks == NULL || snap->deliveries == NULL) {
        return NGX_ERROR;
    }

    snap->size = shm_zone->shm.size;

    ngx_shmtx_lock(&shpool->mutex);

    snap->used = shm_zone->shm.size - shpool->pfree * ngx_pagesize;
    snap->records = sh->records;
    snap->evicted = sh->evicted;

    for (i = 0; i < NGX_HTTP_POSTBACK_COUNTERS; i++) {
        snap->counters[i] = sh->counters[i];
    }

    for (i = 0; i < snap->ncallbacks; i++) {
        snap->callbacks[i] = *cbp[i]->shm;
    }

    for (q = ngx_queue_last(&sh->deliveries);
         q != ngx_queue_sentinel(&sh->deliveries)
         && snap->ndeliveries < query->limit;
         q = ngx_queue_prev(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_delivery_t, queue);

        if ((query->state != -1 && d->state != (ngx_uint_t) query->state)
            || (query->callback.len
                && (query->callback.len != d->cb->name_len
                    || ngx_strncmp(query->callback.data, d->cb->name,
                                   d->cb->name_len) != 0))
            || (query->event.len
                && (query->event.len != d->event_len
                    || ngx_strncmp(query->event.data, d->data,
                                   d->event_len) != 0)))
        {
            continue;
        }

        d = ngx_http_postback_delivery_copy(d, 0, pool);
        if (d == NULL) {
            break;
        }

        snap->deliveries[snap->ndeliveries++] = d;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/* one delivery with its request, copied into the pool; NULL: not known */

ngx_http_postback_delivery_t *
ngx_http_postback_zone_find(ngx_shm_zone_t *shm_zone, ngx_str_t *id,
    ngx_pool_t *pool)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_delivery_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_lookup(shpool->data, id);
    if (d) {
        d = ngx_http_postback_delivery_copy(d, 1, pool);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return d;
}


/*
 * A delivery sent again now, at the operator's word.  A pending one goes
 * at once and keeps its schedule after; a finished one gets one attempt.
 * NGX_OK; NGX_DECLINED: not known; NGX_BUSY: being sent or paused.
 */

ngx_int_t
ngx_http_postback_zone_retry(ngx_shm_zone_t *shm_zone, ngx_str_t *id,
    ngx_log_t *log)
{
    ngx_int_t                      rc;
    ngx_slab_pool_t               *shpool;
    ngx_http_postback_shctx_t     *sh;
    ngx_http_postback_delivery_t  *d;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    d = ngx_http_postback_zone_lookup(sh, id);

    if (d == NULL) {
        rc = NGX_DECLINED;

    } else if (d->state == NGX_HTTP_POSTBACK_SENDING
               || d->state == NGX_HTTP_POSTBACK_PAUSED
               || d->cb->disabled)
    {
        rc = NGX_BUSY;

    } else {
        if (ngx_http_postback_finished(d)) {
            d->resent = 1;
            d->cb->pending++;
        }

        d->manual = 1;
        d->cb->manual++;
        ngx_http_postback_zone_schedule(sh, d, NGX_HTTP_POSTBACK_PENDING,
                                        ngx_http_postback_now());
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "postback: delivery %V to be sent again, as asked "
                      "through the status API", id);
    }

    return rc;
}


/* the status API switches a callback; enabling it resumes its paused */

void
ngx_http_postback_zone_switch(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_callback_t *cb, ngx_flag_t enable)
{
    ngx_slab_pool_t             *shpool;
    ngx_http_postback_cb_shm_t  *cs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    cs = cb->shm;

    ngx_shmtx_lock(&shpool->mutex);

    if (enable) {
        cs->disabled = NGX_HTTP_POSTBACK_ENABLED;
        cs->consecutive_failures = 0;

    } else {
        cs->disabled = NGX_HTTP_POSTBACK_DISABLED_API;
    }

    cs->state_changed = ngx_http_postback_now();

    ngx_shmtx_unlock(&shpool->mutex);

    if (enable) {
        ngx_http_postback_zone_resume(shpool, shpool->data);
    }
}


/*
 * Under the lock: the record of an id.  Its number is in the id, except
 * for records restored from the spool, which got new numbers.
 */

static ngx_http_postback_delivery_t *
ngx_http_postback_zone_lookup(ngx_http_postback_shctx_t *sh, ngx_str_t *id)
{
    ngx_int_t                      key;
    ngx_queue_t                   *q;
    ngx_http_postback_delivery_t  *d;

    if (id->len != NGX_HTTP_POSTBACK_ID_LEN
        || ngx_strncmp(id->data, "msg_", 4) != 0)
    {
        return NULL;
    }

    key = ngx_hextoi(id->data + 4 + 12, 12);

    d = (key == NGX_ERROR) ? NULL : ngx_http_postback_zone_numbered(sh, key);

    if (d && ngx_strncmp(d->id, id->data, NGX_HTTP_POSTBACK_ID_LEN) == 0) {
        return d;
    }

    for (q = ngx_queue_head(&sh->deliveries);
         q != ngx_queue_sentinel(&sh->deliveries);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_postback_delivery_t, queue);

        if (ngx_strncmp(d->id, id->data, NGX_HTTP_POSTBACK_ID_LEN) == 0) {
            return d;
        }
    }

    return NULL;
}


/*
 * Under the lock: a copy of a record in the pool, with its attempts, and
 * with its headers and body when asked.  Its cb still points to the zone:
 * a callback's name never changes.
 */

static ngx_http_postback_delivery_t *
ngx_http_postback_delivery_copy(ngx_http_postback_delivery_t *d,
    ngx_flag_t request, ngx_pool_t *pool)
{
    size_t                         size;
    ngx_http_postback_attempt_t   *a, *ac, **next;
    ngx_http_postback_delivery_t  *c;

    size = offsetof(ngx_http_postback_delivery_t, data)
           + d->event_len + d->url_len;

    if (request) {
        size += d->headers_len + d->body_len;
    }

    c = ngx_palloc(pool, size);
    if (c == NULL) {
        return NULL;
    }

    ngx_memcpy(c, d, size);
    c->attempts = NULL;
    next = &c->attempts;

    if (!request) {
        c->headers_len = 0;
        c->body_len = 0;
    }

    for (a = d->attempts; a; a = a->next) {
        size = offsetof(ngx_http_postback_attempt_t, data)
               + a->error_len + a->response_len;

        ac = ngx_palloc(pool, size);
        if (ac == NULL) {
            return NULL;
        }

        ngx_memcpy(ac, a, size);
        ac->next = NULL;
        *next = ac;
        next = &ac->next;
    }

    return c;
}
