
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * Capture: the header filter decides whether a response is examined, the
 * body filter copies its bytes (never holding or changing a buffer) and,
 * on the last buffer, extracts the fields, decides the event, renders the
 * requests of the matching callbacks and hands them to the zone.
 */


#include "ngx_http_postback_module.h"
#include "pb_escape.h"
#include "pb_fields.h"
#include "pb_inflate.h"
#include "pb_payload.h"


#define NGX_HTTP_POSTBACK_CAPTURE_CHUNK  (16 * 1024)


typedef struct {
    ngx_http_postback_main_conf_t  *pmcf;
    size_t                          limit;

    u_char                         *buf;
    size_t                          len;
    size_t                          cap;
    pb_inflate_t                   *inflate;
    int                             inflate_rc;

    unsigned                        done:1;
    unsigned                        skipped:1;
    unsigned                        evaluated:1;

    json_t                         *doc;
    ngx_str_t                       data;   /* doc as compact JSON */
    ngx_str_t                      *values; /* one per postback_field */
} ngx_http_postback_ctx_t;


static ngx_int_t ngx_http_postback_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_postback_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_postback_is_json(ngx_str_t *type);
static void ngx_http_postback_skip(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_http_postback_counter_e reason);
static void ngx_http_postback_copy(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, u_char *pos, size_t size);
static void ngx_http_postback_examine(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static ngx_int_t ngx_http_postback_evaluate(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx);
static ngx_int_t ngx_http_postback_matches(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *event);
static pb_kv_t *ngx_http_postback_fields(ngx_http_request_t *r,
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
    ngx_uint_t *sanitized);
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


ngx_int_t
ngx_http_postback_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_postback_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_postback_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                      *encoding;
    ngx_pool_cleanup_t             *cln;
    ngx_http_postback_counter_e     reason;
    ngx_http_postback_ctx_t        *ctx;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);

    if (!plcf->enable) {
        return ngx_http_next_header_filter(r);
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    ngx_http_postback_zone_count(pmcf->shm_zone, NGX_HTTP_POSTBACK_EXAMINED,
                                 1);

    if (r != r->main) {
        reason = NGX_HTTP_POSTBACK_SKIP_SUBREQUEST;
        goto skip;
    }

    if (r->method == NGX_HTTP_HEAD) {
        reason = NGX_HTTP_POSTBACK_SKIP_HEAD;
        goto skip;
    }

    if (r->headers_out.status == NGX_HTTP_NO_CONTENT
        || r->headers_out.status == NGX_HTTP_NOT_MODIFIED
        || r->headers_out.status < NGX_HTTP_OK)
    {
        reason = NGX_HTTP_POSTBACK_SKIP_NO_BODY;
        goto skip;
    }

    if (!ngx_http_postback_is_json(&r->headers_out.content_type)) {
        reason = NGX_HTTP_POSTBACK_SKIP_NOT_JSON;
        goto skip;
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
        reason = NGX_HTTP_POSTBACK_SKIP_ENCODING;
        goto skip;
    }

    if (encoding == NULL
        && r->headers_out.content_length_n > (off_t) plcf->buffer_size)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: response of %O bytes is over "
                      "postback_buffer_size %uz, not examined",
                      r->headers_out.content_length_n, plcf->buffer_size);
        reason = NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
        goto skip;
    }

    /* out of memory: the response goes on, unexamined */

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_postback_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cln == NULL) {
        reason = NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
        goto skip;
    }

    ctx->pmcf = pmcf;
    ctx->limit = plcf->buffer_size;
    ctx->inflate_rc = PB_INFLATE_OK;

    if (encoding) {
        ctx->inflate = pb_inflate_create();
        if (ctx->inflate == NULL) {
            reason = NGX_HTTP_POSTBACK_SKIP_TOO_LARGE;
            goto skip;
        }
    }

    cln->handler = ngx_http_postback_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_postback_module);

    /* so that bodies spooled to temporary files reach us in memory */
    r->filter_need_in_memory = 1;

    return ngx_http_next_header_filter(r);

