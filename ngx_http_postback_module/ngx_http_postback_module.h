
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * Types shared by the module's files.  Each file owns one concern:
 * module (directives, variables), filter (capture), zone (shared ledger),
 * deliver (libcurl on the event loop), status (the status location).
 */


#ifndef _NGX_HTTP_POSTBACK_MODULE_H_INCLUDED_
#define _NGX_HTTP_POSTBACK_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "pb_jsonpath.h"


#define NGX_HTTP_POSTBACK_GET        0
#define NGX_HTTP_POSTBACK_POST_FORM  1
#define NGX_HTTP_POSTBACK_POST_JSON  2

/* where a template's variable values land, and so how they are escaped */
#define NGX_HTTP_POSTBACK_ESCAPE_URI     0
#define NGX_HTTP_POSTBACK_ESCAPE_JSON    1
#define NGX_HTTP_POSTBACK_ESCAPE_HEADER  2     /* raw, control bytes out */
#define NGX_HTTP_POSTBACK_ESCAPE_NONE    3

#define NGX_HTTP_POSTBACK_NAME_MAX   64
#define NGX_HTTP_POSTBACK_ID_LEN     28     /* "msg_" + 24 hex digits */
#define NGX_HTTP_POSTBACK_ERROR_MAX  128
#define NGX_HTTP_POSTBACK_RESP_MAX   256    /* response bytes kept */
#define NGX_HTTP_POSTBACK_TIME_LEN   24     /* 2026-11-22T18:34:44.123Z */
#define NGX_HTTP_POSTBACK_RETRY_MAX  16     /* entries of retry= */


/* capture counters in the zone; the SKIP ones say why there was no event */
typedef enum {
    NGX_HTTP_POSTBACK_EXAMINED = 0,
    NGX_HTTP_POSTBACK_EVENTS,
    NGX_HTTP_POSTBACK_SANITIZED,
    NGX_HTTP_POSTBACK_SKIP_SUBREQUEST,
    NGX_HTTP_POSTBACK_SKIP_HEAD,
    NGX_HTTP_POSTBACK_SKIP_NO_BODY,
    NGX_HTTP_POSTBACK_SKIP_NOT_JSON,
    NGX_HTTP_POSTBACK_SKIP_ENCODING,
    NGX_HTTP_POSTBACK_SKIP_TOO_LARGE,
    NGX_HTTP_POSTBACK_SKIP_TRUNCATED,
    NGX_HTTP_POSTBACK_SKIP_MALFORMED,
    NGX_HTTP_POSTBACK_SKIP_NO_EVENT,
    NGX_HTTP_POSTBACK_SKIP_NO_MATCH,
    NGX_HTTP_POSTBACK_COUNTERS
} ngx_http_postback_counter_e;


typedef struct {
    ngx_str_t                     literal;
    ngx_int_t                     index;    /* variable, or NGX_ERROR */
    ngx_flag_t                    raw_json; /* $postback_data in JSON */
} ngx_http_postback_tpl_part_t;


typedef struct {
    ngx_array_t                   parts;    /* ngx_http_postback_tpl_part_t */
    ngx_uint_t                    escape;
} ngx_http_postback_tpl_t;


typedef struct {
    ngx_str_t                     name;
    ngx_http_postback_tpl_t       value;
} ngx_http_postback_pair_t;


typedef struct {
    ngx_str_t                     name;
    ngx_uint_t                    nsteps;   /* JSONPath source ... */
    pb_path_step_t               *steps;
    ngx_http_complex_value_t     *value;    /* ... or a complex value */
} ngx_http_postback_field_t;


typedef struct ngx_http_postback_cb_shm_s  ngx_http_postback_cb_shm_t;


typedef struct {
    ngx_str_t                     name;
    ngx_str_t                     origin;   /* scheme://host[:port] */
    ngx_http_postback_tpl_t       target;   /* path and query */
    ngx_array_t                  *events;   /* ngx_str_t; NULL: "*" */
    ngx_http_complex_value_t     *filter;   /* if= */
    ngx_uint_t                    method;
    ngx_array_t                   params;   /* ngx_http_postback_pair_t */
    ngx_array_t                   headers;  /* ngx_http_postback_pair_t */
    ngx_http_postback_tpl_t      *body;     /* NULL: the default body */
    ngx_str_t                     authorization;    /* header value */
    ngx_str_t                     ca_file;  /* NUL-terminated, or empty */
    ngx_str_t                     secret;   /* signing key, or empty */
    ngx_msec_t                    timeout;
    ngx_uint_t                    max_conns;
    ngx_uint_t                    attempts;
    ngx_uint_t                    disable_after;    /* 0: never */
    ngx_uint_t                    nretry;
    uint64_t                      retry[NGX_HTTP_POSTBACK_RETRY_MAX];

    ngx_http_postback_cb_shm_t   *shm;      /* set by the zone's init */

    ngx_uint_t                    active;   /* this worker's transfers */
} ngx_http_postback_callback_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;
    ngx_str_t                     spool;    /* journal path, or empty */
    ngx_str_t                     spool_new;    /* its rewrite, beside it */
    ngx_cycle_t                  *cycle;    /* the one configured */
    ngx_array_t                   fields;   /* ngx_http_postback_field_t */
    ngx_http_complex_value_t     *event;
    ngx_array_t                   callbacks;
                                  /* ngx_http_postback_callback_t * */
    ngx_int_t                     data_index;   /* $postback_data */
} ngx_http_postback_main_conf_t;


