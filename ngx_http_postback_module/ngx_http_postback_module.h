
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * Types shared by the module's files.  Each file owns one concern:
 * module (directives, variables), filter (capture), zone (the shared
 * ledger), deliver (a delivery's life: claim, attempt, record), http (the
 * nginx engine), curl (the libcurl engine), spool (the journal and all
 * its I/O), status (the status location), page (the page for people).
 */


#ifndef _NGX_HTTP_POSTBACK_MODULE_H_INCLUDED_
#define _NGX_HTTP_POSTBACK_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "pb_jscan.h"
#include "pb_jsonpath.h"
#include "pb_minutes.h"
#include "pb_policy.h"


#define NGX_HTTP_POSTBACK_GET        0
#define NGX_HTTP_POSTBACK_POST_FORM  1
#define NGX_HTTP_POSTBACK_POST_JSON  2

/* where a template's variable values land, and so how they are escaped */
#define NGX_HTTP_POSTBACK_ESCAPE_URI     0
#define NGX_HTTP_POSTBACK_ESCAPE_JSON    1
#define NGX_HTTP_POSTBACK_ESCAPE_HEADER  2     /* raw, control bytes out */
#define NGX_HTTP_POSTBACK_ESCAPE_NONE    3

#define NGX_HTTP_POSTBACK_NAME_MAX   64
#define NGX_HTTP_POSTBACK_KEY_MAX    1024   /* postback_key's value */
#define NGX_HTTP_POSTBACK_ID_LEN     28     /* "msg_" + 24 hex digits */
#define NGX_HTTP_POSTBACK_ERROR_MAX  128
#define NGX_HTTP_POSTBACK_RESP_MAX   256    /* response bytes kept */
#define NGX_HTTP_POSTBACK_TIME_LEN   24     /* 2026-11-22T18:34:44.123Z */
#define NGX_HTTP_POSTBACK_RETRY_MAX  16     /* entries of retry= */
#define NGX_HTTP_POSTBACK_RETRY_AFTER_MAX  86400    /* a receiver's
                                                       Retry-After, s */

#define NGX_HTTP_POSTBACK_USER_AGENT  "ngx_http_postback_module"


/* capture counters in the zone; the SKIP ones say why there was no event */
typedef enum {
    NGX_HTTP_POSTBACK_EXAMINED = 0,
    NGX_HTTP_POSTBACK_EVENTS,
    NGX_HTTP_POSTBACK_SANITIZED,
    NGX_HTTP_POSTBACK_TIMEOUT_FIRED,
    NGX_HTTP_POSTBACK_TIMEOUT_CANCELLED,
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
    NGX_HTTP_POSTBACK_SKIP_NOT_ACCEPTED,
    NGX_HTTP_POSTBACK_SKIP_DUPLICATE,
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
    ngx_flag_t                    secret;   /* secret_header=: never shown */
} ngx_http_postback_pair_t;


/*
 * A secret_header= line is kept in the zone with this byte before it: it
 * is sent without it and shown without its value.  Header names cannot
 * hold it and rendered values have their control bytes replaced.
 */
#define NGX_HTTP_POSTBACK_SECRET_MARK  '\x01'


typedef struct {
    ngx_str_t                     name;
    ngx_uint_t                    nsteps;   /* JSONPath source ... */
    pb_path_step_t               *steps;
    ngx_http_complex_value_t     *value;    /* ... or a complex value */
} ngx_http_postback_field_t;


/* a callback's state and counters, in the zone: see below */
typedef struct ngx_http_postback_cb_state_s  ngx_http_postback_cb_state_t;

/* the key table, in the zone: its layout is keys.c's alone */
typedef struct ngx_http_postback_keys_s  ngx_http_postback_keys_t;


/* who sends a callback's deliveries */
#define NGX_HTTP_POSTBACK_ENGINE_CURL   0
#define NGX_HTTP_POSTBACK_ENGINE_NGINX  1


