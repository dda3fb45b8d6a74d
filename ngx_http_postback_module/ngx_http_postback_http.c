
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The nginx engine: receivers given as literal addresses, or as names
 * that the resolver of the callback's level looks up, are sent to over
 * nginx's own connections, as its upstream module does: the peer
 * connected with ngx_event_connect_peer, the request written as one
 * buffer, the answer read by pb_http, and the connection kept for the
 * next delivery to the same address.  One timer bounds an attempt.  It
 * sends what the deliverer prepared and reports the answer, as the curl
 * engine does.
 */


#include "ngx_http_postback_module.h"
#include "pb_http.h"


/* idle connections kept, per worker, for all receivers */
#define NGX_HTTP_POSTBACK_KEEPALIVE_MAX  32
#define NGX_HTTP_POSTBACK_READ_SIZE      4096
#define NGX_HTTP_POSTBACK_VERIFY_DEPTH   9


/*
 * An idle connection, and what it is connected to: an address, for the
 * callbacks with this origin (and so the same host for SNI and the
 * certificate's check) and this TLS context.
 */
typedef struct {
    ngx_queue_t                     queue;
    ngx_connection_t               *connection;
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_str_t                      *origin;
    void                           *ssl;
} ngx_http_postback_http_idle_t;


typedef struct {
    ngx_queue_t                     idle;   /* the last used first */
    ngx_queue_t                     free;
    ngx_http_postback_http_idle_t   items[NGX_HTTP_POSTBACK_KEEPALIVE_MAX];
    ngx_log_t                      *log;
    ngx_log_t                       connect_log;    /* crit and worse */
} ngx_http_postback_http_t;


/* one attempt, in its send's pool */
typedef struct {
    ngx_http_postback_send_t       *send;
    ngx_resolver_ctx_t             *resolving;
    ngx_sockaddr_t                  sockaddr;   /* the receiver's */
    socklen_t                       socklen;
    ngx_peer_connection_t           peer;
    u_char                         *request;    /* the bytes to write */
    u_char                         *sent;       /* written up to here */
    u_char                         *request_end;
    pb_http_response_t              answer;
    size_t                          received;   /* answer bytes read */
    ngx_flag_t                      connected;
    ngx_flag_t                      reused;     /* an idle connection */
    ngx_flag_t                      retried;    /* on a new one */
    ngx_flag_t                      wrong_url;  /* the url's fault */
    ngx_event_t                     timer;      /* the attempt's deadline;
                                                   posted: it failed */
    ngx_connection_t                timer_conn; /* for the timer's log */
    ngx_log_t                       ssl_log;    /* of a TLS connection */
    ngx_str_t                       ssl_error;  /* what TLS said last */
    u_char                          ssl_error_text[NGX_HTTP_POSTBACK_ERROR_MAX];
    ngx_str_t                       error;
    u_char                          error_text[NGX_HTTP_POSTBACK_ERROR_MAX];
} ngx_http_postback_http_transfer_t;


static ngx_int_t ngx_http_postback_http_host(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *host);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_postback_http_ssl(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb);
#endif
static ngx_int_t ngx_http_postback_http_request(
    ngx_http_postback_http_transfer_t *tr);
static ngx_flag_t ngx_http_postback_http_given(ngx_http_postback_send_t *send,
    const char *name);
static ngx_flag_t ngx_http_postback_http_framing(ngx_str_t *line);
static ngx_flag_t ngx_http_postback_http_named(ngx_str_t *line,
    const char *name);
static ngx_int_t ngx_http_postback_http_resolve(
    ngx_http_postback_http_transfer_t *tr);
static void ngx_http_postback_http_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_postback_http_fail_later(
    ngx_http_postback_http_transfer_t *tr);
static ngx_int_t ngx_http_postback_http_connect(
    ngx_http_postback_http_transfer_t *tr);
static ngx_int_t ngx_http_postback_http_test_connect(ngx_connection_t *c);
static void ngx_http_postback_http_set_log(ngx_connection_t *c,
    ngx_log_t *log);
static void ngx_http_postback_http_handler(ngx_event_t *ev);
#if (NGX_HTTP_SSL)
static void ngx_http_postback_http_ssl_start(
    ngx_http_postback_http_transfer_t *tr, ngx_connection_t *c);
static void ngx_http_postback_http_ssl_handshaked(ngx_connection_t *c);
static ngx_int_t ngx_http_postback_http_ssl_verify(
    ngx_http_postback_http_transfer_t *tr, ngx_connection_t *c);
static void ngx_http_postback_http_ssl_save_session(ngx_connection_t *c);
static void ngx_http_postback_http_ssl_log(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len);
#endif
static void ngx_http_postback_http_write(
    ngx_http_postback_http_transfer_t *tr, ngx_connection_t *c);
static void ngx_http_postback_http_read(
    ngx_http_postback_http_transfer_t *tr, ngx_connection_t *c);
static void ngx_http_postback_http_failed(
    ngx_http_postback_http_transfer_t *tr, const char *what, ngx_err_t err,
    ngx_flag_t unanswered);
