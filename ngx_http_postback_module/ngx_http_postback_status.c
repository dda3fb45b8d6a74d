
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The status location: the zone's counters, the callbacks and the recent
 * deliveries with their attempts, as JSON.
 */


#include "ngx_http_postback_module.h"


#define NGX_HTTP_POSTBACK_STATUS_LIMIT      50
#define NGX_HTTP_POSTBACK_STATUS_LIMIT_MAX  1000


static ngx_int_t ngx_http_postback_status_handler(ngx_http_request_t *r);


char *
ngx_http_postback_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);

    if (pmcf->shm_zone == NULL) {
        return "requires \"postback_zone\" earlier in the http block";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_postback_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_postback_status_handler(ngx_http_request_t *r)
{
    char                           *text;
    size_t                          len;
    ngx_int_t                       rc, n;
    ngx_str_t                       arg;
    ngx_buf_t                      *b;
    ngx_uint_t                      limit;
    ngx_chain_t                     out;
    json_t                         *root;
    ngx_http_postback_main_conf_t  *pmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    limit = NGX_HTTP_POSTBACK_STATUS_LIMIT;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        n = ngx_atoi(arg.data, arg.len);
        if (n == NGX_ERROR || n > NGX_HTTP_POSTBACK_STATUS_LIMIT_MAX) {
            return NGX_HTTP_BAD_REQUEST;
        }

        limit = n;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    root = ngx_http_postback_zone_status(pmcf->shm_zone, limit);
    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(text);

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, text, len);
    *b->last++ = '\n';
    free(text);

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    /* counters change all the time */
    r->headers_out.last_modified_time = -1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