/* a callback as postback_callback configures it */
typedef struct {
    ngx_str_t                     name;
    ngx_str_t                     origin;   /* scheme://host[:port] */
    ngx_uint_t                    engine;   /* NGX_HTTP_POSTBACK_ENGINE_* */
    ngx_http_core_loc_conf_t     *clcf;     /* where configured: its
                                               resolver */
    ngx_str_t                     host;     /* url's, NUL-terminated: to
                                               resolve, for SNI and the
                                               certificate's check */
    in_port_t                     port;
    ngx_addr_t                   *peer;     /* nginx engine: a literal
                                               address; NULL: resolved */
    ngx_resolver_t               *resolver;
    ngx_msec_t                    resolver_timeout;
#if (NGX_HTTP_SSL)
    ngx_ssl_t                    *ssl;      /* nginx engine, https */
    ngx_ssl_session_t            *ssl_session;  /* the worker's last */
#endif
    ngx_http_postback_tpl_t       target;   /* path and query */
    uint32_t                      url_digest;   /* of url= as written */
    ngx_array_t                  *events;   /* ngx_str_t; NULL: "*" */
    ngx_http_complex_value_t     *filter;   /* if= */
    ngx_uint_t                    method;
    ngx_array_t                   params;   /* ngx_http_postback_pair_t */
    ngx_array_t                   headers;  /* ngx_http_postback_pair_t */
    ngx_http_postback_tpl_t      *body;     /* NULL: the default body */
    ngx_str_t                     authorization;    /* header value */
    ngx_str_t                     ca_file;  /* NUL-terminated, or empty */
    ngx_str_t                     proxy;    /* http://host:port, NUL-
                                               terminated, or empty: curl
                                               sends through it */
    ngx_str_t                     proxy_user;       /* decoded, NUL-
                                                       terminated; data
                                                       NULL: none */
    ngx_str_t                     proxy_password;
    ngx_str_t                     secret;   /* signing key, or empty */
    ngx_msec_t                    timeout;
    ngx_uint_t                    max_conns;
    ngx_uint_t                    attempts;
    ngx_uint_t                    disable_after;    /* failed deliveries
                                                       in a row, 0: none */
    ngx_msec_t                    disable_after_time;   /* failing for that
                                                           long, 0: never */
    ngx_msec_t                    disable_on_error; /* nothing but errors
                                                       saying the url is
                                                       wrong, 0: never */
    ngx_uint_t                    nretry;
    uint64_t                      retry[NGX_HTTP_POSTBACK_RETRY_MAX];

    ngx_http_postback_cb_state_t *state;    /* set by the zone's init */

    ngx_uint_t                    active;   /* this worker's transfers */
    ngx_uint_t                    unlogged; /* failed attempts since this
                                               worker's last summary */
    ngx_flag_t                    enabled_again;    /* by this url= edit */
} ngx_http_postback_cb_conf_t;


/* postback_timeout_event */
typedef struct {
    ngx_str_t                     name;
    ngx_msec_t                    after;
    ngx_array_t                  *from;     /* ngx_str_t */
} ngx_http_postback_timeout_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;
    ngx_str_t                     spool;    /* journal path, or empty */
    ngx_str_t                     spool_new;    /* its rewrite, beside it */
    size_t                        history;  /* finished deliveries kept in
                                               the journal, bytes */
#if (NGX_THREADS)
    ngx_thread_pool_t            *thread_pool;  /* the journal's I/O */
#endif
    ngx_cycle_t                  *cycle;    /* the one configured */
    ngx_uint_t                    generation;   /* the zone's, at init */
    ngx_array_t                   fields;   /* ngx_http_postback_field_t */
    pb_jscan_t                   *scan;     /* of the JSONPath fields, in
                                               their order, fresh: copied
                                               for each JSON body */
    size_t                        scan_size;
    ngx_http_complex_value_t     *event;
    ngx_http_complex_value_t     *key;      /* postback_key */
    ngx_array_t                  *timeouts; /* ngx_http_postback_timeout_t */
    ngx_array_t                   callbacks;
                                  /* ngx_http_postback_cb_conf_t * */
    ngx_int_t                     data_index;   /* $postback_data */
} ngx_http_postback_main_conf_t;


