
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The spool: an append-only journal of deliveries created and finished,
 * so that pending ones survive a restart.  Workers append under the zone's
 * lock, one write(2) per record; nothing is fsync'd on the request path.
 * When a fresh zone starts, the master replays the journal into it and
 * compacts it to the deliveries still pending; while nginx runs, the zone
 * has it rewritten when it is mostly finished records, and each worker
 * reopens it when it sees the journal's generation change.
 */


#include "ngx_http_postback_module.h"
#include "pb_journal.h"


static ngx_int_t ngx_http_postback_spool_finished_ids(ngx_rbtree_t *tree,
    ngx_pool_t *pool, u_char *buf, size_t len);
static ngx_int_t ngx_http_postback_spool_restore(ngx_shm_zone_t *shm_zone,
    pb_journal_record_t *rec, size_t size);
static ngx_int_t ngx_http_postback_spool_read(ngx_str_t *path, ngx_log_t *log,
    u_char **buf, size_t *len);
static size_t ngx_http_postback_spool_append(ngx_fd_t fd,
    pb_journal_record_t *rec);
static ngx_int_t ngx_http_postback_spool_current(ngx_uint_t generation);
static void ngx_http_postback_spool_record(pb_journal_record_t *rec,
    ngx_str_t *callback, u_char *id, ngx_http_postback_request_t *req);


/* this process's journal, opened for appending, and its generation */
static ngx_fd_t     ngx_http_postback_spool_fd = NGX_INVALID_FILE;
static ngx_str_t   *ngx_http_postback_spool_path;
static ngx_str_t   *ngx_http_postback_spool_new;
static ngx_uint_t   ngx_http_postback_spool_generation;


ngx_int_t
ngx_http_postback_spool_replay(ngx_shm_zone_t *shm_zone)
{
    u_char                         *buf, *p, *last;
    size_t                          len, used;
    ngx_fd_t                        fd;
    ngx_int_t                       rc, restore;
    ngx_str_t                       tmp, id;
    ngx_log_t                      *log;
    ngx_uint_t                      restored, kept, skipped, damaged;
    ngx_pool_t                     *pool;
    ngx_rbtree_t                    finished;
    ngx_rbtree_node_t               sentinel;
    ngx_core_conf_t                *ccf;
    pb_journal_record_t             rec;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = shm_zone->data;
    log = shm_zone->shm.log;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    buf = NULL;

    if (ngx_http_postback_spool_read(&pmcf->spool, log, &buf, &len)
        != NGX_OK)
    {
        goto done;
    }

    ngx_rbtree_init(&finished, &sentinel, ngx_str_rbtree_insert_value);

    if (ngx_http_postback_spool_finished_ids(&finished, pool, buf, len)
        != NGX_OK)
    {
        goto done;
    }

    /* the compacted journal: the records still pending, as they were */

    tmp = pmcf->spool_new;

    /* made anew, so with the mode below even if an older one was wider */
    (void) ngx_delete_file(tmp.data);

    fd = ngx_open_file(tmp.data, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_OWNER_ACCESS);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", tmp.data);
        goto done;
    }

    restored = 0;
    kept = 0;
    skipped = 0;
    damaged = 0;
    last = buf + len;

    for (p = buf; p < last; p += used) {

        switch (pb_journal_read(p, last - p, &rec, &used)) {

        case PB_JOURNAL_CORRUPT:
            /* look for the next record */
            damaged++;
            used = 1;
            continue;

        case PB_JOURNAL_TORN:
            if (memmem(p + 1, last - p - 1, "PBJ", 3) != NULL) {
                /* a damaged length, not the end: records follow */
                damaged++;
                used = 1;
                continue;
            }

            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "postback: spool \"%V\" ends with a torn record "
                          "of %uz bytes, skipped", &pmcf->spool,
                          (size_t) (last - p));
            used = last - p;
            continue;
        }

        id.data = (u_char *) rec.id.data;
        id.len = rec.id.len;

        if (rec.type != PB_JOURNAL_CREATED
            || id.len != NGX_HTTP_POSTBACK_ID_LEN
            || ngx_str_rbtree_lookup(&finished, &id,
                                     ngx_crc32_short(id.data, id.len))
               != NULL)
        {
            continue;
        }

        restore = ngx_http_postback_spool_restore(shm_zone, &rec, used);

        if (restore == NGX_DECLINED) {
            skipped++;
            continue;
        }

        /* restored, or kept here until a start with room for it */

        if (ngx_write_fd(fd, p, used) != (ssize_t) used) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          ngx_write_fd_n " \"%s\" failed", tmp.data);
            ngx_close_file(fd);
            goto done;
        }

        if (restore == NGX_OK) {
            restored++;

        } else {
            kept++;
        }
    }

    if (damaged) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "postback: spool \"%V\" has %ui damaged bytes, "
                      "skipped", &pmcf->spool, damaged);
    }

    /* the one fsync: the compacted journal replaces the old one whole */

    if (fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "fsync() \"%s\" failed", tmp.data);
        ngx_close_file(fd);
        goto done;
    }

    /* the workers append to it */
    ccf = (ngx_core_conf_t *) ngx_get_conf(pmcf->cycle->conf_ctx,
                                           ngx_core_module);

    if (geteuid() == 0 && fchown(fd, ccf->user, (gid_t) -1) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "fchown() \"%s\" failed", tmp.data);
        ngx_close_file(fd);
        goto done;
    }

    ngx_close_file(fd);

    if (ngx_rename_file(tmp.data, pmcf->spool.data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_rename_file_n " \"%s\" to \"%V\" failed",
                      tmp.data, &pmcf->spool);
        goto done;
    }

    if (restored || kept || skipped) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "postback: spool \"%V\": %ui pending deliveries "
                      "restored, %ui kept in the spool for want of room, "
                      "%ui of callbacks no longer configured left out",
                      &pmcf->spool, restored, kept, skipped);
    }

    rc = NGX_OK;

