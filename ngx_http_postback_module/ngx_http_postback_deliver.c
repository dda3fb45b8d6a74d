
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * Delivery: one libcurl multi handle per worker, driven by nginx's event
 * loop through curl's socket and timer callbacks.  Nothing here blocks:
 * curl's sockets are wrapped in nginx connections with level-triggered
 * events, and curl's timeout is an nginx timer.
 */


#include "ngx_http_postback_module.h"
#include "pb_sign.h"
#include <curl/curl.h>


/* due deliveries taken at once by a pickup */
#define NGX_HTTP_POSTBACK_PICKUP_MAX       256
/* easy handles kept for the next transfers, at most */
#define NGX_HTTP_POSTBACK_IDLE_MAX         64
#define NGX_HTTP_POSTBACK_PICKUP_INTERVAL  1000
#define NGX_HTTP_POSTBACK_RETRY_AFTER_MAX  86400   /* seconds */


typedef struct {
    ngx_queue_t                     queue;  /* the worker's transfers */
    ngx_http_postback_claim_t       claim;
    u_char                          id[NGX_HTTP_POSTBACK_ID_LEN];
    CURL                           *easy;
    struct curl_slist              *headers;
    uint64_t                        start;
    size_t                          response_len;
    u_char                          response[NGX_HTTP_POSTBACK_RESP_MAX];
    char                            error[CURL_ERROR_SIZE];
} ngx_http_postback_transfer_t;


typedef struct {
    CURLM                          *multi;
    ngx_http_postback_main_conf_t  *pmcf;
    ngx_shm_zone_t                 *shm_zone;
    ngx_log_t                      *log;
    ngx_event_t                     timer;
    ngx_event_t                     pickup;
    ngx_flag_t                      backlog;
    ngx_connection_t                timer_conn;     /* for the timers' log */
    ngx_queue_t                     active;
    ngx_connection_t              **sockets;        /* by fd */
    ngx_uint_t                      nsockets;
    CURL                           *idle[NGX_HTTP_POSTBACK_IDLE_MAX];
    ngx_uint_t                      nidle;
} ngx_http_postback_deliverer_t;


static ngx_int_t ngx_http_postback_start(ngx_http_postback_transfer_t *t);
static ngx_int_t ngx_http_postback_set_request(ngx_http_postback_transfer_t *t);
static ngx_int_t ngx_http_postback_has_header(ngx_str_t *lines,
    const char *name);
static ngx_int_t ngx_http_postback_add_header(ngx_http_postback_transfer_t *t,
    u_char *line);
static void ngx_http_postback_done(ngx_http_postback_transfer_t *t,
    CURLcode rc);
static void ngx_http_postback_transfer_end(ngx_http_postback_transfer_t *t);
static void ngx_http_postback_check_done(void);
static void ngx_http_postback_event_handler(ngx_event_t *ev);
static void ngx_http_postback_run(curl_socket_t s, int action);
static void ngx_http_postback_timer_handler(ngx_event_t *ev);
static void ngx_http_postback_pickup_handler(ngx_event_t *ev);
static void ngx_http_postback_pickup_at(uint64_t due);
static int ngx_http_postback_socket_cb(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp);
static int ngx_http_postback_timer_cb(CURLM *multi, long timeout_ms,
    void *userp);
static curl_socket_t ngx_http_postback_open_socket(void *clientp,
    curlsocktype purpose, struct curl_sockaddr *address);
static int ngx_http_postback_close_socket(void *clientp, curl_socket_t s);
static ngx_connection_t *ngx_http_postback_wrap_socket(curl_socket_t s);
static void ngx_http_postback_unwrap_socket(ngx_connection_t *c);
static void ngx_http_postback_forget_events(ngx_connection_t *c);
static size_t ngx_http_postback_write_cb(char *ptr, size_t size,
    size_t nmemb, void *userdata);


static ngx_http_postback_deliverer_t  ngx_http_postback_deliverer;


