
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * Directives, configuration, variables and the module's glue.
 */


#include "ngx_http_postback_module.h"
#include "pb_escape.h"
#include "pb_sign.h"
#include "pb_template.h"


#define NGX_HTTP_POSTBACK_TPL_MAX_PARTS  64

/* room for "location "/name"" in messages */
#define NGX_HTTP_POSTBACK_LEVEL_LEN      256

/* retry= delays, at most: 30 days, in ms */
#define NGX_HTTP_POSTBACK_RETRY_LONGEST  (30 * 86400 * 1000LL)


static ngx_int_t ngx_http_postback_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_postback_init(ngx_conf_t *cf);
static void *ngx_http_postback_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_postback_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_postback_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static void ngx_http_postback_level(ngx_conf_t *cf, ngx_str_t *where);
static void ngx_http_postback_warn_hidden(ngx_conf_t *cf,
    ngx_http_postback_loc_conf_t *conf, ngx_http_postback_loc_conf_t *prev);
static ngx_int_t ngx_http_postback_names(ngx_conf_t *cf,
    ngx_array_t *callbacks, ngx_str_t *names);
static char *ngx_http_postback_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_postback_parse_spool(ngx_conf_t *cf,
    ngx_http_postback_main_conf_t *pmcf, ngx_str_t *value);
static char *ngx_http_postback_message(ngx_conf_t *cf, const char *fmt, ...);
static char *ngx_http_postback_split_list(ngx_conf_t *cf, ngx_uint_t i);
static char *ngx_http_postback_event_list(ngx_conf_t *cf, ngx_str_t *value,
    ngx_array_t **list);
