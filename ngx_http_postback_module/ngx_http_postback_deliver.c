
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * A delivery's life in a worker: claimed from the zone (at once when its
 * event is captured, or by the pickup timer when due), sent by an engine,
 * its attempt recorded in the zone, which the retry policy schedules or
 * ends.  The engine sends bytes; everything else is written here once.
 * A worker leaving gracefully finishes its transfers in flight (they keep
 * it alive, bounded by their timeout and worker_shutdown_timeout) and
 * starts no new one.
 */


#include "ngx_http_postback_module.h"
#include "pb_escape.h"
#include "pb_fields.h"
#include "pb_sign.h"


#if (PB_WEBHOOK_ID_LEN != NGX_HTTP_POSTBACK_ID_LEN)
#error "a derived webhook-id must be as long as a delivery id"
#endif


/* due deliveries taken at once by a pickup */
#define NGX_HTTP_POSTBACK_PICKUP_MAX       256
#define NGX_HTTP_POSTBACK_PICKUP_INTERVAL  1000
/* failed attempts not logged one by one are summed up this often, ms */
#define NGX_HTTP_POSTBACK_SUMMARY_INTERVAL  60000
/* a leaving worker looks at its transfers this often, in ms */
#define NGX_HTTP_POSTBACK_HOLD_INTERVAL    1000
#define NGX_HTTP_POSTBACK_TRANSFER_POOL    2048


typedef struct {
    ngx_queue_t                     queue;  /* the worker's transfers */
    ngx_http_postback_claim_t       claim;
    uint64_t                        start;
    u_char                          webhook_id[NGX_HTTP_POSTBACK_ID_LEN];
    ngx_http_postback_send_t        send;
} ngx_http_postback_transfer_t;


typedef struct {
    ngx_http_postback_main_conf_t  *pmcf;
    ngx_shm_zone_t                 *shm_zone;
    ngx_log_t                      *log;
    ngx_event_t                     pickup;
    ngx_event_t                     hold;   /* while transfers are in flight */
    ngx_event_t                     summary;    /* of failed attempts */
    ngx_connection_t                timer_conn;     /* for the timers' log */
    ngx_flag_t                      backlog;
    ngx_flag_t                      running;
    ngx_queue_t                     active;
} ngx_http_postback_deliverer_t;


static void ngx_http_postback_deliver(ngx_http_postback_claim_t *claim);
static ngx_int_t ngx_http_postback_transfer_prepare(
    ngx_http_postback_transfer_t *t);
static ngx_int_t ngx_http_postback_send_url(ngx_http_postback_cb_conf_t *cb,
    ngx_http_postback_request_t *req, ngx_http_postback_send_t *send);
static ngx_int_t ngx_http_postback_transfer_headers(
    ngx_http_postback_transfer_t *t, ngx_http_postback_request_t *req);
static ngx_int_t ngx_http_postback_transfer_sign(
    ngx_http_postback_transfer_t *t, ngx_http_postback_request_t *req);
static ngx_int_t ngx_http_postback_header(ngx_http_postback_transfer_t *t,
    const char *name, u_char *value, size_t len);
static ngx_int_t ngx_http_postback_has_header(ngx_str_t *lines,
    const char *name);
static void ngx_http_postback_log_attempt(ngx_http_postback_transfer_t *t,
    ngx_http_postback_result_t *res, ngx_http_postback_recorded_t *rec);
static const char *ngx_http_postback_decision_text(
    ngx_http_postback_recorded_t *rec);
static void ngx_http_postback_log_disabled(ngx_http_postback_cb_conf_t *cb,
    ngx_http_postback_recorded_t *rec);
static void ngx_http_postback_summary_handler(ngx_event_t *ev);
static void ngx_http_postback_transfer_end(ngx_http_postback_transfer_t *t);
static void ngx_http_postback_pickup_handler(ngx_event_t *ev);
static void ngx_http_postback_pickup_at(uint64_t due);
static void ngx_http_postback_hold_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_postback_engine_start(
    ngx_http_postback_send_t *send);
static void ngx_http_postback_engine_stop(ngx_http_postback_send_t *send);


static ngx_http_postback_deliverer_t  ngx_http_postback_deliverer;