ngx_int_t
ngx_http_postback_deliver_init(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "postback: curl_global_init() failed");
        return NGX_ERROR;
    }

    dl->multi = curl_multi_init();
    if (dl->multi == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "postback: curl_multi_init() failed");
        return NGX_ERROR;
    }

    dl->pmcf = pmcf;
    dl->shm_zone = pmcf->shm_zone;
    dl->log = cycle->log;
    ngx_queue_init(&dl->active);

    /* neither timer holds a graceful shutdown: claims are handed back */

    dl->timer_conn.fd = (ngx_socket_t) -1;
    dl->timer.handler = ngx_http_postback_timer_handler;
    dl->timer.data = &dl->timer_conn;
    dl->timer.log = cycle->log;
    dl->timer.cancelable = 1;

    dl->pickup.handler = ngx_http_postback_pickup_handler;
    dl->pickup.data = &dl->timer_conn;
    dl->pickup.log = cycle->log;
    dl->pickup.cancelable = 1;

    /* soon: deliveries left by earlier workers may be due already */
    ngx_add_timer(&dl->pickup, ngx_random() % 100 + 1);

    curl_multi_setopt(dl->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_postback_socket_cb);
    curl_multi_setopt(dl->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_postback_timer_cb);

    /* curl's sockets count against worker_connections */
    curl_multi_setopt(dl->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long) ngx_max(cycle->connection_n / 4, 1));

    return NGX_OK;
}


void
ngx_http_postback_deliver_exit(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    ngx_http_postback_transfer_t   *t;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (dl->multi == NULL) {
        return;
    }

    while (!ngx_queue_empty(&dl->active)) {
        q = ngx_queue_head(&dl->active);
        t = ngx_queue_data(q, ngx_http_postback_transfer_t, queue);

        ngx_http_postback_zone_release(dl->shm_zone, &t->claim);
        ngx_http_postback_transfer_end(t);
    }

    while (dl->nidle) {
        curl_easy_cleanup(dl->idle[--dl->nidle]);
    }

    /* closes the cached connections through our close callback */
    curl_multi_cleanup(dl->multi);
    dl->multi = NULL;

    if (dl->timer.timer_set) {
        ngx_del_timer(&dl->timer);
    }

    if (dl->timer.posted) {
        ngx_delete_posted_event(&dl->timer);
    }

    if (dl->pickup.timer_set) {
        ngx_del_timer(&dl->pickup);
    }

    if (dl->pickup.posted) {
        ngx_delete_posted_event(&dl->pickup);
    }

    /* only the resolver's can be left: curl closed every one it opened */
    for (i = 0; i < dl->nsockets; i++) {
        if (dl->sockets[i]) {
            ngx_http_postback_unwrap_socket(dl->sockets[i]);
        }
    }

    ngx_free(dl->sockets);
    dl->sockets = NULL;
    dl->nsockets = 0;

    curl_global_cleanup();
}


/* the claim counted one of its callback's slots in this worker */

void
ngx_http_postback_deliver(ngx_http_postback_claim_t *claim, ngx_log_t *log)
{
    ngx_http_postback_transfer_t  *t;

    /* after worker_shutdown_timeout closed curl down, nothing is sent here */
    t = (ngx_http_postback_deliverer.multi == NULL)
        ? NULL : ngx_calloc(sizeof(ngx_http_postback_transfer_t), log);

    if (t == NULL) {
        claim->cb->active--;
        ngx_http_postback_zone_release(ngx_http_postback_deliverer.shm_zone,
                                       claim);
        return;
    }

    t->claim = *claim;

    if (ngx_http_postback_start(t) != NGX_OK) {
        ngx_http_postback_done(t, CURLE_OUT_OF_MEMORY);
    }
}


/* deliveries wait for a slot: a transfer that ends calls the pickup */

void
ngx_http_postback_deliver_backlog(void)
{
    ngx_http_postback_deliverer.backlog = 1;
}


/* a delivery was made due now: this worker looks for it at once */