/* what a body is read as */
#define NGX_HTTP_POSTBACK_DOC_JSON  1
#define NGX_HTTP_POSTBACK_DOC_FORM  2


/* postback off | on | request */
#define NGX_HTTP_POSTBACK_CAPTURE_OFF       0
#define NGX_HTTP_POSTBACK_CAPTURE_RESPONSE  1
#define NGX_HTTP_POSTBACK_CAPTURE_REQUEST   2


/* postback_sample: the document of test sends */
typedef struct {
    ngx_str_t                     file;
    json_t                       *doc;
} ngx_http_postback_sample_t;


typedef struct {
    ngx_uint_t                    capture;
    size_t                        buffer_size;
    ngx_array_t                  *callbacks;
                                  /* ngx_http_postback_cb_conf_t * */
    ngx_http_postback_sample_t   *sample;
} ngx_http_postback_loc_conf_t;


/* what a capture makes for one callback: the request to send, and why */
typedef struct {
    ngx_str_t                     event;
    ngx_str_t                     key;      /* postback_key's, or empty */
    ngx_str_t                     fields;   /* pb_fields packed */
    ngx_uint_t                    method;
    ngx_str_t                     url;
    size_t                        params_at;    /* where the url's query of
                                                   param= values starts
                                                   (url.len: none), 0: not
                                                   known */
    ngx_str_t                     headers;  /* "Name: value\n" lines */
    ngx_str_t                     body;
    uint64_t                      created;  /* ms since the epoch */
    uint64_t                      armed;    /* a timeout event's: when its
                                               key last changed; else 0 */
    ngx_flag_t                    test;     /* a test send */
} ngx_http_postback_request_t;


/* one attempt: its outcome, as a transfer ends, and as the zone keeps it */
typedef struct {
    uint64_t                      start;    /* ms since the epoch */
    ngx_msec_t                    duration;
    ngx_int_t                     status;   /* HTTP status, 0: none */
    uint64_t                      retry_after;      /* ms, 0: none */
    ngx_flag_t                    manual;   /* asked for by the API */
    ngx_flag_t                    wrong_url;    /* the transport says the
                                                   url is wrong: no such
                                                   name, a certificate that
                                                   does not verify */
    ngx_str_t                     error;
    ngx_str_t                     response; /* first bytes */
} ngx_http_postback_result_t;


/* why a callback is disabled: pb_policy's reasons, or the status API */
#define NGX_HTTP_POSTBACK_ENABLED         PB_DISABLE_NONE
#define NGX_HTTP_POSTBACK_DISABLED_API    4
#define NGX_HTTP_POSTBACK_DISABLED_WHYS   5


/* why a delivery ended without its attempts saying so */
#define NGX_HTTP_POSTBACK_ENDED_ATTEMPTS  0
#define NGX_HTTP_POSTBACK_ENDED_REMOVED   1     /* its callback was */
#define NGX_HTTP_POSTBACK_ENDED_LOST      2     /* never on disk */


#define NGX_HTTP_POSTBACK_BUCKETS  16

extern const ngx_msec_t  ngx_http_postback_buckets[NGX_HTTP_POSTBACK_BUCKETS];


/* counts of durations up to each bucket's bound; the last one: above all */
typedef struct {
    uint64_t                      count[NGX_HTTP_POSTBACK_BUCKETS + 1];
    uint64_t                      sum;      /* ms */
} ngx_http_postback_histogram_t;


/*
 * The gauges (pending, paused, in_spool) follow the states of the
 * callback's deliveries and are changed with them, in one place.
 */