static void ngx_http_postback_http_error(
    ngx_http_postback_http_transfer_t *tr, const char *what, ngx_err_t err);
static void ngx_http_postback_http_answered(
    ngx_http_postback_http_transfer_t *tr, ngx_flag_t whole);
static void ngx_http_postback_http_end(ngx_http_postback_http_transfer_t *tr);
static void ngx_http_postback_http_timer_handler(ngx_event_t *ev);
static void ngx_http_postback_http_close(
    ngx_http_postback_http_transfer_t *tr);
static void ngx_http_postback_http_close_connection(ngx_connection_t *c);
static ngx_connection_t *ngx_http_postback_http_take(
    ngx_http_postback_http_transfer_t *tr);
static void ngx_http_postback_http_keep(ngx_http_postback_http_transfer_t *tr,
    ngx_connection_t *c);
static void ngx_http_postback_http_idle_handler(ngx_event_t *ev);
static void ngx_http_postback_http_idle_close(
    ngx_http_postback_http_idle_t *item);
static void ngx_http_postback_http_idle_write(ngx_event_t *ev);


static ngx_http_postback_http_t  ngx_http_postback_http;


#if (NGX_HTTP_SSL)
#define ngx_http_postback_http_tls(cb)  ((void *) (cb)->ssl)
#else
#define ngx_http_postback_http_tls(cb)  NULL
#endif


/*
 * The one place the engine of a callback is chosen: this one for http://
 * and https:// urls whose host is a literal address or a name that the
 * resolver of the callback's level can resolve; libcurl for the rest.
 */

ngx_int_t
ngx_http_postback_http_engine(ngx_conf_t *cf, ngx_http_postback_cb_conf_t *cb)
{
    ngx_url_t   u;
    ngx_str_t   scheme;
    ngx_uint_t  tls;

    cb->engine = NGX_HTTP_POSTBACK_ENGINE_CURL;

    if (cb->proxy.len) {
        /* a forward proxy is curl's to speak to */
        return NGX_OK;
    }

    scheme.data = cb->origin.data;
    scheme.len = ngx_strlchr(cb->origin.data,
                             cb->origin.data + cb->origin.len, ':')
                 - cb->origin.data;

    tls = (scheme.len == sizeof("https") - 1);

#if !(NGX_HTTP_SSL)
    if (tls) {
        return NGX_OK;
    }
#endif

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = cb->origin.data + scheme.len + sizeof("://") - 1;
    u.url.len = cb->origin.len - scheme.len - (sizeof("://") - 1);
    u.default_port = tls ? 443 : 80;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        return NGX_OK;
    }

    if (u.naddrs) {
        cb->peer = &u.addrs[0];

    } else if (cb->clcf->resolver && cb->clcf->resolver->connections.nelts) {
        cb->resolver = cb->clcf->resolver;
        cb->resolver_timeout = cb->clcf->resolver_timeout;

        /*
         * the http level is the one nginx never merges: its resolver is
         * NULL when there is no server, its resolver_timeout unset unless
         * written there
         */
        ngx_conf_init_msec_value(cb->resolver_timeout, 30000);

    } else {
        /* a name, and no resolver: curl resolves it */
        return NGX_OK;
    }

    if (ngx_http_postback_http_host(cf, cb, &u.host) != NGX_OK) {
        return NGX_ERROR;
    }

    cb->port = u.port;
    cb->engine = NGX_HTTP_POSTBACK_ENGINE_NGINX;

#if (NGX_HTTP_SSL)
    if (tls) {
        return ngx_http_postback_http_ssl(cf, cb);
    }
#endif

    return NGX_OK;
}


/* the url's host, NUL-terminated and, an IPv6 address's, unbracketed */

static ngx_int_t
ngx_http_postback_http_host(ngx_conf_t *cf, ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *host)
{
    ngx_str_t  h;

    h = *host;

    if (h.len > 1 && h.data[0] == '[') {
        h.data++;
        h.len -= 2;
    }

    cb->host.data = ngx_pnalloc(cf->pool, h.len + 1);
    if (cb->host.data == NULL) {
        return NGX_ERROR;
    }

    cb->host.len = h.len;
    *ngx_cpymem(cb->host.data, h.data, h.len) = '\0';

    return NGX_OK;
}


#if (NGX_HTTP_SSL)

/*
 * The callback's TLS context, made here, in the master, as every nginx
 * certificate is read: the system's CA store, or ca_file=.  Callbacks
 * with the same ca_file= share one.
 */