void
ngx_http_postback_deliver_soon(void)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (dl->multi && !dl->pickup.posted) {
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

    if (dl->multi == NULL || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    n = ngx_http_postback_zone_claim(dl->shm_zone, &dl->pmcf->callbacks,
                                     claims, NGX_HTTP_POSTBACK_PICKUP_MAX,
                                     &dl->backlog, &next);

    for (i = 0; i < n; i++) {
        ngx_http_postback_deliver(&claims[i], dl->log);
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

    if (due == 0) {
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


static ngx_int_t
ngx_http_postback_start(ngx_http_postback_transfer_t *t)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    ngx_queue_insert_tail(&dl->active, &t->queue);

    t->start = ngx_http_postback_now();

    /* a handle of an ended transfer, reset, costs less than a new one */
    t->easy = dl->nidle ? dl->idle[--dl->nidle] : curl_easy_init();
    if (t->easy == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_postback_set_request(t) != NGX_OK) {
        return NGX_ERROR;
    }

    if (curl_multi_add_handle(dl->multi, t->easy) != CURLM_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_set_request(ngx_http_postback_transfer_t *t)
{
    u_char                        *p, *last, *line, *buf, *end;
    u_char                        *colon, *value;
    u_char                         signature[PB_SIGN_LEN];
    time_t                         now;
    size_t                         size;
    CURL                          *easy;
    const char                    *type;
    ngx_int_t                      rc;
    ngx_http_postback_request_t    req;
    ngx_http_postback_callback_t  *cb;

    easy = t->easy;
    cb = t->claim.cb;

    ngx_http_postback_zone_request(ngx_http_postback_deliverer.shm_zone,
                                   &t->claim, &req, t->id);

    /* one buffer fits the url and every line we make, NUL-terminated */
    size = ngx_max(req.url.len, req.headers.len);
    size = ngx_max(size, cb->authorization.len + sizeof("Authorization: "));
    size = ngx_max(size, sizeof("webhook-id: ") + NGX_HTTP_POSTBACK_ID_LEN);
    size = ngx_max(size, sizeof("webhook-signature: ") + PB_SIGN_LEN);
    size = ngx_max(size, sizeof("webhook-timestamp: ") + NGX_TIME_T_LEN);
    size++;

    buf = ngx_alloc(size, ngx_http_postback_deliverer.log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    ngx_sprintf(buf, "webhook-id: %*s%Z", (size_t) NGX_HTTP_POSTBACK_ID_LEN,
                t->id);

    if (ngx_http_postback_add_header(t, buf) != NGX_OK
        /* curl would otherwise wait for "100 Continue" on bodies over 1k */
        || ngx_http_postback_add_header(t, (u_char *) "Expect:") != NGX_OK)
    {
        goto done;
    }

    if (cb->secret.len) {
        /* Standard Webhooks: every attempt signed with its own time */
        now = ngx_time();

        if (pb_sign(cb->secret.data, cb->secret.len, (char *) t->id,
                    NGX_HTTP_POSTBACK_ID_LEN, (uint64_t) now, req.body.data,
                    req.body.len, (char *) signature)
            != 0)
        {
            goto done;
        }

        ngx_sprintf(buf, "webhook-timestamp: %T%Z", now);

        if (ngx_http_postback_add_header(t, buf) != NGX_OK) {
            goto done;
        }

        ngx_sprintf(buf, "webhook-signature: %*s%Z", (size_t) PB_SIGN_LEN,
                    signature);

        if (ngx_http_postback_add_header(t, buf) != NGX_OK) {
            goto done;
        }
    }

    type = ngx_http_postback_content_type(req.method, &req.headers);

    if (type && ngx_http_postback_add_header(t, (u_char *) type) != NGX_OK) {
        goto done;
    }

    if (cb->authorization.len) {
        ngx_sprintf(buf, "Authorization: %V%Z", &cb->authorization);

        if (ngx_http_postback_add_header(t, buf) != NGX_OK) {
            goto done;
        }
    }

    last = req.headers.data + req.headers.len;

    for (line = req.headers.data; line < last; line = p + 1) {
        p = ngx_strlchr(line, last, '\n');
        if (p == NULL) {
            break;
        }

        if (*line == NGX_HTTP_POSTBACK_SECRET_MARK) {
            line++;
        }

        end = ngx_cpymem(buf, line, p - line);
        *end = '\0';

        /* "Name:" would tell curl to drop the header: "Name;" sends it empty */
        colon = (u_char *) ngx_strchr(buf, ':');

        for (value = colon + 1; value < end && *value == ' '; value++) {
            /* void */
        }

        if (value == end) {
            colon[0] = ';';
            colon[1] = '\0';
        }

        if (ngx_http_postback_add_header(t, buf) != NGX_OK) {
            goto done;
        }
    }

    /* curl copies the url */
    *ngx_cpymem(buf, req.url.data, req.url.len) = '\0';
    curl_easy_setopt(easy, CURLOPT_URL, (char *) buf);

#if (LIBCURL_VERSION_NUM >= 0x075500)
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#endif

    if (cb->ca_file.len) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, (char *) cb->ca_file.data);
    }

    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, NGX_HTTP_POSTBACK_USER_AGENT);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) cb->timeout);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ngx_http_postback_write_cb);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                     ngx_http_postback_open_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_http_postback_close_socket);

    if (req.method == NGX_HTTP_POSTBACK_GET) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);

    } else {
        /* copied: the record may change hands if the claim runs out */
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) req.body.len);
        curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, (char *) req.body.data);
    }

    rc = NGX_OK;

