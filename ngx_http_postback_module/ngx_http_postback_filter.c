
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * Capture: the header filter decides whether a response is examined, the
 * body filter copies its bytes (never holding or changing a buffer) and,
 * on the last buffer, extracts the fields, decides the event, renders the
 * requests of the matching callbacks and hands them to the zone.
 *
 * A JSON body is read by pb_jscan as its buffers pass (inflated first, if
 * encoded): the JSONPath fields' values and whether it is JSON at all are
 * known when the last buffer comes, with no tree, and a body refused on
 * the way is given up at once.  A jansson tree of it is made only when
 * something needs the document as a whole, at the first need (see
 * ngx_http_postback_doc_tree): $postback_data, a post_form body of the
 * whole document, a default body whose document has a \u0000.  A form
 * body is read into a tree (pb_form) at the end, as its fields need one;
 * so are the documents given to the status API as trees (test sends).
 */


#include "ngx_http_postback_module.h"
#include "pb_fields.h"
#include "pb_form.h"
#include "pb_inflate.h"
#include "pb_payload.h"


#define NGX_HTTP_POSTBACK_CAPTURE_CHUNK  (16 * 1024)


typedef struct {
    ngx_http_postback_main_conf_t  *pmcf;
    size_t                          limit;
    off_t                           expected;   /* its length, if known */

    u_char                         *buf;
    size_t                          len;
    size_t                          cap;
    pb_inflate_t                   *inflate;
    int                             inflate_rc;

    unsigned                        kind:2;     /* DOC_JSON, DOC_FORM */
    unsigned                        request:1;  /* postback request */
    unsigned                        accepted:1; /* its upstream said 2xx */
    unsigned                        complete:1; /* its last byte was read */
    unsigned                        done:1;
    unsigned                        skipped:1;
    unsigned                        evaluated:1;
    unsigned                        parsed:1;   /* the body is a document */

    pb_jscan_t                     *scan;   /* a JSON body's reading */
    json_t                         *doc;    /* its tree, once needed */
    ngx_str_t                       data;   /* doc as compact JSON */
    ngx_str_t                       event;  /* decided, or given */
    ngx_str_t                       key;    /* postback_key's value */
    uint64_t                        changed;    /* when its event did */
    uint64_t                        due;    /* arming: the timeout's time */
    ngx_array_t                    *ids;    /* of what it made, if asked */
    ngx_str_t                      *values; /* one per postback_field */
} ngx_http_postback_ctx_t;


static ngx_int_t ngx_http_postback_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_postback_response_examined(ngx_http_request_t *r,
    ngx_http_postback_main_conf_t *pmcf, ngx_http_postback_loc_conf_t *plcf);
static ngx_int_t ngx_http_postback_request_accepted(ngx_http_request_t *r);
static ngx_http_postback_ctx_t *ngx_http_postback_ctx_create(
    ngx_http_request_t *r, ngx_http_postback_main_conf_t *pmcf,
    ngx_http_postback_loc_conf_t *plcf, off_t expected);