done:

    ngx_free(buf);
    ngx_destroy_pool(pool);

    return rc;
}


/* the ids of finished deliveries, in a tree of ngx_str_node_t */

static ngx_int_t
ngx_http_postback_spool_finished_ids(ngx_rbtree_t *tree, ngx_pool_t *pool,
    u_char *buf, size_t len)
{
    u_char               *p, *last;
    size_t                used;
    ngx_str_node_t       *sn;
    pb_journal_record_t   rec;

    last = buf + len;

    for (p = buf; p < last; p += used) {

        if (pb_journal_read(p, last - p, &rec, &used) != PB_JOURNAL_OK) {
            used = 1;
            continue;
        }

        if (rec.type != PB_JOURNAL_FINISHED) {
            continue;
        }

        sn = ngx_palloc(pool, sizeof(ngx_str_node_t));
        if (sn == NULL) {
            return NGX_ERROR;
        }

        sn->str.data = (u_char *) rec.id.data;
        sn->str.len = rec.id.len;
        sn->node.key = ngx_crc32_short(sn->str.data, sn->str.len);

        ngx_rbtree_insert(tree, &sn->node);
    }

    return NGX_OK;
}


/*
 * NGX_DECLINED: its callback is not configured any more; NGX_AGAIN: no
 * room in the zone
 */