done:

    ngx_free(buf);

    return rc;
}


/* the Content-Type line of the method; a header= Content-Type replaces it */

const char *
ngx_http_postback_content_type(ngx_uint_t method, ngx_str_t *headers)
{
    if (ngx_http_postback_has_header(headers, "content-type:")) {
        return NULL;
    }

    switch (method) {

    case NGX_HTTP_POSTBACK_POST_JSON:
        return "Content-Type: application/json";

    case NGX_HTTP_POSTBACK_POST_FORM:
        return "Content-Type: application/x-www-form-urlencoded";

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


static ngx_int_t
ngx_http_postback_add_header(ngx_http_postback_transfer_t *t, u_char *line)
{
    struct curl_slist  *list;

    list = curl_slist_append(t->headers, (char *) line);
    if (list == NULL) {
        return NGX_ERROR;
    }

    t->headers = list;

    return NGX_OK;
}


static size_t
ngx_http_postback_write_cb(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    size_t                         n;
    ngx_http_postback_transfer_t  *t = userdata;

    n = ngx_min(size * nmemb, NGX_HTTP_POSTBACK_RESP_MAX - t->response_len);
    ngx_memcpy(t->response + t->response_len, ptr, n);
    t->response_len += n;

    return size * nmemb;
}


static void
ngx_http_postback_check_done(void)
{
    int                             left;
    CURLMsg                        *msg;
    ngx_http_postback_transfer_t   *t;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    while ((msg = curl_multi_info_read(dl->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
        ngx_http_postback_done(t, msg->data.result);
    }
}


static void
ngx_http_postback_done(ngx_http_postback_transfer_t *t, CURLcode rc)
{
    long                            code;
    uint64_t                        due;
    curl_off_t                      retry_after;
    ngx_http_postback_result_t      res;
    ngx_http_postback_callback_t   *cb;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    cb = t->claim.cb;
    code = 0;
    retry_after = 0;

    if (t->easy) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);

        if (code == NGX_HTTP_TOO_MANY_REQUESTS
            || code == NGX_HTTP_SERVICE_UNAVAILABLE)
        {
            curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after);
        }
    }

    ngx_memzero(&res, sizeof(ngx_http_postback_result_t));
    res.start = t->start;
    res.duration = (ngx_msec_t) (ngx_http_postback_now() - t->start);
    res.status = code;
    /* the receiver's word, within reason */
    res.retry_after = (uint64_t) ngx_min(ngx_max(retry_after, 0),
                                         NGX_HTTP_POSTBACK_RETRY_AFTER_MAX)
                      * 1000;
    res.response.data = t->response;
    res.response.len = t->response_len;

    if (rc != CURLE_OK) {
        res.error.data = (u_char *) (t->error[0] ? t->error
                                                 : curl_easy_strerror(rc));
        res.error.len = ngx_strlen(res.error.data);

        ngx_log_error(NGX_LOG_WARN, dl->log, 0,
                      "postback: callback \"%V\" delivery %*s failed: %V",
                      &cb->name, (size_t) NGX_HTTP_POSTBACK_ID_LEN, t->id,
                      &res.error);

    } else if (code < 200 || code > 299) {
        ngx_log_error(NGX_LOG_WARN, dl->log, 0,
                      "postback: callback \"%V\" delivery %*s answered %l",
                      &cb->name, (size_t) NGX_HTTP_POSTBACK_ID_LEN, t->id,
                      code);
    }

    due = ngx_http_postback_zone_finish(dl->shm_zone, &t->claim, &res,
                                        dl->log);

    ngx_http_postback_transfer_end(t);

    ngx_http_postback_pickup_at(due);

    /* a slot is free: due deliveries left waiting for one can go now */
    if (dl->backlog) {
        ngx_http_postback_deliver_soon();
    }
}


/* the transfer's resources and its slot of the callback go */

static void
ngx_http_postback_transfer_end(ngx_http_postback_transfer_t *t)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (t->easy) {
        curl_multi_remove_handle(dl->multi, t->easy);

        if (dl->nidle < NGX_HTTP_POSTBACK_IDLE_MAX) {
            curl_easy_reset(t->easy);
            dl->idle[dl->nidle++] = t->easy;

        } else {
            curl_easy_cleanup(t->easy);
        }
    }

    curl_slist_free_all(t->headers);

    ngx_queue_remove(&t->queue);
    t->claim.cb->active--;
    ngx_free(t);
}