typedef struct {
    ngx_flag_t                    enable;
    size_t                        buffer_size;
    ngx_array_t                  *callbacks;
                                  /* ngx_http_postback_callback_t * */
} ngx_http_postback_loc_conf_t;


/* what a finished capture hands to the zone for one callback */
typedef struct {
    ngx_str_t                     event;
    ngx_uint_t                    method;
    ngx_str_t                     url;
    ngx_str_t                     headers;  /* "Name: value\n" lines */
    ngx_str_t                     body;
    uint64_t                      created;  /* ms since the epoch */
} ngx_http_postback_request_t;


/* one finished attempt */
typedef struct {
    uint64_t                      start;    /* ms since the epoch */
    ngx_msec_t                    duration;
    ngx_int_t                     status;   /* HTTP status, 0: none */
    uint64_t                      retry_after;      /* ms, 0: none */
    ngx_str_t                     error;
    ngx_str_t                     response; /* first bytes */
} ngx_http_postback_result_t;


typedef struct ngx_http_postback_delivery_s  ngx_http_postback_delivery_t;


/*
 * A delivery a worker took, with the callback that sends it.  The record
 * is only trusted while the zone still has it under this claim: a claim
 * whose lease ran out may have been taken over, and the record finished
 * and freed, by another worker.
 */
typedef struct {
    ngx_http_postback_callback_t *cb;
    ngx_http_postback_delivery_t *d;
    ngx_rbtree_key_t              key;      /* the record's number */
    ngx_uint_t                    claim;    /* the record's claim count */
} ngx_http_postback_claim_t;


static ngx_inline uint64_t
ngx_http_postback_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


extern ngx_module_t  ngx_http_postback_module;


/* module */
ngx_int_t ngx_http_postback_tpl_render(ngx_http_request_t *r,
    ngx_http_postback_tpl_t *tpl, ngx_str_t *out, ngx_uint_t *sanitized);
ngx_http_postback_callback_t *ngx_http_postback_find_callback(
    ngx_http_postback_main_conf_t *pmcf, ngx_str_t *name);

/* filter */
ngx_int_t ngx_http_postback_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_postback_field_value(ngx_http_request_t *r,
    ngx_uint_t index, ngx_str_t *value);
ngx_int_t ngx_http_postback_data_value(ngx_http_request_t *r,
    ngx_str_t *value);

/* zone */
ngx_int_t ngx_http_postback_zone_init(ngx_shm_zone_t *shm_zone, void *data);
void ngx_http_postback_zone_count(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_counter_e counter, ngx_uint_t n);
void ngx_http_postback_zone_new_id(ngx_shm_zone_t *shm_zone, u_char *id);
ngx_int_t ngx_http_postback_zone_add(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_callback_t *cb, u_char *id,
    ngx_http_postback_request_t *req, ngx_http_postback_claim_t *claim);
ngx_uint_t ngx_http_postback_zone_claim(ngx_shm_zone_t *shm_zone,
    ngx_array_t *callbacks, ngx_http_postback_claim_t *out, ngx_uint_t max,
    ngx_flag_t *backlog, uint64_t *next);
void ngx_http_postback_zone_request(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim, ngx_http_postback_request_t *req,
    u_char *id);
void ngx_http_postback_zone_release(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim);
uint64_t ngx_http_postback_zone_finish(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim, ngx_http_postback_result_t *res,
    ngx_log_t *log);
json_t *ngx_http_postback_zone_status(ngx_shm_zone_t *shm_zone,
    ngx_uint_t limit);
ngx_int_t ngx_http_postback_zone_restore(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_callback_t *cb, u_char *id,
    ngx_http_postback_request_t *req, size_t size);
u_char *ngx_http_postback_time_text(u_char *buf, uint64_t ms);

/* deliver */
ngx_int_t ngx_http_postback_deliver_init(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf);
void ngx_http_postback_deliver_exit(ngx_cycle_t *cycle);
void ngx_http_postback_deliver(ngx_http_postback_claim_t *claim,
    ngx_log_t *log);

/* spool */
ngx_int_t ngx_http_postback_spool_replay(ngx_shm_zone_t *shm_zone);
ngx_int_t ngx_http_postback_spool_open(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf);
void ngx_http_postback_spool_close(void);
size_t ngx_http_postback_spool_created(ngx_uint_t generation,
    ngx_str_t *callback, u_char *id, ngx_http_postback_request_t *req);
size_t ngx_http_postback_spool_finished(ngx_uint_t generation, u_char *id);
ngx_fd_t ngx_http_postback_spool_rewrite(void);
size_t ngx_http_postback_spool_rewrite_add(ngx_fd_t fd, ngx_str_t *callback,
    u_char *id, ngx_http_postback_request_t *req);
ngx_int_t ngx_http_postback_spool_rewrite_commit(ngx_fd_t fd,
    ngx_uint_t generation, ngx_flag_t ok);

/* status */
char *ngx_http_postback_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_POSTBACK_MODULE_H_INCLUDED_ */