struct ngx_http_postback_cb_state_s {
    ngx_queue_t                   queue;
    ngx_uint_t                    generation;   /* last configured in */
    ngx_uint_t                    disabled;     /* and why */
    uint32_t                      url_digest;   /* of its url= then */
    ngx_flag_t                    unjournaled;  /* enabled by a url= edit,
                                                   not in the journal yet */
    uint64_t                      state_changed;    /* ms, 0: never */
    uint64_t                      records;      /* in the zone */
    uint64_t                      disables;     /* automatic ones */
    uint64_t                      events;
    uint64_t                      delivered;
    uint64_t                      failed;
    uint64_t                      pending;      /* due, sending, in_spool */
    uint64_t                      paused;
    uint64_t                      scheduled;    /* timeout events */
    uint64_t                      in_spool;     /* in the journal only */
    uint64_t                      dropped;
    uint64_t                      spooled;
    uint64_t                      attempts;
    uint64_t                      manual;       /* retries asked for */
    uint64_t                      outcomes[PB_OUTCOMES];
    ngx_http_postback_histogram_t attempt_duration;
    ngx_http_postback_histogram_t delivery_latency;  /* event to 2xx */
    pb_minutes_t                  last_hour;    /* attempts by minute */
    pb_health_t                   health;
    uint64_t                      last_attempt;
    ngx_int_t                     last_status;
    ngx_msec_t                    last_latency;
    size_t                        last_error_len;
    u_char                        last_error[NGX_HTTP_POSTBACK_ERROR_MAX];
    size_t                        name_len;
    u_char                        name[NGX_HTTP_POSTBACK_NAME_MAX];
};


/*
 * A delivery's states in the zone.  pending: due at its time; sending:
 * claimed by a worker until its lease ends; paused: its callback is
 * disabled; scheduled: a timeout event waiting for its time; delivered,
 * failed and cancelled (a timeout event whose key changed in time):
 * finished.  A delivery the zone had no room for is in the journal only,
 * counted in its callback's in_spool.
 */
#define NGX_HTTP_POSTBACK_PENDING    0
#define NGX_HTTP_POSTBACK_SENDING    1
#define NGX_HTTP_POSTBACK_DELIVERED  2
#define NGX_HTTP_POSTBACK_FAILED     3
#define NGX_HTTP_POSTBACK_PAUSED     4
#define NGX_HTTP_POSTBACK_SCHEDULED  5
#define NGX_HTTP_POSTBACK_CANCELLED  6
#define NGX_HTTP_POSTBACK_STATES     7

#define ngx_http_postback_finished(state)                                     \
    ((state) == NGX_HTTP_POSTBACK_DELIVERED                                   \
     || (state) == NGX_HTTP_POSTBACK_FAILED                                   \
     || (state) == NGX_HTTP_POSTBACK_CANCELLED)


/* a delivery's record in the zone: its layout is the zone's alone */
typedef struct ngx_http_postback_record_s  ngx_http_postback_record_t;


/* a delivery as the status shows it: a copy, in a request's pool */
typedef struct {
    u_char                        id[NGX_HTTP_POSTBACK_ID_LEN];
    ngx_str_t                     callback;
    ngx_flag_t                    removed;  /* its callback is no longer
                                               configured */
    ngx_uint_t                    state;
    ngx_uint_t                    ended;    /* NGX_HTTP_POSTBACK_ENDED_* */
    uint64_t                      due;      /* pending: next attempt */
    ngx_http_postback_request_t   req;      /* headers, body when asked */
    ngx_http_postback_result_t   *attempts;
    ngx_uint_t                    nattempts;
} ngx_http_postback_view_t;


/* which deliveries a status answer lists */
typedef struct {
    ngx_str_t                     callback;     /* empty: any */
    ngx_str_t                     event;        /* empty: any */
    ngx_int_t                     state;        /* -1: any */
    ngx_str_t                     text;         /* q=: in the id, event,
                                                   key or a field value */
    ngx_uint_t                    limit;
} ngx_http_postback_query_t;