static ngx_int_t ngx_http_postback_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_postback_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_postback_log_handler(ngx_http_request_t *r);
static void ngx_http_postback_copy_buf(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_buf_t *b);
static void ngx_http_postback_skip(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_http_postback_counter_e reason);
static void ngx_http_postback_copy(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, u_char *pos, size_t size);
static ngx_int_t ngx_http_postback_scan_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_postback_scan_start(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static void ngx_http_postback_scan(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, u_char *pos, size_t size);
static ngx_int_t ngx_http_postback_scan_end(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static void ngx_http_postback_scan_refused(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, int rc);
static void ngx_http_postback_examine(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static ngx_int_t ngx_http_postback_parse(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static ngx_int_t ngx_http_postback_capture(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static ngx_int_t ngx_http_postback_key_changed(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static void ngx_http_postback_arm(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_http_postback_loc_conf_t *plcf,
    pb_kv_t *fields, ngx_str_t *packed);
static ngx_flag_t ngx_http_postback_listed(ngx_array_t *list,
    ngx_str_t *event);
static ngx_http_postback_ctx_t *ngx_http_postback_ctx_given(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_postback_evaluate(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static void ngx_http_postback_scan_value(pb_jscan_t *scan, ngx_uint_t n,
    ngx_str_t *value);
static ngx_int_t ngx_http_postback_matches(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *event);
static pb_kv_t *ngx_http_postback_fields(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static ngx_int_t ngx_http_postback_doc_tree(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static ngx_int_t ngx_http_postback_doc_text(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_str_t *text);
static ngx_int_t ngx_http_postback_pack_fields(ngx_http_request_t *r,
    pb_kv_t *fields, ngx_uint_t n, ngx_str_t *packed);
static ngx_int_t ngx_http_postback_enqueue(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *event, pb_kv_t *fields, ngx_str_t *packed, ngx_flag_t test,
    u_char *id);
static ngx_int_t ngx_http_postback_render_url(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, pb_kv_t *params, ngx_str_t *url,
    size_t *params_at, ngx_uint_t *sanitized);
static ngx_int_t ngx_http_postback_render_body(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_http_postback_cb_conf_t *cb,
    pb_payload_t *payload, ngx_str_t *body, ngx_uint_t *sanitized);
static ngx_int_t ngx_http_postback_render_headers(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *lines,
    ngx_uint_t *sanitized);
static ngx_int_t ngx_http_postback_render_params(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, pb_kv_t **kv);
static void ngx_http_postback_cleanup(void *data);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;
static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;


ngx_int_t
ngx_http_postback_filter_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_postback_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_postback_body_filter;

    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_postback_request_body_filter;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_postback_log_handler;

    return ngx_http_postback_scan_init(cf);
}


/* the scanner of the JSONPath fields, made once: each JSON body copies it */

static ngx_int_t
ngx_http_postback_scan_init(ngx_conf_t *cf)
{
    ngx_uint_t                      i, n;
    pb_jscan_path_t                *paths;
    ngx_http_postback_field_t      *field;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);
    field = pmcf->fields.elts;

    paths = ngx_palloc(cf->temp_pool,
                       (pmcf->fields.nelts + 1) * sizeof(pb_jscan_path_t));
    if (paths == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (i = 0; i < pmcf->fields.nelts; i++) {
        if (field[i].value == NULL) {
            paths[n].steps = field[i].steps;
            paths[n++].nsteps = field[i].nsteps;
        }
    }

    pmcf->scan_size = pb_jscan_size(n);
    pmcf->scan = ngx_palloc(cf->pool, pmcf->scan_size);
    if (pmcf->scan == NULL) {
        return NGX_ERROR;
    }

    (void) pb_jscan_init(pmcf->scan, paths, n);

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_header_filter(ngx_http_request_t *r)
{
    ngx_int_t                       reason;
    ngx_http_postback_ctx_t        *ctx;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);

    if (plcf->capture == NGX_HTTP_POSTBACK_CAPTURE_OFF) {
        return ngx_http_next_header_filter(r);
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    ngx_http_postback_zone_count(pmcf->shm_zone, NGX_HTTP_POSTBACK_EXAMINED,
                                 1);

    if (r != r->main) {
        reason = NGX_HTTP_POSTBACK_SKIP_SUBREQUEST;

    } else if (plcf->capture == NGX_HTTP_POSTBACK_CAPTURE_REQUEST) {
        reason = ngx_http_postback_request_accepted(r);

    } else {
        reason = ngx_http_postback_response_examined(r, pmcf, plcf);
    }

    if (reason != NGX_OK) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

        if (ctx == NULL || !ctx->skipped) {
            ngx_http_postback_zone_count(pmcf->shm_zone, reason, 1);
        }

        if (ctx) {
            ctx->skipped = 1;
            ctx->done = 1;
        }
    }

    return ngx_http_next_header_filter(r);
}


/*
 * postback on: whether the response is to be examined, its copy made
 * ready.  NGX_OK, or the counter that says why not.
 */

static ngx_int_t
ngx_http_postback_response_examined(ngx_http_request_t *r,
    ngx_http_postback_main_conf_t *pmcf, ngx_http_postback_loc_conf_t *plcf)
{
    ngx_uint_t                kind;
    ngx_str_t                *encoding;
    ngx_http_postback_ctx_t  *ctx;

    if (r->method == NGX_HTTP_HEAD) {
        return NGX_HTTP_POSTBACK_SKIP_HEAD;
    }

    if (r->headers_out.status == NGX_HTTP_NO_CONTENT
        || r->headers_out.status == NGX_HTTP_NOT_MODIFIED
        || r->headers_out.status < NGX_HTTP_OK)
    {
        return NGX_HTTP_POSTBACK_SKIP_NO_BODY;
    }

    kind = ngx_http_postback_doc_kind(&r->headers_out.content_type);
    if (kind == 0) {
        return NGX_HTTP_POSTBACK_SKIP_NOT_JSON;
    }

    encoding = (r->headers_out.content_encoding
                && r->headers_out.content_encoding->value.len)
               ? &r->headers_out.content_encoding->value : NULL;

    if (encoding
        && !(encoding->len == 4
             && ngx_strncasecmp(encoding->data, (u_char *) "gzip", 4) == 0)
        && !(encoding->len == 7
             && ngx_strncasecmp(encoding->data, (u_char *) "deflate", 7)
                == 0))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: response with Content-Encoding \"%V\" "
                      "not examined", encoding);
        return NGX_HTTP_POSTBACK_SKIP_ENCODING;
    }

    if (encoding == NULL
        && r->headers_out.content_length_n > (off_t) plcf->buffer_size)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: response of %O bytes is over "
                      "postback_buffer_size %uz, not examined",
                      r->headers_out.content_length_n, plcf->buffer_size);
        return NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
    }

    /* out of memory: the response goes on, unexamined */

    ctx = ngx_http_postback_ctx_create(r, pmcf, plcf,
                                       r->headers_out.content_length_n);
    if (ctx == NULL) {
        return NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
    }

    ctx->kind = kind;

    if (kind == NGX_HTTP_POSTBACK_DOC_JSON
        && ngx_http_postback_scan_start(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
    }

    if (encoding) {
        ctx->inflate = pb_inflate_create();
        if (ctx->inflate == NULL) {
            return NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
        }
    }

    /* so that bodies spooled to temporary files reach us in memory */
    r->filter_need_in_memory = 1;

    return NGX_OK;
}


/*
 * postback request: the request's body was copied as it was read; it is
 * examined once the response is over, if the upstream accepted it.
 * NGX_OK, or the counter that says why not.
 */

static ngx_int_t
ngx_http_postback_request_accepted(ngx_http_request_t *r)
{
    ngx_uint_t                kind;
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx == NULL) {
        return NGX_HTTP_POSTBACK_SKIP_NO_BODY;
    }

    if (ctx->skipped) {
        /* counted as the body was read */
        return NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
    }

    if (r->headers_out.status < NGX_HTTP_OK
        || r->headers_out.status >= NGX_HTTP_SPECIAL_RESPONSE)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: notification answered %ui, not examined "
                      "(its sender is to send it again)",
                      r->headers_out.status);
        return NGX_HTTP_POSTBACK_SKIP_NOT_ACCEPTED;
    }

    kind = (r->headers_in.content_type == NULL)
           ? 0 : ngx_http_postback_doc_kind(&r->headers_in.content_type->value);

    if (kind == 0) {
        return NGX_HTTP_POSTBACK_SKIP_NOT_JSON;
    }

    ctx->kind = kind;
    ctx->accepted = 1;

    return NGX_OK;
}


/* a capture's context, freed with the request */

static ngx_http_postback_ctx_t *
ngx_http_postback_ctx_create(ngx_http_request_t *r,
    ngx_http_postback_main_conf_t *pmcf, ngx_http_postback_loc_conf_t *plcf,
    off_t expected)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_postback_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cln == NULL) {
        return NULL;
    }

    ctx->pmcf = pmcf;
    ctx->limit = plcf->buffer_size;
    ctx->expected = expected;
    ctx->inflate_rc = PB_INFLATE_OK;

    cln->handler = ngx_http_postback_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_postback_module);

    return ctx;
}


