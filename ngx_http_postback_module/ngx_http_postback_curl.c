
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The libcurl engine: one multi handle per worker, driven by nginx's event
 * loop through curl's socket and timer callbacks.  Nothing here blocks:
 * curl's sockets are wrapped in nginx connections with level-triggered
 * events, and curl's timeout is an nginx timer.  It sends what the
 * deliverer prepared and reports the answer; the rest is the deliverer's.
 */


#include "ngx_http_postback_module.h"
#include <curl/curl.h>


/* easy handles kept for the next transfers, at most */
#define NGX_HTTP_POSTBACK_IDLE_MAX         64


/* one attempt, in its send's pool */
typedef struct {
    ngx_http_postback_send_t       *send;
    CURL                           *easy;
    struct curl_slist              *headers;
    size_t                          response_len;
    u_char                          response[NGX_HTTP_POSTBACK_RESP_MAX];
    char                            error[CURL_ERROR_SIZE];
    u_char                          error_text[sizeof("proxy: ") - 1
                                               + CURL_ERROR_SIZE];
} ngx_http_postback_curl_transfer_t;


typedef struct {
    CURLM                          *multi;
    ngx_log_t                      *log;
    ngx_event_t                     timer;
    ngx_connection_t                timer_conn;     /* for the timer's log */
    ngx_connection_t              **sockets;        /* by fd */
    ngx_uint_t                      nsockets;
    CURL                           *idle[NGX_HTTP_POSTBACK_IDLE_MAX];
    ngx_uint_t                      nidle;
} ngx_http_postback_curl_t;


static ngx_int_t ngx_http_postback_curl_setup(
    ngx_http_postback_curl_transfer_t *ct);
static ngx_int_t ngx_http_postback_curl_headers(
    ngx_http_postback_curl_transfer_t *ct);
static void ngx_http_postback_curl_check_done(void);
static void ngx_http_postback_curl_result(
    ngx_http_postback_curl_transfer_t *ct, CURLcode rc,
    ngx_http_postback_result_t *res);
static ngx_flag_t ngx_http_postback_curl_proxy_failed(
    ngx_http_postback_curl_transfer_t *ct, CURLcode rc);
static void ngx_http_postback_curl_event_handler(ngx_event_t *ev);
static void ngx_http_postback_curl_run(curl_socket_t s, int action);
static void ngx_http_postback_curl_timer_handler(ngx_event_t *ev);
static int ngx_http_postback_curl_socket_cb(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_postback_curl_timer_cb(CURLM *multi, long timeout_ms,
    void *userp);
static curl_socket_t ngx_http_postback_curl_open_socket(void *clientp,
    curlsocktype purpose, struct curl_sockaddr *address);
static int ngx_http_postback_curl_close_socket(void *clientp,
    curl_socket_t s);
static ngx_connection_t *ngx_http_postback_curl_wrap_socket(curl_socket_t s);
static void ngx_http_postback_curl_unwrap_socket(ngx_connection_t *c);
static void ngx_http_postback_curl_forget_events(ngx_connection_t *c);
static size_t ngx_http_postback_curl_write_cb(char *ptr, size_t size,
    size_t nmemb, void *userdata);


static ngx_http_postback_curl_t  ngx_http_postback_curl;


ngx_int_t
ngx_http_postback_curl_init(ngx_cycle_t *cycle)
{
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "postback: curl_global_init() failed");
        return NGX_ERROR;
    }

    cu->multi = curl_multi_init();
    if (cu->multi == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "postback: curl_multi_init() failed");
        return NGX_ERROR;
    }

    cu->log = cycle->log;

    /* the deliverer holds a graceful shutdown while transfers run */
    ngx_http_postback_timer_init(&cu->timer,
                                 ngx_http_postback_curl_timer_handler,
                                 &cu->timer_conn, cycle->log, 1);

    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_postback_curl_socket_cb);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_postback_curl_timer_cb);

    /* curl's sockets count against worker_connections */
    curl_multi_setopt(cu->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long) ngx_max(cycle->connection_n / 4, 1));

    return NGX_OK;
}