static char *ngx_http_postback_timeout_event(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_postback_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_postback_callback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_postback_callback_param(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *key, ngx_str_t *value);
static char *ngx_http_postback_if_comparison(ngx_conf_t *cf,
    ngx_str_t *value);
static char *ngx_http_postback_parse_url(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *url);
static char *ngx_http_postback_parse_proxy(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *value);
static ngx_int_t ngx_http_postback_unescape(ngx_conf_t *cf, u_char *start,
    u_char *end, ngx_str_t *out);
static char *ngx_http_postback_check_port(ngx_conf_t *cf, const char *what,
    u_char *host, u_char *last, ngx_uint_t *port);
static char *ngx_http_postback_parse_window(ngx_str_t *value,
    ngx_msec_t *ms);
static char *ngx_http_postback_parse_retry(ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *value);
static ngx_int_t ngx_http_postback_basic_auth(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *cred);
static char *ngx_http_postback_parse_auth(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *value);
static char *ngx_http_postback_parse_pair(ngx_conf_t *cf, ngx_array_t *pairs,
    ngx_str_t *value, u_char sep, ngx_uint_t escape);
static char *ngx_http_postback_tpl_compile(ngx_conf_t *cf,
    ngx_http_postback_tpl_t *tpl, ngx_str_t *src, ngx_uint_t escape);
static ngx_int_t ngx_http_postback_set_variable(ngx_http_variable_value_t *v,
    ngx_int_t rc, ngx_str_t *value);
static ngx_int_t ngx_http_postback_field_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_postback_event_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_postback_data_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_postback_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_postback_init_process(ngx_cycle_t *cycle);
static void ngx_http_postback_exit_process(ngx_cycle_t *cycle);
static void ngx_http_postback_exit_master(ngx_cycle_t *cycle);


static char *ngx_http_postback_check_buffer_size(ngx_conf_t *cf, void *post,
    void *data);

static ngx_conf_post_t  ngx_http_postback_buffer_size_post = {
    ngx_http_postback_check_buffer_size
};


/* which body a location examines */
static ngx_conf_enum_t  ngx_http_postback_captures[] = {
    { ngx_string("off"), NGX_HTTP_POSTBACK_CAPTURE_OFF },
    { ngx_string("on"), NGX_HTTP_POSTBACK_CAPTURE_RESPONSE },
    { ngx_string("request"), NGX_HTTP_POSTBACK_CAPTURE_REQUEST },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_postback_commands[] = {

    { ngx_string("postback_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_postback_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("postback_field"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_postback_field,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("postback_event"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_postback_main_conf_t, event),
      NULL },

    { ngx_string("postback_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_postback_main_conf_t, key),
      NULL },

    { ngx_string("postback_timeout_event"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_postback_timeout_event,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("postback_callback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_postback_callback,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("postback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_postback_loc_conf_t, capture),
      &ngx_http_postback_captures },

    { ngx_string("postback_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_postback_loc_conf_t, buffer_size),
      &ngx_http_postback_buffer_size_post },

    { ngx_string("postback_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_postback_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("postback_sample"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_postback_sample_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_postback_module_ctx = {
    ngx_http_postback_add_variables,       /* preconfiguration */
    ngx_http_postback_init,                /* postconfiguration */

    ngx_http_postback_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_postback_create_loc_conf,     /* create location configuration */
    ngx_http_postback_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_postback_module = {
    NGX_MODULE_V1,
    &ngx_http_postback_module_ctx,         /* module context */
    ngx_http_postback_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_postback_init_module,         /* init module */
    ngx_http_postback_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_postback_exit_process,        /* exit process */
    ngx_http_postback_exit_master,         /* exit master */
    NGX_MODULE_V1_PADDING
};


#define ngx_http_postback_name_char(c)                                       \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')                 \
     || ((c) >= '0' && (c) <= '9') || (c) == '_')

#define ngx_http_postback_blank(c)                                           \
    ((c) == ' ' || (c) == '\t' || (c) == CR || (c) == LF)

/* the ends of the pieces of a list split at spaces: "A," "B" or "A" ",B" */
#define ngx_http_postback_ends_list(s)                                       \
    ((s)->len && (s)->data[(s)->len - 1] == ',')
#define ngx_http_postback_starts_list(s)                                     \
    ((s)->len && (s)->data[0] == ',')


static ngx_str_t  ngx_http_postback_event_name = ngx_string("postback_event");
static ngx_str_t  ngx_http_postback_data_name = ngx_string("postback_data");


static ngx_int_t
ngx_http_postback_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t            *var;
    ngx_http_postback_main_conf_t  *pmcf;

    var = ngx_http_add_variable(cf, &ngx_http_postback_event_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_postback_event_variable;

    var = ngx_http_add_variable(cf, &ngx_http_postback_data_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_postback_data_variable;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);

    pmcf->data_index = ngx_http_get_variable_index(cf,
                                                &ngx_http_postback_data_name);
    if (pmcf->data_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_init(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_http_postback_cb_conf_t   **cb;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);

    if (pmcf->callbacks.nelts && pmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"postback_callback\" requires \"postback_zone\"");
        return NGX_ERROR;
    }

    if (pmcf->timeouts && pmcf->key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"postback_timeout_event\" requires "
                           "\"postback_key\"");
        return NGX_ERROR;
    }

    cb = pmcf->callbacks.elts;

    for (i = 0; i < pmcf->callbacks.nelts; i++) {
        if (ngx_http_postback_http_engine(cf, cb[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_postback_filter_init(cf);
}


static void *
ngx_http_postback_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_postback_main_conf_t));
    if (pmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     pmcf->shm_zone = NULL;
     *     pmcf->event = NULL;
     */

    if (ngx_array_init(&pmcf->fields, cf->pool, 8,
                       sizeof(ngx_http_postback_field_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&pmcf->callbacks, cf->pool, 4,
                       sizeof(ngx_http_postback_cb_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    pmcf->data_index = NGX_ERROR;

    return pmcf;
}


static void *
ngx_http_postback_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_postback_loc_conf_t  *plcf;

    plcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_postback_loc_conf_t));
    if (plcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     plcf->callbacks = NULL;
     *     plcf->sample = NULL;
     */

    plcf->capture = NGX_CONF_UNSET_UINT;
    plcf->buffer_size = NGX_CONF_UNSET_SIZE;

    return plcf;
}


static char *
ngx_http_postback_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_postback_loc_conf_t *prev = parent;
    ngx_http_postback_loc_conf_t *conf = child;

    u_char                          buf[NGX_HTTP_POSTBACK_LEVEL_LEN];
    ngx_str_t                       where;
    const char                     *capture;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_postback_main_conf_t  *pmcf;

    ngx_conf_merge_uint_value(conf->capture, prev->capture,
                              NGX_HTTP_POSTBACK_CAPTURE_OFF);
    ngx_conf_merge_size_value(conf->buffer_size, prev->buffer_size,
                              64 * 1024);

    /* as add_header: callbacks of this level replace inherited ones */
    if (conf->callbacks == NULL) {
        conf->callbacks = prev->callbacks;

    } else if (prev->callbacks) {
        ngx_http_postback_warn_hidden(cf, conf, prev);
    }

    if (conf->sample == NULL) {
        conf->sample = prev->sample;
    }

    if (conf->capture == NGX_HTTP_POSTBACK_CAPTURE_OFF) {
        return NGX_CONF_OK;
    }

    capture = (conf->capture == NGX_HTTP_POSTBACK_CAPTURE_REQUEST)
              ? "request" : "on";

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);

    if (pmcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"postback %s\" requires \"postback_zone\"",
                           capture);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /*
     * A server's own level is left to its locations when it has some,
     * and an "if" or limit_except block to the location around it.
     */
    if (conf->callbacks == NULL
        && !clcf->noname
        && (clcf->name.len || clcf->locations == NULL))
    {
        where.data = buf;
        ngx_http_postback_level(cf, &where);

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"postback %s\" in %V with no "
                           "\"postback_callback\" (here or at an outer "
                           "level): nothing would be sent; add a callback "
                           "or write \"postback off\" there",
                           capture, &where);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The level being merged, for messages that would otherwise point to the
 * end of the http block: "location "/x"", "server "name"" or "a server".
 */

static void
ngx_http_postback_level(ngx_conf_t *cf, ngx_str_t *where)
{
    u_char                    *p, *last;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_core_srv_conf_t  *cscf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    last = where->data + NGX_HTTP_POSTBACK_LEVEL_LEN;

    if (clcf->name.len) {
        p = ngx_slprintf(where->data, last, "location \"%V\"", &clcf->name);

    } else if (cscf->server_name.len) {
        p = ngx_slprintf(where->data, last, "server \"%V\"",
                         &cscf->server_name);

    } else {
        p = ngx_cpymem(where->data, "a server", sizeof("a server") - 1);
    }

    where->len = p - where->data;
}


/*
 * A level with callbacks of its own inherits none (as add_header), so a
 * location given a callback stops sending to the outer ones: said at
 * nginx -t, once per level.
 */

static void
ngx_http_postback_warn_hidden(ngx_conf_t *cf,
    ngx_http_postback_loc_conf_t *conf, ngx_http_postback_loc_conf_t *prev)
{
    u_char     buf[NGX_HTTP_POSTBACK_LEVEL_LEN];
    ngx_str_t  where, own, hidden;

    where.data = buf;
    ngx_http_postback_level(cf, &where);

    if (ngx_http_postback_names(cf, conf->callbacks, &own) != NGX_OK
        || ngx_http_postback_names(cf, prev->callbacks, &hidden) != NGX_OK)
    {
        return;
    }

    ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                       "the callbacks of %V (%V) hide the outer level's "
                       "(%V): a level with callbacks of its own inherits "
                       "none; to send those from here too, define them here "
                       "again under other names",
                       &where, &own, &hidden);
}


/* "a", "b": the callbacks' names, for messages */

static ngx_int_t
ngx_http_postback_names(ngx_conf_t *cf, ngx_array_t *callbacks,
    ngx_str_t *names)
{
    u_char                        *p;
    size_t                         len;
    ngx_uint_t                     i;
    ngx_http_postback_cb_conf_t  **cbp;

    cbp = callbacks->elts;
    len = 0;

    for (i = 0; i < callbacks->nelts; i++) {
        len += sizeof("\"\", ") - 1 + cbp[i]->name.len;
    }

    names->data = ngx_pnalloc(cf->pool, len);
    if (names->data == NULL) {
        return NGX_ERROR;
    }

    p = names->data;

    for (i = 0; i < callbacks->nelts; i++) {
        p = ngx_sprintf(p, i ? ", \"%V\"" : "\"%V\"", &cbp[i]->name);
    }

    names->len = p - names->data;

    return NGX_OK;
}


static char *
ngx_http_postback_check_buffer_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    if (*sp < 1 || *sp > 64 * 1024 * 1024) {
        return "must be between 1 and 64m";
    }

    return NGX_CONF_OK;
}


/* an error message that names what was found, from the pool */

static char *
ngx_http_postback_message(ngx_conf_t *cf, const char *fmt, ...)
{
    u_char   *msg, *p;
    va_list   args;

    msg = ngx_pnalloc(cf->pool, NGX_MAX_CONF_ERRSTR);
    if (msg == NULL) {
        return NGX_CONF_ERROR;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + NGX_MAX_CONF_ERRSTR - 1, fmt, args);
    va_end(args);

    *p = '\0';

    return (char *) msg;
}


/*
 * nginx splits "events=A, B" at the space into "events=A," and "B": when
 * the key=value argument i is such a piece, the message to write it as
 * one, else NGX_CONF_OK.
 */

static char *
ngx_http_postback_split_list(ngx_conf_t *cf, ngx_uint_t i)
{
    u_char     *p, *eq;
    size_t      len;
    ngx_str_t  *value, key, list;
    ngx_uint_t  n;

    value = cf->args->elts;

    eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
    if (eq == NULL) {
        return NGX_CONF_OK;
    }

    len = value[i].len;

    for (n = i + 1; n < cf->args->nelts; n++) {
        if (ngx_strlchr(value[n].data, value[n].data + value[n].len, '=')
            || !(ngx_http_postback_ends_list(&value[n - 1])
                 || ngx_http_postback_starts_list(&value[n])))
        {
            break;
        }

        len += value[n].len;
    }

    if (n == i + 1) {
        return NGX_CONF_OK;
    }

    key.data = value[i].data;
    key.len = eq - value[i].data;

    list.data = ngx_pnalloc(cf->pool, len);
    if (list.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = list.data;

    while (i < n) {
        p = ngx_cpymem(p, value[i].data, value[i].len);
        i++;
    }

    list.len = len;

    return ngx_http_postback_message(cf, "no spaces in %V=: write %V",
                                     &key, &list);
}


static char *
ngx_http_postback_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_postback_main_conf_t *pmcf = conf;

    u_char      *p;
    ssize_t      size, history;
    ngx_str_t   *value, name, s;
    ngx_uint_t   i;

    if (pmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');
    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected name:size",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);
    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, at least %uz needed",
                           &value[1], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "spool=", 6) == 0
            && value[i].len > 6)
        {
            if (ngx_http_postback_parse_spool(cf, pmcf, &value[i])
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "history=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            history = ngx_parse_size(&s);
            if (history == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid history size \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            pmcf->history = history;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected "
                           "spool=path or history=size", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (pmcf->history && pmcf->spool.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"history=\" keeps finished deliveries in the "
                           "spool: it needs \"spool=\"");
        return NGX_CONF_ERROR;
    }

    pmcf->cycle = cf->cycle;

    pmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_postback_module);
    if (pmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (pmcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    pmcf->shm_zone->init = ngx_http_postback_zone_init;
    pmcf->shm_zone->data = pmcf;

    return NGX_CONF_OK;
}


/* spool=path: the journal, its rewrite beside it, the thread pool */

static ngx_int_t
ngx_http_postback_parse_spool(ngx_conf_t *cf,
    ngx_http_postback_main_conf_t *pmcf, ngx_str_t *value)
{
    pmcf->spool.data = value->data + 6;
    pmcf->spool.len = value->len - 6;

    if (ngx_conf_full_name(cf->cycle, &pmcf->spool, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    pmcf->spool_new.len = pmcf->spool.len + sizeof(".new") - 1;
    pmcf->spool_new.data = ngx_pnalloc(cf->pool, pmcf->spool_new.len + 1);
    if (pmcf->spool_new.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(pmcf->spool_new.data, "%V.new%Z", &pmcf->spool);

#if (NGX_THREADS)
    /* the journal's I/O never blocks a worker: nginx's default pool */
    pmcf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (pmcf->thread_pool == NULL) {
        return NGX_ERROR;
    }
#endif

    return NGX_OK;
}


/* "A,B,C": the event names of events= and from= */

static char *
ngx_http_postback_event_list(ngx_conf_t *cf, ngx_str_t *value,
    ngx_array_t **list)
{
    u_char     *p, *start, *end, *last;
    ngx_str_t  *event;

    *list = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (*list == NULL) {
        return NGX_CONF_ERROR;
    }

    last = value->data + value->len;

    for (start = value->data; start <= last; start = p + 1) {
        p = ngx_strlchr(start, last, ',');
        if (p == NULL) {
            p = last;
        }

        /* a quoted "events=A, B": the names without the spaces */
        for (end = p; end > start && ngx_http_postback_blank(end[-1]); end--) {
            /* void */
        }

        while (start < end && ngx_http_postback_blank(*start)) {
            start++;
        }

        if (end == start) {
            return "empty event name";
        }

        event = ngx_array_push(*list);
        if (event == NULL) {
            return NGX_CONF_ERROR;
        }

        event->data = start;
        event->len = end - start;
    }

    return NGX_CONF_OK;
}


/* postback_timeout_event NAME after=TIME from=EVENT[,EVENT...] */

static char *
ngx_http_postback_timeout_event(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_postback_main_conf_t *pmcf = conf;

    char                         *rv;
    ngx_int_t                     after;
    ngx_str_t                    *value, v;
    ngx_uint_t                    i;
    ngx_http_postback_timeout_t  *t;

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] < 0x21 || value[1].data[i] == 0x7f) {
            return "invalid event name";
        }
    }

    if (pmcf->timeouts == NULL) {
        pmcf->timeouts = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_http_postback_timeout_t));
        if (pmcf->timeouts == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    t = ngx_array_push(pmcf->timeouts);
    if (t == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(t, sizeof(ngx_http_postback_timeout_t));
    t->name = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        rv = ngx_http_postback_split_list(cf, i);
        if (rv != NGX_CONF_OK) {
            if (rv != NGX_CONF_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": %s",
                                   &value[i], rv);
            }

            return NGX_CONF_ERROR;
        }

        if (ngx_strncmp(value[i].data, "after=", 6) == 0) {
            v.data = value[i].data + 6;
            v.len = value[i].len - 6;

            after = ngx_parse_time(&v, 0);
            if (after == NGX_ERROR || after == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": a time such as 30m, "
                                   "1h or 3d", &value[i]);
                return NGX_CONF_ERROR;
            }

            t->after = (ngx_msec_t) after;
            continue;
        }

        if (ngx_strncmp(value[i].data, "from=", 5) == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;

            rv = ngx_http_postback_event_list(cf, &v, &t->from);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (t->after == 0 || t->from == NULL) {
        return "needs after= and from=";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_postback_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_postback_main_conf_t *pmcf = conf;

    int                                 n;
    u_char                             *p;
    ngx_str_t                          *value, var_name;
    ngx_uint_t                          i;
    const char                         *err;
    pb_path_step_t                      steps[PB_PATH_MAX_STEPS];
    ngx_http_variable_t                *var;
    ngx_http_postback_field_t          *field, *fields;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        if (!ngx_http_postback_name_char(value[1].data[i])) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid field name \"%V\": letters, digits "
                               "and \"_\" only", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if ((value[1].len == 5 && ngx_strncmp(value[1].data, "event", 5) == 0)
        || (value[1].len == 4 && ngx_strncmp(value[1].data, "data", 4) == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid field name \"%V\": $postback_%V is "
                           "reserved", &value[1], &value[1]);
        return NGX_CONF_ERROR;
    }

    fields = pmcf->fields.elts;
    for (i = 0; i < pmcf->fields.nelts; i++) {
        if (fields[i].name.len == value[1].len
            && ngx_strncmp(fields[i].name.data, value[1].data,
                           value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate field \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    field = ngx_array_push(&pmcf->fields);
    if (field == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(field, sizeof(ngx_http_postback_field_t));
    field->name = value[1];

    if (value[2].len >= 2
        && value[2].data[0] == '$'
        && (value[2].data[1] == '.' || value[2].data[1] == '['))
    {
        n = pb_path_parse((char *) value[2].data, value[2].len, steps,
                          PB_PATH_MAX_STEPS, &err);
        if (n < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid JSONPath \"%V\" of field \"%V\": %s",
                               &value[2], &value[1], err);
            return NGX_CONF_ERROR;
        }

        field->nsteps = n;
        field->steps = ngx_palloc(cf->pool,
                                  (n ? n : 1) * sizeof(pb_path_step_t));
        if (field->steps == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(field->steps, steps, n * sizeof(pb_path_step_t));

    } else {
        field->value = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (field->value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[2];
        ccv.complex_value = field->value;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    var_name.len = sizeof("postback_") - 1 + value[1].len;
    var_name.data = ngx_pnalloc(cf->pool, var_name.len);
    if (var_name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(var_name.data, "postback_", sizeof("postback_") - 1);
    ngx_memcpy(p, value[1].data, value[1].len);

    var = ngx_http_add_variable(cf, &var_name, NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_CONF_ERROR;
    }

    var->get_handler = ngx_http_postback_field_variable;
    var->data = pmcf->fields.nelts - 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_postback_callback(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_postback_loc_conf_t *plcf = conf;

    u_char                          *eq;
    char                            *rv;
    ngx_str_t                       *value, key, val;
    ngx_uint_t                       i;
    ngx_http_postback_cb_conf_t    *cb, **cbp;
    ngx_http_postback_main_conf_t   *pmcf;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > NGX_HTTP_POSTBACK_NAME_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid callback name \"%V\": 1 to %d "
                           "characters", &value[1], NGX_HTTP_POSTBACK_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (!ngx_http_postback_name_char(value[1].data[i])
            && value[1].data[i] != '-' && value[1].data[i] != '.')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid callback name \"%V\": letters, "
                               "digits, \"_\", \"-\" and \".\" only",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);

    if (ngx_http_postback_find_callback(pmcf, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate callback \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    cb = ngx_pcalloc(cf->pool, sizeof(ngx_http_postback_cb_conf_t));
    if (cb == NULL) {
        return NGX_CONF_ERROR;
    }

    cb->name = value[1];
    cb->method = NGX_HTTP_POSTBACK_POST_JSON;
    cb->timeout = 10000;
    cb->max_conns = 16;
    cb->attempts = 5;
    cb->disable_after_time = 3 * 86400 * 1000;
    cb->disable_on_error = 3600 * 1000;
    cb->nretry = 4;
    cb->retry[0] = 5 * 1000;
    cb->retry[1] = 5 * 60 * 1000;
    cb->retry[2] = 30 * 60 * 1000;
    cb->retry[3] = 2 * 60 * 60 * 1000;

    if (ngx_array_init(&cb->params, cf->pool, 4,
                       sizeof(ngx_http_postback_pair_t))
        != NGX_OK
        || ngx_array_init(&cb->headers, cf->pool, 4,
                          sizeof(ngx_http_postback_pair_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        eq = (u_char *) ngx_strlchr(value[i].data,
                                    value[i].data + value[i].len, '=');
        if (eq == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of callback \"%V\", "
                               "expected key=value", &value[i], &cb->name);
            return NGX_CONF_ERROR;
        }

        key.data = value[i].data;
        key.len = eq - value[i].data;
        val.data = eq + 1;
        val.len = value[i].data + value[i].len - val.data;

        rv = ngx_http_postback_split_list(cf, i);

        if (rv == NGX_CONF_OK) {
            rv = ngx_http_postback_callback_param(cf, cb, &key, &val);
        }

        if (rv == NGX_CONF_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rv != NGX_CONF_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of callback \"%V\": "
                               "%s", &value[i], &cb->name, rv);
            return NGX_CONF_ERROR;
        }
    }

    if (cb->origin.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "callback \"%V\" has no \"url=\"", &cb->name);
        return NGX_CONF_ERROR;
    }

    /* its resolver is known once the configuration is read: see init */
    cb->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (cb->body && cb->method == NGX_HTTP_POSTBACK_GET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "callback \"%V\": \"body=\" needs method=post_form "
                           "or method=post_json", &cb->name);
        return NGX_CONF_ERROR;
    }

    if (cb->body && cb->params.nelts) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "callback \"%V\": \"body=\" and \"param=\" "
                           "exclude each other with a POST method",
                           &cb->name);
        return NGX_CONF_ERROR;
    }

    if (cb->body) {
        /* the body's escaping follows the method, known only now */
        cb->body->escape = (cb->method == NGX_HTTP_POSTBACK_POST_JSON)
                           ? NGX_HTTP_POSTBACK_ESCAPE_JSON
                           : NGX_HTTP_POSTBACK_ESCAPE_URI;
    }

    cbp = ngx_array_push(&pmcf->callbacks);
    if (cbp == NULL) {
        return NGX_CONF_ERROR;
    }

    *cbp = cb;

    if (plcf->callbacks == NULL) {
        plcf->callbacks = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_http_postback_cb_conf_t *));
        if (plcf->callbacks == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cbp = ngx_array_push(plcf->callbacks);
    if (cbp == NULL) {
        return NGX_CONF_ERROR;
    }

    *cbp = cb;

    return NGX_CONF_OK;
}


static char *
ngx_http_postback_callback_param(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *key, ngx_str_t *value)
{
    char                              *rv;
    ngx_int_t                          n;
    ngx_file_info_t                    fi;
    ngx_http_postback_pair_t          *pair;
    ngx_http_compile_complex_value_t   ccv;

    if (ngx_http_postback_str_is(key, "url")) {
        /* an edited url= is another receiver: see the zone's bind */
        cb->url_digest = ngx_crc32_long(value->data, value->len);
        return ngx_http_postback_parse_url(cf, cb, value);
    }

    if (ngx_http_postback_str_is(key, "events")) {
        if (value->len == 1 && value->data[0] == '*') {
            return NGX_CONF_OK;
        }

        return ngx_http_postback_event_list(cf, value, &cb->events);
    }

    if (ngx_http_postback_str_is(key, "if")) {
        if (ngx_strlchr(value->data, value->data + value->len, '=')
            || ngx_strlchr(value->data, value->data + value->len, '~'))
        {
            return ngx_http_postback_if_comparison(cf, value);
        }

        cb->filter = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (cb->filter == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = value;
        ccv.complex_value = cb->filter;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return "invalid value";
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_postback_str_is(key, "method")) {
        if (ngx_http_postback_str_is(value, "get")) {
            cb->method = NGX_HTTP_POSTBACK_GET;

        } else if (ngx_http_postback_str_is(value, "post_form")) {
            cb->method = NGX_HTTP_POSTBACK_POST_FORM;

        } else if (ngx_http_postback_str_is(value, "post_json")) {
            cb->method = NGX_HTTP_POSTBACK_POST_JSON;

        } else {
            return "method must be get, post_form or post_json";
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_postback_str_is(key, "param")) {
        /* rendered raw: the payload encodes them as the method wants */
        return ngx_http_postback_parse_pair(cf, &cb->params, value, '=',
                                            NGX_HTTP_POSTBACK_ESCAPE_NONE);
    }

    if (ngx_http_postback_str_is(key, "header")) {
        return ngx_http_postback_parse_pair(cf, &cb->headers, value, ':',
                                            NGX_HTTP_POSTBACK_ESCAPE_HEADER);
    }

    if (ngx_http_postback_str_is(key, "secret_header")) {
        rv = ngx_http_postback_parse_pair(cf, &cb->headers, value, ':',
                                          NGX_HTTP_POSTBACK_ESCAPE_HEADER);
        if (rv == NGX_CONF_OK) {
            pair = cb->headers.elts;
            pair[cb->headers.nelts - 1].secret = 1;
        }

        return rv;
    }

    if (ngx_http_postback_str_is(key, "body")) {
        cb->body = ngx_palloc(cf->pool, sizeof(ngx_http_postback_tpl_t));
        if (cb->body == NULL) {
            return NGX_CONF_ERROR;
        }

        return ngx_http_postback_tpl_compile(cf, cb->body, value,
                                             NGX_HTTP_POSTBACK_ESCAPE_JSON);
    }

    if (ngx_http_postback_str_is(key, "auth")) {
        return ngx_http_postback_parse_auth(cf, cb, value);
    }

    if (ngx_http_postback_str_is(key, "timeout")) {
        n = ngx_parse_time(value, 0);
        if (n == NGX_ERROR || n == 0) {
            return "invalid time";
        }

        cb->timeout = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_postback_str_is(key, "secret")) {
        cb->secret.data = ngx_pnalloc(cf->pool, PB_SIGN_KEY_MAX);
        if (cb->secret.data == NULL) {
            return NGX_CONF_ERROR;
        }

        n = pb_sign_secret((char *) value->data, value->len,
                           cb->secret.data);
        if (n < 0) {
            return "secret must be whsec_ and the key in base64";
        }

        cb->secret.len = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_postback_str_is(key, "ca_file")) {
        cb->ca_file = *value;

        if (ngx_conf_full_name(cf->cycle, &cb->ca_file, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (ngx_file_info(cb->ca_file.data, &fi) == NGX_FILE_ERROR) {
            return "ca_file cannot be read";
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_postback_str_is(key, "proxy")) {
        return ngx_http_postback_parse_proxy(cf, cb, value);
    }

    if (ngx_http_postback_str_is(key, "attempts")) {
        n = ngx_atoi(value->data, value->len);
        if (n == NGX_ERROR || n == 0 || n > 100) {
            return "attempts must be 1 to 100";
        }

        cb->attempts = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_postback_str_is(key, "retry")) {
        return ngx_http_postback_parse_retry(cb, value);
    }

    if (ngx_http_postback_str_is(key, "disable_after")) {
        /* a bare number counts deliveries, as it did before times */
        n = ngx_atoi(value->data, value->len);
        if (n != NGX_ERROR) {
            cb->disable_after = n;
            cb->disable_after_time = 0;
            return NGX_CONF_OK;
        }

        cb->disable_after = 0;

        return ngx_http_postback_parse_window(value,
                                              &cb->disable_after_time);
    }

    if (ngx_http_postback_str_is(key, "disable_on_error")) {
        return ngx_http_postback_parse_window(value, &cb->disable_on_error);
    }

    if (ngx_http_postback_str_is(key, "max_conns")) {
        n = ngx_atoi(value->data, value->len);
        if (n == NGX_ERROR || n == 0 || n > 65535) {
            return "max_conns must be 1 to 65535";
        }

        cb->max_conns = n;
        return NGX_CONF_OK;
    }

    return "unknown key";
}


/*
 * "if=$a=1" is text, never empty nor "0": always true.  The message shows
 * the map that compares: "=" and "==" match the value, "~" and "~*" a
 * regex, and "!" before them turns the answer over.
 */

static char *
ngx_http_postback_if_comparison(ngx_conf_t *cf, ngx_str_t *value)
{
    u_char      *op, *p, *last;
    ngx_str_t    subject, regex, pattern;
    ngx_uint_t   negated;

    last = value->data + value->len;

    for (op = value->data; *op != '=' && *op != '~'; op++) {
        /* void */
    }

    subject.data = value->data;
    subject.len = op - value->data;

    negated = (subject.len && op[-1] == '!');
    subject.len -= negated;

    p = op + 1;

    if (p < last && *p == (*op == '~' ? '*' : '=')) {
        p++;
    }

    /* a map's regex is its "~" or "~*" before the pattern */
    regex.data = op;
    regex.len = (*op == '~') ? (size_t) (p - op) : 0;

    pattern.data = p;
    pattern.len = last - p;

    if (regex.len + pattern.len == 0) {
        ngx_str_set(&pattern, "\"\"");
    }

    return ngx_http_postback_message(cf,
                                     "if= skips the callback when its value "
                                     "is empty or \"0\", and this one never "
                                     "is; to compare, use map: map %V "
                                     "$wanted { %V%V %ui; default %ui; } "
                                     "and if=$wanted",
                                     &subject, &regex, &pattern, 1 - negated,
                                     negated);
}


static char *
ngx_http_postback_parse_url(ngx_conf_t *cf, ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *url)
{
    char       *rv;
    u_char     *p, *host, *last, *at;
    size_t      scheme;
    ngx_str_t   target, userinfo;

    if (url->len > 7 && ngx_strncasecmp(url->data, (u_char *) "http://", 7)
                        == 0)
    {
        scheme = 7;

    } else if (url->len > 8
               && ngx_strncasecmp(url->data, (u_char *) "https://", 8) == 0)
    {
        scheme = 8;

    } else {
        return "url must start with http:// or https://";
    }

    host = url->data + scheme;
    last = url->data + url->len;

    for (p = host; p < last && *p != '/' && *p != '?'; p++) {
        if (*p == '$') {
            return "variables are not allowed in the url's host and port";
        }
    }

    at = ngx_strlchr(host, p, '@');
    if (at) {
        /* user info becomes basic auth, so it is never stored or shown */
        if (ngx_http_postback_unescape(cf, host, at, &userinfo) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        host = at + 1;

        if (cb->authorization.len == 0
            && ngx_http_postback_basic_auth(cf, cb, &userinfo) != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (p == host) {
        return "url has no host";
    }

    rv = ngx_http_postback_check_port(cf, "url", host, p, NULL);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    cb->origin.len = scheme + (p - host);
    cb->origin.data = ngx_pnalloc(cf->pool, cb->origin.len);
    if (cb->origin.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ngx_cpymem(cb->origin.data, url->data, scheme), host,
               p - host);

    if (p == last) {
        ngx_str_set(&target, "/");

    } else {
        target.data = p;
        target.len = last - p;
    }

    return ngx_http_postback_tpl_compile(cf, &cb->target, &target,
                                         NGX_HTTP_POSTBACK_ESCAPE_URI);
}


/*
 * proxy=http://[user:password@]host:port, an HTTP forward proxy.  The
 * credentials are kept apart for curl, so that the proxy as shown never
 * holds them.
 */

static char *
ngx_http_postback_parse_proxy(ngx_conf_t *cf, ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *value)
{
    char        *rv;
    u_char      *p, *host, *last, *at, *colon;
    ngx_uint_t   port;

    if (value->len <= sizeof("http://") - 1
        || ngx_strncasecmp(value->data, (u_char *) "http://",
                           sizeof("http://") - 1)
           != 0)
    {
        return "proxy must be http://host:port (an HTTP proxy)";
    }

    host = value->data + sizeof("http://") - 1;
    last = value->data + value->len;

    if (last[-1] == '/') {
        last--;
    }

    for (p = host; p < last; p++) {
        if (*p == '/' || *p == '?' || *p == '#') {
            return "proxy must be http://host:port, with no path";
        }
    }

    at = ngx_strlchr(host, last, '@');
    if (at) {
        colon = ngx_strlchr(host, at, ':');

        if (ngx_http_postback_unescape(cf, host, colon ? colon : at,
                                       &cb->proxy_user)
            != NGX_OK
            || (colon && ngx_http_postback_unescape(cf, colon + 1, at,
                                                    &cb->proxy_password)
                         != NGX_OK))
        {
            return NGX_CONF_ERROR;
        }

        host = at + 1;
    }

    if (host == last) {
        return "proxy has no host";
    }

    if (ngx_strlchr(host, last, '$')) {
        return "variables are not allowed in the proxy's host and port";
    }

    rv = ngx_http_postback_check_port(cf, "proxy", host, last, &port);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (port == 0) {
        /* curl's default, 1080, is no HTTP proxy's */
        return "proxy has no port: write proxy=http://host:port";
    }

    cb->proxy.len = sizeof("http://") - 1 + (last - host);
    cb->proxy.data = ngx_pnalloc(cf->pool, cb->proxy.len + 1);
    if (cb->proxy.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(cb->proxy.data, "http://", sizeof("http://") - 1);
    p = ngx_cpymem(p, host, last - host);
    *p = '\0';

    return NGX_CONF_OK;
}


/* user info: percent-encoded in a url (RFC 3986), plain where it is used */

static ngx_int_t
ngx_http_postback_unescape(ngx_conf_t *cf, u_char *start, u_char *end,
    ngx_str_t *out)
{
    u_char  *p;

    out->data = ngx_pnalloc(cf->pool, end - start + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = out->data;
    ngx_unescape_uri(&p, &start, end - start, 0);
    *p = '\0';
    out->len = p - out->data;

    return NGX_OK;
}


/*
 * The port of "host:port" or "[v6]:port" of the url or the proxy, when
 * given: 1 to 65535; into *port when asked, 0 when not given.
 */

static char *
ngx_http_postback_check_port(ngx_conf_t *cf, const char *what, u_char *host,
    u_char *last, ngx_uint_t *port)
{
    u_char     *colon;
    ngx_int_t   n;
    ngx_str_t   digits;

    if (*host == '[') {
        colon = ngx_strlchr(host, last, ']');
        colon = colon ? ngx_strlchr(colon, last, ':') : NULL;

    } else {
        colon = ngx_strlchr(host, last, ':');
    }

    n = 0;

    if (colon) {
        if (colon == host) {
            return ngx_http_postback_message(cf, "%s has no host", what);
        }

        digits.data = colon + 1;
        digits.len = last - digits.data;

        n = ngx_atoi(digits.data, digits.len);
        if (n == NGX_ERROR || n == 0 || n > 65535) {
            return ngx_http_postback_message(cf, "the %s's port \"%V\" is "
                                             "not a number from 1 to 65535",
                                             what, &digits);
        }
    }

    if (port) {
        *port = n;
    }

    return NGX_CONF_OK;
}


/* a time with its unit, or off (0) */

static char *
ngx_http_postback_parse_window(ngx_str_t *value, ngx_msec_t *ms)
{
    ngx_int_t  n;

    if (ngx_http_postback_str_is(value, "off")) {
        *ms = 0;
        return NGX_CONF_OK;
    }

    n = ngx_parse_time(value, 0);
    if (n == NGX_ERROR || n == 0
        || n > NGX_HTTP_POSTBACK_RETRY_LONGEST)
    {
        return "must be a time up to 30d, or off";
    }

    *ms = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_postback_parse_retry(ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *value)
{
    u_char     *p, *last, *start;
    ngx_int_t   ms;
    ngx_str_t   s;

    cb->nretry = 0;
    last = value->data + value->len;

    for (start = value->data; start <= last; start = p + 1) {
        p = ngx_strlchr(start, last, ',');
        if (p == NULL) {
            p = last;
        }

        if (cb->nretry == NGX_HTTP_POSTBACK_RETRY_MAX) {
            return "too many delays in retry=";
        }

        s.data = start;
        s.len = p - start;

        ms = ngx_parse_time(&s, 0);
        if (ms == NGX_ERROR) {
            return "invalid time in retry=";
        }

        /* a due time must stay a due time in ms since the epoch */
        if (ms > NGX_HTTP_POSTBACK_RETRY_LONGEST) {
            return "a delay in retry= is 30d at most";
        }

        cb->retry[cb->nretry++] = ms;
    }

    return NGX_CONF_OK;
}


/* Authorization: Basic, from "user:password" */

static ngx_int_t
ngx_http_postback_basic_auth(ngx_conf_t *cf, ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *cred)
{
    cb->authorization.len = sizeof("Basic ") - 1 + pb_base64_len(cred->len);
    cb->authorization.data = ngx_pnalloc(cf->pool, cb->authorization.len);
    if (cb->authorization.data == NULL) {
        return NGX_ERROR;
    }

    pb_base64(ngx_cpymem(cb->authorization.data, "Basic ",
                         sizeof("Basic ") - 1),
              cred->data, cred->len);

    return NGX_OK;
}


static char *
ngx_http_postback_parse_auth(ngx_conf_t *cf, ngx_http_postback_cb_conf_t *cb,
    ngx_str_t *value)
{
    u_char     *p;
    ngx_str_t   cred;

    if (value->len > 6 && ngx_strncmp(value->data, "basic:", 6) == 0) {
        cred.data = value->data + 6;
        cred.len = value->len - 6;

        if (ngx_strlchr(cred.data, cred.data + cred.len, ':') == NULL) {
            return "auth=basic: needs user:password";
        }

        if (ngx_http_postback_basic_auth(cf, cb, &cred) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (value->len > 7 && ngx_strncmp(value->data, "bearer:", 7) == 0) {
        cb->authorization.len = sizeof("Bearer ") - 1 + value->len - 7;
        cb->authorization.data = ngx_pnalloc(cf->pool, cb->authorization.len);
        if (cb->authorization.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(cb->authorization.data, "Bearer ",
                       sizeof("Bearer ") - 1);
        ngx_memcpy(p, value->data + 7, value->len - 7);

        if (pb_header_sanitize(cb->authorization.data,
                               cb->authorization.len))
        {
            return "control characters in the token";
        }

        return NGX_CONF_OK;
    }

    return "auth must be basic:USER:PASSWORD or bearer:TOKEN";
}


static char *
ngx_http_postback_parse_pair(ngx_conf_t *cf, ngx_array_t *pairs,
    ngx_str_t *value, u_char sep, ngx_uint_t escape)
{
    u_char                    *p, *last;
    ngx_str_t                  val;
    ngx_http_postback_pair_t  *pair;

    last = value->data + value->len;

    p = ngx_strlchr(value->data, last, sep);
    if (p == NULL || p == value->data) {
        return (sep == ':') ? "expected header=Name: value"
                            : "expected param=name=value";
    }

    pair = ngx_array_push(pairs);
    if (pair == NULL) {
        return NGX_CONF_ERROR;
    }

    pair->name.data = value->data;
    pair->name.len = p - value->data;
    pair->secret = 0;

    if (sep == ':') {
        for (p = pair->name.data; p < pair->name.data + pair->name.len; p++) {
            if (*p <= ' ' || *p >= 0x7f || ngx_strchr("()<>@,;:\\\"/[]?={}",
                                                      *p))
            {
                return "invalid header name";
            }
        }

        p = pair->name.data + pair->name.len + 1;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

    } else {
        p++;
    }

    val.data = p;
    val.len = last - p;

    return ngx_http_postback_tpl_compile(cf, &pair->value, &val, escape);
}


static char *
ngx_http_postback_tpl_compile(ngx_conf_t *cf, ngx_http_postback_tpl_t *tpl,
    ngx_str_t *src, ngx_uint_t escape)
{
    int                             i, n;
    ngx_str_t                       name;
    const char                     *err;
    pb_tpl_part_t                   parts[NGX_HTTP_POSTBACK_TPL_MAX_PARTS];
    ngx_http_postback_tpl_part_t   *part;
    ngx_http_postback_main_conf_t  *pmcf;

    n = pb_tpl_parse((char *) src->data, src->len, parts,
                     NGX_HTTP_POSTBACK_TPL_MAX_PARTS, &err);
    if (n < 0) {
        return (char *) err;
    }

    if (ngx_array_init(&tpl->parts, cf->pool, n ? n : 1,
                       sizeof(ngx_http_postback_tpl_part_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    tpl->escape = escape;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);

    for (i = 0; i < n; i++) {
        part = ngx_array_push(&tpl->parts);
        if (part == NULL) {
            return NGX_CONF_ERROR;
        }

        part->raw_json = 0;

        if (!parts[i].is_var) {
            part->index = NGX_ERROR;
            part->literal.data = (u_char *) parts[i].s;
            part->literal.len = parts[i].len;
            continue;
        }

        ngx_str_null(&part->literal);

        name.data = (u_char *) parts[i].s;
        name.len = parts[i].len;

        if (name.len == ngx_http_postback_data_name.len
            && ngx_strncmp(name.data, ngx_http_postback_data_name.data,
                           name.len) == 0)
        {
            /* the document is JSON already: in a JSON body, keep it so */
            part->raw_json = 1;
            part->index = pmcf->data_index;
            continue;
        }

        part->index = ngx_http_get_variable_index(cf, &name);
        if (part->index == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_postback_tpl_render(ngx_http_request_t *r,
    ngx_http_postback_tpl_t *tpl, ngx_str_t *out, ngx_uint_t *sanitized)
{
    u_char                        *p;
    size_t                         len;
    ngx_uint_t                     i;
    ngx_http_variable_value_t    **vv;
    ngx_http_postback_tpl_part_t  *part;

    part = tpl->parts.elts;

    vv = ngx_palloc(r->pool, (tpl->parts.nelts ? tpl->parts.nelts : 1)
                             * sizeof(ngx_http_variable_value_t *));
    if (vv == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (i = 0; i < tpl->parts.nelts; i++) {
        if (part[i].index == NGX_ERROR) {
            len += part[i].literal.len;
            continue;
        }

        vv[i] = ngx_http_get_indexed_variable(r, part[i].index);

        if (vv[i] == NULL || vv[i]->not_found) {
            vv[i] = NULL;
            continue;
        }

        if (part[i].raw_json && tpl->escape == NGX_HTTP_POSTBACK_ESCAPE_JSON) {
            len += vv[i]->len;
            continue;
        }

        switch (tpl->escape) {

        case NGX_HTTP_POSTBACK_ESCAPE_URI:
            len += pb_escape_uri_len(vv[i]->data, vv[i]->len);
            break;

        case NGX_HTTP_POSTBACK_ESCAPE_JSON:
            len += pb_escape_json_len(vv[i]->data, vv[i]->len);
            break;

        default: /* HEADER, NONE */
            len += vv[i]->len;
        }
    }

    out->data = ngx_pnalloc(r->pool, len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = out->data;

    for (i = 0; i < tpl->parts.nelts; i++) {
        if (part[i].index == NGX_ERROR) {
            p = ngx_cpymem(p, part[i].literal.data, part[i].literal.len);
            continue;
        }

        if (vv[i] == NULL) {
            continue;
        }

        if (part[i].raw_json && tpl->escape == NGX_HTTP_POSTBACK_ESCAPE_JSON) {
            p = ngx_cpymem(p, vv[i]->data, vv[i]->len);
            continue;
        }

        switch (tpl->escape) {

        case NGX_HTTP_POSTBACK_ESCAPE_URI:
            p = pb_escape_uri(p, vv[i]->data, vv[i]->len);
            break;

        case NGX_HTTP_POSTBACK_ESCAPE_JSON:
            p = pb_escape_json(p, vv[i]->data, vv[i]->len);
            break;

        default: /* HEADER, NONE */
            p = ngx_cpymem(p, vv[i]->data, vv[i]->len);
        }
    }

    out->len = p - out->data;

    if (tpl->escape == NGX_HTTP_POSTBACK_ESCAPE_HEADER) {
        *sanitized += pb_header_sanitize(out->data, out->len);
    }

    return NGX_OK;
}


ngx_http_postback_cb_conf_t *
ngx_http_postback_find_callback(ngx_http_postback_main_conf_t *pmcf,
    ngx_str_t *name)
{
    ngx_uint_t                      i;
    ngx_http_postback_cb_conf_t  **cbp;

    cbp = pmcf->callbacks.elts;

    for (i = 0; i < pmcf->callbacks.nelts; i++) {
        if (cbp[i]->name.len == name->len
            && ngx_strncmp(cbp[i]->name.data, name->data, name->len) == 0)
        {
            return cbp[i];
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_postback_set_variable(ngx_http_variable_value_t *v, ngx_int_t rc,
    ngx_str_t *value)
{
    if (rc != NGX_OK) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = value->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_field_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    rc = ngx_http_postback_field_value(r, data, &value);

    return ngx_http_postback_set_variable(v, rc, &value);
}


static ngx_int_t
ngx_http_postback_event_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    rc = ngx_http_postback_event_value(r, &value);

    return ngx_http_postback_set_variable(v, rc, &value);
}


static ngx_int_t
ngx_http_postback_data_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    rc = ngx_http_postback_data_value(r, &value);

    return ngx_http_postback_set_variable(v, rc, &value);
}


/* the configuration is nginx's now: the zone follows it */

static ngx_int_t
ngx_http_postback_init_module(ngx_cycle_t *cycle)
{
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_postback_module);

    if (pmcf == NULL || pmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    return ngx_http_postback_zone_bind(pmcf->shm_zone);
}


static ngx_int_t
ngx_http_postback_init_process(ngx_cycle_t *cycle)
{
    ngx_http_postback_main_conf_t  *pmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    pmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_postback_module);
    if (pmcf == NULL || pmcf->callbacks.nelts == 0) {
        return NGX_OK;
    }

    if (ngx_http_postback_spool_init(cycle, pmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_postback_deliver_init(cycle, pmcf);
}


/*
 * nginx's thread pool is gone: the spool writes at once from now, as the
 * transfers cut short are recorded, then writes what it holds.
 */

static void
ngx_http_postback_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_postback_spool_leave();
    ngx_http_postback_deliver_exit(cycle);
    ngx_http_postback_spool_exit(cycle);
}


static void
ngx_http_postback_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_postback_spool_exit_master(cycle);
}


/*
 * A timer of the module's.  c is no connection, but Debian's nginx, built
 * with debugging, reads one from a timer's data for its debug log.
 */

void
ngx_http_postback_timer_init(ngx_event_t *ev, ngx_event_handler_pt handler,
    ngx_connection_t *c, ngx_log_t *log, ngx_flag_t cancelable)
{
    c->fd = (ngx_socket_t) -1;

    ev->handler = handler;
    ev->data = c;
    ev->log = log;
    ev->cancelable = cancelable;
}