skip:

    ngx_http_postback_zone_count(pmcf->shm_zone, reason, 1);

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_postback_is_json(ngx_str_t *type)
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

    /* application/json, text/json, application/problem+json, ... */

    if (len >= 5) {
        p = last - 5;

        if ((*p == '/' || *p == '+')
            && ngx_strncasecmp(p + 1, (u_char *) "json", 4) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_postback_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t                 rc;
    ngx_buf_t                *b;
    ngx_flag_t                last;
    ngx_chain_t              *cl;
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx == NULL || ctx->done) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (!ctx->skipped) {
            if (ngx_buf_in_memory(b)) {
                ngx_http_postback_copy(r, ctx, b->pos, b->last - b->pos);

            } else if (ngx_buf_size(b)) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "postback: response buffer not in memory, "
                              "response not examined");
                ngx_http_postback_skip(r, ctx,
                                       NGX_HTTP_POSTBACK_SKIP_TRUNCATED);
            }
        }

        if (b->last_buf) {
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
    size_t   cap;

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
        }

        return;
    }

    if (ctx->len + size > ctx->limit) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: response is over postback_buffer_size %uz, "
                      "not examined", ctx->limit);
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_TOO_LARGE);
        return;
    }

    if (ctx->len + size > ctx->cap) {
        if (r->headers_out.content_length_n > 0) {
            cap = (size_t) r->headers_out.content_length_n;

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
}


static void
ngx_http_postback_examine(ngx_http_request_t *r, ngx_http_postback_ctx_t *ctx)
{
    u_char                         *p;
    u_char                          id[NGX_HTTP_POSTBACK_ID_LEN + 1];
    ngx_str_t                       event, packed;
    ngx_uint_t                      i, matched;
    json_error_t                    err;
    pb_kv_t                        *fields;
    ngx_http_postback_cb_conf_t  **cbp;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

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

    ctx->doc = pb_json_parse((char *) ctx->buf, ctx->len, &err);

    if (ctx->doc == NULL) {
        /* jansson quotes the body near the error: keep it on one line */
        (void) pb_header_sanitize((u_char *) err.text, ngx_strlen(err.text));

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "postback: response is not valid JSON: %s "
                      "(line %d, column %d)", err.text, err.line, err.column);
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_MALFORMED);
        return;
    }

    pmcf = ctx->pmcf;

    if (ngx_http_postback_evaluate(r, ctx) != NGX_OK) {
        return;
    }

    if (pmcf->event == NULL
        || ngx_http_complex_value(r, pmcf->event, &event) != NGX_OK
        || event.len == 0)
    {
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_NO_EVENT);
        return;
    }

    /* event names reach JSON bodies and logs: keep them printable */
    for (p = event.data; p < event.data + event.len; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "postback: event name with control characters "
                          "ignored");
            ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_NO_EVENT);
            return;
        }
    }

    ngx_http_postback_zone_count(pmcf->shm_zone, NGX_HTTP_POSTBACK_EVENTS, 1);

    fields = ngx_http_postback_fields(r, ctx);

    if (fields == NULL
        || ngx_http_postback_pack_fields(r, fields, pmcf->fields.nelts,
                                         &packed)
           != NGX_OK)
    {
        return;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);

    matched = 0;

    if (plcf->callbacks) {
        cbp = plcf->callbacks->elts;

        for (i = 0; i < plcf->callbacks->nelts; i++) {
            if (ngx_http_postback_matches(r, cbp[i], &event)) {
                matched++;
                (void) ngx_http_postback_enqueue(r, ctx, cbp[i], &event,
                                                 fields, &packed, 0, id);
            }
        }
    }

    if (matched == 0) {
        ngx_http_postback_skip(r, ctx, NGX_HTTP_POSTBACK_SKIP_NO_MATCH);
    }
}


/*
 * A test send of the status API: cb's request made from doc, a sample
 * document, as a capture of it would make it, whatever events= and if=
 * say.  doc is taken.  Its id is written to id.
 */

