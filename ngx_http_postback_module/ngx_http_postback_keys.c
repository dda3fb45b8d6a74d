
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The key table of postback_key: the last event seen for each key (a
 * transaction), so that a status shown again sends nothing.  It lives in
 * the zone, under the zone's lock, and survives reloads; when the zone
 * needs room, the least recently seen keys go first.
 */


#include "ngx_http_postback_module.h"


typedef struct {
    ngx_str_node_t                sn;       /* the key, in data */
    ngx_queue_t                   queue;    /* least recently seen first */
    uint64_t                      seen;     /* ms */
    uint64_t                      changed;  /* ms: its event last changed,
                                               unique in the table */
    uint16_t                      event_len;
    u_char                        data[1];  /* key, event */
} ngx_http_postback_key_t;


struct ngx_http_postback_keys_s {
    ngx_rbtree_t                  tree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;
    uint64_t                      last;     /* the latest change's stamp */
    uint64_t                      count;
    uint64_t                      evicted;
};


static ngx_int_t ngx_http_postback_keys_set(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k,
    ngx_str_t *key, uint32_t hash, ngx_str_t *event, uint64_t now,
    uint64_t *changed);
static ngx_http_postback_key_t *ngx_http_postback_keys_store(
    ngx_slab_pool_t *shpool, ngx_http_postback_keys_t *keys, ngx_str_t *key,
    uint32_t hash, ngx_str_t *event);
static void ngx_http_postback_keys_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k);


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
    ngx_slab_pool_t           *shpool;
    ngx_http_postback_key_t   *k;
    ngx_http_postback_keys_t  *keys;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    keys = ngx_http_postback_zone_keys(shm_zone);
    hash = ngx_crc32_long(key->data, key->len);
    now = ngx_http_postback_now();

    ngx_shmtx_lock(&shpool->mutex);

    k = (ngx_http_postback_key_t *) ngx_str_rbtree_lookup(&keys->tree, key,
                                                          hash);

    if (k && k->event_len == event->len
        && ngx_memcmp(k->data + key->len, event->data, event->len) == 0)
    {
        k->seen = now;
        ngx_queue_remove(&k->queue);
        ngx_queue_insert_tail(&keys->lru, &k->queue);

        ngx_shmtx_unlock(&shpool->mutex);

        return NGX_DECLINED;
    }

    rc = ngx_http_postback_keys_set(shpool, keys, k, key, hash, event, now,
                                    changed);

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * Under the lock: a timeout event armed when its key last changed at
 * `armed` is due.  1: nothing changed the key since (or it was evicted),
 * the event is now its last one; 0: it changed, the timeout is void.
 */

ngx_flag_t
ngx_http_postback_keys_fire_locked(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_str_t *key, ngx_str_t *event,
    uint64_t armed)
{
    uint32_t                  hash;
    uint64_t                  changed;
    ngx_http_postback_key_t  *k;

    hash = ngx_crc32_long(key->data, key->len);

    k = (ngx_http_postback_key_t *) ngx_str_rbtree_lookup(&keys->tree, key,
                                                          hash);


    if (k && k->changed != armed) {
        return 0;
    }

    (void) ngx_http_postback_keys_set(shpool, keys, k, key, hash, event,
                                      ngx_http_postback_now(), &changed);

    return 1;
}


/*
 * Under the lock: event is key's last one from `now`; k: its entry, if
 * any.  *changed: the change's stamp, `now` or just after the table's
 * latest, so that two changes within a millisecond are told apart.
 */

static ngx_int_t
ngx_http_postback_keys_set(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k,
    ngx_str_t *key, uint32_t hash, ngx_str_t *event, uint64_t now,
    uint64_t *changed)
{
    *changed = ngx_max(now, keys->last + 1);
    keys->last = *changed;

    if (k) {
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
    k->changed = *changed;

    return NGX_OK;
}


/* under the lock; evicts the least recently seen keys for room */

static ngx_http_postback_key_t *
ngx_http_postback_keys_store(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_str_t *key, uint32_t hash,
    ngx_str_t *event)
{
    size_t                    size;
    ngx_http_postback_key_t  *k;

    size = offsetof(ngx_http_postback_key_t, data) + key->len + event->len;

    for ( ;; ) {
        k = ngx_slab_alloc_locked(shpool, size);
        if (k) {
            break;
        }

        if (!ngx_http_postback_keys_evict_locked(shpool, keys)) {
            return NULL;
        }
    }

    k->sn.node.key = hash;
    k->sn.str.len = key->len;
    k->sn.str.data = k->data;
    k->event_len = (uint16_t) event->len;
    ngx_memcpy(ngx_cpymem(k->data, key->data, key->len), event->data,
               event->len);

    ngx_rbtree_insert(&keys->tree, &k->sn.node);
    ngx_queue_insert_tail(&keys->lru, &k->queue);
    keys->count++;

    return k;
}


/* under the lock: the least recently seen key goes; 0: there is none */

ngx_flag_t
ngx_http_postback_keys_evict_locked(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys)
{
    if (ngx_queue_empty(&keys->lru)) {
        return 0;
    }

    ngx_http_postback_keys_free(shpool, keys,
                                ngx_queue_data(ngx_queue_head(&keys->lru),
                                               ngx_http_postback_key_t,
                                               queue));
    keys->evicted++;

    return 1;
}


static void
ngx_http_postback_keys_free(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_http_postback_key_t *k)
{
    ngx_rbtree_delete(&keys->tree, &k->sn.node);
    ngx_queue_remove(&k->queue);
    keys->count--;

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