/* what an attempt changed, for the worker to log and to journal */
typedef struct {
    uint64_t                      due;      /* next attempt, 0: none */
    ngx_uint_t                    decision; /* PB_POLICY_*; -1: the claim
                                               was lost */
    ngx_uint_t                    automatic;    /* scheduled attempts made */
    ngx_flag_t                    failing;  /* the receiver's first failure
                                               since it last answered 2xx */
    ngx_flag_t                    recovered;    /* its first 2xx since */
    uint64_t                      failing_since;
    ngx_uint_t                    disabled; /* just now, and why */
    uint64_t                      failures; /* deliveries failed in a row */
    uint64_t                      stamp;    /* then */
    uint64_t                      paused;   /* the callback's kept ones */
} ngx_http_postback_recorded_t;


/* the journal's figures, for the status */
typedef struct {
    uint64_t                      bytes;        /* the file's size */
    uint64_t                      live;         /* of pending deliveries */
    uint64_t                      unwritten;    /* deliveries not on disk */
    uint64_t                      write_errors;
    uint64_t                      lost;
    uint64_t                      compactions;
} ngx_http_postback_spool_stats_t;


/* the key table's figures, for the status */
typedef struct {
    uint64_t                      count;
    uint64_t                      evicted;
} ngx_http_postback_keys_stats_t;


/* copies of the zone's state, in a request's pool */
typedef struct {
    size_t                        size;
    size_t                        used;
    uint64_t                      records;
    uint64_t                      evicted;
    uint64_t                      counters[NGX_HTTP_POSTBACK_COUNTERS];
    ngx_http_postback_spool_stats_t  spool;
    ngx_http_postback_keys_stats_t   keys;
    ngx_http_postback_cb_state_t *callbacks;    /* as configured, then
                                                   removed ones with
                                                   history */
    ngx_uint_t                    ncallbacks;
    ngx_uint_t                    nconfigured;
    ngx_http_postback_view_t     *deliveries;   /* newest first */
    ngx_uint_t                    ndeliveries;
} ngx_http_postback_snapshot_t;


/*
 * A delivery a worker took, with the callback that sends it.  The record
 * is only trusted while the zone still has it under this claim: a claim
 * whose lease ran out may have been taken over, and the record finished
 * and freed, by another worker.
 */
typedef struct {
    ngx_http_postback_cb_conf_t  *cb;
    ngx_http_postback_record_t   *record;
    ngx_uint_t                    claim;    /* the record's claim count */
    u_char                        id[NGX_HTTP_POSTBACK_ID_LEN];
} ngx_http_postback_claim_t;


/*
 * A record whose next journal record a writer took (as a claim, checked
 * against the record's count), and that record's place: in the batch,
 * then in the journal.  No record: a delivery the zone had no room for.
 */
typedef struct {
    ngx_http_postback_record_t   *record;
    ngx_uint_t                    claim;
    u_char                        id[NGX_HTTP_POSTBACK_ID_LEN];
    off_t                         offset;   /* -1: not known */
    size_t                        size;
    uint64_t                      file;     /* written: the journal's inode */
    ngx_flag_t                    spilled;  /* a delivery not in the zone */
    ngx_flag_t                    whole;    /* created and finished, as
                                               the item was */
} ngx_http_postback_jref_t;


/* the journal record a delivery needs next, as the zone hands it out */
typedef struct {
    ngx_flag_t                    finished; /* else: created */
    ngx_uint_t                    state;    /* finished: the end state */
    u_char                       *id;
    ngx_str_t                     callback;
    ngx_http_postback_request_t   req;      /* created: what it sends */
    void                         *attempts; /* finished: the first, for
                                      ngx_http_postback_zone_attempt_next */
    ngx_flag_t                    whole;    /* both records at once: it
                                               finished before its created
                                               one was written, and the
                                               journal keeps a history */
} ngx_http_postback_jitem_t;


/* what became of journal records a writer took */
#define NGX_HTTP_POSTBACK_WRITTEN    0
#define NGX_HTTP_POSTBACK_IN_HAND    1
#define NGX_HTTP_POSTBACK_RELEASED   2  /* for another writer */
#define NGX_HTTP_POSTBACK_UNWRITTEN  3  /* never, as nginx stops */