/*
 * What a body's Content-Type makes of it: NGX_HTTP_POSTBACK_DOC_JSON
 * (application/json, text/json, application/problem+json, ...),
 * NGX_HTTP_POSTBACK_DOC_FORM (application/x-www-form-urlencoded), or 0.
 */

ngx_uint_t
ngx_http_postback_doc_kind(ngx_str_t *type)
{
    u_char  *p, *last;
    size_t   len;

    last = ngx_strlchr(type->data, type->data + type->len, ';');
    if (last == NULL) {
        last = type->data + type->len;
    }

    while (last > type->data && last[-1] == ' ') {
        last--;
    }

    len = last - type->data;

    if (len == sizeof("application/x-www-form-urlencoded") - 1
        && ngx_strncasecmp(type->data,
                           (u_char *) "application/x-www-form-urlencoded",
                           len)
           == 0)
    {
        return NGX_HTTP_POSTBACK_DOC_FORM;
    }

    if (len >= 5) {
        p = last - 5;

        if ((*p == '/' || *p == '+')
            && ngx_strncasecmp(p + 1, (u_char *) "json", 4) == 0)
        {
            return NGX_HTTP_POSTBACK_DOC_JSON;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_postback_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t                 rc;
    ngx_flag_t                last;
    ngx_chain_t              *cl;
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx == NULL || ctx->done || ctx->request) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        ngx_http_postback_copy_buf(r, ctx, cl->buf);

        if (cl->buf->last_buf) {
            last = 1;
        }
    }

    /* the client's last bytes go first, the event's work after them */
    rc = ngx_http_next_body_filter(r, in);

    if (last) {
        ngx_http_postback_examine(r, ctx);
    }

    return rc;
}


/*
 * postback request: the request's body, as nginx reads it (chunked bodies
 * decoded), copied up to postback_buffer_size; nothing held or changed.
 */

static ngx_int_t
ngx_http_postback_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                    *cl;
    ngx_http_postback_ctx_t        *ctx;
    ngx_http_postback_loc_conf_t   *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);

    if (plcf->capture != NGX_HTTP_POSTBACK_CAPTURE_REQUEST || r != r->main) {
        return ngx_http_next_request_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx == NULL) {
        ctx = ngx_http_postback_ctx_create(r,
                  ngx_http_get_module_main_conf(r, ngx_http_postback_module),
                  plcf, r->headers_in.content_length_n);
        if (ctx == NULL) {
            return ngx_http_next_request_body_filter(r, in);
        }

        ctx->request = 1;

        if (r->headers_in.content_type
            && ngx_http_postback_doc_kind(&r->headers_in.content_type->value)
               == NGX_HTTP_POSTBACK_DOC_JSON
            && ngx_http_postback_scan_start(r, ctx) != NGX_OK)
        {
            /* out of memory: the request goes on, unexamined */
            ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_TOO_LARGE);
        }
    }

    for (cl = in; cl; cl = cl->next) {
        ngx_http_postback_copy_buf(r, ctx, cl->buf);

        if (cl->buf->last_buf) {
            ctx->complete = 1;
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


/* postback request: the notification is examined once all is sent */

static ngx_int_t
ngx_http_postback_log_handler(ngx_http_request_t *r)
{
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx && ctx->request && !ctx->done) {
        if (ctx->accepted && !ctx->complete) {
            /* answered before all of it was read (no request buffering) */
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "postback: notification answered before its "
                          "body ended, not examined");
            ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_TRUNCATED);
        }

        if (ctx->accepted) {
            ngx_http_postback_examine(r, ctx);

        } else {
            /* no header went out: the request ended before an answer */
            ctx->done = 1;
        }
    }

    return NGX_OK;
}


static void
ngx_http_postback_copy_buf(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_buf_t *b)
{
    if (ctx->skipped) {
        return;
    }

    if (ngx_buf_in_memory(b)) {
        ngx_http_postback_copy(r, ctx, b->pos, b->last - b->pos);

    } else if (ngx_buf_size(b)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "postback: body buffer not in memory, not examined");
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_TRUNCATED);
    }
}


static void
ngx_http_postback_skip(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx,
    ngx_http_postback_counter_e reason)
{
    ctx->skipped = 1;
    ngx_http_postback_zone_count(ctx->pmcf->shm_zone, reason, 1);
}


