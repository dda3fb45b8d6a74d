
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The key table of postback_key: the last event seen for each key (a
 * transaction), so that a status shown again sends nothing.  It lives in
 * the zone, under the zone's lock, and survives reloads; when the zone
 * needs room, the least recently seen keys go first.  With a spool, each
 * change, and each key that leaves, is written to the journal (a key
 * record), from which a start restores the table.
 */


#include "ngx_http_postback_module.h"
#include "pb_journal.h"


/* keys an eviction passes over for being pinned, and evicts for one key */
#define NGX_HTTP_POSTBACK_KEYS_EVICT_SCAN  64


typedef struct {
    ngx_str_node_t                sn;       /* the key, in data */
    ngx_queue_t                   queue;    /* least recently seen first */
    uint64_t                      seen;     /* ms */
    uint64_t                      changed;  /* ms: its event last changed,
                                               unique in the table */
    uint32_t                      pinned;   /* timeout events it waits on */
    uint16_t                      event_len;
    u_char                        data[1];  /* key, event */
} ngx_http_postback_key_t;


struct ngx_http_postback_keys_s {
    ngx_rbtree_t                  tree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;
    uint64_t                      last;     /* the latest change's stamp */
    uint64_t                      bytes;    /* of their key records */
    uint64_t                      count;
    uint64_t                      evicted;
};


static ngx_http_postback_key_t *ngx_http_postback_keys_find(
    ngx_http_postback_keys_t *keys, ngx_str_t *key, uint32_t *hash);
static uint64_t ngx_http_postback_keys_stamp(ngx_http_postback_keys_t *keys,
    uint64_t now);
static ngx_int_t ngx_http_postback_keys_set(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k,
    ngx_str_t *key, uint32_t hash, ngx_str_t *event, uint64_t now,
    uint64_t changed);
static ngx_http_postback_key_t *ngx_http_postback_keys_store(
    ngx_slab_pool_t *shpool, ngx_http_postback_keys_t *keys, ngx_str_t *key,
    uint32_t hash, ngx_str_t *event);
static void ngx_http_postback_keys_remove(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k);
static void ngx_http_postback_keys_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k);
static size_t ngx_http_postback_key_record_size(size_t key_len,
    size_t event_len);


/* a fresh zone's table */

ngx_http_postback_keys_t *
ngx_http_postback_keys_zone_init(ngx_slab_pool_t *shpool)
{
    ngx_http_postback_keys_t  *keys;

    keys = ngx_slab_calloc(shpool, sizeof(ngx_http_postback_keys_t));
    if (keys == NULL) {
        return NULL;
    }

    ngx_rbtree_init(&keys->tree, &keys->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&keys->lru);

    return keys;
}


/*
 * An event seen for a key: NGX_OK when it differs from the last one (now
 * the last one, *changed its stamp), NGX_DECLINED when it is the same;
 * NGX_ERROR: the zone has no room to keep the key (the event still counts
 * as a change).
 */