/* copies a journal item to the writer; 0: no room left, stop */
typedef size_t (*ngx_http_postback_jput_pt)(void *ctx,
    ngx_http_postback_jitem_t *item);


/* an ngx_str_t * holds exactly the literal s */
#define ngx_http_postback_str_is(str, s)                                     \
    ((str)->len == sizeof(s) - 1                                             \
     && ngx_strncmp((str)->data, s, sizeof(s) - 1) == 0)


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
ngx_http_postback_cb_conf_t *ngx_http_postback_find_callback(
    ngx_http_postback_main_conf_t *pmcf, ngx_str_t *name);
void ngx_http_postback_timer_init(ngx_event_t *ev,
    ngx_event_handler_pt handler, ngx_connection_t *c, ngx_log_t *log,
    ngx_flag_t cancelable);

/* what a document given to POST <status>/events made */
typedef struct {
    ngx_int_t                     reason;   /* NGX_OK, or a SKIP counter */
    ngx_str_t                     event;
    ngx_str_t                     key;
    ngx_array_t                  *ids;      /* of the deliveries made */
} ngx_http_postback_injected_t;


/* filter */
ngx_int_t ngx_http_postback_filter_init(ngx_conf_t *cf);
ngx_uint_t ngx_http_postback_doc_kind(ngx_str_t *type);
ngx_int_t ngx_http_postback_inject(ngx_http_request_t *r, ngx_uint_t kind,
    u_char *buf, size_t len, ngx_str_t *event,
    ngx_http_postback_injected_t *result);
ngx_int_t ngx_http_postback_field_value(ngx_http_request_t *r,
    ngx_uint_t index, ngx_str_t *value);
ngx_int_t ngx_http_postback_data_value(ngx_http_request_t *r,
    ngx_str_t *value);
ngx_int_t ngx_http_postback_event_value(ngx_http_request_t *r,
    ngx_str_t *value);
ngx_int_t ngx_http_postback_path_value(ngx_pool_t *pool, json_t *doc,
    ngx_http_postback_field_t *field, ngx_str_t *value);
ngx_int_t ngx_http_postback_test_send(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, ngx_str_t *event, json_t *doc,
    ngx_str_t *values, u_char *id);

/* zone: the ledger */
ngx_int_t ngx_http_postback_zone_init(ngx_shm_zone_t *shm_zone, void *data);
ngx_int_t ngx_http_postback_zone_bind(ngx_shm_zone_t *shm_zone);
void ngx_http_postback_zone_count(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_counter_e counter, ngx_uint_t n);
void ngx_http_postback_zone_new_id(ngx_shm_zone_t *shm_zone, u_char *id);
ngx_int_t ngx_http_postback_zone_add(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, u_char *id,
    ngx_http_postback_request_t *req, ngx_http_postback_claim_t *claim);
ngx_int_t ngx_http_postback_zone_restore_finished(ngx_shm_zone_t *shm_zone,
    ngx_str_t *callback, u_char *id, ngx_http_postback_request_t *req,
    ngx_uint_t state, ngx_http_postback_result_t *attempts, ngx_uint_t n);
ngx_flag_t ngx_http_postback_zone_attempt_next(void **cursor,
    ngx_http_postback_result_t *res);
ngx_int_t ngx_http_postback_zone_restore(ngx_shm_zone_t *shm_zone,
    ngx_str_t *callback, ngx_http_postback_cb_conf_t *cb, u_char *id,
    ngx_http_postback_request_t *req, size_t size, uint64_t due,
    ngx_flag_t counted, ngx_flag_t room);
void ngx_http_postback_zone_finished_elsewhere(ngx_shm_zone_t *shm_zone,
    u_char *id, ngx_uint_t state);
ngx_uint_t ngx_http_postback_zone_claim(ngx_shm_zone_t *shm_zone,
    ngx_array_t *callbacks, ngx_http_postback_claim_t *out, ngx_uint_t max,
    ngx_flag_t *backlog, uint64_t *next);
void ngx_http_postback_zone_request(ngx_http_postback_claim_t *claim,
    ngx_http_postback_request_t *req);