static void
ngx_http_postback_copy(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx,
    u_char *pos, size_t size)
{
    u_char  *buf;
    size_t   cap, len;

    if (size == 0) {
        return;
    }

    if (ctx->inflate) {
        if (ctx->buf == NULL) {
            /* the decoded size is unknown: reserve the limit at once */
            ctx->buf = ngx_pnalloc(r->pool, ctx->limit);
            if (ctx->buf == NULL) {
                ngx_http_postback_skip(r, ctx,
                                       NGX_HTTP_POSTBACK_SKIP_TOO_LARGE);
                return;
            }

            ctx->cap = ctx->limit;
        }

        if (ctx->inflate_rc == PB_INFLATE_DONE) {
            return;
        }

        len = ctx->len;
        ctx->inflate_rc = pb_inflate_feed(ctx->inflate, pos, size, ctx->buf,
                                          ctx->cap, &ctx->len);

        if (ctx->inflate_rc == PB_INFLATE_FULL) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "postback: decoded response is over "
                          "postback_buffer_size %uz, not examined",
                          ctx->limit);
            ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_TOO_LARGE);

        } else if (ctx->inflate_rc == PB_INFLATE_ERROR) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "postback: response does not decode as gzip, "
                          "not examined");
            ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_MALFORMED);

        } else {
            ngx_http_postback_scan(r, ctx, ctx->buf + len, ctx->len - len);
        }

        return;
    }

    if (ctx->len + size > ctx->limit) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: %s is over postback_buffer_size %uz, "
                      "not examined",
                      ctx->request ? "request body" : "response", ctx->limit);
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_TOO_LARGE);
        return;
    }

    if (ctx->len + size > ctx->cap) {
        if (ctx->expected > 0) {
            cap = (size_t) ctx->expected;

        } else {
            cap = ngx_max(ctx->cap * 2, NGX_HTTP_POSTBACK_CAPTURE_CHUNK);
        }

        cap = ngx_min(ngx_max(cap, ctx->len + size), ctx->limit);

        buf = ngx_pnalloc(r->pool, cap);
        if (buf == NULL) {
            ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_TOO_LARGE);
            return;
        }

        if (ctx->len) {
            ngx_memcpy(buf, ctx->buf, ctx->len);
        }

        if (ctx->buf) {
            ngx_pfree(r->pool, ctx->buf);
        }

        ctx->buf = buf;
        ctx->cap = cap;
    }

    ngx_memcpy(ctx->buf + ctx->len, pos, size);
    ctx->len += size;

    ngx_http_postback_scan(r, ctx, pos, size);
}


/* a scanner for a JSON body: a copy of the configuration's fresh one */

static ngx_int_t
ngx_http_postback_scan_start(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx)
{
    ctx->scan = ngx_palloc(r->pool, ctx->pmcf->scan_size);
    if (ctx->scan == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->scan, ctx->pmcf->scan, ctx->pmcf->scan_size);

    return NGX_OK;
}


/* a JSON body's bytes, read as they pass; one refused is given up at once */

static void
ngx_http_postback_scan(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx,
    u_char *pos, size_t size)
{
    int  rc;

    if (ctx->scan == NULL) {
        return;
    }

    rc = pb_jscan_feed(ctx->scan, (char *) pos, size);

    if (rc != PB_JSCAN_OK) {
        ngx_http_postback_scan_refused(r, ctx, rc);
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_MALFORMED);
    }
}


/*
 * The end of a JSON body: the scan's verdict, and the fields' values
 * written.  A body given whole (the status API's) is scanned now.
 */

static ngx_int_t
ngx_http_postback_scan_end(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx)
{
    int  rc;

    if (ctx->scan == NULL) {
        if (ngx_http_postback_scan_start(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        (void) pb_jscan_feed(ctx->scan, (char *) ctx->buf, ctx->len);
    }

    rc = pb_jscan_finish(ctx->scan);

    if (rc != PB_JSCAN_OK) {
        ngx_http_postback_scan_refused(r, ctx, rc);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* why the scan gave a JSON body up: where it is not JSON, or no memory */

static void
ngx_http_postback_scan_refused(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, int rc)
{
    size_t       offset;
    const char  *what, *why;

    what = ctx->request ? "request body" : "response";
    why = pb_jscan_error(ctx->scan, &offset);

    if (rc == PB_JSCAN_NOMEM) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "postback: %s not examined: no memory for its fields",
                      what);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "postback: %s is not valid JSON: %s at byte %uz",
                  what, why, offset);
}


static void
ngx_http_postback_examine(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx)
{
    ctx->done = 1;

    if (ctx->skipped) {
        return;
    }

    if (ctx->inflate && ctx->inflate_rc != PB_INFLATE_DONE) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: gzip response ends early, not examined");
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_MALFORMED);
        return;
    }

    if (ngx_http_postback_parse(r, ctx) != NGX_OK) {
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_MALFORMED);
        return;
    }

    (void) ngx_http_postback_capture(r, ctx);
}


/*
 * The parsed document's way: fields, event, then the deliveries of the
 * location's callbacks that take it.  NGX_OK with at least one, or the
 * counter that says why none (counted).
 */

static ngx_int_t
ngx_http_postback_capture(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx)
{
    u_char                         *p;
    u_char                          id[NGX_HTTP_POSTBACK_ID_LEN + 1];
    ngx_str_t                       event, packed;
    ngx_uint_t                      i, matched, dropped;
    pb_kv_t                        *fields;
    ngx_http_postback_cb_conf_t  **cbp;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ctx->pmcf;

    if (ngx_http_postback_evaluate(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_postback_event_value(r, &event) != NGX_OK
        || event.len == 0)
    {
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_NO_EVENT);
        return NGX_HTTP_POSTBACK_SKIP_NO_EVENT;
    }

    /* event names reach JSON bodies and logs: keep them printable */
    for (p = event.data; p < event.data + event.len; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "postback: event name with control characters "
                          "ignored");
            ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_NO_EVENT);
            return NGX_HTTP_POSTBACK_SKIP_NO_EVENT;
        }
    }

    ctx->event = event;

    fields = ngx_http_postback_fields(r, ctx);

    if (fields == NULL
        || ngx_http_postback_pack_fields(r, fields, pmcf->fields.nelts,
                                         &packed)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* from here, a change of its key is undone if nothing is recorded */
    if (ngx_http_postback_key_changed(r, ctx) != NGX_OK) {
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_DUPLICATE);
        return NGX_HTTP_POSTBACK_SKIP_DUPLICATE;
    }

    ngx_http_postback_zone_count(pmcf->shm_zone, NGX_HTTP_POSTBACK_EVENTS, 1);

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);

    matched = 0;
    dropped = 0;

    if (plcf->callbacks) {
        cbp = plcf->callbacks->elts;

        for (i = 0; i < plcf->callbacks->nelts; i++) {
            if (!ngx_http_postback_matches(r, cbp[i], &event)) {
                continue;
            }

            matched++;

            if (ngx_http_postback_enqueue(r, ctx, cbp[i], &event, fields,
                                          &packed, 0, id)
                != NGX_OK)
            {
                dropped++;
                continue;
            }

            if (ctx->ids) {
                p = ngx_array_push(ctx->ids);
                if (p == NULL) {
                    return NGX_ERROR;
                }

                ngx_memcpy(p, id, NGX_HTTP_POSTBACK_ID_LEN);
            }
        }
    }

    if (dropped && ctx->key.len) {
        /* not sent: a repeat of it must not be taken for one */
        ngx_http_postback_keys_forget(pmcf->shm_zone, &ctx->key,
                                      ctx->changed);

    } else if (ctx->key.len && pmcf->timeouts) {
        ngx_http_postback_arm(r, ctx, plcf, fields, &packed);
    }

    if (matched == 0) {
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_NO_MATCH);
        return NGX_HTTP_POSTBACK_SKIP_NO_MATCH;
    }

    return NGX_OK;
}