ngx_int_t
ngx_http_postback_deliver_init(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (ngx_http_postback_curl_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_postback_http_init(cycle);

    dl->pmcf = pmcf;
    dl->shm_zone = pmcf->shm_zone;
    dl->log = cycle->log;
    ngx_queue_init(&dl->active);

    /* the pickup does not hold a graceful shutdown, transfers in flight do */
    ngx_http_postback_timer_init(&dl->pickup,
                                 ngx_http_postback_pickup_handler,
                                 &dl->timer_conn, cycle->log, 1);
    ngx_http_postback_timer_init(&dl->hold, ngx_http_postback_hold_handler,
                                 &dl->timer_conn, cycle->log, 0);
    ngx_http_postback_timer_init(&dl->summary,
                                 ngx_http_postback_summary_handler,
                                 &dl->timer_conn, cycle->log, 1);

    dl->running = 1;

    /* soon: deliveries left by earlier workers may be due already */
    ngx_add_timer(&dl->pickup, ngx_random() % 100 + 1);
    ngx_add_timer(&dl->summary, NGX_HTTP_POSTBACK_SUMMARY_INTERVAL);

    return NGX_OK;
}


/*
 * At exit transfers are only left when worker_shutdown_timeout cut them
 * short (or the worker ends at once): they are recorded as attempts.
 */

void
ngx_http_postback_deliver_exit(ngx_cycle_t *cycle)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (!dl->running) {
        return;
    }

    ngx_http_postback_deliver_abort_all();

    dl->running = 0;

    if (dl->pickup.timer_set) {
        ngx_del_timer(&dl->pickup);
    }

    if (dl->pickup.posted) {
        ngx_delete_posted_event(&dl->pickup);
    }

    if (dl->summary.timer_set) {
        ngx_del_timer(&dl->summary);
    }

    ngx_http_postback_http_exit();
    ngx_http_postback_curl_exit();
}


/*
 * Hands a captured delivery to the ledger and, when this worker has a
 * slot of its callback free, to its engine at once.  NGX_ERROR: dropped,
 * and logged.
 */

ngx_int_t
ngx_http_postback_deliver_add(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, u_char *id,
    ngx_http_postback_request_t *req, ngx_log_t *log)
{
    ngx_int_t                   rc;
    ngx_http_postback_claim_t   claim;

    rc = ngx_http_postback_zone_add(shm_zone, cb, id, req, &claim);

    switch (rc) {

    case NGX_OK:
        ngx_http_postback_deliver(&claim);
        break;

    case NGX_AGAIN:
        /* the next transfer to end here frees a slot for it */
        ngx_http_postback_deliverer.backlog = 1;
        break;

    case NGX_BUSY:
        /* no room in the zone: it waits in the journal */
        ngx_http_postback_spool_keep(shm_zone, &cb->name, id, req);
        break;

    case NGX_ERROR:
        ngx_http_postback_log_lost(log, NULL, "dropped, zone full", &cb->name,
                                   &req->event, &req->fields);
        return NGX_ERROR;

    default: /* NGX_DECLINED: paused */
        break;
    }

    ngx_http_postback_spool_flush();

    return NGX_OK;
}


/* a delivery was made due now: this worker looks for it at once */

void
ngx_http_postback_deliver_soon(void)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (dl->running && !dl->pickup.posted) {
        ngx_post_event(&dl->pickup, &ngx_posted_events);
    }
}