static ngx_int_t
ngx_http_postback_spool_restore(ngx_shm_zone_t *shm_zone,
    pb_journal_record_t *rec, size_t size)
{
    ngx_str_t                       name;
    ngx_http_postback_request_t     req;
    ngx_http_postback_callback_t   *cb;

    name.data = (u_char *) rec->callback.data;
    name.len = rec->callback.len;

    cb = ngx_http_postback_find_callback(shm_zone->data, &name);
    if (cb == NULL || rec->method > NGX_HTTP_POSTBACK_POST_JSON) {
        return NGX_DECLINED;
    }

    req.method = rec->method;
    req.created = rec->created;
    req.event.data = (u_char *) rec->event.data;
    req.event.len = rec->event.len;
    req.url.data = (u_char *) rec->url.data;
    req.url.len = rec->url.len;
    req.headers.data = (u_char *) rec->headers.data;
    req.headers.len = rec->headers.len;
    req.body.data = (u_char *) rec->body.data;
    req.body.len = rec->body.len;

    return ngx_http_postback_zone_restore(shm_zone, cb,
                                          (u_char *) rec->id.data, &req,
                                          size);
}


static ngx_int_t
ngx_http_postback_spool_read(ngx_str_t *path, ngx_log_t *log, u_char **buf,
    size_t *len)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    *buf = NULL;
    *len = 0;

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno == NGX_ENOENT) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_open_file_n " \"%V\" failed", path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_fd_info_n " \"%V\" failed", path);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    *len = (size_t) ngx_file_size(&fi);

    *buf = ngx_alloc(*len + 1, log);
    if (*buf == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, *buf, *len);

    ngx_close_file(fd);

    if (n != (ssize_t) *len) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_read_fd_n " \"%V\" failed", path);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_postback_spool_open(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf)
{
    if (pmcf->spool.len == 0) {
        return NGX_OK;
    }

    ngx_http_postback_spool_fd = ngx_open_file(pmcf->spool.data,
                                               NGX_FILE_APPEND,
                                               NGX_FILE_CREATE_OR_OPEN,
                                               NGX_FILE_OWNER_ACCESS);

    if (ngx_http_postback_spool_fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_open_file_n " \"%V\" failed", &pmcf->spool);
        return NGX_ERROR;
    }

    ngx_http_postback_spool_path = &pmcf->spool;
    ngx_http_postback_spool_new = &pmcf->spool_new;

    return NGX_OK;
}


void
ngx_http_postback_spool_close(void)
{
    if (ngx_http_postback_spool_fd != NGX_INVALID_FILE) {
        ngx_close_file(ngx_http_postback_spool_fd);
        ngx_http_postback_spool_fd = NGX_INVALID_FILE;
    }
}


/*
 * Under the zone's lock: appends a created record to the journal of the
 * given generation; returns its size, 0 when not written.
 */

size_t
ngx_http_postback_spool_created(ngx_uint_t generation, ngx_str_t *callback,
    u_char *id, ngx_http_postback_request_t *req)
{
    pb_journal_record_t  rec;

    if (ngx_http_postback_spool_current(generation) != NGX_OK) {
        return 0;
    }

    ngx_http_postback_spool_record(&rec, callback, id, req);

    return ngx_http_postback_spool_append(ngx_http_postback_spool_fd, &rec);
}


size_t
ngx_http_postback_spool_finished(ngx_uint_t generation, u_char *id)
{
    pb_journal_record_t  rec;

    if (ngx_http_postback_spool_current(generation) != NGX_OK) {
        return 0;
    }

    ngx_memzero(&rec, sizeof(pb_journal_record_t));

    rec.type = PB_JOURNAL_FINISHED;
    rec.id.data = id;
    rec.id.len = NGX_HTTP_POSTBACK_ID_LEN;

    return ngx_http_postback_spool_append(ngx_http_postback_spool_fd, &rec);
}


/*
 * Under the zone's lock: a new journal for the next generation is started
 * next to the current one; the zone adds its pending deliveries to it and
 * commits it, or aborts.
 */

ngx_fd_t
ngx_http_postback_spool_rewrite(void)
{
    ngx_fd_t  fd;

    if (ngx_http_postback_spool_fd == NGX_INVALID_FILE) {
        return NGX_INVALID_FILE;
    }

    (void) ngx_delete_file(ngx_http_postback_spool_new->data);

    fd = ngx_open_file(ngx_http_postback_spool_new->data, NGX_FILE_WRONLY,
                       NGX_FILE_TRUNCATE, NGX_FILE_OWNER_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      "postback: the spool is not compacted while nginx "
                      "runs: " ngx_open_file_n " \"%V\" failed (the "
                      "workers need to write in its directory)",
                      ngx_http_postback_spool_new);
    }

    return fd;
}