void ngx_http_postback_zone_record_attempt(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim, ngx_http_postback_result_t *res,
    ngx_http_postback_recorded_t *out);
void ngx_http_postback_zone_release(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_claim_t *claim);
ngx_int_t ngx_http_postback_zone_snapshot(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_query_t *query, ngx_http_postback_snapshot_t *snap,
    ngx_pool_t *pool);
ngx_int_t ngx_http_postback_zone_find(ngx_shm_zone_t *shm_zone,
    ngx_str_t *id, ngx_http_postback_view_t *view, ngx_pool_t *pool);
ngx_int_t ngx_http_postback_zone_retry(ngx_shm_zone_t *shm_zone,
    ngx_str_t *id, const char **why);
ngx_uint_t ngx_http_postback_zone_retry_all(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, ngx_uint_t state);
uint64_t ngx_http_postback_zone_switch(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, ngx_flag_t enable);
ngx_flag_t ngx_http_postback_zone_unjournaled(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, uint64_t *changed);
void ngx_http_postback_zone_callback_restore(ngx_shm_zone_t *shm_zone,
    ngx_str_t *name, ngx_uint_t disabled, uint32_t url_digest,
    uint64_t stamp);
u_char *ngx_http_postback_time_text(u_char *buf, uint64_t ms);

/* zone: what the journal needs of it */
uint64_t ngx_http_postback_zone_tag(ngx_shm_zone_t *shm_zone);
ngx_uint_t ngx_http_postback_zone_generation(ngx_shm_zone_t *shm_zone);
void *ngx_http_postback_zone_spool(ngx_shm_zone_t *shm_zone);
ngx_http_postback_keys_t *ngx_http_postback_zone_keys(
    ngx_shm_zone_t *shm_zone);
ngx_uint_t ngx_http_postback_zone_journal_take(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_jput_pt put, void *ctx, ngx_http_postback_jref_t *out,
    ngx_uint_t max, ngx_flag_t all);
void ngx_http_postback_zone_journal_end(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_jref_t *refs, ngx_uint_t n, ngx_uint_t end,
    const char *what);
uint64_t ngx_http_postback_zone_journal_live(ngx_shm_zone_t *shm_zone);
void ngx_http_postback_zone_journal_settled(ngx_shm_zone_t *shm_zone,
    uint64_t file, off_t at);
ngx_flag_t ngx_http_postback_zone_has_room(ngx_shm_zone_t *shm_zone);
uint64_t ngx_http_postback_zone_in_spool(ngx_shm_zone_t *shm_zone);
void ngx_http_postback_zone_spilled(ngx_shm_zone_t *shm_zone,
    ngx_str_t *callback, ngx_int_t delta, ngx_flag_t dropped);

/* deliver: a delivery's life */
ngx_int_t ngx_http_postback_webhook_id(ngx_str_t *callback,
    ngx_http_postback_request_t *req, u_char *id, u_char *webhook_id);
ngx_int_t ngx_http_postback_deliver_init(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf);
void ngx_http_postback_deliver_exit(ngx_cycle_t *cycle);
ngx_int_t ngx_http_postback_deliver_add(ngx_shm_zone_t *shm_zone,
    ngx_http_postback_cb_conf_t *cb, u_char *id,
    ngx_http_postback_request_t *req, ngx_log_t *log);
void ngx_http_postback_deliver_soon(void);
void ngx_http_postback_deliver_done(void *transfer,
    ngx_http_postback_result_t *res);
void ngx_http_postback_deliver_abort_all(void);
uint64_t ngx_http_postback_retry_after(ngx_int_t status, off_t seconds);
const char *ngx_http_postback_content_type(ngx_uint_t method,
    ngx_str_t *headers);
void ngx_http_postback_log_lost(ngx_log_t *log, u_char *id, const char *what,
    ngx_str_t *callback, ngx_str_t *event, ngx_str_t *fields);

/*
 * What an engine sends for one attempt, NUL-terminated strings in pool,
 * which lasts until the attempt is recorded.  The engine reports with
 * ngx_http_postback_deliver_done(transfer, result).
 */