void
ngx_http_postback_curl_exit(void)
{
    ngx_uint_t                 i;
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    if (cu->multi == NULL) {
        return;
    }

    while (cu->nidle) {
        curl_easy_cleanup(cu->idle[--cu->nidle]);
    }

    /* closes the cached connections through our close callback */
    curl_multi_cleanup(cu->multi);
    cu->multi = NULL;

    if (cu->timer.timer_set) {
        ngx_del_timer(&cu->timer);
    }

    if (cu->timer.posted) {
        ngx_delete_posted_event(&cu->timer);
    }

    /* only the resolver's can be left: curl closed every one it opened */
    for (i = 0; i < cu->nsockets; i++) {
        if (cu->sockets[i]) {
            ngx_http_postback_curl_unwrap_socket(cu->sockets[i]);
        }
    }

    ngx_free(cu->sockets);
    cu->sockets = NULL;
    cu->nsockets = 0;

    curl_global_cleanup();
}


ngx_int_t
ngx_http_postback_curl_start(ngx_http_postback_send_t *send)
{
    ngx_http_postback_curl_t           *cu = &ngx_http_postback_curl;
    ngx_http_postback_curl_transfer_t  *ct;

    if (cu->multi == NULL) {
        /* after worker_shutdown_timeout closed curl down */
        return NGX_ERROR;
    }

    ct = ngx_pcalloc(send->pool, sizeof(ngx_http_postback_curl_transfer_t));
    if (ct == NULL) {
        return NGX_ERROR;
    }

    ct->send = send;
    send->engine = ct;

    /* a handle of an ended transfer, reset, costs less than a new one */
    ct->easy = cu->nidle ? cu->idle[--cu->nidle] : curl_easy_init();

    if (ct->easy == NULL
        || ngx_http_postback_curl_setup(ct) != NGX_OK
        || curl_multi_add_handle(cu->multi, ct->easy) != CURLM_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the transfer's handle goes back to the idle ones; it reports nothing */

void
ngx_http_postback_curl_stop(ngx_http_postback_send_t *send)
{
    ngx_http_postback_curl_t           *cu = &ngx_http_postback_curl;
    ngx_http_postback_curl_transfer_t  *ct;

    ct = send->engine;

    if (ct == NULL) {
        return;
    }

    send->engine = NULL;

    if (ct->easy && cu->multi) {
        curl_multi_remove_handle(cu->multi, ct->easy);

        if (cu->nidle < NGX_HTTP_POSTBACK_IDLE_MAX) {
            curl_easy_reset(ct->easy);
            cu->idle[cu->nidle++] = ct->easy;

        } else {
            curl_easy_cleanup(ct->easy);
        }

    } else if (ct->easy) {
        curl_easy_cleanup(ct->easy);
    }

    curl_slist_free_all(ct->headers);
}


static ngx_int_t
ngx_http_postback_curl_setup(ngx_http_postback_curl_transfer_t *ct)
{
    CURL                         *easy;
    ngx_http_postback_send_t     *send;
    ngx_http_postback_cb_conf_t  *cb;

    easy = ct->easy;
    send = ct->send;
    cb = send->cb;

    if (ngx_http_postback_curl_headers(ct) != NGX_OK) {
        return NGX_ERROR;
    }

    curl_easy_setopt(easy, CURLOPT_URL, (char *) send->url.data);

#if (LIBCURL_VERSION_NUM >= 0x075500)
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#endif

    if (cb->ca_file.len) {
        curl_easy_setopt(easy, CURLOPT_CAINFO, (char *) cb->ca_file.data);
    }

    /* https:// receivers through a CONNECT tunnel, http:// ones not */
    if (cb->proxy.len) {
        curl_easy_setopt(easy, CURLOPT_PROXY, (char *) cb->proxy.data);
        /* a no_proxy in nginx's environment must not bypass it */
        curl_easy_setopt(easy, CURLOPT_NOPROXY, "");

        if (cb->proxy_user.data) {
            curl_easy_setopt(easy, CURLOPT_PROXYUSERNAME,
                             (char *) cb->proxy_user.data);
            curl_easy_setopt(easy, CURLOPT_PROXYPASSWORD,
                             (char *) cb->proxy_password.data);
        }
    }

    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, ct);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, ct->error);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, ct->headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) cb->timeout);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                     ngx_http_postback_curl_write_cb);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, ct);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                     ngx_http_postback_curl_open_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_http_postback_curl_close_socket);

    if (send->method == NGX_HTTP_POSTBACK_GET) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);

    } else {
        /* the send's pool lasts as long as the transfer */
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) send->body.len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *) send->body.data);
    }

    return NGX_OK;
}


/*
 * The deliverer's lines as curl takes them: "Name:" would tell curl to
 * drop the header, "Name;" sends it empty; and no "Expect: 100-continue"
 * wait on bodies over 1k.
 */