ngx_int_t
ngx_http_postback_keys_seen(ngx_shm_zone_t *shm_zone, ngx_str_t *key,
    ngx_str_t *event, uint64_t *changed)
{
    uint32_t                   hash;
    uint64_t                   now;
    ngx_int_t                  rc;
    ngx_str_t                  none;
    ngx_slab_pool_t           *shpool;
    ngx_http_postback_key_t   *k;
    ngx_http_postback_keys_t  *keys;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    keys = ngx_http_postback_zone_keys(shm_zone);
    now = ngx_http_postback_now();

    ngx_shmtx_lock(&shpool->mutex);

    k = ngx_http_postback_keys_find(keys, key, &hash);

    if (k && k->event_len == event->len
        && ngx_memcmp(k->data + key->len, event->data, event->len) == 0)
    {
        k->seen = now;
        ngx_queue_remove(&k->queue);
        ngx_queue_insert_tail(&keys->lru, &k->queue);

        ngx_shmtx_unlock(&shpool->mutex);

        return NGX_DECLINED;
    }

    *changed = ngx_http_postback_keys_stamp(keys, now);

    rc = ngx_http_postback_keys_set(shpool, keys, k, key, hash, event, now,
                                    *changed);

    /* no room: the key is not (or no longer) in the table, nor on disk */
    ngx_str_null(&none);
    ngx_http_postback_spool_key(key, rc == NGX_ERROR ? &none : event,
                                *changed);

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * Under the lock: a timeout event armed when its key last changed at
 * `armed` and due at `due` fires (1) unless the key changed in between
 * (0).  Fired, the event becomes the key's last one, with the same
 * change's stamp, so that the other timeout events the change armed
 * (another callback's, a later one) still fire; a key changed after
 * `due` saw it fire before (a delivery read back after a restart): it
 * fires on, the key left as it is.
 */

ngx_flag_t
ngx_http_postback_keys_fire_locked(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_str_t *key, ngx_str_t *event,
    uint64_t armed, uint64_t due)
{
    uint32_t                  hash;
    uint64_t                  now;
    ngx_http_postback_key_t  *k;

    k = ngx_http_postback_keys_find(keys, key, &hash);
    now = ngx_http_postback_now();

    if (k && k->changed != armed) {
        return k->changed >= due;
    }

    /* an entry gone meanwhile comes back as a change of its own */
    (void) ngx_http_postback_keys_set(shpool, keys, k, key, hash, event, now,
                                      k ? armed
                                        : ngx_http_postback_keys_stamp(keys,
                                                                       now));

    k = ngx_http_postback_keys_find(keys, key, &hash);

    if (k) {
        ngx_http_postback_spool_key(key, event, k->changed);
    }

    return 1;
}


/*
 * The change made at `changed` let through no delivery (dropped): it is
 * undone, so that the same status seen again is news again.
 */

void
ngx_http_postback_keys_forget(ngx_shm_zone_t *shm_zone, ngx_str_t *key,
    uint64_t changed)
{
    uint32_t                   hash;
    ngx_slab_pool_t           *shpool;
    ngx_http_postback_key_t   *k;
    ngx_http_postback_keys_t  *keys;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    keys = ngx_http_postback_zone_keys(shm_zone);

    ngx_shmtx_lock(&shpool->mutex);

    k = ngx_http_postback_keys_find(keys, key, &hash);

    if (k && k->changed == changed && !k->pinned) {
        ngx_http_postback_keys_remove(shpool, keys, k);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * Under the lock: a scheduled timeout event of key is made (delta 1) or
 * leaves that state (-1); a key with some is not evicted, so that a
 * change in time is not forgotten.
 */

void
ngx_http_postback_keys_pin_locked(ngx_http_postback_keys_t *keys,
    ngx_str_t *key, ngx_int_t delta)
{
    uint32_t                  hash;
    ngx_http_postback_key_t  *k;

    k = ngx_http_postback_keys_find(keys, key, &hash);

    if (k && (delta > 0 || k->pinned)) {
        k->pinned += delta;
    }
}


/*
 * A key read from the journal: its change, unless the table has a later
 * one; an empty event: the key left the table.
 */

void
ngx_http_postback_keys_restore(ngx_shm_zone_t *shm_zone, ngx_str_t *key,
    ngx_str_t *event, uint64_t changed)
{
    uint32_t                   hash;
    ngx_slab_pool_t           *shpool;
    ngx_http_postback_key_t   *k;
    ngx_http_postback_keys_t  *keys;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    keys = ngx_http_postback_zone_keys(shm_zone);

    ngx_shmtx_lock(&shpool->mutex);

    k = ngx_http_postback_keys_find(keys, key, &hash);

    if (k == NULL || k->changed <= changed) {
        keys->last = ngx_max(keys->last, changed);

        if (event->len) {
            (void) ngx_http_postback_keys_set(shpool, keys, k, key, hash,
                                              event, ngx_http_postback_now(),
                                              changed);

        } else if (k) {
            ngx_http_postback_keys_free(shpool, keys, k);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* under the lock: key's entry, or NULL; *hash: the key's */

static ngx_http_postback_key_t *
ngx_http_postback_keys_find(ngx_http_postback_keys_t *keys, ngx_str_t *key,
    uint32_t *hash)
{
    *hash = ngx_crc32_long(key->data, key->len);

    return (ngx_http_postback_key_t *) ngx_str_rbtree_lookup(&keys->tree, key,
                                                             *hash);
}


/* a new change's stamp: now, or just after the table's latest one */

static uint64_t
ngx_http_postback_keys_stamp(ngx_http_postback_keys_t *keys, uint64_t now)
{
    keys->last = ngx_max(now, keys->last + 1);

    return keys->last;
}


/*
 * Under the lock: event is key's last one, seen `now`, changed at
 * `changed`; k: its entry, if any.  NGX_ERROR: no room to keep it.
 */

static ngx_int_t
ngx_http_postback_keys_set(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k,
    ngx_str_t *key, uint32_t hash, ngx_str_t *event, uint64_t now,
    uint64_t changed)
{
    uint32_t  pinned;

    pinned = 0;

    if (k) {
        pinned = k->pinned;
        ngx_http_postback_keys_free(shpool, keys, k);
    }

    if (key->len > NGX_HTTP_POSTBACK_KEY_MAX || event->len > 0xffff) {
        return NGX_ERROR;
    }

    k = ngx_http_postback_keys_store(shpool, keys, key, hash, event);
    if (k == NULL) {
        return NGX_ERROR;
    }

    k->seen = now;
    k->changed = changed;
    k->pinned = pinned;

    return NGX_OK;
}


/* under the lock; evicts the least recently seen keys for room */

static ngx_http_postback_key_t *
ngx_http_postback_keys_store(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_str_t *key, uint32_t hash,
    ngx_str_t *event)
{
    size_t                    size;
    ngx_uint_t                n;
    ngx_http_postback_key_t  *k;

    size = offsetof(ngx_http_postback_key_t, data) + key->len + event->len;

    /* a few evicted at most: keys of another size may not make room */
    for (n = 0; /* void */ ; n++) {
        k = ngx_slab_alloc_locked(shpool, size);
        if (k) {
            break;
        }

        if (n == NGX_HTTP_POSTBACK_KEYS_EVICT_SCAN
            || !ngx_http_postback_keys_evict_locked(shpool, keys))
        {
            return NULL;
        }
    }

    k->sn.node.key = hash;
    k->pinned = 0;
    k->sn.str.len = key->len;
    k->sn.str.data = k->data;
    k->event_len = (uint16_t) event->len;
    ngx_memcpy(ngx_cpymem(k->data, key->data, key->len), event->data,
               event->len);

    ngx_rbtree_insert(&keys->tree, &k->sn.node);
    ngx_queue_insert_tail(&keys->lru, &k->queue);
    keys->count++;
    keys->bytes += ngx_http_postback_key_record_size(key->len, event->len);

    return k;
}


/*
 * Under the lock: the least recently seen key goes, unless timeout events
 * wait on it; 0: there is none to evict.
 */

ngx_flag_t
ngx_http_postback_keys_evict_locked(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_http_postback_key_t  *k;

    k = NULL;
    n = 0;

    for (q = ngx_queue_head(&keys->lru);
         q != ngx_queue_sentinel(&keys->lru)
         && n++ < NGX_HTTP_POSTBACK_KEYS_EVICT_SCAN;
         q = ngx_queue_next(q))
    {
        k = ngx_queue_data(q, ngx_http_postback_key_t, queue);

        if (!k->pinned) {
            break;
        }

        k = NULL;
    }

    if (k == NULL) {
        return 0;
    }

    ngx_http_postback_keys_remove(shpool, keys, k);
    keys->evicted++;

    return 1;
}


/* under the lock: k leaves the table, and the journal learns it first */

static void
ngx_http_postback_keys_remove(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k)
{
    ngx_str_t  none;

    ngx_str_null(&none);
    ngx_http_postback_spool_key(&k->sn.str, &none,
                                ngx_http_postback_keys_stamp(keys,
                                    ngx_http_postback_now()));

    ngx_http_postback_keys_free(shpool, keys, k);
}


static void
ngx_http_postback_keys_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k)
{
    ngx_rbtree_delete(&keys->tree, &k->sn.node);
    ngx_queue_remove(&k->queue);
    keys->count--;
    keys->bytes -= ngx_http_postback_key_record_size(k->sn.str.len,
                                                     k->event_len);

    ngx_slab_free_locked(shpool, k);
}


/* under the lock: the table's figures, for the status */

void
ngx_http_postback_keys_stats(ngx_http_postback_keys_t *keys,
    ngx_http_postback_keys_stats_t *stats)
{
    stats->count = keys->count;
    stats->evicted = keys->evicted;
}


/* under the lock: the bytes of the key records the journal must keep */

uint64_t
ngx_http_postback_keys_journal_bytes(ngx_http_postback_keys_t *keys)
{
    return keys->bytes;
}


/* the size of a key's record in the journal */

static size_t
ngx_http_postback_key_record_size(size_t key_len, size_t event_len)
{
    pb_journal_record_t  rec;

    ngx_memzero(&rec, sizeof(pb_journal_record_t));
    rec.type = PB_JOURNAL_KEY;
    rec.key.len = key_len;
    rec.event.len = event_len;

    return pb_journal_size(&rec);
}