static void
ngx_http_postback_event_handler(ngx_event_t *ev)
{
    ngx_connection_t               *c;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    c = ev->data;

    if (dl->multi == NULL) {
        return;
    }

    if (c->close) {
        /* worker_shutdown_timeout: hand every claim back, close all */
        ngx_http_postback_deliver_exit((ngx_cycle_t *) ngx_cycle);
        return;
    }

    ngx_http_postback_run(c->fd,
                          ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN);
}


/*
 * curl and nginx share the thread's OpenSSL error queue: what a failed
 * transfer leaves there would be blamed on nginx's next TLS connection
 */

static void
ngx_http_postback_run(curl_socket_t s, int action)
{
    int                             running;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    curl_multi_socket_action(dl->multi, s, action, &running);

    ngx_http_postback_check_done();

#if (NGX_OPENSSL)
    ERR_clear_error();
#endif
}


static void
ngx_http_postback_timer_handler(ngx_event_t *ev)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (dl->multi == NULL) {
        return;
    }

    ngx_http_postback_run(CURL_SOCKET_TIMEOUT, 0);
}


static int
ngx_http_postback_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_event_t  *ev = &ngx_http_postback_deliverer.timer;

    /* ngx_add_timer() would keep an older deadline close to the new one */
    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (timeout_ms < 0) {
        return 0;
    }

    if (timeout_ms == 0) {
        /* curl must not be re-entered from its own callback */
        if (!ev->posted) {
            ngx_post_event(ev, &ngx_posted_events);
        }

        return 0;
    }

    ngx_add_timer(ev, (ngx_msec_t) timeout_ms);

    return 0;
}