/*
 * postback_timeout_event: the timeout events that this event starts for
 * its key are rendered now, while the request is alive, as the event's
 * NAME with its fields and document, for the location's callbacks that
 * take NAME; they wait in the zone for their time, and the key changing
 * before it cancels them.
 */

static void
ngx_http_postback_arm(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx,
    ngx_http_postback_loc_conf_t *plcf, pb_kv_t *fields, ngx_str_t *packed)
{
    u_char                          id[NGX_HTTP_POSTBACK_ID_LEN + 1];
    ngx_str_t                       event;
    ngx_uint_t                      i, k;
    ngx_http_postback_timeout_t    *t;
    ngx_http_postback_cb_conf_t  **cbp;

    if (plcf->callbacks == NULL) {
        return;
    }

    event = ctx->event;
    t = ctx->pmcf->timeouts->elts;
    cbp = plcf->callbacks->elts;

    for (k = 0; k < ctx->pmcf->timeouts->nelts; k++) {

        if (!ngx_http_postback_listed(t[k].from, &event)) {
            continue;
        }

        /* $postback_event and if= see the timeout event */
        ctx->event = t[k].name;
        ctx->due = ngx_http_postback_now() + t[k].after;

        for (i = 0; i < plcf->callbacks->nelts; i++) {
            if (ngx_http_postback_matches(r, cbp[i], &t[k].name)) {
                (void) ngx_http_postback_enqueue(r, ctx, cbp[i], &t[k].name,
                                                 fields, packed, 0, id);
            }
        }
    }

    ctx->event = event;
    ctx->due = 0;
}


/*
 * postback_key: NGX_OK when the document's event is news for its key (or
 * it has no key), NGX_DECLINED when the key's last event was this one.
 */

static ngx_int_t
ngx_http_postback_key_changed(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx)
{
    ngx_int_t                       rc;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ctx->pmcf;

    if (pmcf->key == NULL
        || ngx_http_complex_value(r, pmcf->key, &ctx->key) != NGX_OK)
    {
        ngx_str_null(&ctx->key);
        return NGX_OK;
    }

    if (ctx->key.len > NGX_HTTP_POSTBACK_KEY_MAX) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "postback: key of %uz bytes is over %d, event "
                      "\"%V\" taken without key", ctx->key.len,
                      NGX_HTTP_POSTBACK_KEY_MAX, &ctx->event);
        ngx_str_null(&ctx->key);
        return NGX_OK;
    }

    if (ctx->key.len == 0) {
        return NGX_OK;
    }

    rc = ngx_http_postback_keys_seen(pmcf->shm_zone, &ctx->key, &ctx->event,
                                     &ctx->changed);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: event \"%V\" is its key's last event, "
                      "nothing sent", &ctx->event);
        return NGX_DECLINED;
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "postback: no room in the zone for the key of event "
                      "\"%V\": a repeat of it will be sent again",
                      &ctx->event);
    }

    return NGX_OK;
}


/* the event of the request's document: as decided, or postback_event's */

ngx_int_t
ngx_http_postback_event_value(ngx_http_request_t *r, ngx_str_t *value)
{
    ngx_http_postback_ctx_t        *ctx;
    ngx_http_postback_main_conf_t  *pmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx && ctx->event.len) {
        *value = ctx->event;
        return NGX_OK;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    if (pmcf->event == NULL) {
        return NGX_DECLINED;
    }

    return ngx_http_complex_value(r, pmcf->event, value);
}


/*
 * The body read as its kind says: a JSON body's scan ended, a form read
 * into ctx->doc; logs why not.
 */