static void
ngx_http_postback_pickup_handler(ngx_event_t *ev)
{
    uint64_t                        next;
    ngx_uint_t                      i, n;
    ngx_http_postback_claim_t       claims[NGX_HTTP_POSTBACK_PICKUP_MAX];
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (!dl->running || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    n = ngx_http_postback_zone_claim(dl->shm_zone, &dl->pmcf->callbacks,
                                     claims, NGX_HTTP_POSTBACK_PICKUP_MAX,
                                     &dl->backlog, &next);

    for (i = 0; i < n; i++) {
        ngx_http_postback_deliver(&claims[i]);
    }

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    /* a full pickup may have left due ones: look again at once */
    ngx_add_timer(ev, (n == NGX_HTTP_POSTBACK_PICKUP_MAX) ? 1
                      : NGX_HTTP_POSTBACK_PICKUP_INTERVAL);

    ngx_http_postback_pickup_at(next);
}


/* the pickup timer goes off no later than at `due` (ms since the epoch) */

static void
ngx_http_postback_pickup_at(uint64_t due)
{
    uint64_t                        now;
    ngx_msec_t                      delay;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (due == 0 || !dl->running) {
        return;
    }

    now = ngx_http_postback_now();
    delay = (due > now) ? (ngx_msec_t) (due - now) : 1;

    if (dl->pickup.timer_set
        && (ngx_msec_int_t) (dl->pickup.timer.key - ngx_current_msec)
           <= (ngx_msec_int_t) delay)
    {
        return;
    }

    if (dl->pickup.timer_set) {
        ngx_del_timer(&dl->pickup);
    }

    ngx_add_timer(&dl->pickup, delay);
}


/*
 * A claim of this worker's goes to the engine; the claim counted one of
 * its callback's slots here.  One that cannot be prepared is handed back;
 * one the engine cannot start is an attempt that failed.
 */

static void
ngx_http_postback_deliver(ngx_http_postback_claim_t *claim)
{
    ngx_pool_t                     *pool;
    ngx_http_postback_result_t      res;
    ngx_http_postback_transfer_t   *t;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    pool = ngx_create_pool(NGX_HTTP_POSTBACK_TRANSFER_POOL, dl->log);
    t = pool ? ngx_pcalloc(pool, sizeof(ngx_http_postback_transfer_t)) : NULL;

    if (t) {
        t->claim = *claim;
        t->send.transfer = t;
        t->send.cb = claim->cb;
        t->send.pool = pool;
        t->send.log = dl->log;
    }

    if (t == NULL || ngx_http_postback_transfer_prepare(t) != NGX_OK) {
        claim->cb->active--;
        ngx_http_postback_zone_release(dl->shm_zone, claim);

        if (pool) {
            ngx_destroy_pool(pool);
        }

        return;
    }

    ngx_queue_insert_tail(&dl->active, &t->queue);

    if (!dl->hold.timer_set) {
        ngx_add_timer(&dl->hold, NGX_HTTP_POSTBACK_HOLD_INTERVAL);
    }

    t->start = ngx_http_postback_now();

    if (ngx_http_postback_engine_start(&t->send) != NGX_OK) {
        ngx_memzero(&res, sizeof(ngx_http_postback_result_t));
        ngx_str_set(&res.error, "the transfer could not be started");

        ngx_http_postback_deliver_done(t, &res);
    }
}


static ngx_int_t
ngx_http_postback_engine_start(ngx_http_postback_send_t *send)
{
    return (send->cb->engine == NGX_HTTP_POSTBACK_ENGINE_NGINX)
           ? ngx_http_postback_http_start(send)
           : ngx_http_postback_curl_start(send);
}


static void
ngx_http_postback_engine_stop(ngx_http_postback_send_t *send)
{
    if (send->cb->engine == NGX_HTTP_POSTBACK_ENGINE_NGINX) {
        ngx_http_postback_http_stop(send);

    } else {
        ngx_http_postback_curl_stop(send);
    }
}


/*
 * What the engine sends, copied from the claimed record into the
 * transfer's pool (the record may change hands if the claim runs out):
 * the url, the body and every header line.
 */

static ngx_int_t
ngx_http_postback_transfer_prepare(ngx_http_postback_transfer_t *t)
{
    ngx_http_postback_send_t     *send;
    ngx_http_postback_request_t   req;

    send = &t->send;

    ngx_http_postback_zone_request(&t->claim, &req);

    if (ngx_http_postback_send_url(t->claim.cb, &req, send) != NGX_OK
        || ngx_http_postback_webhook_id(&t->claim.cb->name, &req,
                                        t->claim.id, t->webhook_id)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    send->method = req.method;

    send->body.len = req.body.len;
    send->body.data = ngx_pnalloc(send->pool, req.body.len + 1);

    if (send->body.data == NULL
        || ngx_array_init(&send->headers, send->pool, 8, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    *ngx_cpymem(send->body.data, req.body.data, req.body.len) = '\0';

    return ngx_http_postback_transfer_headers(t, &req);
}


/*
 * The url an attempt goes to, as the callback is configured now: its
 * origin, and its url= path when that has no variables (else the path
 * rendered at capture), then the param= query rendered at capture.
 */

static ngx_int_t
ngx_http_postback_send_url(ngx_http_postback_cb_conf_t *cb,
    ngx_http_postback_request_t *req, ngx_http_postback_send_t *send)
{
    u_char                        *p, *last;
    ngx_str_t                      path, query;
    ngx_http_postback_tpl_part_t  *part;

    last = req->url.data + req->url.len;
    part = cb->target.parts.elts;

    p = ngx_strlcasestrn(req->url.data, last, (u_char *) "://", 3 - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (p += 3; p < last && *p != '/' && *p != '?'; p++) {
        /* void */
    }

    path.data = p;
    path.len = last - p;
    ngx_str_null(&query);

    if (req->params_at && req->params_at <= req->url.len
        && cb->target.parts.nelts == 1 && part[0].index == NGX_ERROR)
    {
        path = part[0].literal;

        if (req->params_at < req->url.len) {
            /* past the '?' or '&' that joined it to the old path */
            query.data = req->url.data + req->params_at + 1;
            query.len = req->url.len - req->params_at - 1;
        }
    }

    send->url.len = cb->origin.len + path.len + 1 + query.len;
    send->url.data = ngx_pnalloc(send->pool, send->url.len + 1);
    if (send->url.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(send->url.data, cb->origin.data, cb->origin.len);
    p = ngx_cpymem(p, path.data, path.len);

    if (query.len) {
        *p++ = ngx_strlchr(path.data, path.data + path.len, '?') ? '&' : '?';
        p = ngx_cpymem(p, query.data, query.len);
    }

    *p = '\0';
    send->url.len = p - send->url.data;

    return NGX_OK;
}


/*
 * The webhook-id a delivery goes out with: for a keyed one, derived from
 * its callback, key and event, the same on any node and after a restart;
 * else its own id.
 */

ngx_int_t
ngx_http_postback_webhook_id(ngx_str_t *callback,
    ngx_http_postback_request_t *req, u_char *id, u_char *webhook_id)
{
    if (req->key.len == 0) {
        ngx_memcpy(webhook_id, id, NGX_HTTP_POSTBACK_ID_LEN);
        return NGX_OK;
    }

    if (pb_webhook_id((char *) callback->data, callback->len,
                      (char *) req->key.data, req->key.len,
                      (char *) req->event.data, req->event.len,
                      (char *) webhook_id)
        != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the header lines: ours, then the callback's header= ones */

static ngx_int_t
ngx_http_postback_transfer_headers(ngx_http_postback_transfer_t *t,
    ngx_http_postback_request_t *req)
{
    u_char                       *p, *line, *last;
    ngx_str_t                    *h;
    const char                   *type;
    ngx_http_postback_cb_conf_t  *cb;

    cb = t->claim.cb;

    if (ngx_http_postback_header(t, "webhook-id", t->webhook_id,
                                 NGX_HTTP_POSTBACK_ID_LEN)
        != NGX_OK
        || ngx_http_postback_header(t, "User-Agent",
                                    (u_char *) NGX_HTTP_POSTBACK_USER_AGENT,
                                    sizeof(NGX_HTTP_POSTBACK_USER_AGENT) - 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (cb->secret.len && ngx_http_postback_transfer_sign(t, req) != NGX_OK) {
        return NGX_ERROR;
    }

    type = ngx_http_postback_content_type(req->method, &req->headers);

    if (type
        && ngx_http_postback_header(t, "Content-Type", (u_char *) type,
                                    ngx_strlen(type))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (cb->authorization.len
        && ngx_http_postback_header(t, "Authorization",
                                    cb->authorization.data,
                                    cb->authorization.len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    last = req->headers.data + req->headers.len;

    for (line = req->headers.data; line < last; line = p + 1) {
        p = ngx_strlchr(line, last, '\n');
        if (p == NULL) {
            break;
        }

        if (*line == NGX_HTTP_POSTBACK_SECRET_MARK) {
            line++;
        }

        h = ngx_array_push(&t->send.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->len = p - line;
        h->data = ngx_pnalloc(t->send.pool, h->len + 1);
        if (h->data == NULL) {
            return NGX_ERROR;
        }

        *ngx_cpymem(h->data, line, h->len) = '\0';
    }

    return NGX_OK;
}


/* Standard Webhooks: every attempt signed with its own time */

static ngx_int_t
ngx_http_postback_transfer_sign(ngx_http_postback_transfer_t *t,
    ngx_http_postback_request_t *req)
{
    u_char                        stamp[NGX_TIME_T_LEN];
    u_char                        signature[PB_SIGN_LEN];
    time_t                        now;
    ngx_http_postback_cb_conf_t  *cb;

    cb = t->claim.cb;
    now = ngx_time();

    if (pb_sign(cb->secret.data, cb->secret.len, (char *) t->webhook_id,
                NGX_HTTP_POSTBACK_ID_LEN, (uint64_t) now, req->body.data,
                req->body.len, (char *) signature)
        != 0)
    {
        return NGX_ERROR;
    }

    if (ngx_http_postback_header(t, "webhook-timestamp", stamp,
                                 ngx_sprintf(stamp, "%T", now) - stamp)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_postback_header(t, "webhook-signature", signature,
                                    PB_SIGN_LEN);
}


/* one "Name: value" line, NUL-terminated, in the transfer's pool */

static ngx_int_t
ngx_http_postback_header(ngx_http_postback_transfer_t *t, const char *name,
    u_char *value, size_t len)
{
    u_char     *p;
    size_t      name_len;
    ngx_str_t  *h;

    h = ngx_array_push(&t->send.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    name_len = ngx_strlen(name);

    h->len = name_len + sizeof(": ") - 1 + len;
    h->data = ngx_pnalloc(t->send.pool, h->len + 1);
    if (h->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(h->data, name, name_len);
    *p++ = ':';
    *p++ = ' ';
    p = ngx_cpymem(p, value, len);
    *p = '\0';

    return NGX_OK;
}


/* the Content-Type of the method; a header= Content-Type replaces it */

const char *
ngx_http_postback_content_type(ngx_uint_t method, ngx_str_t *headers)
{
    if (ngx_http_postback_has_header(headers, "content-type:")) {
        return NULL;
    }

    switch (method) {

    case NGX_HTTP_POSTBACK_POST_JSON:
        return "application/json";

    case NGX_HTTP_POSTBACK_POST_FORM:
        return "application/x-www-form-urlencoded";

    default:
        return NULL;
    }
}


static ngx_int_t
ngx_http_postback_has_header(ngx_str_t *lines, const char *name)
{
    u_char  *p, *line, *last;
    size_t   len;

    len = ngx_strlen(name);
    last = lines->data + lines->len;

    for (line = lines->data; line < last; line = p + 1) {
        p = ngx_strlchr(line, last, '\n');
        if (p == NULL) {
            p = last;
        }

        if (*line == NGX_HTTP_POSTBACK_SECRET_MARK) {
            line++;
        }

        if ((size_t) (p - line) >= len
            && ngx_strncasecmp(line, (u_char *) name, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* a receiver's Retry-After, in ms and within reason: 429 and 503 only */

uint64_t
ngx_http_postback_retry_after(ngx_int_t status, off_t seconds)
{
    if (status != NGX_HTTP_TOO_MANY_REQUESTS
        && status != NGX_HTTP_SERVICE_UNAVAILABLE)
    {
        return 0;
    }

    return (uint64_t) ngx_min(ngx_max(seconds, 0),
                              NGX_HTTP_POSTBACK_RETRY_AFTER_MAX) * 1000;
}


/*
 * The engine's word on an attempt: recorded in the zone, which schedules
 * the delivery or ends it; the slot it took is free again.
 */

void
ngx_http_postback_deliver_done(void *transfer,
    ngx_http_postback_result_t *res)
{
    ngx_http_postback_recorded_t    rec;
    ngx_http_postback_transfer_t   *t = transfer;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    res->start = t->start;
    res->duration = (ngx_msec_t) (ngx_http_postback_now() - t->start);

    ngx_http_postback_zone_record_attempt(dl->shm_zone, &t->claim, res,
                                          &rec);

    ngx_http_postback_log_attempt(t, res, &rec);

    if (rec.disabled) {
        ngx_http_postback_spool_callback(t->claim.cb, rec.disabled,
                                         rec.stamp);
    }

    ngx_http_postback_transfer_end(t);

    ngx_http_postback_pickup_at(rec.due);

    /* a finished delivery may need its journal record */
    ngx_http_postback_spool_flush();

    /* a slot is free: due deliveries left waiting for one can go now */
    if (dl->backlog) {
        ngx_http_postback_deliver_soon();
    }
}


/*
 * An attempt in the log: each at info; at warn only what changes the
 * callback's state (its first failure, its recovery, its disabling) and,
 * every minute, the failures between (ngx_http_postback_summary_handler).
 */

static void
ngx_http_postback_log_attempt(ngx_http_postback_transfer_t *t,
    ngx_http_postback_result_t *res, ngx_http_postback_recorded_t *rec)
{
    ngx_str_t                      *name;
    ngx_http_postback_cb_conf_t    *cb;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    cb = t->claim.cb;
    name = &cb->name;

    if (rec->decision == (ngx_uint_t) -1) {
        ngx_log_error(NGX_LOG_WARN, dl->log, 0,
                      "postback: callback \"%V\": an attempt outlived its "
                      "claim, another worker took the delivery over; its "
                      "outcome is not recorded", name);
        return;
    }

    if (rec->decision == PB_POLICY_DELIVERED) {
        if (rec->recovered) {
            ngx_log_error(NGX_LOG_WARN, dl->log, 0,
                          "postback: callback \"%V\" recovered: delivery "
                          "%*s answered %i after failures since %uL s ago",
                          name, (size_t) NGX_HTTP_POSTBACK_ID_LEN,
                          t->claim.id, res->status,
                          (rec->stamp - rec->failing_since) / 1000);
        }

        return;
    }

    ngx_log_error(NGX_LOG_INFO, dl->log, 0,
                  "postback: callback \"%V\" delivery %*s attempt failed: "
                  "%V%s%i, %s", name, (size_t) NGX_HTTP_POSTBACK_ID_LEN,
                  t->claim.id, &res->error, res->error.len ? ", status " : "",
                  res->status, ngx_http_postback_decision_text(rec));

    if (rec->failing) {
        ngx_log_error(NGX_LOG_WARN, dl->log, 0,
                      "postback: callback \"%V\" failing: delivery %*s got "
                      "%V%s%i, %s", name, (size_t) NGX_HTTP_POSTBACK_ID_LEN,
                      t->claim.id, &res->error,
                      res->error.len ? ", status " : "status ", res->status,
                      ngx_http_postback_decision_text(rec));

    } else if (!rec->disabled) {
        cb->unlogged++;
    }

    if (rec->disabled) {
        ngx_http_postback_log_disabled(cb, rec);
    }
}


/* the rule that disabled a callback, with its figures */

static void
ngx_http_postback_log_disabled(ngx_http_postback_cb_conf_t *cb,
    ngx_http_postback_recorded_t *rec)
{
    u_char                         *p, *last;
    u_char                          why[NGX_MAX_ERROR_STR / 2];
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    p = why;
    last = why + sizeof(why);

    switch (rec->disabled) {

    case PB_DISABLE_GONE:
        p = ngx_slprintf(p, last, "its receiver answered 410 Gone");
        break;

    case PB_DISABLE_WRONG_URL:
        p = ngx_slprintf(p, last, "for %M ms (disable_on_error=) its "
                         "receiver answered nothing but errors that say the "
                         "url is wrong: no such name, a certificate that "
                         "does not verify, 404, 405",
                         cb->disable_on_error);
        break;

    default: /* PB_DISABLE_FAILURES */
        p = cb->disable_after
            ? ngx_slprintf(p, last, "%uL deliveries failed in a row "
                           "(disable_after=%ui)", rec->failures,
                           cb->disable_after)
            : ngx_slprintf(p, last, "every attempt failed for %M ms "
                           "(disable_after=)", cb->disable_after_time);
        break;
    }

    ngx_log_error(NGX_LOG_WARN, dl->log, 0,
                  "postback: callback \"%V\" disabled: %*s; its new and "
                  "pending deliveries are kept paused (%uL now) until it is "
                  "enabled through the status API or its url= changes",
                  &cb->name, (size_t) (p - why), why, rec->paused);
}


static const char *
ngx_http_postback_decision_text(ngx_http_postback_recorded_t *rec)
{
    switch (rec->decision) {

    case PB_POLICY_RETRY:
        return "retried later";

    case PB_POLICY_RESUME:
        return "a manual attempt: the schedule goes on";

    case PB_POLICY_GONE:
        return "410 Gone: failed";

    default:
        return "no attempt left: failed";
    }
}


/* every minute, the failed attempts the log did not show one by one */

static void
ngx_http_postback_summary_handler(ngx_event_t *ev)
{
    ngx_uint_t                      i;
    ngx_http_postback_cb_conf_t   **cbp;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    cbp = dl->pmcf->callbacks.elts;

    for (i = 0; i < dl->pmcf->callbacks.nelts; i++) {
        if (cbp[i]->unlogged == 0) {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, dl->log, 0,
                      "postback: callback \"%V\" still failing: %ui more "
                      "failed attempts in this worker in the last %ui s",
                      &cbp[i]->name, cbp[i]->unlogged,
                      (ngx_uint_t) NGX_HTTP_POSTBACK_SUMMARY_INTERVAL / 1000);

        cbp[i]->unlogged = 0;
    }

    if (dl->running) {
        ngx_add_timer(ev, NGX_HTTP_POSTBACK_SUMMARY_INTERVAL);
    }
}


/* the transfer's resources and its slot of the callback go */

static void
ngx_http_postback_transfer_end(ngx_http_postback_transfer_t *t)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    ngx_http_postback_engine_stop(&t->send);

    ngx_queue_remove(&t->queue);
    t->claim.cb->active--;

    if (ngx_queue_empty(&dl->active) && dl->hold.timer_set) {
        ngx_del_timer(&dl->hold);
    }

    ngx_destroy_pool(t->send.pool);
}


/*
 * worker_shutdown_timeout closed the transfers' connections: each went
 * out, so each is recorded as an attempt that failed.
 */

void
ngx_http_postback_deliver_abort_all(void)
{
    ngx_queue_t                    *q;
    ngx_http_postback_result_t      res;
    ngx_http_postback_transfer_t   *t;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    while (!ngx_queue_empty(&dl->active)) {
        q = ngx_queue_head(&dl->active);
        t = ngx_queue_data(q, ngx_http_postback_transfer_t, queue);

        ngx_memzero(&res, sizeof(ngx_http_postback_result_t));
        ngx_str_set(&res.error, "cut short: the worker was shutting down");

        ngx_http_postback_deliver_done(t, &res);
    }
}


/* keeps a leaving worker while its transfers are in flight */

static void
ngx_http_postback_hold_handler(ngx_event_t *ev)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (!ngx_queue_empty(&dl->active)) {
        ngx_add_timer(ev, NGX_HTTP_POSTBACK_HOLD_INTERVAL);
    }
}


/*
 * A delivery that is not sent, logged at error as far as a log line goes:
 * its callback, event and fields (from upstream data: they must not forge
 * log lines).  id: NULL when it does not matter.
 */

void
ngx_http_postback_log_lost(ngx_log_t *log, u_char *id, const char *what,
    ngx_str_t *callback, ngx_str_t *event, ngx_str_t *fields)
{
    u_char               *p, *last;
    u_char                text[NGX_MAX_ERROR_STR / 2];
    pb_kv_t               kv;
    const unsigned char  *pos, *end;

    p = text;
    last = text + sizeof(text);
    pos = fields->data;
    end = pos + fields->len;

    while (p < last && pb_fields_next(&pos, end, &kv)) {
        p = ngx_slprintf(p, last, " %*s=\"%*s\"", kv.name_len, kv.name,
                         kv.value_len, kv.value);
    }

    (void) pb_header_sanitize(text, p - text);

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "postback: delivery %*s%s%s: callback \"%V\", event \"%V\", "
                  "fields:%*s", (size_t) (id ? NGX_HTTP_POSTBACK_ID_LEN : 0),
                  id ? id : (u_char *) "", id ? " " : "", what, callback,
                  event, (size_t) (p - text), text);
}