static ngx_int_t
ngx_http_postback_http_ssl(ngx_conf_t *cf, ngx_http_postback_cb_conf_t *cb)
{
    ngx_uint_t                      i;
    ngx_pool_cleanup_t             *cln;
    ngx_http_postback_cb_conf_t   **other;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);
    other = pmcf->callbacks.elts;

    for (i = 0; other[i] != cb; i++) {
        if (other[i]->ssl
            && other[i]->ca_file.len == cb->ca_file.len
            && ngx_strncmp(other[i]->ca_file.data, cb->ca_file.data,
                           cb->ca_file.len)
               == 0)
        {
            cb->ssl = other[i]->ssl;
            return NGX_OK;
        }
    }

    cb->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (cb->ssl == NULL) {
        return NGX_ERROR;
    }

    cb->ssl->log = cf->log;

    if (ngx_ssl_create(cb->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(cb->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = cb->ssl;

    /* the peer is checked once the handshake is done: see ssl_handshaked */
    if (ngx_ssl_trusted_certificate(cf, cb->ssl, &cb->ca_file,
                                    NGX_HTTP_POSTBACK_VERIFY_DEPTH)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (cb->ca_file.len == 0
        && SSL_CTX_set_default_verify_paths(cb->ssl->ctx) != 1)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "callback \"%V\": the system's CA store cannot be "
                      "read", &cb->name);
        return NGX_ERROR;
    }

    return ngx_ssl_client_session_cache(cf, cb->ssl, 1);
}

#endif


void
ngx_http_postback_http_init(ngx_cycle_t *cycle)
{
    ngx_uint_t                 i;
    ngx_http_postback_http_t  *h = &ngx_http_postback_http;

    h->log = cycle->log;

    /*
     * a refused connect() is an attempt's error, logged as the deliverer
     * logs attempts, not an [error] line each time
     */
    h->connect_log = *cycle->log;
    h->connect_log.log_level = NGX_LOG_CRIT;

    ngx_queue_init(&h->idle);
    ngx_queue_init(&h->free);

    for (i = 0; i < NGX_HTTP_POSTBACK_KEEPALIVE_MAX; i++) {
        ngx_queue_insert_tail(&h->free, &h->items[i].queue);
    }
}


/* the idle connections close with the worker */

void
ngx_http_postback_http_exit(void)
{
    ngx_queue_t               *q;
    ngx_http_postback_http_t  *h = &ngx_http_postback_http;

    if (h->log == NULL) {
        return;
    }

    while (!ngx_queue_empty(&h->idle)) {
        q = ngx_queue_head(&h->idle);
        ngx_http_postback_http_idle_close(
            ngx_queue_data(q, ngx_http_postback_http_idle_t, queue));
    }
}


ngx_int_t
ngx_http_postback_http_start(ngx_http_postback_send_t *send)
{
    ngx_int_t                           rc;
    ngx_http_postback_http_transfer_t  *tr;

    tr = ngx_pcalloc(send->pool, sizeof(ngx_http_postback_http_transfer_t));
    if (tr == NULL) {
        return NGX_ERROR;
    }

    tr->send = send;

    if (ngx_http_postback_http_request(tr) != NGX_OK) {
        return NGX_ERROR;
    }

    send->engine = tr;

    pb_http_response_init(&tr->answer, 0);

    /* the deliverer holds a graceful shutdown while transfers run */
    ngx_http_postback_timer_init(&tr->timer,
                                 ngx_http_postback_http_timer_handler,
                                 &tr->timer_conn, send->log, 1);
    tr->timer_conn.data = tr;

#if (NGX_HTTP_SSL)
    if (send->cb->ssl) {
        /* info and worse reach ssl_log(), whatever error_log's level */
        tr->ssl_log = *send->log;
        tr->ssl_log.log_level = NGX_LOG_INFO
                                | (send->log->log_level & NGX_LOG_DEBUG_ALL);
        tr->ssl_log.writer = ngx_http_postback_http_ssl_log;
        tr->ssl_log.wdata = tr;
        tr->ssl_log.next = NULL;
    }
#endif

    ngx_add_timer(&tr->timer, send->cb->timeout);

    if (send->cb->peer) {
        tr->socklen = send->cb->peer->socklen;
        ngx_memcpy(&tr->sockaddr, send->cb->peer->sockaddr, tr->socklen);

        rc = ngx_http_postback_http_connect(tr);

    } else {
        rc = ngx_http_postback_http_resolve(tr);
    }

    if (rc != NGX_OK) {
        ngx_http_postback_http_fail_later(tr);
    }

    return NGX_OK;
}


/* the transfer's timer and connection go; it reports nothing */

void
ngx_http_postback_http_stop(ngx_http_postback_send_t *send)
{
    ngx_http_postback_http_transfer_t  *tr;

    tr = send->engine;

    if (tr == NULL) {
        return;
    }

    send->engine = NULL;

    if (tr->timer.timer_set) {
        ngx_del_timer(&tr->timer);
    }

    if (tr->timer.posted) {
        ngx_delete_posted_event(&tr->timer);
    }

    ngx_http_postback_http_close(tr);
}


/*
 * The request as curl would write it: the request line, Host and Accept
 * (unless header= gave them), the deliverer's lines, the body's length
 * and the body.  header= lines that would change the framing are the
 * engine's to write, and left out.
 */

static ngx_int_t
ngx_http_postback_http_request(ngx_http_postback_http_transfer_t *tr)
{
    u_char                        *p;
    size_t                         len;
    ngx_str_t                      host, target, *h;
    ngx_uint_t                     i;
    ngx_flag_t                     has_host, has_accept, body;
    const char                    *method;
    ngx_http_postback_send_t      *send;
    ngx_http_postback_cb_conf_t   *cb;

    send = tr->send;
    cb = send->cb;

    host.data = ngx_strlchr(cb->origin.data,
                            cb->origin.data + cb->origin.len, ':')
                + sizeof("://") - 1;
    host.len = cb->origin.data + cb->origin.len - host.data;

    target.data = send->url.data + cb->origin.len;
    target.len = send->url.len - cb->origin.len;

    body = (send->method != NGX_HTTP_POSTBACK_GET);
    method = body ? "POST" : "GET";

    has_host = ngx_http_postback_http_given(send, "host");
    has_accept = ngx_http_postback_http_given(send, "accept");

    len = ngx_strlen(method) + sizeof(" / HTTP/1.1" CRLF) - 1 + target.len
          + sizeof("Host: " CRLF) - 1 + host.len
          + sizeof("Accept: */*" CRLF) - 1
          + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
          + sizeof("Connection: keep-alive" CRLF CRLF) - 1
          + send->body.len;

    h = send->headers.elts;

    for (i = 0; i < send->headers.nelts; i++) {
        len += h[i].len + sizeof(CRLF) - 1;
    }

    tr->request = ngx_pnalloc(send->pool, len);
    if (tr->request == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(tr->request, method, ngx_strlen(method));
    *p++ = ' ';

    if (target.len == 0 || target.data[0] != '/') {
        *p++ = '/';
    }

    p = ngx_cpymem(p, target.data, target.len);
    p = ngx_cpymem(p, " HTTP/1.1" CRLF, sizeof(" HTTP/1.1" CRLF) - 1);

    if (!has_host) {
        p = ngx_cpymem(p, "Host: ", sizeof("Host: ") - 1);
        p = ngx_cpymem(p, host.data, host.len);
        *p++ = CR; *p++ = LF;
    }

    if (!has_accept) {
        p = ngx_cpymem(p, "Accept: */*" CRLF, sizeof("Accept: */*" CRLF) - 1);
    }

    for (i = 0; i < send->headers.nelts; i++) {
        if (ngx_http_postback_http_framing(&h[i])) {
            continue;
        }

        p = ngx_cpymem(p, h[i].data, h[i].len);
        *p++ = CR; *p++ = LF;
    }

    if (body) {
        p = ngx_sprintf(p, "Content-Length: %uz" CRLF, send->body.len);
    }

    p = ngx_cpymem(p, "Connection: keep-alive" CRLF CRLF,
                   sizeof("Connection: keep-alive" CRLF CRLF) - 1);

    if (body) {
        p = ngx_cpymem(p, send->body.data, send->body.len);
    }

    tr->sent = tr->request;
    tr->request_end = p;

    return NGX_OK;
}


static ngx_flag_t
ngx_http_postback_http_given(ngx_http_postback_send_t *send, const char *name)
{
    ngx_str_t   *h;
    ngx_uint_t   i;

    h = send->headers.elts;

    for (i = 0; i < send->headers.nelts; i++) {
        if (ngx_http_postback_http_named(&h[i], name)) {
            return 1;
        }
    }

    return 0;
}


static ngx_flag_t
ngx_http_postback_http_framing(ngx_str_t *line)
{
    return ngx_http_postback_http_named(line, "content-length")
           || ngx_http_postback_http_named(line, "transfer-encoding")
           || ngx_http_postback_http_named(line, "connection");
}


/* the header line is "name: ...", in any case */

static ngx_flag_t
ngx_http_postback_http_named(ngx_str_t *line, const char *name)
{
    size_t  len;

    len = ngx_strlen(name);

    return line->len > len && line->data[len] == ':'
           && ngx_strncasecmp(line->data, (u_char *) name, len) == 0;
}


/*
 * The receiver's address, from the resolver of the callback's level; it
 * may answer at once, from its cache.  NGX_ERROR: the error is set.
 */

static ngx_int_t
ngx_http_postback_http_resolve(ngx_http_postback_http_transfer_t *tr)
{
    ngx_resolver_ctx_t           *ctx;
    ngx_http_postback_cb_conf_t  *cb;

    cb = tr->send->cb;

    ctx = ngx_resolve_start(cb->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_http_postback_http_error(tr, "the resolver cannot be used", 0);
        return NGX_ERROR;
    }

    ctx->name = cb->host;
    ctx->handler = ngx_http_postback_http_resolved;
    ctx->data = tr;
    ctx->timeout = cb->resolver_timeout;

    tr->resolving = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* the resolver freed ctx */
        tr->resolving = NULL;
        ngx_http_postback_http_error(tr, "the resolver failed", 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the resolver's answer: one of the addresses, in turn */

static void
ngx_http_postback_http_resolved(ngx_resolver_ctx_t *ctx)
{
    u_char                             *p, *last;
    ngx_resolver_addr_t                *addr;
    ngx_http_postback_http_transfer_t  *tr;

    static ngx_uint_t  turn;

    tr = ctx->data;
    tr->resolving = NULL;

    if (ctx->state) {
        p = tr->error_text;
        last = p + sizeof(tr->error_text);
        p = ngx_slprintf(p, last, "%V could not be resolved (%i: %s)",
                         &ctx->name, ctx->state,
                         ngx_resolver_strerror(ctx->state));

        tr->error.data = tr->error_text;
        tr->error.len = p - tr->error_text;
        tr->wrong_url = (ctx->state == NGX_RESOLVE_NXDOMAIN);

        ngx_resolve_name_done(ctx);
        ngx_http_postback_http_fail_later(tr);
        return;
    }

    addr = &ctx->addrs[turn++ % ctx->naddrs];

    tr->socklen = addr->socklen;
    ngx_memcpy(&tr->sockaddr, addr->sockaddr, tr->socklen);
    ngx_inet_set_port(&tr->sockaddr.sockaddr, tr->send->cb->port);

    ngx_resolve_name_done(ctx);

    if (ngx_http_postback_http_connect(tr) != NGX_OK) {
        ngx_http_postback_http_fail_later(tr);
    }
}


/*
 * An attempt that failed before it began is reported from the event loop,
 * as every other outcome: the resolver may answer from its cache while
 * the attempt is being started
 */

static void
ngx_http_postback_http_fail_later(ngx_http_postback_http_transfer_t *tr)
{
    ngx_post_event(&tr->timer, &ngx_posted_events);
}


/*
 * The attempt's connection: an idle one to the address when there is
 * one (not for a retry), else a new one.  NGX_ERROR: the error is set.
 */

static ngx_int_t
ngx_http_postback_http_connect(ngx_http_postback_http_transfer_t *tr)
{
    ngx_int_t                  rc;
    ngx_err_t                  err;
    ngx_connection_t          *c;
    ngx_peer_connection_t     *pc;
    ngx_http_postback_send_t  *send;

    send = tr->send;
    pc = &tr->peer;

    c = tr->retried ? NULL : ngx_http_postback_http_take(tr);

    tr->reused = (c != NULL);
    tr->connected = (c != NULL);

    if (c == NULL) {
        ngx_memzero(pc, sizeof(ngx_peer_connection_t));

        pc->sockaddr = &tr->sockaddr.sockaddr;
        pc->socklen = tr->socklen;
        pc->name = &send->cb->origin;
        pc->get = ngx_event_get_peer;
        pc->log = &ngx_http_postback_http.connect_log;
        pc->log_error = NGX_ERROR_INFO;

        rc = ngx_event_connect_peer(pc);

        if (rc != NGX_OK && rc != NGX_AGAIN) {
            err = ngx_socket_errno;
            ngx_http_postback_http_error(tr, "connect() failed", err);
            return NGX_ERROR;
        }

        c = pc->connection;

        /* for TLS; it goes with the connection, kept alive or closed */
        c->pool = ngx_create_pool(128, send->log);
        if (c->pool == NULL) {
            ngx_close_connection(c);
            pc->connection = NULL;
            ngx_http_postback_http_error(tr, "out of memory", 0);
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            tr->connected = 1;
        }
    }

    pc->connection = c;

    c->data = tr;
    c->log_error = NGX_ERROR_INFO;

    ngx_http_postback_http_set_log(c, ngx_http_postback_http_tls(send->cb)
                                      ? &tr->ssl_log : send->log);

    c->read->handler = ngx_http_postback_http_handler;
    c->write->handler = ngx_http_postback_http_handler;

    if (tr->connected) {
        /* writable now; written from the event loop */
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


/* a connect() in progress ended: how */

static ngx_int_t
ngx_http_postback_http_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    ngx_set_socket_errno(err);

    return err ? NGX_ERROR : NGX_OK;
}


static void
ngx_http_postback_http_set_log(ngx_connection_t *c, ngx_log_t *log)
{
    c->log = log;
    c->read->log = log;
    c->write->log = log;
}


static void
ngx_http_postback_http_handler(ngx_event_t *ev)
{
    ngx_connection_t                   *c;
    ngx_http_postback_http_transfer_t  *tr;

    c = ev->data;
    tr = c->data;

    if (c->close) {
        /* worker_shutdown_timeout: every transfer ends here, now */
        ngx_http_postback_deliver_abort_all();
        return;
    }

    if (!tr->connected) {
        if (ngx_http_postback_http_test_connect(c) != NGX_OK) {
            ngx_http_postback_http_failed(tr, "connect() failed",
                                          ngx_socket_errno, 0);
            return;
        }

        tr->connected = 1;
    }

#if (NGX_HTTP_SSL)
    if (tr->send->cb->ssl && c->ssl == NULL) {
        ngx_http_postback_http_ssl_start(tr, c);
        return;
    }
#endif

    if (tr->sent < tr->request_end) {
        ngx_http_postback_http_write(tr, c);
        return;
    }

    ngx_http_postback_http_read(tr, c);
}


#if (NGX_HTTP_SSL)

/* TLS on a new connection: SNI, the host to check, a session to resume */

static void
ngx_http_postback_http_ssl_start(ngx_http_postback_http_transfer_t *tr,
    ngx_connection_t *c)
{
    ngx_int_t                     rc;
    ngx_http_postback_cb_conf_t  *cb;

    cb = tr->send->cb;

    if (ngx_ssl_create_connection(cb->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_postback_http_failed(tr, "TLS could not be set up", 0, 0);
        return;
    }

    c->ssl->save_session = ngx_http_postback_http_ssl_save_session;

    /* a server name is sent for names, never for a literal address */
    if (cb->peer == NULL
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) cb->host.data)
           != 1)
    {
        ngx_http_postback_http_failed(tr, "SNI could not be set", 0, 0);
        return;
    }

    if (cb->ssl_session
        && ngx_ssl_set_session(c, cb->ssl_session) != NGX_OK)
    {
        ngx_http_postback_http_failed(tr, "TLS could not be set up", 0, 0);
        return;
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_http_postback_http_ssl_handshaked;
        return;
    }

    ngx_http_postback_http_ssl_handshaked(c);
}


static void
ngx_http_postback_http_ssl_handshaked(ngx_connection_t *c)
{
    ngx_http_postback_http_transfer_t  *tr;

    tr = c->data;

    c->read->handler = ngx_http_postback_http_handler;
    c->write->handler = ngx_http_postback_http_handler;

    if (!c->ssl->handshaked) {
        ngx_http_postback_http_failed(tr, "TLS handshake failed", 0, 0);
        return;
    }

    if (ngx_http_postback_http_ssl_verify(tr, c) != NGX_OK) {
        tr->wrong_url = 1;
        ngx_http_postback_http_end(tr);
        return;
    }

    ngx_http_postback_http_write(tr, c);
}


/*
 * The receiver's certificate, checked as curl does: its chain against
 * the CA store, and the url's host, a name or an address, in it.
 * NGX_ERROR: the error says what is wrong.
 */

static ngx_int_t
ngx_http_postback_http_ssl_verify(ngx_http_postback_http_transfer_t *tr,
    ngx_connection_t *c)
{
    int                           match;
    long                          rc;
    X509                         *cert;
    ngx_http_postback_cb_conf_t  *cb;

    cb = tr->send->cb;

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        ngx_http_postback_http_error(tr, "certificate verify failed: the "
                                     "receiver sent none", 0);
        return NGX_ERROR;
    }

    rc = SSL_get_verify_result(c->ssl->connection);

    match = cb->peer ? X509_check_ip_asc(cert, (char *) cb->host.data, 0)
                     : X509_check_host(cert, (char *) cb->host.data,
                                       cb->host.len, 0, NULL);
    X509_free(cert);

    if (rc != X509_V_OK) {
        tr->error.data = tr->error_text;
        tr->error.len = ngx_snprintf(tr->error_text, sizeof(tr->error_text),
                                     "certificate verify failed: %s",
                                     X509_verify_cert_error_string(rc))
                        - tr->error_text;
        return NGX_ERROR;
    }

    if (match != 1) {
        ngx_http_postback_http_error(tr, "certificate verify failed: it is "
                                     "not for the url's host", 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the session to resume on the next connection of the callback's */

static void
ngx_http_postback_http_ssl_save_session(ngx_connection_t *c)
{
    ngx_ssl_session_t                  *session;
    ngx_http_postback_cb_conf_t        *cb;
    ngx_http_postback_http_transfer_t  *tr;

    tr = c->data;
    cb = tr->send->cb;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (cb->ssl_session) {
        ngx_ssl_free_session(cb->ssl_session);
    }

    cb->ssl_session = session;
}


/*
 * What ngx_ssl says on a TLS connection of a transfer.  Of the receiver's
 * TLS (nginx says [crit] of alerts it does not know, as "unrecognized
 * name"), the last thing it said is the attempt's error, not a line of
 * its own; the worker's own trouble, alert and worse, and debugging lines
 * go to the log as usual.
 */

static void
ngx_http_postback_http_ssl_log(ngx_log_t *log, ngx_uint_t level, u_char *buf,
    size_t len)
{
    u_char                             *p, *last;
    ngx_http_postback_http_transfer_t  *tr;

    tr = log->wdata;
    last = buf + len - NGX_LINEFEED_SIZE;

    /* the message follows "time [level] pid#tid: " */
    p = ngx_strlchr(buf, last, ']');

    if (p) {
        p = ngx_strlchr(p, last, ':');
    }

    if (p == NULL || last - p < 2) {
        return;
    }

    p += 2;

    if (level < NGX_LOG_CRIT || level == NGX_LOG_DEBUG) {
        ngx_log_error(level, tr->send->log, 0, "%*s", (size_t) (last - p), p);
        return;
    }

    tr->ssl_error.data = tr->ssl_error_text;
    tr->ssl_error.len = ngx_min((size_t) (last - p),
                                sizeof(tr->ssl_error_text));
    ngx_memcpy(tr->ssl_error_text, p, tr->ssl_error.len);
}

#endif


static void
ngx_http_postback_http_write(ngx_http_postback_http_transfer_t *tr,
    ngx_connection_t *c)
{
    ssize_t  n;

    while (tr->sent < tr->request_end) {
        n = c->send(c, tr->sent, tr->request_end - tr->sent);

        if (n == NGX_ERROR) {
            ngx_http_postback_http_failed(tr, "send() failed",
                                          ngx_socket_errno, 1);
            return;
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_postback_http_failed(tr, "send() failed", 0, 1);
            }

            return;
        }

        tr->sent += n;
    }

    /* the answer may be there already */
    ngx_http_postback_http_read(tr, c);
}


static void
ngx_http_postback_http_read(ngx_http_postback_http_transfer_t *tr,
    ngx_connection_t *c)
{
    int      rc;
    size_t   used;
    ssize_t  n;
    u_char   buf[NGX_HTTP_POSTBACK_READ_SIZE];

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_postback_http_failed(tr, "recv() failed", 0, 1);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_postback_http_failed(tr, "recv() failed",
                                          ngx_socket_errno, 1);
            return;
        }

        if (n == 0) {
            if (tr->received == 0) {
                ngx_http_postback_http_failed(tr, "empty reply: the "
                                              "receiver closed the "
                                              "connection", 0, 1);
                return;
            }

            rc = pb_http_response_eof(&tr->answer);
            used = 0;

        } else {
            tr->received += n;
            rc = pb_http_response_feed(&tr->answer, buf, n, &used);
        }

        if (rc == PB_HTTP_DONE) {
            /* bytes past the answer: the connection is not trusted */
            ngx_http_postback_http_answered(tr, n > 0 && used == (size_t) n);
            return;
        }

        if (rc == PB_HTTP_ERROR) {
            ngx_http_postback_http_failed(tr, "bad answer", 0, 0);
            return;
        }
    }
}


/*
 * An attempt failed: what, and the system's word on it.  A request on a
 * kept-alive connection that the receiver had closed meanwhile (nothing
 * was answered) is sent again, once, on a new connection.
 */

static void
ngx_http_postback_http_failed(ngx_http_postback_http_transfer_t *tr,
    const char *what, ngx_err_t err, ngx_flag_t unanswered)
{
    if (unanswered && tr->reused && tr->received == 0 && !tr->retried) {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, tr->send->log, 0,
                       "postback: kept-alive connection to %V was closed, "
                       "sending again on a new one",
                       &tr->send->cb->origin);

        ngx_http_postback_http_close(tr);

        tr->retried = 1;
        tr->sent = tr->request;

        if (ngx_http_postback_http_connect(tr) == NGX_OK) {
            return;
        }

    } else {
        ngx_http_postback_http_error(tr, what, err);
    }

    ngx_http_postback_http_end(tr);
}


/*
 * the error text: what failed, and why, the parser's, the TLS layer's or
 * the system's
 */

static void
ngx_http_postback_http_error(ngx_http_postback_http_transfer_t *tr,
    const char *what, ngx_err_t err)
{
    u_char  *p, *last;

    p = tr->error_text;
    last = tr->error_text + sizeof(tr->error_text);

    p = ngx_slprintf(p, last, "%s", what);

    if (tr->answer.error) {
        p = ngx_slprintf(p, last, ": %s", tr->answer.error);

    } else if (tr->ssl_error.len) {
        p = ngx_slprintf(p, last, ": %V", &tr->ssl_error);

    } else if (err && p < last - 2) {
        p = ngx_slprintf(p, last, ": ");
        p = ngx_strerror(err, p, last - p);
    }

    tr->error.data = tr->error_text;
    tr->error.len = p - tr->error_text;
}


/*
 * The answer is read: the connection is kept for the next request when
 * the receiver said it could serve one and sent nothing more.
 */

static void
ngx_http_postback_http_answered(ngx_http_postback_http_transfer_t *tr,
    ngx_flag_t whole)
{
    ngx_connection_t  *c;

    c = tr->peer.connection;

    if (tr->answer.keep_alive && whole && !c->error
        && !ngx_exiting && !ngx_terminate && !ngx_quit)
    {
        tr->peer.connection = NULL;
        ngx_http_postback_http_keep(tr, c);
    }

    ngx_http_postback_http_end(tr);
}


/*
 * The attempt's report: the answer, or tr->error and what was read of
 * the answer before it (a status line read whole is kept, as curl does)
 */

static void
ngx_http_postback_http_end(ngx_http_postback_http_transfer_t *tr)
{
    ngx_http_postback_send_t    *send;
    ngx_http_postback_result_t   res;

    send = tr->send;

    ngx_http_postback_http_close(tr);

    ngx_memzero(&res, sizeof(ngx_http_postback_result_t));

    res.error = tr->error;
    res.wrong_url = tr->wrong_url;

    /* three digits read */
    res.status = (tr->answer.status >= 100) ? tr->answer.status : 0;
    res.retry_after = ngx_http_postback_retry_after(res.status,
                                            (off_t) tr->answer.retry_after);

    res.response.len = tr->answer.kept_len;
    res.response.data = ngx_pnalloc(send->pool, res.response.len + 1);

    if (res.response.data == NULL) {
        res.response.len = 0;

    } else {
        ngx_memcpy(res.response.data, tr->answer.kept, res.response.len);
    }

    ngx_http_postback_deliver_done(send->transfer, &res);
}


/* the attempt's deadline passed, or it failed before it started */

static void
ngx_http_postback_http_timer_handler(ngx_event_t *ev)
{
    ngx_http_postback_http_transfer_t  *tr;

    tr = ((ngx_connection_t *) ev->data)->data;

    if (ev->timedout) {
        tr->error.data = tr->error_text;
        tr->error.len = ngx_snprintf(tr->error_text, sizeof(tr->error_text),
                                     "timed out after %M ms",
                                     tr->send->cb->timeout)
                        - tr->error_text;
    }

    ngx_http_postback_http_end(tr);
}


static void
ngx_http_postback_http_close(ngx_http_postback_http_transfer_t *tr)
{
    if (tr->resolving) {
        ngx_resolve_name_done(tr->resolving);
        tr->resolving = NULL;
    }

    if (tr->peer.connection) {
        ngx_http_postback_http_close_connection(tr->peer.connection);
        tr->peer.connection = NULL;
    }

    /* it was said of that connection */
    tr->ssl_error.len = 0;
}


/* TLS says close_notify, without waiting for the receiver's, as upstreams */

static void
ngx_http_postback_http_close_connection(ngx_connection_t *c)
{
    ngx_pool_t  *pool;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    pool = c->pool;

    ngx_close_connection(c);
    ngx_destroy_pool(pool);
}


/* an idle connection to the address, taken out of the pool */

static ngx_connection_t *
ngx_http_postback_http_take(ngx_http_postback_http_transfer_t *tr)
{
    ngx_queue_t                    *q;
    ngx_connection_t               *c;
    ngx_http_postback_http_t       *h = &ngx_http_postback_http;
    ngx_http_postback_cb_conf_t    *cb;
    ngx_http_postback_http_idle_t  *item;

    cb = tr->send->cb;

    for (q = ngx_queue_head(&h->idle);
         q != ngx_queue_sentinel(&h->idle);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_http_postback_http_idle_t, queue);

        if (ngx_cmp_sockaddr(&item->sockaddr.sockaddr, item->socklen,
                             &tr->sockaddr.sockaddr, tr->socklen, 1)
            != NGX_OK
            || item->ssl != ngx_http_postback_http_tls(cb)
            || item->origin->len != cb->origin.len
            || ngx_strncasecmp(item->origin->data, cb->origin.data,
                               cb->origin.len)
               != 0)
        {
            continue;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_head(&h->free, q);

        c = item->connection;
        c->idle = 0;

        return c;
    }

    return NULL;
}


/* the connection waits for the next request; the oldest idle one goes */

static void
ngx_http_postback_http_keep(ngx_http_postback_http_transfer_t *tr,
    ngx_connection_t *c)
{
    ngx_queue_t                    *q;
    ngx_http_postback_http_t       *h = &ngx_http_postback_http;
    ngx_http_postback_http_idle_t  *item;

    if (ngx_queue_empty(&h->free)) {
        q = ngx_queue_last(&h->idle);
        ngx_http_postback_http_idle_close(
            ngx_queue_data(q, ngx_http_postback_http_idle_t, queue));
    }

    q = ngx_queue_head(&h->free);
    ngx_queue_remove(q);
    ngx_queue_insert_head(&h->idle, q);

    item = ngx_queue_data(q, ngx_http_postback_http_idle_t, queue);
    item->connection = c;
    item->sockaddr = tr->sockaddr;
    item->socklen = tr->socklen;
    item->origin = &tr->send->cb->origin;
    item->ssl = ngx_http_postback_http_tls(tr->send->cb);

    /* graceful shutdown closes idle connections: see the handler */
    c->idle = 1;
    c->data = item;
    ngx_http_postback_http_set_log(c, h->log);
    c->read->handler = ngx_http_postback_http_idle_handler;
    c->write->handler = ngx_http_postback_http_idle_write;

    if (c->read->ready) {
        ngx_http_postback_http_idle_handler(c->read);
    }
}


/*
 * An idle connection is closed when the receiver closes it or sends
 * anything, or when the worker leaves (c->close).  What TLS read already
 * (the rest of a record whose start ended an answer) the socket no longer
 * shows: it is asked first.
 */

static void
ngx_http_postback_http_idle_handler(ngx_event_t *ev)
{
    char               buf[1];
    ssize_t            n;
    ngx_connection_t  *c;

    c = ev->data;

    if (c->close) {
        goto close;
    }

#if (NGX_HTTP_SSL)
    if (c->ssl && SSL_pending(c->ssl->connection)) {
        goto close;
    }
#endif

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        ev->ready = 0;

        if (ngx_handle_read_event(c->read, 0) == NGX_OK) {
            return;
        }
    }

close:

    ngx_http_postback_http_idle_close(c->data);
}


static void
ngx_http_postback_http_idle_close(ngx_http_postback_http_idle_t *item)
{
    ngx_http_postback_http_t  *h = &ngx_http_postback_http;

    ngx_http_postback_http_close_connection(item->connection);
    item->connection = NULL;

    ngx_queue_remove(&item->queue);
    ngx_queue_insert_head(&h->free, &item->queue);
}


static void
ngx_http_postback_http_idle_write(ngx_event_t *ev)
{
    /* nothing to write on an idle connection */
}