size_t
ngx_http_postback_spool_rewrite_add(ngx_fd_t fd, ngx_str_t *callback,
    u_char *id, ngx_http_postback_request_t *req)
{
    pb_journal_record_t  rec;

    ngx_http_postback_spool_record(&rec, callback, id, req);

    return ngx_http_postback_spool_append(fd, &rec);
}


/* NGX_OK: the new journal replaced the old one, as generation+1 */

ngx_int_t
ngx_http_postback_spool_rewrite_commit(ngx_fd_t fd, ngx_uint_t generation,
    ngx_flag_t ok)
{
    u_char  *tmp;

    ngx_close_file(fd);

    tmp = ngx_http_postback_spool_new->data;

    if (!ok) {
        (void) ngx_delete_file(tmp);
        return NGX_ERROR;
    }

    if (ngx_rename_file(tmp, ngx_http_postback_spool_path->data)
        == NGX_FILE_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      ngx_rename_file_n " \"%s\" to \"%V\" failed", tmp,
                      ngx_http_postback_spool_path);
        (void) ngx_delete_file(tmp);
        return NGX_ERROR;
    }

    return ngx_http_postback_spool_current(generation + 1);
}


/* the journal of that generation is the one this process appends to */

static ngx_int_t
ngx_http_postback_spool_current(ngx_uint_t generation)
{
    ngx_fd_t  fd;

    if (ngx_http_postback_spool_fd == NGX_INVALID_FILE) {
        return NGX_DECLINED;
    }

    if (generation == ngx_http_postback_spool_generation) {
        return NGX_OK;
    }

    /* another worker compacted it: the old file is gone */

    fd = ngx_open_file(ngx_http_postback_spool_path->data, NGX_FILE_APPEND,
                       NGX_FILE_CREATE_OR_OPEN, NGX_FILE_OWNER_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      ngx_open_file_n " \"%V\" failed",
                      ngx_http_postback_spool_path);
        return NGX_ERROR;
    }

    ngx_close_file(ngx_http_postback_spool_fd);
    ngx_http_postback_spool_fd = fd;
    ngx_http_postback_spool_generation = generation;

    return NGX_OK;
}


static void
ngx_http_postback_spool_record(pb_journal_record_t *rec, ngx_str_t *callback,
    u_char *id, ngx_http_postback_request_t *req)
{
    ngx_memzero(rec, sizeof(pb_journal_record_t));

    rec->type = PB_JOURNAL_CREATED;
    rec->method = req->method;
    rec->created = req->created;
    rec->id.data = id;
    rec->id.len = NGX_HTTP_POSTBACK_ID_LEN;
    rec->callback.data = callback->data;
    rec->callback.len = callback->len;
    rec->event.data = req->event.data;
    rec->event.len = req->event.len;
    rec->url.data = req->url.data;
    rec->url.len = req->url.len;
    rec->headers.data = req->headers.data;
    rec->headers.len = req->headers.len;
    rec->body.data = req->body.data;
    rec->body.len = req->body.len;
}


/* one write: a record is whole or, after a crash, a torn last one */

static size_t
ngx_http_postback_spool_append(ngx_fd_t fd, pb_journal_record_t *rec)
{
    u_char   *buf;
    size_t    size;
    ssize_t   n;

    size = pb_journal_size(rec);

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        return 0;
    }

    pb_journal_write(buf, rec);

    n = ngx_write_fd(fd, buf, size);

    ngx_free(buf);

    if (n != (ssize_t) size) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      "postback: writing to spool \"%V\" failed (%z of %uz "
                      "bytes)", ngx_http_postback_spool_path, n, size);
        return 0;
    }

    return size;
}