static int
ngx_http_postback_socket_cb(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t               *c = socketp;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if (what == CURL_POLL_REMOVE) {
        if (c == NULL) {
            return 0;
        }

        if (c->data == NULL) {
            /* the resolver's socketpair: curl closes it right after */
            curl_multi_assign(dl->multi, s, NULL);
            ngx_http_postback_unwrap_socket(c);
            return 0;
        }

        /* the socket may stay open, idle in curl's connection cache */
        ngx_http_postback_forget_events(c);

        return 0;
    }

    if (c == NULL) {
        if ((ngx_uint_t) s < dl->nsockets && dl->sockets[s]) {
            c = dl->sockets[s];

        } else {
            /* not opened by us: the threaded resolver's socketpair */
            c = ngx_http_postback_wrap_socket(s);
            if (c == NULL) {
                return -1;
            }
        }

        curl_multi_assign(dl->multi, s, c);
    }

    /* curl expects level-triggered readiness: flags 0, not NGX_CLEAR_EVENT */

    if ((what & CURL_POLL_IN) && !c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            return -1;
        }

    } else if (!(what & CURL_POLL_IN) && c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if ((what & CURL_POLL_OUT) && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return -1;
        }

    } else if (!(what & CURL_POLL_OUT) && c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    return 0;
}


static curl_socket_t
ngx_http_postback_open_socket(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *address)
{
    ngx_socket_t       s;
    ngx_connection_t  *c;

    s = ngx_socket(address->family, address->socktype, address->protocol);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_postback_deliverer.log,
                      ngx_socket_errno, "postback: socket() failed");
        return CURL_SOCKET_BAD;
    }

    c = ngx_http_postback_wrap_socket(s);
    if (c == NULL) {
        ngx_close_socket(s);
        return CURL_SOCKET_BAD;
    }

    /* ours to close, in ngx_http_postback_close_socket() */
    c->data = &ngx_http_postback_deliverer;

    return s;
}


static int
ngx_http_postback_close_socket(void *clientp, curl_socket_t s)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if ((ngx_uint_t) s < dl->nsockets && dl->sockets[s]) {
        ngx_http_postback_unwrap_socket(dl->sockets[s]);
    }

    return ngx_close_socket(s);
}


static ngx_connection_t *
ngx_http_postback_wrap_socket(curl_socket_t s)
{
    ngx_uint_t                      n;
    ngx_connection_t               *c, **sockets;
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    if ((ngx_uint_t) s >= dl->nsockets) {
        n = ngx_max((ngx_uint_t) s + 1, dl->nsockets * 2);
        n = ngx_max(n, 64);

        sockets = ngx_calloc(n * sizeof(ngx_connection_t *), dl->log);
        if (sockets == NULL) {
            return NULL;
        }

        if (dl->sockets) {
            ngx_memcpy(sockets, dl->sockets,
                       dl->nsockets * sizeof(ngx_connection_t *));
            ngx_free(dl->sockets);
        }

        dl->sockets = sockets;
        dl->nsockets = n;
    }

    if (dl->sockets[s]) {
        /* a wrapper left from an fd that curl closed behind our back */
        ngx_http_postback_unwrap_socket(dl->sockets[s]);
    }

    c = ngx_get_connection(s, dl->log);
    if (c == NULL) {
        return NULL;
    }

    c->data = NULL;
    c->log = dl->log;
    c->read->handler = ngx_http_postback_event_handler;
    c->write->handler = ngx_http_postback_event_handler;
    c->read->log = dl->log;
    c->write->log = dl->log;

    dl->sockets[s] = c;

    return c;
}


static void
ngx_http_postback_forget_events(ngx_connection_t *c)
{
    if (!c->read->active && !c->write->active) {
        return;
    }

    /*
     * an fd that curl already closed has left epoll with it (seen once,
     * under ASan): epoll_ctl() would fail with EBADF, an [alert]
     */
    if (fcntl(c->fd, F_GETFD) == -1) {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, c->read->log, 0,
                       "postback: socket %d closed under us", c->fd);
        c->read->active = 0;
        c->write->active = 0;
        return;
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_postback_unwrap_socket(ngx_connection_t *c)
{
    ngx_http_postback_deliverer_t  *dl = &ngx_http_postback_deliverer;

    dl->sockets[c->fd] = NULL;

    ngx_http_postback_forget_events(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    /* ngx_free_connection() still reads c->fd */
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}