ngx_int_t
ngx_http_postback_test_send(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *event, json_t *doc,
    u_char *id)
{
    pb_kv_t                  *fields;
    ngx_str_t                 text, packed;
    ngx_pool_cleanup_t       *cln;
    ngx_http_postback_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_postback_ctx_t));
    if (cln == NULL) {
        json_decref(doc);
        return NGX_ERROR;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_postback_ctx_t));

    ctx->pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);
    ctx->doc = doc;
    ctx->done = 1;

    cln->handler = ngx_http_postback_cleanup;
    ngx_http_set_ctx(r, ctx, ngx_http_postback_module);

    /* the sample's text, as a captured body's */
    if (ngx_http_postback_data_value(r, &text) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->buf = text.data;
    ctx->len = text.len;

    if (ngx_http_postback_evaluate(r, ctx) != NGX_OK) {
        return NGX_ERROR;
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
 * The document's text for the default body: as the upstream wrote it (it
 * parsed, so it is JSON), its outer white space left out; but written
 * again from the parse when it has a \u0000, which the parse replaced in
 * keys and which many receivers refuse there.
 */

static ngx_int_t
ngx_http_postback_doc_text(ngx_http_request_t *r,
    ngx_http_postback_ctx_t *ctx, ngx_str_t *text)
{
    u_char  *p, *last;

    p = ctx->buf;
    last = ctx->buf + ctx->len;

    if (ngx_strlcasestrn(p, last, (u_char *) "\\u0000", 6 - 1)) {
        return ngx_http_postback_data_value(r, text);
    }

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
    char                       *text;
    size_t                      len;
    json_t                     *v;
    ngx_uint_t                  i;
    ngx_http_postback_field_t  *field;

    field = ctx->pmcf->fields.elts;

    ctx->values = ngx_pcalloc(r->pool, (ctx->pmcf->fields.nelts + 1)
                                       * sizeof(ngx_str_t));
    if (ctx->values == NULL) {
        return NGX_ERROR;
    }

    /* JSONPath fields first: complex values may refer to them */

    for (i = 0; i < ctx->pmcf->fields.nelts; i++) {
        if (field[i].value) {
            continue;
        }

        v = pb_path_eval(ctx->doc, field[i].steps, field[i].nsteps);
        if (v == NULL) {
            continue;
        }

        text = pb_json_value_text(v, &len);
        if (text == NULL) {
            return NGX_ERROR;
        }

        ctx->values[i].data = ngx_pnalloc(r->pool, len + 1);
        if (ctx->values[i].data == NULL) {
            free(text);
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->values[i].data, text, len);
        ctx->values[i].len = len;
        free(text);
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
    ngx_http_postback_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_postback_module);

    if (ctx == NULL || ctx->doc == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->data.data == NULL) {
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
    ngx_str_t   val, *e;
    ngx_uint_t  i;

    if (cb->events) {
        e = cb->events->elts;

        for (i = 0; i < cb->events->nelts; i++) {
            if (e[i].len == event->len
                && ngx_strncasecmp(e[i].data, event->data, event->len) == 0)
            {
                break;
            }
        }

        if (i == cb->events->nelts) {
            return 0;
        }
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
    ngx_uint_t                      sanitized;
    pb_kv_t                        *params;
    pb_payload_t                    payload;
    ngx_http_postback_request_t     req;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ctx->pmcf;

    ngx_memzero(&req, sizeof(ngx_http_postback_request_t));
    req.event = *event;
    req.fields = *packed;
    req.method = cb->method;
    req.created = ngx_http_postback_now();
    req.test = test;
    sanitized = 0;

    ngx_http_postback_zone_new_id(pmcf->shm_zone, id);
    *ngx_http_postback_time_text(created, req.created) = '\0';

    if (ngx_http_postback_render_params(r, cb, &params) != NGX_OK
        || ngx_http_postback_render_url(r, cb, params, &req.url, &sanitized)
           != NGX_OK
        || ngx_http_postback_render_headers(r, cb, &req.headers, &sanitized)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    payload.id = (char *) id;
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


/* url: origin, target and, for GET, the parameters */

static ngx_int_t
ngx_http_postback_render_url(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, pb_kv_t *params, ngx_str_t *url,
    ngx_uint_t *sanitized)
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
    ngx_str_t  text;

    if (cb->body) {
        return ngx_http_postback_tpl_render(r, cb->body, body, sanitized);
    }

    switch (cb->method) {

    case NGX_HTTP_POSTBACK_POST_FORM:
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

    if (ctx->doc) {
        json_decref(ctx->doc);
    }
}