static ngx_int_t
ngx_http_postback_parse(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx)
{
    const char  *msg;

    if (ctx->kind == NGX_HTTP_POSTBACK_DOC_JSON) {
        if (ngx_http_postback_scan_end(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->parsed = 1;
        return NGX_OK;
    }

    ctx->doc = pb_form_parse((char *) ctx->buf, ctx->len, &msg);

    if (ctx->doc == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: %s is not a valid form: %s",
                      ctx->request ? "request body" : "response", msg);
        return NGX_ERROR;
    }

    ctx->parsed = 1;

    return NGX_OK;
}


/*
 * A test send of the status API: cb's request made from doc, a sample
 * document, as a capture of it would make it, whatever events= and if=
 * say; values (one per field, data NULL: none) replace those of fields
 * not taken from the document.  doc is taken.  Its id is written to id.
 */

ngx_int_t
ngx_http_postback_test_send(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *event, json_t *doc,
    ngx_str_t *values, u_char *id)
{
    pb_kv_t                    *fields;
    ngx_str_t                   packed;
    ngx_uint_t                  i;
    ngx_http_postback_ctx_t    *ctx;
    ngx_http_postback_field_t  *field;

    ctx = ngx_http_postback_ctx_given(r);
    if (ctx == NULL) {
        json_decref(doc);
        return NGX_ERROR;
    }

    ctx->doc = doc;

    if (ngx_http_postback_evaluate(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    field = ctx->pmcf->fields.elts;

    for (i = 0; i < ctx->pmcf->fields.nelts; i++) {
        if (field[i].value && values[i].data) {
            ctx->values[i] = values[i];
        }
    }

    fields = ngx_http_postback_fields(r, ctx);

    if (fields == NULL
        || ngx_http_postback_pack_fields(r, fields, ctx->pmcf->fields.nelts,
                                         &packed)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_postback_enqueue(r, ctx, cb, event, fields, &packed, 1,
                                     id);
}


/*
 * POST <status>/events: a document given through the status API takes a
 * captured one's way, through the callbacks in effect at r's location;
 * a non-empty event is its event.  What it made goes in *result.
 */

ngx_int_t
ngx_http_postback_inject(ngx_http_request_t *r, ngx_uint_t kind,
    u_char *buf, size_t len, ngx_str_t *event,
    ngx_http_postback_injected_t *result)
{
    ngx_http_postback_ctx_t  *ctx;

    ngx_memzero(result, sizeof(ngx_http_postback_injected_t));

    ctx = ngx_http_postback_ctx_given(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->kind = kind;
    ctx->buf = buf;
    ctx->len = len;
    ctx->event = *event;

    ctx->ids = ngx_array_create(r->pool, 4, NGX_HTTP_POSTBACK_ID_LEN);
    if (ctx->ids == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_postback_parse(r, ctx) != NGX_OK) {
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_MALFORMED);
        result->reason = NGX_HTTP_POSTBACK_SKIP_MALFORMED;
        return NGX_OK;
    }

    result->reason = ngx_http_postback_capture(r, ctx);
    result->event = ctx->event;
    result->key = ctx->key;
    result->ids = ctx->ids;

    return (result->reason == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* the context of a document given, not captured: freed with r */

static ngx_http_postback_ctx_t *
ngx_http_postback_ctx_given(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_postback_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_postback_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_postback_ctx_t));

    ctx->pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);
    ctx->done = 1;

    cln->handler = ngx_http_postback_cleanup;
    ngx_http_set_ctx(r, ctx, ngx_http_postback_module);

    return ctx;
}


/*
 * ctx->doc: the document as a jansson tree, made from a JSON body at the
 * first need (the scan took its fields without one).  NGX_DECLINED: there
 * is no document.
 */

static ngx_int_t
ngx_http_postback_doc_tree(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx)
{
    json_error_t  err;

    if (ctx->doc != NULL) {
        return NGX_OK;
    }

    if (!ctx->parsed) {
        return NGX_DECLINED;
    }

    ctx->doc = pb_json_parse((char *) ctx->buf, ctx->len, &err);

    if (ctx->doc == NULL) {
        /* the scan accepted it: only memory can be missing */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "postback: no memory for the document's tree");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The document's text for the default body: a JSON body as the upstream
 * wrote it (the scan found it JSON), its outer white space left out; but
 * written again from its tree when it has a \u0000, which the parse
 * replaced in keys and which many receivers refuse there; and a form's,
 * or a document given as a tree, written from that tree.
 */

static ngx_int_t
ngx_http_postback_doc_text(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_str_t *text)
{
    u_char  *p, *last;

    if (ctx->scan == NULL || pb_jscan_has_nul(ctx->scan)) {
        return ngx_http_postback_data_value(r, text);
    }

    p = ctx->buf;
    last = ctx->buf + ctx->len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    {
        p++;
    }

    while (last > p
           && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'
               || last[-1] == '\n'))
    {
        last--;
    }

    text->data = p;
    text->len = last - p;

    return NGX_OK;
}


/* the fields' values as the payload takes them */

static pb_kv_t *
ngx_http_postback_fields(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx)
{
    ngx_uint_t                  i;
    pb_kv_t                    *fields;
    ngx_http_postback_field_t  *field;

    fields = ngx_palloc(r->pool,
                        (ctx->pmcf->fields.nelts + 1) * sizeof(pb_kv_t));
    if (fields == NULL) {
        return NULL;
    }

    field = ctx->pmcf->fields.elts;

    for (i = 0; i < ctx->pmcf->fields.nelts; i++) {
        fields[i].name = (char *) field[i].name.data;
        fields[i].name_len = field[i].name.len;
        fields[i].value = (char *) ctx->values[i].data;
        fields[i].value_len = ctx->values[i].len;
    }

    return fields;
}


static ngx_int_t
ngx_http_postback_evaluate(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx)
{
    ngx_uint_t                  i, n;
    ngx_http_postback_field_t  *field;

    field = ctx->pmcf->fields.elts;

    ctx->values = ngx_pcalloc(r->pool, (ctx->pmcf->fields.nelts + 1)
                                       * sizeof(ngx_str_t));
    if (ctx->values == NULL) {
        return NGX_ERROR;
    }

    /* JSONPath fields first: complex values may refer to them */

    for (i = 0, n = 0; i < ctx->pmcf->fields.nelts; i++) {
        if (field[i].value != NULL) {
            continue;
        }

        /* the scan's paths are the JSONPath fields, in their order */
        if (ctx->scan) {
            ngx_http_postback_scan_value(ctx->scan, n++, &ctx->values[i]);

        } else if (ngx_http_postback_path_value(r->pool, ctx->doc, &field[i],
                                                &ctx->values[i])
                   == NGX_ERROR)
        {
            return NGX_ERROR;
        }
    }

    ctx->evaluated = 1;

    for (i = 0; i < ctx->pmcf->fields.nelts; i++) {
        if (field[i].value
            && ngx_http_complex_value(r, field[i].value, &ctx->values[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A JSONPath field's value in doc, as the payload takes it, in pool;
 * NGX_DECLINED (value left as it is) when the path finds nothing.
 */

ngx_int_t
ngx_http_postback_path_value(ngx_pool_t *pool, json_t *doc,
    ngx_http_postback_field_t *field, ngx_str_t *value)
{
    char    *text;
    size_t   len;
    json_t  *v;

    v = pb_path_eval(doc, field->steps, field->nsteps);
    if (v == NULL) {
        return NGX_DECLINED;
    }

    text = pb_json_value_text(v, &len);
    if (text == NULL) {
        return NGX_ERROR;
    }

    value->data = ngx_pnalloc(pool, len + 1);
    if (value->data == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, text, len);
    value->len = len;
    free(text);

    return NGX_OK;
}


/* path n's value found by the scan, in its memory; if none, left as is */

static void
ngx_http_postback_scan_value(pb_jscan_t *scan, ngx_uint_t n,
    ngx_str_t *value)
{
    size_t       len;
    const char  *text;

    if (pb_jscan_value(scan, n, &text, &len)) {
        value->data = (u_char *) text;
        value->len = len;
    }
}


ngx_int_t
ngx_http_postback_field_value(ngx_http_request_t *r, ngx_uint_t index,
    ngx_str_t *value)
{
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx == NULL || !ctx->evaluated) {
        return NGX_DECLINED;
    }

    *value = ctx->values[index];

    return NGX_OK;
}


ngx_int_t
ngx_http_postback_data_value(ngx_http_request_t *r, ngx_str_t *value)
{
    char                     *text;
    size_t                    len;
    ngx_int_t                 rc;
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->data.data == NULL) {
        rc = ngx_http_postback_doc_tree(r, ctx);
        if (rc != NGX_OK) {
            return rc;
        }

        text = pb_json_value_text(ctx->doc, &len);
        if (text == NULL) {
            return NGX_ERROR;
        }

        ctx->data.data = ngx_pnalloc(r->pool, len);
        if (ctx->data.data == NULL) {
            free(text);
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->data.data, text, len);
        ctx->data.len = len;
        free(text);
    }

    *value = ctx->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_matches(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *event)
{
    ngx_str_t  val;

    if (cb->events && !ngx_http_postback_listed(cb->events, event)) {
        return 0;
    }

    if (cb->filter) {
        if (ngx_http_complex_value(r, cb->filter, &val) != NGX_OK) {
            return 0;
        }

        if (val.len == 0 || (val.len == 1 && val.data[0] == '0')) {
            return 0;
        }
    }

    return 1;
}


/* whether event is in list (events=, from=), without regard to case */

static ngx_flag_t
ngx_http_postback_listed(ngx_array_t *list, ngx_str_t *event)
{
    ngx_str_t   *e;
    ngx_uint_t   i;

    e = list->elts;

    for (i = 0; i < list->nelts; i++) {
        if (e[i].len == event->len
            && ngx_strncasecmp(e[i].data, event->data, event->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the fields as a delivery keeps them, for its log lines and history */

static ngx_int_t
ngx_http_postback_pack_fields(ngx_http_request_t *r, pb_kv_t *fields,
    ngx_uint_t n, ngx_str_t *packed)
{
    packed->len = pb_fields_size(fields, n);
    packed->data = ngx_pnalloc(r->pool, packed->len + 1);
    if (packed->data == NULL) {
        return NGX_ERROR;
    }

    pb_fields_pack(packed->data, fields, n);

    return NGX_OK;
}


/*
 * Renders cb's request and hands it to the delivery side; id receives
 * its id.  NGX_ERROR: not rendered, or dropped.
 */

static ngx_int_t
ngx_http_postback_enqueue(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *event, pb_kv_t *fields,
    ngx_str_t *packed, ngx_flag_t test, u_char *id)
{
    u_char                          created[NGX_HTTP_POSTBACK_TIME_LEN + 1];
    u_char                          webhook_id[NGX_HTTP_POSTBACK_ID_LEN + 1];
    ngx_uint_t                      sanitized;
    pb_kv_t                        *params;
    pb_payload_t                    payload;
    ngx_http_postback_request_t     req;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ctx->pmcf;

    ngx_memzero(&req, sizeof(ngx_http_postback_request_t));
    req.event = *event;
    req.key = ctx->key;
    req.fields = *packed;
    req.method = cb->method;
    req.created = ctx->due ? ctx->due : ngx_http_postback_now();
    req.armed = ctx->due ? ctx->changed : 0;
    req.test = test;
    sanitized = 0;

    ngx_http_postback_zone_new_id(pmcf->shm_zone, id);
    *ngx_http_postback_time_text(created, req.created) = '\0';

    if (ngx_http_postback_webhook_id(&cb->name, &req, id, webhook_id)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    webhook_id[NGX_HTTP_POSTBACK_ID_LEN] = '\0';

    if (ngx_http_postback_render_params(r, cb, &params) != NGX_OK
        || ngx_http_postback_render_url(r, cb, params, &req.url,
                                        &req.params_at, &sanitized)
           != NGX_OK
        || ngx_http_postback_render_headers(r, cb, &req.headers, &sanitized)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    payload.id = (char *) webhook_id;
    payload.callback = (char *) cb->name.data;
    payload.created_at = (char *) created;
    payload.event = (char *) event->data;
    payload.event_len = event->len;
    payload.fields = fields;
    payload.nfields = pmcf->fields.nelts;
    payload.params = params;
    payload.nparams = cb->params.nelts;

    if (ngx_http_postback_render_body(r, ctx, cb, &payload, &req.body,
                                      &sanitized)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (sanitized) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "postback: %ui control characters replaced by spaces "
                      "in headers of callback \"%V\"", sanitized, &cb->name);
        ngx_http_postback_zone_count(pmcf->shm_zone,
                                     NGX_HTTP_POSTBACK_SANITIZED, sanitized);
    }

    return ngx_http_postback_deliver_add(pmcf->shm_zone, cb, id, &req,
                                         r->connection->log);
}


/* url: origin, target and, for GET, the parameters' query at params_at */

static ngx_int_t
ngx_http_postback_render_url(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, pb_kv_t *params, ngx_str_t *url,
    size_t *params_at, ngx_uint_t *sanitized)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   target;
    ngx_flag_t  query;

    if (ngx_http_postback_tpl_render(r, &cb->target, &target, sanitized)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    query = (cb->method == NGX_HTTP_POSTBACK_GET && cb->params.nelts);

    len = cb->origin.len + target.len;

    if (query) {
        len += 1 + pb_payload_form_len(params, cb->params.nelts);
    }

    url->data = ngx_pnalloc(r->pool, len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(url->data, cb->origin.data, cb->origin.len);
    p = ngx_cpymem(p, target.data, target.len);
    *params_at = p - url->data;

    if (query) {
        *p++ = ngx_strlchr(target.data, target.data + target.len, '?')
               ? '&' : '?';
        p = pb_payload_form(p, params, cb->params.nelts);
    }

    url->len = p - url->data;

    return NGX_OK;
}


/* body: body=, the form of the parameters, or the default JSON */

static ngx_int_t
ngx_http_postback_render_body(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_http_postback_cb_conf_t *cb,
    pb_payload_t *payload, ngx_str_t *body, ngx_uint_t *sanitized)
{
    ngx_int_t  rc;
    ngx_str_t  text;

    if (cb->body) {
        return ngx_http_postback_tpl_render(r, cb->body, body, sanitized);
    }

    switch (cb->method) {

    case NGX_HTTP_POSTBACK_POST_FORM:
        rc = (payload->nparams == 0) ? ngx_http_postback_doc_tree(r, ctx)
                                     : NGX_DECLINED;
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            /* no param=: the whole document, as the platforms post it */
            body->len = pb_form_write_len(ctx->doc);
            body->data = ngx_pnalloc(r->pool, body->len + 1);
            if (body->data == NULL) {
                return NGX_ERROR;
            }

            pb_form_write(body->data, ctx->doc);
            return NGX_OK;
        }

        body->len = pb_payload_form_len(payload->params, payload->nparams);
        body->data = ngx_pnalloc(r->pool, body->len + 1);
        if (body->data == NULL) {
            return NGX_ERROR;
        }

        pb_payload_form(body->data, payload->params, payload->nparams);
        return NGX_OK;

    case NGX_HTTP_POSTBACK_POST_JSON:
        if (ngx_http_postback_doc_text(r, ctx, &text) != NGX_OK) {
            return NGX_ERROR;
        }

        payload->data = (char *) text.data;
        payload->data_len = text.len;

        body->len = pb_payload_json_len(payload);
        body->data = ngx_pnalloc(r->pool, body->len);
        if (body->data == NULL) {
            return NGX_ERROR;
        }

        pb_payload_json(body->data, payload);
        return NGX_OK;

    default:
        ngx_str_null(body);
        return NGX_OK;
    }
}


static ngx_int_t
ngx_http_postback_render_headers(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *lines,
    ngx_uint_t *sanitized)
{
    u_char                    *p;
    size_t                     len;
    ngx_str_t                 *values;
    ngx_uint_t                 i;
    ngx_http_postback_pair_t  *hdr;

    hdr = cb->headers.elts;

    values = ngx_palloc(r->pool, (cb->headers.nelts + 1) * sizeof(ngx_str_t));
    if (values == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (i = 0; i < cb->headers.nelts; i++) {
        if (ngx_http_postback_tpl_render(r, &hdr[i].value, &values[i],
                                         sanitized)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        len += 1 + hdr[i].name.len + sizeof(": ") - 1 + values[i].len + 1;
    }

    lines->data = ngx_pnalloc(r->pool, len + 1);
    if (lines->data == NULL) {
        return NGX_ERROR;
    }

    p = lines->data;

    for (i = 0; i < cb->headers.nelts; i++) {
        if (hdr[i].secret) {
            *p++ = NGX_HTTP_POSTBACK_SECRET_MARK;
        }

        p = ngx_cpymem(p, hdr[i].name.data, hdr[i].name.len);
        *p++ = ':'; *p++ = ' ';
        p = ngx_cpymem(p, values[i].data, values[i].len);
        *p++ = '\n';
    }

    lines->len = p - lines->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_render_params(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, pb_kv_t **kv)
{
    ngx_str_t                  value;
    ngx_uint_t                 i, sanitized;
    ngx_http_postback_pair_t  *param;

    *kv = ngx_palloc(r->pool, (cb->params.nelts + 1) * sizeof(pb_kv_t));
    if (*kv == NULL) {
        return NGX_ERROR;
    }

    param = cb->params.elts;
    sanitized = 0;

    for (i = 0; i < cb->params.nelts; i++) {
        if (ngx_http_postback_tpl_render(r, &param[i].value, &value,
                                         &sanitized)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        (*kv)[i].name = (char *) param[i].name.data;
        (*kv)[i].name_len = param[i].name.len;
        (*kv)[i].value = (char *) value.data;
        (*kv)[i].value_len = value.len;
    }

    return NGX_OK;
}


static void
ngx_http_postback_cleanup(void *data)
{
    ngx_http_postback_ctx_t  *ctx = data;

    if (!ctx->done) {
        /* no last buffer: the upstream or the client went away mid-body */
        ngx_http_postback_zone_count(ctx->pmcf->shm_zone,
                                     NGX_HTTP_POSTBACK_SKIP_TRUNCATED, 1);
    }

    if (ctx->inflate) {
        pb_inflate_destroy(ctx->inflate);
    }

    if (ctx->scan) {
        pb_jscan_free(ctx->scan);
    }

    if (ctx->doc) {
        json_decref(ctx->doc);
    }
}