typedef struct {
    void                         *transfer;     /* the deliverer's */
    ngx_http_postback_cb_conf_t  *cb;
    ngx_uint_t                    method;
    ngx_str_t                     url;
    ngx_array_t                   headers;      /* ngx_str_t lines */
    ngx_str_t                     body;
    ngx_pool_t                   *pool;
    ngx_log_t                    *log;
    void                         *engine;       /* the engine's */
} ngx_http_postback_send_t;

/* curl: the libcurl engine */

ngx_int_t ngx_http_postback_curl_init(ngx_cycle_t *cycle);
void ngx_http_postback_curl_exit(void);
ngx_int_t ngx_http_postback_curl_start(ngx_http_postback_send_t *send);
void ngx_http_postback_curl_stop(ngx_http_postback_send_t *send);

/* http: the nginx engine */

ngx_int_t ngx_http_postback_http_engine(ngx_conf_t *cf,
    ngx_http_postback_cb_conf_t *cb);
void ngx_http_postback_http_init(ngx_cycle_t *cycle);
void ngx_http_postback_http_exit(void);
ngx_int_t ngx_http_postback_http_start(ngx_http_postback_send_t *send);
void ngx_http_postback_http_stop(ngx_http_postback_send_t *send);

/* spool: the journal */
void *ngx_http_postback_spool_zone_init(ngx_shm_zone_t *shm_zone);

/* keys: the last event per key */
ngx_http_postback_keys_t *ngx_http_postback_keys_zone_init(
    ngx_slab_pool_t *shpool);
ngx_int_t ngx_http_postback_keys_seen(ngx_shm_zone_t *shm_zone,
    ngx_str_t *key, ngx_str_t *event, uint64_t *changed);
ngx_flag_t ngx_http_postback_keys_fire_locked(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys, ngx_str_t *key, ngx_str_t *event,
    uint64_t armed, uint64_t due);
void ngx_http_postback_keys_forget(ngx_shm_zone_t *shm_zone,
    ngx_str_t *key, uint64_t changed);
void ngx_http_postback_keys_pin_locked(ngx_http_postback_keys_t *keys,
    ngx_str_t *key, ngx_int_t delta);
ngx_flag_t ngx_http_postback_keys_evict_locked(ngx_slab_pool_t *shpool,
    ngx_http_postback_keys_t *keys);
void ngx_http_postback_keys_restore(ngx_shm_zone_t *shm_zone,
    ngx_str_t *key, ngx_str_t *event, uint64_t changed);
void ngx_http_postback_keys_stats(ngx_http_postback_keys_t *keys,
    ngx_http_postback_keys_stats_t *stats);
uint64_t ngx_http_postback_keys_journal_bytes(ngx_http_postback_keys_t *keys);
void ngx_http_postback_spool_stats(void *spool,
    ngx_http_postback_spool_stats_t *stats);
ngx_int_t ngx_http_postback_spool_init(ngx_cycle_t *cycle,
    ngx_http_postback_main_conf_t *pmcf);
void ngx_http_postback_spool_keep(ngx_shm_zone_t *shm_zone,
    ngx_str_t *callback, u_char *id, ngx_http_postback_request_t *req);
void ngx_http_postback_spool_flush(void);
void ngx_http_postback_spool_key(ngx_str_t *key, ngx_str_t *event,
    uint64_t changed);
void ngx_http_postback_spool_callback(ngx_http_postback_cb_conf_t *cb,
    ngx_uint_t why, uint64_t changed);
void ngx_http_postback_spool_leave(void);
void ngx_http_postback_spool_exit(ngx_cycle_t *cycle);
void ngx_http_postback_spool_exit_master(ngx_cycle_t *cycle);

/* status */
char *ngx_http_postback_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_postback_sample_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* page */
extern ngx_str_t  ngx_http_postback_page;


#endif /* _NGX_HTTP_POSTBACK_MODULE_H_INCLUDED_ */