static ngx_int_t
ngx_http_postback_curl_headers(ngx_http_postback_curl_transfer_t *ct)
{
    u_char             *colon, *value, *end;
    ngx_str_t          *h;
    ngx_uint_t          i;
    struct curl_slist  *list;

    ct->headers = curl_slist_append(NULL, "Expect:");
    if (ct->headers == NULL) {
        return NGX_ERROR;
    }

    h = ct->send->headers.elts;

    for (i = 0; i < ct->send->headers.nelts; i++) {
        end = h[i].data + h[i].len;
        colon = ngx_strlchr(h[i].data, end, ':');

        for (value = colon ? colon + 1 : end;
             value < end && *value == ' ';
             value++)
        {
            /* void */
        }

        if (colon && value == end) {
            colon[0] = ';';
            colon[1] = '\0';
        }

        list = curl_slist_append(ct->headers, (char *) h[i].data);
        if (list == NULL) {
            return NGX_ERROR;
        }

        ct->headers = list;
    }

    return NGX_OK;
}


static void
ngx_http_postback_curl_check_done(void)
{
    int                                 left;
    CURLMsg                            *msg;
    ngx_http_postback_result_t          res;
    ngx_http_postback_curl_t           *cu = &ngx_http_postback_curl;
    ngx_http_postback_curl_transfer_t  *ct;

    while (cu->multi && (msg = curl_multi_info_read(cu->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &ct);

        ngx_http_postback_curl_result(ct, msg->data.result, &res);
        ngx_http_postback_deliver_done(ct->send->transfer, &res);
    }
}


static void
ngx_http_postback_curl_result(ngx_http_postback_curl_transfer_t *ct,
    CURLcode rc, ngx_http_postback_result_t *res)
{
    long         code;
    u_char      *p;
    const char  *error;
    curl_off_t   retry_after;

    code = 0;
    retry_after = 0;

    curl_easy_getinfo(ct->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(ct->easy, CURLINFO_RETRY_AFTER, &retry_after);

    ngx_memzero(res, sizeof(ngx_http_postback_result_t));

    res->status = code;
    res->retry_after = ngx_http_postback_retry_after(code,
                                                     (off_t) retry_after);
    res->response.data = ct->response;
    res->response.len = ct->response_len;

    if (rc != CURLE_OK) {
        error = ct->error[0] ? ct->error : curl_easy_strerror(rc);

        /* "Failed to connect to 127.0.0.1 port 3128": but which one? */
        p = ngx_snprintf(ct->error_text, sizeof(ct->error_text), "%s%s",
                         ngx_http_postback_curl_proxy_failed(ct, rc)
                         ? "proxy: " : "", error);

        res->error.data = ct->error_text;
        res->error.len = p - ct->error_text;
    }

    /*
     * errors of the url itself, not of a receiver that is down; nor of a
     * proxy: a proxy's name that does not resolve is another code
     */
    res->wrong_url = (rc == CURLE_COULDNT_RESOLVE_HOST
                      || rc == CURLE_PEER_FAILED_VERIFICATION);
}


/*
 * Whether an attempt failed at the callback's proxy: curl could not
 * resolve or reach it (it connects to nothing else), or it refused the
 * CONNECT tunnel to an https:// receiver
 */

static ngx_flag_t
ngx_http_postback_curl_proxy_failed(ngx_http_postback_curl_transfer_t *ct,
    CURLcode rc)
{
    long  code;

    if (ct->send->cb->proxy.len == 0) {
        return 0;
    }

    if (rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_COULDNT_CONNECT) {
        return 1;
    }

    code = 0;
    curl_easy_getinfo(ct->easy, CURLINFO_HTTP_CONNECTCODE, &code);

    return code != 0 && (code < 200 || code > 299);
}


static void
ngx_http_postback_curl_event_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    c = ev->data;

    if (cu->multi == NULL) {
        return;
    }

    if (c->close) {
        /* worker_shutdown_timeout: every transfer ends here, now */
        ngx_http_postback_deliver_abort_all();
        return;
    }

    ngx_http_postback_curl_run(c->fd,
                               ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN);
}


static size_t
ngx_http_postback_curl_write_cb(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    size_t                              n;
    ngx_http_postback_curl_transfer_t  *ct = userdata;

    /* the first bytes are kept */
    n = ngx_min(size * nmemb, NGX_HTTP_POSTBACK_RESP_MAX - ct->response_len);
    ngx_memcpy(ct->response + ct->response_len, ptr, n);
    ct->response_len += n;

    return size * nmemb;
}


/*
 * curl and nginx share the thread's OpenSSL error queue: what a failed
 * transfer leaves there would be blamed on nginx's next TLS connection
 */

static void
ngx_http_postback_curl_run(curl_socket_t s, int action)
{
    int                             running;
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    curl_multi_socket_action(cu->multi, s, action, &running);

    ngx_http_postback_curl_check_done();

#if (NGX_OPENSSL)
    ERR_clear_error();
#endif
}


static void
ngx_http_postback_curl_timer_handler(ngx_event_t *ev)
{
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    if (cu->multi == NULL) {
        return;
    }

    ngx_http_postback_curl_run(CURL_SOCKET_TIMEOUT, 0);
}


static int
ngx_http_postback_curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_event_t  *ev = &ngx_http_postback_curl.timer;

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
ngx_http_postback_curl_socket_cb(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t               *c = socketp;
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    if (what == CURL_POLL_REMOVE) {
        if (c == NULL) {
            return 0;
        }

        if (c->data == NULL) {
            /* the resolver's socketpair: curl closes it right after */
            curl_multi_assign(cu->multi, s, NULL);
            ngx_http_postback_curl_unwrap_socket(c);
            return 0;
        }

        /* the socket may stay open, idle in curl's connection cache */
        ngx_http_postback_curl_forget_events(c);

        return 0;
    }

    if (c == NULL) {
        if ((ngx_uint_t) s < cu->nsockets && cu->sockets[s]) {
            c = cu->sockets[s];

        } else {
            /* not opened by us: the threaded resolver's socketpair */
            c = ngx_http_postback_curl_wrap_socket(s);
            if (c == NULL) {
                return -1;
            }
        }

        curl_multi_assign(cu->multi, s, c);
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
ngx_http_postback_curl_open_socket(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *address)
{
    ngx_socket_t       s;
    ngx_connection_t  *c;

    s = ngx_socket(address->family, address->socktype, address->protocol);
    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_postback_curl.log,
                      ngx_socket_errno, "postback: socket() failed");
        return CURL_SOCKET_BAD;
    }

    c = ngx_http_postback_curl_wrap_socket(s);
    if (c == NULL) {
        ngx_close_socket(s);
        return CURL_SOCKET_BAD;
    }

    /* ours to close, in ngx_http_postback_curl_close_socket() */
    c->data = &ngx_http_postback_curl;

    return s;
}


static int
ngx_http_postback_curl_close_socket(void *clientp, curl_socket_t s)
{
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    if ((ngx_uint_t) s < cu->nsockets && cu->sockets[s]) {
        ngx_http_postback_curl_unwrap_socket(cu->sockets[s]);
    }

    return ngx_close_socket(s);
}


static ngx_connection_t *
ngx_http_postback_curl_wrap_socket(curl_socket_t s)
{
    ngx_uint_t                      n;
    ngx_connection_t               *c, **sockets;
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    if ((ngx_uint_t) s >= cu->nsockets) {
        n = ngx_max((ngx_uint_t) s + 1, cu->nsockets * 2);
        n = ngx_max(n, 64);

        sockets = ngx_calloc(n * sizeof(ngx_connection_t *), cu->log);
        if (sockets == NULL) {
            return NULL;
        }

        if (cu->sockets) {
            ngx_memcpy(sockets, cu->sockets,
                       cu->nsockets * sizeof(ngx_connection_t *));
            ngx_free(cu->sockets);
        }

        cu->sockets = sockets;
        cu->nsockets = n;
    }

    if (cu->sockets[s]) {
        /* a wrapper left from an fd that curl closed behind our back */
        ngx_http_postback_curl_unwrap_socket(cu->sockets[s]);
    }

    c = ngx_get_connection(s, cu->log);
    if (c == NULL) {
        return NULL;
    }

    c->data = NULL;
    c->log = cu->log;
    c->read->handler = ngx_http_postback_curl_event_handler;
    c->write->handler = ngx_http_postback_curl_event_handler;
    c->read->log = cu->log;
    c->write->log = cu->log;

    cu->sockets[s] = c;

    return c;
}


static void
ngx_http_postback_curl_forget_events(ngx_connection_t *c)
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
ngx_http_postback_curl_unwrap_socket(ngx_connection_t *c)
{
    ngx_http_postback_curl_t  *cu = &ngx_http_postback_curl;

    cu->sockets[c->fd] = NULL;

    ngx_http_postback_curl_forget_events(c);

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
