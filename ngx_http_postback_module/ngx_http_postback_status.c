
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * The status location: the zone's counters, the callbacks and the recent
 * deliveries as JSON, as Prometheus metrics or as a page for people; one
 * delivery with its request; and the operator's actions: send a delivery
 * again, send a test, switch a callback.  Secrets are never shown.
 */


#include "ngx_http_postback_module.h"
#include "pb_escape.h"
#include <openssl/evp.h>


#define NGX_HTTP_POSTBACK_STATUS_LIMIT      50
#define NGX_HTTP_POSTBACK_STATUS_LIMIT_MAX  1000

/* Prometheus text: bytes enough for the zone's lines, and per callback */
#define NGX_HTTP_POSTBACK_METRICS_BASE      8192
#define NGX_HTTP_POSTBACK_METRICS_CALLBACK  16384

#define NGX_HTTP_POSTBACK_SECRET_TEXT       "[secret]"

/* a test send's argument field.NAME=VALUE: the value of field NAME */
#define NGX_HTTP_POSTBACK_FIELD_ARG         "field."

#define NGX_HTTP_POSTBACK_POLICY                                             \
    "default-src 'none'; script-src 'sha256-%V'; "                           \
    "style-src 'unsafe-inline'; connect-src 'self'; "                        \
    "frame-ancestors 'self'"


typedef ngx_int_t (*ngx_http_postback_route_pt)(ngx_http_request_t *r,
    ngx_str_t *name);


/*
 * A route: collection, a name, action ("deliveries/" ID "/retry"); or,
 * with a collection not ending in "/", that path alone ("events").
 */
typedef struct {
    ngx_str_t                     collection;
    ngx_str_t                     action;
    ngx_uint_t                    method;       /* NGX_HTTP_GET, ... */
    ngx_http_postback_route_pt    handler;
    ngx_str_t                    *args;         /* the query arguments it
                                                   takes */
} ngx_http_postback_route_t;


static ngx_int_t ngx_http_postback_page_policy(void);
static ngx_int_t ngx_http_postback_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_postback_status_root(ngx_http_request_t *r);
static ngx_int_t ngx_http_postback_status_json(ngx_http_request_t *r,
    ngx_http_postback_snapshot_t *snap);
static ngx_int_t ngx_http_postback_status_query(ngx_http_request_t *r,
    ngx_http_postback_query_t *query);
static ngx_int_t ngx_http_postback_status_delivery(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_postback_status_retry(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_postback_status_retry_all(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_int_t ngx_http_postback_status_test(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_int_t ngx_http_postback_test_values(ngx_http_request_t *r,
    ngx_str_t *values, json_t *unknown);
static ngx_int_t ngx_http_postback_test_event(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, json_t *doc, ngx_int_t source,
    ngx_str_t *event);
static ngx_int_t ngx_http_postback_event_field(
    ngx_http_postback_main_conf_t *pmcf);
static json_t *ngx_http_postback_sample(ngx_http_request_t *r);
static json_t *ngx_http_postback_sample_value(json_t *doc,
    ngx_http_postback_field_t *field, ngx_str_t *text);
static json_t *ngx_http_postback_sample_json(ngx_http_request_t *r);
static void ngx_http_postback_sample_free(void *data);
static ngx_int_t ngx_http_postback_status_enable(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_int_t ngx_http_postback_status_disable(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_int_t ngx_http_postback_status_switch(ngx_http_request_t *r,
    ngx_str_t *name, ngx_flag_t enable);
static ngx_int_t ngx_http_postback_status_events(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_postback_events_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_postback_events_answer(ngx_http_request_t *r);
static ngx_int_t ngx_http_postback_body_text(ngx_http_request_t *r,
    size_t limit, ngx_str_t *text);
static json_t *ngx_http_postback_injected_json(
    ngx_http_postback_injected_t *result);
static ngx_int_t ngx_http_postback_bad_request(ngx_http_request_t *r,
    char *why);
static ngx_int_t ngx_http_postback_not_allowed(ngx_http_request_t *r,
    char *allow);
static ngx_int_t ngx_http_postback_same_origin(ngx_http_request_t *r);
static ngx_flag_t ngx_http_postback_unknown_arg(ngx_http_request_t *r,
    ngx_str_t *known, ngx_str_t *name);
static ngx_flag_t ngx_http_postback_next_arg(u_char **pos, u_char *last,
    ngx_str_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_postback_bad_arg(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *known);
static ngx_int_t ngx_http_postback_arg(ngx_http_request_t *r, u_char *name,
    size_t len, ngx_str_t *value);
static ngx_int_t ngx_http_postback_unescape(ngx_http_request_t *r,
    ngx_str_t *raw, ngx_str_t *value);
static json_t *ngx_http_postback_callback_json(
    ngx_http_postback_cb_state_t *cs, ngx_http_postback_cb_conf_t *cb);
static json_t *ngx_http_postback_last_hour_json(
    ngx_http_postback_cb_state_t *cs);
static json_t *ngx_http_postback_spool_json(ngx_http_request_t *r,
    ngx_http_postback_snapshot_t *snap);
static json_t *ngx_http_postback_delivery_json(ngx_http_postback_view_t *d);
static json_t *ngx_http_postback_request_json(ngx_http_request_t *r,
    ngx_http_postback_view_t *d);
static json_t *ngx_http_postback_json_str(u_char *data, size_t len);
static json_t *ngx_http_postback_json_time(uint64_t ms);
static ngx_int_t ngx_http_postback_metrics(ngx_http_request_t *r,
    ngx_http_postback_snapshot_t *snap);
static u_char *ngx_http_postback_metric(u_char *p, u_char *last,
    const char *name, const char *type, const char *help);
static u_char *ngx_http_postback_spool_metrics(u_char *p, u_char *last,
    ngx_http_postback_spool_stats_t *st);
static u_char *ngx_http_postback_histogram(u_char *p, u_char *last,
    const char *name, ngx_http_postback_cb_state_t *cs,
    ngx_http_postback_histogram_t *h);
static ngx_int_t ngx_http_postback_send_json(ngx_http_request_t *r,
    ngx_uint_t status, json_t *json);
static ngx_int_t ngx_http_postback_send(ngx_http_request_t *r,
    ngx_uint_t status, char *type, u_char *data, size_t len);


/* a metric of a uint64_t in a struct, at offset */
typedef struct {
    const char                   *name;
    const char                   *type;
    const char                   *help;
    size_t                        offset;
} ngx_http_postback_series_t;


#define ngx_http_postback_cs(field)                                          \
    offsetof(ngx_http_postback_cb_state_t, field)

static ngx_http_postback_series_t  ngx_http_postback_series[] = {
    { "postback_events_total", "counter",
      "Events that matched the callback.", ngx_http_postback_cs(events) },
    { "postback_delivered_total", "counter",
      "Deliveries answered 2xx.", ngx_http_postback_cs(delivered) },
    { "postback_failed_total", "counter",
      "Deliveries that used all their attempts.",
      ngx_http_postback_cs(failed) },
    { "postback_dropped_total", "counter",
      "Events refused for want of room in the zone.",
      ngx_http_postback_cs(dropped) },
    { "postback_spooled_total", "counter",
      "Events kept in the spool only, for want of room in the zone.",
      ngx_http_postback_cs(spooled) },
    { "postback_manual_retries_total", "counter",
      "Deliveries sent again through the status API.",
      ngx_http_postback_cs(manual) },
    { "postback_pending", "gauge",
      "Deliveries waiting for an attempt or in one.",
      ngx_http_postback_cs(pending) },
    { "postback_paused", "gauge",
      "Deliveries kept while the callback is disabled.",
      ngx_http_postback_cs(paused) },
    { "postback_scheduled", "gauge",
      "Timeout events waiting for their time.",
      ngx_http_postback_cs(scheduled) },
    { "postback_in_spool", "gauge",
      "Pending deliveries kept in the spool only, for want of room.",
      ngx_http_postback_cs(in_spool) },
    { "postback_consecutive_failures", "gauge",
      "Deliveries failed in a row.",
      ngx_http_postback_cs(health.failures) },
    { "postback_disables_total", "counter",
      "Times the callback was disabled by a rule: 410, disable_on_error=, "
      "disable_after=.", ngx_http_postback_cs(disables) }
};


#define ngx_http_postback_ss(field)                                          \
    offsetof(ngx_http_postback_spool_stats_t, field)

static ngx_http_postback_series_t  ngx_http_postback_spool_series[] = {
    { "postback_spool_bytes", "gauge", "Size of the spool's journal.",
      ngx_http_postback_ss(bytes) },
    { "postback_spool_live_bytes", "gauge",
      "Bytes of the journal that pending deliveries need.",
      ngx_http_postback_ss(live) },
    { "postback_spool_unwritten", "gauge",
      "Deliveries whose journal record is not written yet.",
      ngx_http_postback_ss(unwritten) },
    { "postback_spool_write_errors_total", "counter",
      "Journal writes that failed (each is tried again).",
      ngx_http_postback_ss(write_errors) },
    { "postback_spool_lost_total", "counter",
      "Deliveries lost, not written to the journal as nginx stopped.",
      ngx_http_postback_ss(lost) },
    { "postback_spool_compactions_total", "counter",
      "Rewrites of the journal to what is pending.",
      ngx_http_postback_ss(compactions) }
};


/* the capture counters exposed as counters of their own */
typedef struct {
    const char                   *name;
    const char                   *help;
    ngx_http_postback_counter_e   counter;
} ngx_http_postback_capture_metric_t;


static ngx_http_postback_capture_metric_t
    ngx_http_postback_capture_metrics[] = {
    { "postback_responses_examined_total",
      "Responses examined for an event.", NGX_HTTP_POSTBACK_EXAMINED },
    { "postback_responses_events_total",
      "Responses that had an event.", NGX_HTTP_POSTBACK_EVENTS },
    { "postback_header_values_sanitized_total",
      "Control characters replaced in header values.",
      NGX_HTTP_POSTBACK_SANITIZED },
    { "postback_timeout_events_total",
      "Timeout event deliveries fired.", NGX_HTTP_POSTBACK_TIMEOUT_FIRED },
    { "postback_timeout_events_cancelled_total",
      "Timeout event deliveries cancelled: their key changed in time.",
      NGX_HTTP_POSTBACK_TIMEOUT_CANCELLED }
};


/*
 * The query arguments of each route; any other answers 400, so that a
 * misspelt filter is not taken for "any".  "field." takes field.NAME.
 */
static ngx_str_t  ngx_http_postback_root_args[] = {
    ngx_string("format"),
    ngx_string("callback"),
    ngx_string("state"),
    ngx_string("event"),
    ngx_string("q"),
    ngx_string("limit"),
    ngx_null_string
};

static ngx_str_t  ngx_http_postback_test_args[] = {
    ngx_string("event"),
    ngx_string(NGX_HTTP_POSTBACK_FIELD_ARG),
    ngx_null_string
};

static ngx_str_t  ngx_http_postback_event_args[] = {
    ngx_string("event"),
    ngx_null_string
};

static ngx_str_t  ngx_http_postback_retry_args[] = {
    ngx_string("state"),
    ngx_null_string
};

static ngx_str_t  ngx_http_postback_no_args[] = {
    ngx_null_string
};


static ngx_http_postback_route_t  ngx_http_postback_routes[] = {

    { ngx_string("deliveries/"), ngx_null_string, NGX_HTTP_GET,
      ngx_http_postback_status_delivery, ngx_http_postback_no_args },

    { ngx_string("deliveries/"), ngx_string("/retry"), NGX_HTTP_POST,
      ngx_http_postback_status_retry, ngx_http_postback_no_args },

    { ngx_string("callbacks/"), ngx_string("/test"), NGX_HTTP_POST,
      ngx_http_postback_status_test, ngx_http_postback_test_args },

    { ngx_string("callbacks/"), ngx_string("/retry"), NGX_HTTP_POST,
      ngx_http_postback_status_retry_all, ngx_http_postback_retry_args },

    { ngx_string("callbacks/"), ngx_string("/enable"), NGX_HTTP_POST,
      ngx_http_postback_status_enable, ngx_http_postback_no_args },

    { ngx_string("callbacks/"), ngx_string("/disable"), NGX_HTTP_POST,
      ngx_http_postback_status_disable, ngx_http_postback_no_args },

    { ngx_string("events"), ngx_null_string, NGX_HTTP_POST,
      ngx_http_postback_status_events, ngx_http_postback_event_args },

    { ngx_null_string, ngx_null_string, 0, NULL, NULL }
};


/*
 * Content-Security-Policy of every answer: the page's script alone runs.
 * Static, not in a cycle's pool: the page never changes.
 */
static u_char     ngx_http_postback_policy_text[256];
static ngx_str_t  ngx_http_postback_policy;


static const char  *ngx_http_postback_counter_names[] = {
    "examined",
    "events",
    "header_values_sanitized",
    "timeout_events",
    "timeout_events_cancelled",
    "subrequest",
    "head",
    "no_body",
    "not_json",
    "encoding",
    "too_large",
    "truncated",
    "malformed",
    "no_event",
    "no_match",
    "not_accepted",
    "duplicate"
};


static const char  *ngx_http_postback_state_names[] = {
    "pending",
    "sending",
    "delivered",
    "failed",
    "paused",
    "scheduled",
    "cancelled"
};


static const char  *ngx_http_postback_method_names[] = {
    "GET",
    "POST",
    "POST"
};


static const char  *ngx_http_postback_disabled_names[] = {
    NULL,
    "gone",
    "failures",
    "wrong_url",
    "api"
};


static const char  *ngx_http_postback_ended_names[] = {
    NULL,
    "callback removed",
    "not written to the spool"
};


static const char  *ngx_http_postback_outcome_names[] = {
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "error"
};


char *
ngx_http_postback_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_postback_module);

    if (pmcf->shm_zone == NULL) {
        return "requires \"postback_zone\" earlier in the http block";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

#if (NGX_PCRE)
    if (clcf->regex) {
        /* its routes are relative to a prefix */
        return "cannot be used in a regex location";
    }
#endif

    clcf->handler = ngx_http_postback_status_handler;

    /* its own answers are not a checkout's: never examined */
    plcf = conf;
    plcf->capture = NGX_HTTP_POSTBACK_CAPTURE_OFF;

    if (ngx_http_postback_policy.len == 0
        && ngx_http_postback_page_policy() != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The page's script is allowed by its hash, not as "any inline script":
 * markup that ever slipped into the page could not run.
 */

static ngx_int_t
ngx_http_postback_page_policy(void)
{
    u_char        *start, *end;
    u_char         md[EVP_MAX_MD_SIZE];
    u_char         text[ngx_base64_encoded_length(EVP_MAX_MD_SIZE)];
    unsigned int   mdlen;
    ngx_str_t      digest, hash;

    start = ngx_strnstr(ngx_http_postback_page.data, "<script>",
                        ngx_http_postback_page.len);
    end = ngx_strnstr(ngx_http_postback_page.data, "</script>",
                      ngx_http_postback_page.len);

    if (start == NULL || end == NULL
        || EVP_Digest(start + sizeof("<script>") - 1,
                      end - start - (sizeof("<script>") - 1), md, &mdlen,
                      EVP_sha256(), NULL)
           != 1)
    {
        return NGX_ERROR;
    }

    digest.data = md;
    digest.len = mdlen;

    hash.data = text;
    ngx_encode_base64(&hash, &digest);

    ngx_http_postback_policy.data = ngx_http_postback_policy_text;
    ngx_http_postback_policy.len =
        ngx_snprintf(ngx_http_postback_policy_text,
                     sizeof(ngx_http_postback_policy_text),
                     NGX_HTTP_POSTBACK_POLICY, &hash)
        - ngx_http_postback_policy_text;

    return NGX_OK;
}


/* routes: the path after the location's prefix picks the answer */

static ngx_int_t
ngx_http_postback_status_handler(ngx_http_request_t *r)
{
    u_char                     *slash;
    ngx_int_t                   rc;
    ngx_str_t                   path, name, rest, arg;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_postback_route_t  *route;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    path = r->uri;

    if (clcf->name.len <= path.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;
    }

    if (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    if (path.len == 0) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_postback_not_allowed(r, "GET, HEAD");
        }

        if (ngx_http_postback_unknown_arg(r, ngx_http_postback_root_args,
                                          &arg))
        {
            return ngx_http_postback_bad_arg(r, &arg,
                                             ngx_http_postback_root_args);
        }

        return ngx_http_postback_status_root(r);
    }

    for (route = ngx_http_postback_routes; route->handler; route++) {

        if (path.len < route->collection.len
            || ngx_strncmp(path.data, route->collection.data,
                           route->collection.len)
               != 0)
        {
            continue;
        }

        if (route->collection.data[route->collection.len - 1] != '/') {
            if (path.len != route->collection.len) {
                continue;
            }

            ngx_str_null(&name);

        } else {
            name.data = path.data + route->collection.len;
            slash = ngx_strlchr(name.data, path.data + path.len, '/');
            name.len = (slash ? slash : path.data + path.len) - name.data;

            rest.data = name.data + name.len;
            rest.len = path.data + path.len - rest.data;

            if (name.len == 0
                || rest.len != route->action.len
                || ngx_strncmp(rest.data, route->action.data, rest.len) != 0)
            {
                continue;
            }
        }

        if (route->method == NGX_HTTP_POST) {
            if (r->method != NGX_HTTP_POST) {
                return ngx_http_postback_not_allowed(r, "POST");
            }

            if (ngx_http_postback_same_origin(r) != NGX_OK) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "postback: a POST from another site's page "
                              "refused");
                return NGX_HTTP_FORBIDDEN;
            }

        } else if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_postback_not_allowed(r, "GET, HEAD");
        }

        if (ngx_http_postback_unknown_arg(r, route->args, &arg)) {
            return ngx_http_postback_bad_arg(r, &arg, route->args);
        }

        /* events reads the body; the others have none to read */
        if (route->handler != ngx_http_postback_status_events) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        return route->handler(r, &name);
    }

    rc = ngx_http_discard_request_body(r);

    return (rc != NGX_OK) ? rc : NGX_HTTP_NOT_FOUND;
}


/* POST events: a document to take as a captured one, once read */

static ngx_int_t
ngx_http_postback_status_events(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_int_t  rc;

    rc = ngx_http_read_client_request_body(r, ngx_http_postback_events_read);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_postback_events_read(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_postback_events_answer(r));
}


/*
 * 202 with the deliveries made; 200 when none: its key's status did not
 * change ("duplicate") or no callback takes the event; 400 when the body
 * is not a document or no event is found; 413 over postback_buffer_size.
 */

static ngx_int_t
ngx_http_postback_events_answer(ngx_http_request_t *r)
{
    ngx_str_t                      body, event;
    ngx_uint_t                     i, kind;
    ngx_http_postback_injected_t   result;
    ngx_http_postback_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);

    switch (ngx_http_postback_body_text(r, plcf->buffer_size, &body)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_postback_arg(r, (u_char *) "event", 5, &event) != NGX_OK) {
        ngx_str_null(&event);
    }

    for (i = 0; i < event.len; i++) {
        if (event.data[i] < 0x20 || event.data[i] == 0x7f) {
            return ngx_http_postback_bad_request(r, "event name with "
                                                 "control characters");
        }
    }

    kind = (r->headers_in.content_type == NULL)
           ? 0 : ngx_http_postback_doc_kind(&r->headers_in.content_type->value);

    if (ngx_http_postback_inject(r, kind ? kind : NGX_HTTP_POSTBACK_DOC_JSON,
                                 body.data, body.len, &event, &result)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    switch (result.reason) {

    case NGX_HTTP_POSTBACK_SKIP_MALFORMED:
        return ngx_http_postback_bad_request(r,
                   kind == NGX_HTTP_POSTBACK_DOC_FORM
                   ? "the body is not a valid form"
                   : "the body is not valid JSON");

    case NGX_HTTP_POSTBACK_SKIP_NO_EVENT:
        return ngx_http_postback_bad_request(r,
                   "no event: give ?event=NAME, or a document in which "
                   "postback_event finds one");

    case NGX_OK:
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "postback: event \"%V\" given through the status API, "
                      "%ui deliveries", &result.event, result.ids->nelts);

        return ngx_http_postback_send_json(r, NGX_HTTP_ACCEPTED,
                   ngx_http_postback_injected_json(&result));

    default:
        return ngx_http_postback_send_json(r, NGX_HTTP_OK,
                   ngx_http_postback_injected_json(&result));
    }
}


static json_t *
ngx_http_postback_injected_json(ngx_http_postback_injected_t *result)
{
    u_char      *id;
    json_t      *o, *ids;
    ngx_uint_t   i;

    ids = json_array();

    for (i = 0; ids && result->ids && i < result->ids->nelts; i++) {
        id = (u_char *) result->ids->elts + i * NGX_HTTP_POSTBACK_ID_LEN;
        json_array_append_new(ids, json_stringn((char *) id,
                                                NGX_HTTP_POSTBACK_ID_LEN));
    }

    o = json_pack("{s:o?,s:o?,s:b,s:o?}",
                  "event", ngx_http_postback_json_str(result->event.data,
                                                      result->event.len),
                  "key", result->key.len
                         ? ngx_http_postback_json_str(result->key.data,
                                                      result->key.len)
                         : json_null(),
                  "duplicate",
                  (int) (result->reason == NGX_HTTP_POSTBACK_SKIP_DUPLICATE),
                  "deliveries", ids);

    return o;
}


static ngx_int_t
ngx_http_postback_bad_request(ngx_http_request_t *r, char *why)
{
    return ngx_http_postback_send_json(r, NGX_HTTP_BAD_REQUEST,
                                       json_pack("{s:s}", "error", why));
}


/*
 * The request's body in one piece, read from its temporary file if it is
 * in one.  NGX_DECLINED: over limit.
 */

static ngx_int_t
ngx_http_postback_body_text(ngx_http_request_t *r, size_t limit,
    ngx_str_t *text)
{
    u_char       *p;
    size_t        len, size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > limit) {
        return NGX_DECLINED;
    }

    text->data = ngx_pnalloc(r->pool, len + 1);
    if (text->data == NULL) {
        return NGX_ERROR;
    }

    p = text->data;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;
        size = ngx_buf_size(b);

        if (b->in_file) {
            n = ngx_read_file(b->file, p, size, b->file_pos);
            if (n != (ssize_t) size) {
                return NGX_ERROR;
            }

            p += size;

        } else {
            p = ngx_cpymem(p, b->pos, size);
        }
    }

    text->len = p - text->data;

    return NGX_OK;
}


/* 405, with the methods the route takes */

static ngx_int_t
ngx_http_postback_not_allowed(ngx_http_request_t *r, char *allow)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    return NGX_HTTP_NOT_ALLOWED;
}


/*
 * A browser sends Origin with a POST: one from a page of another site
 * (cross-site request forgery against the operator's browser) is refused.
 * Its host and port must be the Host the request was sent to.  Tools such
 * as curl send no Origin.
 */

static ngx_int_t
ngx_http_postback_same_origin(ngx_http_request_t *r)
{
    u_char           *host, *last;
    ngx_str_t        *target;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Origin") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Origin",
                               sizeof("Origin") - 1)
               == 0)
        {
            break;
        }
    }

    if (r->headers_in.host == NULL) {
        return NGX_DECLINED;
    }

    target = &r->headers_in.host->value;

    /* scheme://host[:port] */
    last = h[i].value.data + h[i].value.len;
    host = ngx_strlcasestrn(h[i].value.data, last, (u_char *) "://", 2);

    if (host == NULL) {
        return NGX_DECLINED;
    }

    host += 3;

    if ((size_t) (last - host) != target->len
        || ngx_strncasecmp(host, target->data, target->len) != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_status_root(ngx_http_request_t *r)
{
    ngx_str_t                       format;
    ngx_flag_t                      metrics;
    ngx_http_postback_query_t       query;
    ngx_http_postback_snapshot_t    snap;
    ngx_http_postback_main_conf_t  *pmcf;

    if (ngx_http_postback_arg(r, (u_char *) "format", 6, &format) != NGX_OK) {
        ngx_str_set(&format, "json");

        /* a browser asks for HTML */
        if (r->headers_in.accept
            && ngx_strcasestrn(r->headers_in.accept->value.data,
                               "text/html", sizeof("text/html") - 2))
        {
            ngx_str_set(&format, "html");
        }
    }

    if (ngx_http_postback_str_is(&format, "html")) {
        return ngx_http_postback_send(r, NGX_HTTP_OK,
                                      "text/html; charset=utf-8",
                                      ngx_http_postback_page.data,
                                      ngx_http_postback_page.len);
    }

    metrics = ngx_http_postback_str_is(&format, "prometheus");

    if ((!metrics && !ngx_http_postback_str_is(&format, "json"))
        || ngx_http_postback_status_query(r, &query) != NGX_OK)
    {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (metrics) {
        /* metrics list no delivery: none copied under the lock */
        query.limit = 0;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    if (ngx_http_postback_zone_snapshot(pmcf->shm_zone, &query, &snap,
                                        r->pool)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return metrics ? ngx_http_postback_metrics(r, &snap)
                   : ngx_http_postback_status_json(r, &snap);
}


/*
 * JSON objects are filled before they are attached: jansson frees a
 * child whose attachment fails, so a child is not touched after it.
 */

static ngx_int_t
ngx_http_postback_status_json(ngx_http_request_t *r,
    ngx_http_postback_snapshot_t *snap)
{
    ngx_uint_t                      i;
    json_t                         *root, *zone, *capture, *skipped;
    json_t                         *callbacks, *deliveries;
    ngx_http_postback_cb_conf_t  **cbp;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);
    cbp = pmcf->callbacks.elts;

    root = json_object();
    zone = json_object();
    capture = json_object();
    skipped = json_object();
    callbacks = json_array();
    deliveries = json_array();

    if (root == NULL || zone == NULL || capture == NULL || skipped == NULL
        || callbacks == NULL || deliveries == NULL)
    {
        json_decref(root);
        json_decref(zone);
        json_decref(capture);
        json_decref(skipped);
        json_decref(callbacks);
        json_decref(deliveries);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(zone, "name",
                        json_stringn((char *) pmcf->shm_zone->shm.name.data,
                                     pmcf->shm_zone->shm.name.len));
    json_object_set_new(zone, "size", json_integer(snap->size));
    json_object_set_new(zone, "used", json_integer(snap->used));
    json_object_set_new(zone, "records", json_integer(snap->records));
    json_object_set_new(zone, "evicted", json_integer(snap->evicted));
    json_object_set_new(zone, "keys", json_integer(snap->keys.count));
    json_object_set_new(zone, "keys_evicted",
                        json_integer(snap->keys.evicted));

    for (i = 0; i < NGX_HTTP_POSTBACK_COUNTERS; i++) {
        json_object_set_new(i < NGX_HTTP_POSTBACK_SKIP_SUBREQUEST
                            ? capture : skipped,
                            ngx_http_postback_counter_names[i],
                            json_integer(snap->counters[i]));
    }

    json_object_set_new(capture, "skipped", skipped);

    for (i = 0; i < snap->ncallbacks; i++) {
        json_array_append_new(callbacks,
                              ngx_http_postback_callback_json(
                                  &snap->callbacks[i],
                                  i < snap->nconfigured ? cbp[i] : NULL));
    }

    for (i = 0; i < snap->ndeliveries; i++) {
        json_array_append_new(deliveries,
                              ngx_http_postback_delivery_json(
                                  &snap->deliveries[i]));
    }

    json_object_set_new(root, "zone", zone);
    json_object_set_new(root, "spool", ngx_http_postback_spool_json(r, snap));
    json_object_set_new(root, "capture", capture);
    json_object_set_new(root, "callbacks", callbacks);
    json_object_set_new(root, "sample", ngx_http_postback_sample_json(r));
    json_object_set_new(root, "deliveries", deliveries);

    return ngx_http_postback_send_json(r, NGX_HTTP_OK, root);
}


/* ?callback=NAME&state=STATE&event=EVENT&q=TEXT&limit=N */

static ngx_int_t
ngx_http_postback_status_query(ngx_http_request_t *r,
    ngx_http_postback_query_t *query)
{
    ngx_int_t   n;
    ngx_str_t   arg;
    ngx_uint_t  i;

    ngx_memzero(query, sizeof(ngx_http_postback_query_t));
    query->state = -1;
    query->limit = NGX_HTTP_POSTBACK_STATUS_LIMIT;

    if (ngx_http_postback_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        n = ngx_atoi(arg.data, arg.len);
        if (n == NGX_ERROR || n > NGX_HTTP_POSTBACK_STATUS_LIMIT_MAX) {
            return NGX_ERROR;
        }

        query->limit = n;
    }

    if (ngx_http_postback_arg(r, (u_char *) "state", 5, &arg) == NGX_OK) {
        for (i = 0; i < NGX_HTTP_POSTBACK_STATES; i++) {
            if (arg.len == ngx_strlen(ngx_http_postback_state_names[i])
                && ngx_strncmp(arg.data, ngx_http_postback_state_names[i],
                               arg.len)
                   == 0)
            {
                query->state = i;
                break;
            }
        }

        if (query->state == -1) {
            return NGX_ERROR;
        }
    }

    (void) ngx_http_postback_arg(r, (u_char *) "callback", 8, &query->callback);
    (void) ngx_http_postback_arg(r, (u_char *) "event", 5, &query->event);
    (void) ngx_http_postback_arg(r, (u_char *) "q", 1, &query->text);

    return NGX_OK;
}


static ngx_int_t
ngx_http_postback_status_delivery(ngx_http_request_t *r, ngx_str_t *id)
{
    json_t                         *o;
    ngx_int_t                       rc;
    ngx_http_postback_view_t        d;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    rc = ngx_http_postback_zone_find(pmcf->shm_zone, id, &d, r->pool);

    if (rc == NGX_DECLINED) {
        return NGX_HTTP_NOT_FOUND;
    }

    o = (rc == NGX_OK) ? ngx_http_postback_delivery_json(&d) : NULL;
    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(o, "request", ngx_http_postback_request_json(r, &d));

    return ngx_http_postback_send_json(r, NGX_HTTP_OK, o);
}


static ngx_int_t
ngx_http_postback_status_retry(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_int_t                       rc;
    const char                     *why;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    rc = ngx_http_postback_zone_retry(pmcf->shm_zone, id, &why);

    if (rc == NGX_DECLINED) {
        return NGX_HTTP_NOT_FOUND;
    }

    if (rc == NGX_BUSY) {
        return ngx_http_postback_send_json(r, NGX_HTTP_CONFLICT,
                                           json_pack("{s:s%,s:s}",
                                                     "id", id->data, id->len,
                                                     "error", why));
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "postback: delivery %V to be sent again, as asked through "
                  "the status API", id);

    ngx_http_postback_deliver_soon();

    return ngx_http_postback_send_json(r, NGX_HTTP_ACCEPTED,
                                       json_pack("{s:s%,s:s}",
                                                 "id", id->data, id->len,
                                                 "state", "pending"));
}


/* POST callbacks/NAME/retry?state=failed|paused: each of them once more */

static ngx_int_t
ngx_http_postback_status_retry_all(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_str_t                       arg;
    ngx_uint_t                      n, state;
    ngx_http_postback_cb_conf_t    *cb;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    cb = ngx_http_postback_find_callback(pmcf, name);
    if (cb == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    state = NGX_HTTP_POSTBACK_FAILED;

    if (ngx_http_postback_arg(r, (u_char *) "state", 5, &arg) == NGX_OK
        && arg.len)
    {
        if (ngx_http_postback_str_is(&arg, "paused")) {
            state = NGX_HTTP_POSTBACK_PAUSED;

        } else if (!ngx_http_postback_str_is(&arg, "failed")) {
            return ngx_http_postback_bad_request(r,
                                                 "state must be failed or "
                                                 "paused");
        }
    }

    n = ngx_http_postback_zone_retry_all(pmcf->shm_zone, cb, state);

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "postback: %ui %s deliveries of callback \"%V\" to be "
                  "sent again, as asked through the status API", n,
                  ngx_http_postback_state_names[state], &cb->name);

    if (n) {
        ngx_http_postback_deliver_soon();
    }

    return ngx_http_postback_send_json(r, NGX_HTTP_ACCEPTED,
                                       json_pack("{s:s%,s:s,s:I}",
                                                 "callback", cb->name.data,
                                                 cb->name.len,
                                                 "state",
                                       ngx_http_postback_state_names[state],
                                                 "retried", (json_int_t) n));
}


/*
 * POST callbacks/NAME/test?event=E&field.NAME=VALUE: the sample document
 * sent as a capture of it would be, with each value given set at its
 * field's path and the event at the path of the field it comes from, so
 * that the document says what the delivery says.
 */

static ngx_int_t
ngx_http_postback_status_test(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char                          id[NGX_HTTP_POSTBACK_ID_LEN + 1];
    json_t                         *doc, *unknown, *value;
    ngx_int_t                       source, rc;
    ngx_str_t                       event, *values;
    ngx_uint_t                      i;
    ngx_http_postback_field_t      *field;
    ngx_http_postback_cb_conf_t    *cb;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    cb = ngx_http_postback_find_callback(pmcf, name);
    if (cb == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    values = ngx_pcalloc(r->pool,
                         (pmcf->fields.nelts + 1) * sizeof(ngx_str_t));
    unknown = json_array();

    if (values == NULL || unknown == NULL
        || ngx_http_postback_test_values(r, values, unknown) != NGX_OK)
    {
        json_decref(unknown);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_array_size(unknown)) {
        return ngx_http_postback_send_json(r, NGX_HTTP_BAD_REQUEST,
                   json_pack("{s:s,s:o}",
                             "error", "no postback_field of these names",
                             "unknown", unknown));
    }

    json_decref(unknown);

    if (ngx_http_postback_arg(r, (u_char *) "event", 5, &event) != NGX_OK) {
        ngx_str_null(&event);
    }

    source = ngx_http_postback_event_field(pmcf);

    if (source != NGX_ERROR && values[source].data) {
        if (event.len == 0) {
            event = values[source];

        } else if (event.len != values[source].len
                   || ngx_strncmp(event.data, values[source].data,
                                  event.len)
                      != 0)
        {
            return ngx_http_postback_bad_request(r,
                       "event= and the field the event comes from differ");
        }
    }

    doc = ngx_http_postback_sample(r);
    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_postback_test_event(r, cb, doc, source, &event);

    if (rc != NGX_OK) {
        json_decref(doc);

        return (rc == NGX_DECLINED)
               ? ngx_http_postback_bad_request(r,
                     "event name with control characters, or not UTF-8")
               : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (source != NGX_ERROR) {
        values[source] = event;
    }

    field = pmcf->fields.elts;

    for (i = 0; i < pmcf->fields.nelts; i++) {
        if (field[i].value || values[i].data == NULL) {
            continue;
        }

        value = ngx_http_postback_sample_value(doc, &field[i], &values[i]);
        if (value == NULL) {
            json_decref(doc);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (pb_path_set(doc, field[i].steps, field[i].nsteps, value) != 0) {
            json_decref(doc);

            return ngx_http_postback_send_json(r, NGX_HTTP_BAD_REQUEST,
                       json_pack("{s:s,s:s%}",
                                 "error", "the field's path cannot be set "
                                          "in the sample document",
                                 "field", field[i].name.data,
                                 field[i].name.len));
        }
    }

    if (ngx_http_postback_test_send(r, cb, &event, doc, values, id)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "postback: test delivery %*s of callback \"%V\", event "
                  "\"%V\", asked through the status API",
                  (size_t) NGX_HTTP_POSTBACK_ID_LEN, id, &cb->name, &event);

    return ngx_http_postback_send_json(r, NGX_HTTP_ACCEPTED,
                                       json_pack("{s:s%,s:s%,s:s%}",
                                                 "id", id,
                                                 (size_t)
                                                 NGX_HTTP_POSTBACK_ID_LEN,
                                                 "callback", cb->name.data,
                                                 cb->name.len,
                                                 "event", event.data,
                                                 event.len));
}


/*
 * The field.NAME=VALUE arguments of a test send: values[i] takes field
 * i's value, unescaped; names that are no field's go in unknown.
 */

static ngx_int_t
ngx_http_postback_test_values(ngx_http_request_t *r, ngx_str_t *values,
    json_t *unknown)
{
    u_char                         *p;
    size_t                          prefix;
    ngx_str_t                       name, raw;
    ngx_uint_t                      i;
    ngx_http_postback_field_t      *field;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);
    field = pmcf->fields.elts;

    prefix = sizeof(NGX_HTTP_POSTBACK_FIELD_ARG) - 1;
    p = r->args.data;

    while (ngx_http_postback_next_arg(&p, r->args.data + r->args.len, &name,
                                      &raw))
    {
        if (name.len <= prefix
            || ngx_strncasecmp(name.data,
                               (u_char *) NGX_HTTP_POSTBACK_FIELD_ARG, prefix)
               != 0)
        {
            continue;
        }

        name.data += prefix;
        name.len -= prefix;

        for (i = 0; i < pmcf->fields.nelts; i++) {
            if (field[i].name.len == name.len
                && ngx_strncmp(field[i].name.data, name.data, name.len) == 0)
            {
                break;
            }
        }

        if (i == pmcf->fields.nelts) {
            if (json_array_append_new(unknown,
                                      ngx_http_postback_json_str(name.data,
                                                                 name.len))
                != 0)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_http_postback_unescape(r, &raw, &values[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The event of a test send: the one given, else the callback's first,
 * else (events=*) the one postback_sample's document has at the field
 * the event comes from, else "TEST".  NGX_DECLINED: not a name that a
 * capture would take.
 */

static ngx_int_t
ngx_http_postback_test_event(ngx_http_request_t *r,
    ngx_http_postback_cb_conf_t *cb, json_t *doc, ngx_int_t source,
    ngx_str_t *event)
{
    json_t                         *text;
    ngx_str_t                      *events;
    ngx_uint_t                      i;
    ngx_http_postback_field_t      *field;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);
    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    if (event->len == 0 && cb->events) {
        events = cb->events->elts;
        *event = events[0];
    }

    if (event->len == 0 && plcf->sample && source != NGX_ERROR) {
        field = pmcf->fields.elts;

        if (ngx_http_postback_path_value(r->pool, doc, &field[source], event)
            == NGX_ERROR)
        {
            return NGX_ERROR;
        }
    }

    if (event->len == 0) {
        ngx_str_set(event, "TEST");
    }

    /* as a captured event's: printable, and UTF-8 for JSON */
    for (i = 0; i < event->len; i++) {
        if (event->data[i] < 0x20 || event->data[i] == 0x7f) {
            return NGX_DECLINED;
        }
    }

    text = json_stringn((char *) event->data, event->len);
    if (text == NULL) {
        return NGX_DECLINED;
    }

    json_decref(text);

    return NGX_OK;
}


/*
 * The field postback_event comes from: its index when postback_event is
 * $postback_NAME alone and NAME a JSONPath field, else NGX_ERROR (the
 * event is then not one value of the document's).
 */

static ngx_int_t
ngx_http_postback_event_field(ngx_http_postback_main_conf_t *pmcf)
{
    size_t                      prefix;
    ngx_str_t                   name;
    ngx_uint_t                  i;
    ngx_http_postback_field_t  *field;

    if (pmcf->event == NULL) {
        return NGX_ERROR;
    }

    name = pmcf->event->value;

    if (name.len < 2 || name.data[0] != '$') {
        return NGX_ERROR;
    }

    name.data++;
    name.len--;

    /* ${postback_NAME} */
    if (name.data[0] == '{') {
        if (name.len < 2 || name.data[name.len - 1] != '}') {
            return NGX_ERROR;
        }

        name.data++;
        name.len -= 2;
    }

    prefix = sizeof("postback_") - 1;

    if (name.len <= prefix
        || ngx_strncasecmp(name.data, (u_char *) "postback_", prefix) != 0)
    {
        return NGX_ERROR;
    }

    name.data += prefix;
    name.len -= prefix;

    field = pmcf->fields.elts;

    for (i = 0; i < pmcf->fields.nelts; i++) {
        if (field[i].value == NULL
            && field[i].name.len == name.len
            && ngx_strncasecmp(field[i].name.data, name.data, name.len) == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


/*
 * A copy of the document of test sends: postback_sample's, else one built
 * from the paths of the JSONPath fields, each holding "test".
 */

static json_t *
ngx_http_postback_sample(ngx_http_request_t *r)
{
    json_t                         *doc;
    ngx_uint_t                      i;
    ngx_http_postback_field_t      *field;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);

    if (plcf->sample) {
        return json_deep_copy(plcf->sample->doc);
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);
    field = pmcf->fields.elts;
    doc = NULL;

    for (i = 0; i < pmcf->fields.nelts; i++) {
        if (field[i].value || field[i].nsteps == 0) {
            continue;
        }

        if (doc == NULL) {
            doc = field[i].steps[0].key ? json_object() : json_array();
            if (doc == NULL) {
                return NULL;
            }
        }

        /* a path at odds with an earlier one is left out */
        (void) pb_path_set(doc, field[i].steps, field[i].nsteps,
                           json_string("test"));
    }

    return doc ? doc : json_object();
}


/*
 * The value text gives the field in doc: of the kind the document has
 * there (a number stays a number, true or false a boolean) when text
 * reads as one, else a string.
 */

static json_t *
ngx_http_postback_sample_value(json_t *doc, ngx_http_postback_field_t *field,
    ngx_str_t *text)
{
    json_t        *was, *value;
    json_error_t   err;

    was = pb_path_eval(doc, field->steps, field->nsteps);

    if (was && (json_is_number(was) || json_is_boolean(was))) {
        value = json_loadb((char *) text->data, text->len, JSON_DECODE_ANY,
                           &err);

        if (value
            && ((json_is_number(was) && json_is_number(value))
                || (json_is_boolean(was) && json_is_boolean(value))))
        {
            return value;
        }

        json_decref(value);
    }

    return ngx_http_postback_json_str(text->data, text->len);
}


/*
 * What the page's test form shows: postback_sample's file, the field the
 * event comes from, and each field's value in the sample document (null:
 * a field not taken from the document).
 */

static json_t *
ngx_http_postback_sample_json(ngx_http_request_t *r)
{
    json_t                         *doc, *fields, *value;
    ngx_int_t                       rc, source;
    ngx_str_t                       text;
    ngx_uint_t                      i;
    ngx_http_postback_field_t      *field;
    ngx_http_postback_loc_conf_t   *plcf;
    ngx_http_postback_main_conf_t  *pmcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_postback_module);
    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);
    field = pmcf->fields.elts;

    doc = ngx_http_postback_sample(r);
    fields = json_array();

    if (doc == NULL || fields == NULL) {
        json_decref(doc);
        json_decref(fields);
        return NULL;
    }

    for (i = 0; i < pmcf->fields.nelts; i++) {
        value = json_null();

        if (field[i].value == NULL) {
            rc = ngx_http_postback_path_value(r->pool, doc, &field[i], &text);

            if (rc == NGX_ERROR) {
                json_decref(doc);
                json_decref(fields);
                return NULL;
            }

            value = (rc == NGX_OK)
                    ? ngx_http_postback_json_str(text.data, text.len)
                    : json_string("");
        }

        json_array_append_new(fields,
                              json_pack("{s:s%,s:o?}",
                                        "name", field[i].name.data,
                                        field[i].name.len,
                                        "value", value));
    }

    json_decref(doc);

    source = ngx_http_postback_event_field(pmcf);

    return json_pack("{s:o?,s:o?,s:o}",
                     "file", plcf->sample
                             ? ngx_http_postback_json_str(
                                   plcf->sample->file.data,
                                   plcf->sample->file.len)
                             : json_null(),
                     "event_field", (source != NGX_ERROR)
                                    ? json_stringn(
                                          (char *) field[source].name.data,
                                          field[source].name.len)
                                    : json_null(),
                     "fields", fields);
}


/*
 * postback_sample FILE: the document of test sends, read and checked as
 * the configuration is.
 */

char *
ngx_http_postback_sample_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_postback_loc_conf_t *plcf = conf;

    ngx_str_t                   *value;
    json_error_t                 err;
    ngx_pool_cleanup_t          *cln;
    ngx_http_postback_sample_t  *sample;

    if (plcf->sample) {
        return "is duplicate";
    }

    value = cf->args->elts;

    sample = ngx_palloc(cf->pool, sizeof(ngx_http_postback_sample_t));
    cln = ngx_pool_cleanup_add(cf->pool, 0);

    if (sample == NULL || cln == NULL) {
        return NGX_CONF_ERROR;
    }

    sample->file = value[1];

    if (ngx_conf_full_name(cf->cycle, &sample->file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    sample->doc = json_load_file((char *) sample->file.data, 0, &err);

    if (sample->doc == NULL) {
        if (json_error_code(&err) == json_error_cannot_open_file) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "cannot read the sample document: %s",
                               err.text);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "sample document \"%V\" is not valid JSON: "
                               "%s (line %d, column %d)", &sample->file,
                               err.text, err.line, err.column);
        }

        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_postback_sample_free;
    cln->data = sample->doc;

    plcf->sample = sample;

    return NGX_CONF_OK;
}


static void
ngx_http_postback_sample_free(void *data)
{
    json_decref(data);
}


static ngx_int_t
ngx_http_postback_status_enable(ngx_http_request_t *r, ngx_str_t *name)
{
    return ngx_http_postback_status_switch(r, name, 1);
}


static ngx_int_t
ngx_http_postback_status_disable(ngx_http_request_t *r, ngx_str_t *name)
{
    return ngx_http_postback_status_switch(r, name, 0);
}


static ngx_int_t
ngx_http_postback_status_switch(ngx_http_request_t *r, ngx_str_t *name,
    ngx_flag_t enable)
{
    ngx_http_postback_cb_conf_t   *cb;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    cb = ngx_http_postback_find_callback(pmcf, name);
    if (cb == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    ngx_http_postback_spool_callback(cb,
                                     enable ? NGX_HTTP_POSTBACK_ENABLED
                                            : NGX_HTTP_POSTBACK_DISABLED_API,
                                     ngx_http_postback_zone_switch(
                                         pmcf->shm_zone, cb, enable));

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "postback: callback \"%V\" %s through the status API",
                  &cb->name, enable ? "enabled" : "disabled");

    if (enable) {
        /* its paused deliveries are due now */
        ngx_http_postback_deliver_soon();
    }

    return ngx_http_postback_send_json(r, NGX_HTTP_OK,
                                       json_pack("{s:s%,s:s}",
                                                 "callback", cb->name.data,
                                                 cb->name.len,
                                                 "state", enable
                                                          ? "enabled"
                                                          : "disabled"));
}


/*
 * Whether the request has a query argument that is not in known (names
 * without regard to case, as ngx_http_arg() reads them); its name.
 */

static ngx_flag_t
ngx_http_postback_unknown_arg(ngx_http_request_t *r, ngx_str_t *known,
    ngx_str_t *name)
{
    u_char      *p;
    ngx_str_t    value, *k;
    ngx_flag_t   prefix;

    p = r->args.data;

    while (ngx_http_postback_next_arg(&p, r->args.data + r->args.len, name,
                                      &value))
    {
        if (name->len == 0) {
            continue;
        }

        for (k = known; k->len; k++) {

            /* "field." takes "field.NAME" */
            prefix = (k->data[k->len - 1] == '.');

            if ((prefix ? name->len > k->len : name->len == k->len)
                && ngx_strncasecmp(name->data, k->data, k->len) == 0)
            {
                break;
            }
        }

        if (k->len == 0) {
            return 1;
        }
    }

    return 0;
}


/* the name and raw value of the query argument at *pos; 0: none left */

static ngx_flag_t
ngx_http_postback_next_arg(u_char **pos, u_char *last, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char  *end, *eq;

    if (*pos >= last) {
        return 0;
    }

    end = ngx_strlchr(*pos, last, '&');
    if (end == NULL) {
        end = last;
    }

    eq = ngx_strlchr(*pos, end, '=');
    if (eq == NULL) {
        eq = end;
    }

    name->data = *pos;
    name->len = eq - *pos;

    value->data = (eq < end) ? eq + 1 : end;
    value->len = end - value->data;

    *pos = (end < last) ? end + 1 : last;

    return 1;
}


/* 400: the argument the route does not take, and those it takes */

static ngx_int_t
ngx_http_postback_bad_arg(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *known)
{
    u_char     *why, *p;
    json_t     *names;
    ngx_int_t   rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    why = ngx_pnalloc(r->pool,
                      sizeof("unknown query argument \"\"") + name->len);
    names = json_array();

    if (why == NULL || names == NULL) {
        json_decref(names);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(why, "unknown query argument \"%V\"", name);

    for ( /* void */ ; known->len; known++) {
        json_array_append_new(names,
                              json_pack("s%+", known->data, known->len,
                                        known->data[known->len - 1] == '.'
                                        ? "NAME" : ""));
    }

    return ngx_http_postback_send_json(r, NGX_HTTP_BAD_REQUEST,
                                       json_pack("{s:o?,s:o}",
                                                 "error",
                                                 ngx_http_postback_json_str(
                                                     why, p - why),
                                                 "known", names));
}


/* a query argument, unescaped, in the request's pool */

static ngx_int_t
ngx_http_postback_arg(ngx_http_request_t *r, u_char *name, size_t len,
    ngx_str_t *value)
{
    ngx_str_t  raw;

    if (ngx_http_arg(r, name, len, &raw) != NGX_OK) {
        return NGX_DECLINED;
    }

    return ngx_http_postback_unescape(r, &raw, value);
}


static ngx_int_t
ngx_http_postback_unescape(ngx_http_request_t *r, ngx_str_t *raw,
    ngx_str_t *value)
{
    u_char  *dst, *src;

    value->data = ngx_pnalloc(r->pool, raw->len + 1);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    dst = value->data;
    src = raw->data;

    ngx_unescape_uri(&dst, &src, raw->len, NGX_UNESCAPE_URI);

    value->len = dst - value->data;

    return NGX_OK;
}


static json_t *
ngx_http_postback_callback_json(ngx_http_postback_cb_state_t *cs,
    ngx_http_postback_cb_conf_t *cb)
{
    json_t      *o, *outcomes, *names;
    ngx_str_t   *events;
    ngx_uint_t   i;

    o = json_object();
    outcomes = json_object();
    names = (cb && cb->events) ? json_array() : json_null();

    if (o == NULL || outcomes == NULL || names == NULL) {
        json_decref(o);
        json_decref(outcomes);
        json_decref(names);
        return NULL;
    }

    for (i = 0; i < PB_OUTCOMES; i++) {
        json_object_set_new(outcomes, ngx_http_postback_outcome_names[i],
                            json_integer(cs->outcomes[i]));
    }

    /* events=, for the page's test form; null: "*", or removed */
    if (cb && cb->events) {
        events = cb->events->elts;

        for (i = 0; i < cb->events->nelts; i++) {
            json_array_append_new(names,
                                  ngx_http_postback_json_str(events[i].data,
                                                             events[i].len));
        }
    }

    json_object_set_new(o, "name",
                        json_stringn((char *) cs->name, cs->name_len));
    json_object_set_new(o, "state",
                        json_string(cb == NULL ? "removed"
                                    : cs->disabled ? "disabled"
                                    : "enabled"));
    json_object_set_new(o, "disabled_reason",
                        cs->disabled
                        ? json_string(
                              ngx_http_postback_disabled_names[cs->disabled])
                        : json_null());
    json_object_set_new(o, "state_changed_at",
                        cs->state_changed
                        ? ngx_http_postback_json_time(cs->state_changed)
                        : json_null());
    json_object_set_new(o, "url",
                        cb ? json_stringn((char *) cb->origin.data,
                                          cb->origin.len)
                           : json_null());
    json_object_set_new(o, "engine",
                        cb ? json_string(
                              cb->engine == NGX_HTTP_POSTBACK_ENGINE_NGINX
                              ? "nginx" : "curl")
                           : json_null());
    json_object_set_new(o, "proxy",
                        cb && cb->proxy.len
                        ? json_stringn((char *) cb->proxy.data, cb->proxy.len)
                        : json_null());
    json_object_set_new(o, "event_names", names);
    json_object_set_new(o, "events", json_integer(cs->events));
    json_object_set_new(o, "delivered", json_integer(cs->delivered));
    json_object_set_new(o, "failed", json_integer(cs->failed));
    json_object_set_new(o, "pending", json_integer(cs->pending));
    json_object_set_new(o, "paused", json_integer(cs->paused));
    json_object_set_new(o, "scheduled", json_integer(cs->scheduled));
    json_object_set_new(o, "in_spool", json_integer(cs->in_spool));
    json_object_set_new(o, "dropped", json_integer(cs->dropped));
    json_object_set_new(o, "spooled", json_integer(cs->spooled));
    json_object_set_new(o, "attempts", json_integer(cs->attempts));
    json_object_set_new(o, "manual_retries", json_integer(cs->manual));
    json_object_set_new(o, "outcomes", outcomes);

    json_object_set_new(o, "consecutive_failures",
                        json_integer(cs->health.failures));
    json_object_set_new(o, "failing_since",
                        cs->health.failing_since
                        ? ngx_http_postback_json_time(
                              cs->health.failing_since)
                        : json_null());
    json_object_set_new(o, "disables", json_integer(cs->disables));
    json_object_set_new(o, "last_attempt_at",
                        cs->last_attempt
                        ? ngx_http_postback_json_time(cs->last_attempt)
                        : json_null());
    json_object_set_new(o, "last_status", json_integer(cs->last_status));
    json_object_set_new(o, "last_error",
                        ngx_http_postback_json_str(cs->last_error,
                                                   cs->last_error_len));
    json_object_set_new(o, "last_latency_ms",
                        json_integer(cs->last_latency));
    json_object_set_new(o, "last_hour",
                        ngx_http_postback_last_hour_json(cs));

    return o;
}


/*
 * The callback's attempts minute by minute, oldest first, the current
 * minute last; "since": the oldest minute's start.
 */

static json_t *
ngx_http_postback_last_hour_json(ngx_http_postback_cb_state_t *cs)
{
    json_t      *o, *delivered, *failed;
    uint32_t     ok[PB_MINUTES], bad[PB_MINUTES];
    uint64_t     since;
    ngx_uint_t   i;

    o = json_object();
    delivered = json_array();
    failed = json_array();

    if (o == NULL || delivered == NULL || failed == NULL) {
        json_decref(o);
        json_decref(delivered);
        json_decref(failed);
        return NULL;
    }

    since = pb_minutes_series(&cs->last_hour, ngx_http_postback_now(), ok,
                              bad);

    for (i = 0; i < PB_MINUTES; i++) {
        json_array_append_new(delivered, json_integer(ok[i]));
        json_array_append_new(failed, json_integer(bad[i]));
    }

    json_object_set_new(o, "since", ngx_http_postback_json_time(since));
    json_object_set_new(o, "delivered", delivered);
    json_object_set_new(o, "failed", failed);

    return o;
}


static json_t *
ngx_http_postback_delivery_json(ngx_http_postback_view_t *d)
{
    u_char                       webhook_id[NGX_HTTP_POSTBACK_ID_LEN];
    json_t                      *o, *attempts, *a;
    ngx_uint_t                   i;
    ngx_http_postback_result_t  *at;

    o = json_object();
    attempts = json_array();

    if (o == NULL || attempts == NULL) {
        json_decref(o);
        json_decref(attempts);
        return NULL;
    }

    for (i = 0; i < d->nattempts; i++) {
        at = &d->attempts[i];

        a = json_pack("{s:o,s:I,s:I,s:b,s:o?,s:o?}",
                      "at", ngx_http_postback_json_time(at->start),
                      "duration_ms", (json_int_t) at->duration,
                      "status", (json_int_t) at->status,
                      "manual", (int) at->manual,
                      "error", ngx_http_postback_json_str(at->error.data,
                                                          at->error.len),
                      "response", ngx_http_postback_json_str(
                                      at->response.data, at->response.len));
        json_array_append_new(attempts, a);
    }

    json_object_set_new(o, "id",
                        json_stringn((char *) d->id, NGX_HTTP_POSTBACK_ID_LEN));
    json_object_set_new(o, "callback",
                        json_stringn((char *) d->callback.data,
                                     d->callback.len));
    json_object_set_new(o, "callback_removed", json_boolean(d->removed));
    json_object_set_new(o, "event",
                        ngx_http_postback_json_str(d->req.event.data,
                                                   d->req.event.len));
    json_object_set_new(o, "key",
                        d->req.key.len
                        ? ngx_http_postback_json_str(d->req.key.data,
                                                     d->req.key.len)
                        : json_null());
    json_object_set_new(o, "webhook_id",
                        ngx_http_postback_webhook_id(&d->callback, &d->req,
                                                     d->id, webhook_id)
                        == NGX_OK
                        ? json_stringn((char *) webhook_id,
                                       NGX_HTTP_POSTBACK_ID_LEN)
                        : json_null());
    json_object_set_new(o, "state",
                        json_string(ngx_http_postback_state_names[d->state]));
    json_object_set_new(o, "ended_because",
                        d->ended ? json_string(
                                       ngx_http_postback_ended_names[d->ended])
                                 : json_null());
    json_object_set_new(o, "test", json_boolean(d->req.test));
    json_object_set_new(o, "created_at",
                        ngx_http_postback_json_time(d->req.created));
    json_object_set_new(o, "method",
                        json_string(
                            ngx_http_postback_method_names[d->req.method]));
    json_object_set_new(o, "url",
                        ngx_http_postback_json_str(d->req.url.data,
                                                   d->req.url.len));
    json_object_set_new(o, "next_attempt_at",
                        d->due ? ngx_http_postback_json_time(d->due)
                               : json_null());
    json_object_set_new(o, "attempts", attempts);

    return o;
}


/*
 * The request as sent: the header lines the zone keeps, with those of
 * secret_header= shown without their values, and the ones added at each
 * attempt (credentials and signature are never shown).
 */

static json_t *
ngx_http_postback_request_json(ngx_http_request_t *r,
    ngx_http_postback_view_t *d)
{
    u_char                         *p, *line, *last, *colon;
    u_char                          webhook_id[NGX_HTTP_POSTBACK_ID_LEN];
    json_t                         *headers;
    const char                     *type;
    ngx_http_postback_cb_conf_t    *cb;
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    cb = ngx_http_postback_find_callback(pmcf, &d->callback);

    headers = json_array();
    if (headers == NULL
        || ngx_http_postback_webhook_id(&d->callback, &d->req, d->id,
                                        webhook_id)
           != NGX_OK)
    {
        json_decref(headers);
        return NULL;
    }

    json_array_append_new(headers,
                          json_pack("s+%", "webhook-id: ", webhook_id,
                                    (size_t) NGX_HTTP_POSTBACK_ID_LEN));

    line = d->req.headers.data;
    last = line + d->req.headers.len;

    for ( /* void */ ; line < last; line = p + 1) {
        p = ngx_strlchr(line, last, '\n');
        if (p == NULL) {
            break;
        }

        if (*line != NGX_HTTP_POSTBACK_SECRET_MARK) {
            json_array_append_new(headers,
                                  ngx_http_postback_json_str(line, p - line));
            continue;
        }

        colon = ngx_strlchr(line, p, ':');

        json_array_append_new(headers,
                              json_pack("s%+", line + 1,
                                        (size_t) ((colon ? colon : p)
                                                  - line - 1),
                                        ": " NGX_HTTP_POSTBACK_SECRET_TEXT));
    }

    type = ngx_http_postback_content_type(d->req.method, &d->req.headers);

    if (type) {
        json_array_append_new(headers,
                              json_pack("s+", "Content-Type: ", type));
    }

    json_array_append_new(headers,
                          json_string("User-Agent: "
                                      NGX_HTTP_POSTBACK_USER_AGENT));

    if (cb && cb->authorization.len) {
        json_array_append_new(headers,
                              json_string("Authorization: "
                                          NGX_HTTP_POSTBACK_SECRET_TEXT));
    }

    if (cb && cb->secret.len) {
        json_array_append_new(headers,
                              json_string("webhook-timestamp: "
                                          "[each attempt's]"));
        json_array_append_new(headers,
                              json_string("webhook-signature: "
                                          "[each attempt's]"));
    }

    return json_pack("{s:s,s:o?,s:o,s:o?}",
                     "method", ngx_http_postback_method_names[d->req.method],
                     "url", ngx_http_postback_json_str(d->req.url.data,
                                                       d->req.url.len),
                     "headers", headers,
                     "body", ngx_http_postback_json_str(d->req.body.data,
                                                        d->req.body.len));
}


/* the journal's figures; null without spool= */

static json_t *
ngx_http_postback_spool_json(ngx_http_request_t *r,
    ngx_http_postback_snapshot_t *snap)
{
    ngx_http_postback_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    if (pmcf->spool.len == 0) {
        return json_null();
    }

    return json_pack("{s:s%,s:I,s:I,s:I,s:I,s:I,s:I}",
                     "path", pmcf->spool.data, pmcf->spool.len,
                     "bytes", (json_int_t) snap->spool.bytes,
                     "live_bytes", (json_int_t) snap->spool.live,
                     "unwritten", (json_int_t) snap->spool.unwritten,
                     "write_errors", (json_int_t) snap->spool.write_errors,
                     "lost", (json_int_t) snap->spool.lost,
                     "compactions", (json_int_t) snap->spool.compactions);
}


/* JSON string of bytes from outside: invalid UTF-8 becomes U+FFFD */

static json_t *
ngx_http_postback_json_str(u_char *data, size_t len)
{
    u_char  *buf, *last;
    json_t  *s;

    s = json_stringn((char *) data, len);
    if (s) {
        return s;
    }

    buf = malloc(pb_utf8_sanitize_len(data, len) + 1);
    if (buf == NULL) {
        return NULL;
    }

    last = pb_utf8_sanitize(buf, data, len);
    s = json_stringn((char *) buf, last - buf);
    free(buf);

    return s;
}


static json_t *
ngx_http_postback_json_time(uint64_t ms)
{
    u_char  buf[NGX_HTTP_POSTBACK_TIME_LEN];

    return json_stringn((char *) buf,
                        ngx_http_postback_time_text(buf, ms) - buf);
}


/* the Prometheus text exposition format, version 0.0.4 */

static ngx_int_t
ngx_http_postback_metrics(ngx_http_request_t *r,
    ngx_http_postback_snapshot_t *snap)
{
    u_char                         *buf, *p, *last;
    size_t                          size;
    ngx_uint_t                      i, k;
    ngx_http_postback_series_t     *series;
    ngx_http_postback_cb_state_t   *cs;
    ngx_http_postback_main_conf_t  *pmcf;
    ngx_http_postback_capture_metric_t  *cm;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_postback_module);

    size = NGX_HTTP_POSTBACK_METRICS_BASE
           + snap->nconfigured * NGX_HTTP_POSTBACK_METRICS_CALLBACK;

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = buf;
    last = buf + size;

    p = ngx_http_postback_metric(p, last, "postback_zone_size_bytes", "gauge",
                                 "Size of the postback_zone.");
    p = ngx_slprintf(p, last, "postback_zone_size_bytes %uz\n", snap->size);

    p = ngx_http_postback_metric(p, last, "postback_zone_used_bytes", "gauge",
                                 "Bytes of the zone in use.");
    p = ngx_slprintf(p, last, "postback_zone_used_bytes %uz\n", snap->used);

    p = ngx_http_postback_metric(p, last, "postback_zone_free_bytes", "gauge",
                                 "Bytes of the zone free.");
    p = ngx_slprintf(p, last, "postback_zone_free_bytes %uz\n",
                     snap->size - snap->used);

    p = ngx_http_postback_metric(p, last, "postback_zone_records", "gauge",
                                 "Deliveries kept in the zone.");
    p = ngx_slprintf(p, last, "postback_zone_records %uL\n", snap->records);

    p = ngx_http_postback_metric(p, last, "postback_zone_evicted_total",
                                 "counter",
                                 "Finished deliveries evicted for room.");
    p = ngx_slprintf(p, last, "postback_zone_evicted_total %uL\n",
                     snap->evicted);

    p = ngx_http_postback_metric(p, last, "postback_keys", "gauge",
                                 "Keys whose last event the zone keeps.");
    p = ngx_slprintf(p, last, "postback_keys %uL\n", snap->keys.count);

    p = ngx_http_postback_metric(p, last, "postback_keys_evicted_total",
                                 "counter",
                                 "Least recently seen keys evicted for "
                                 "room.");
    p = ngx_slprintf(p, last, "postback_keys_evicted_total %uL\n",
                     snap->keys.evicted);

    if (pmcf->spool.len) {
        p = ngx_http_postback_spool_metrics(p, last, &snap->spool);
    }

    for (k = 0; k < sizeof(ngx_http_postback_capture_metrics)
                    / sizeof(ngx_http_postback_capture_metric_t); k++)
    {
        cm = &ngx_http_postback_capture_metrics[k];

        p = ngx_http_postback_metric(p, last, cm->name, "counter", cm->help);
        p = ngx_slprintf(p, last, "%s %uL\n", cm->name,
                         snap->counters[cm->counter]);
    }

    p = ngx_http_postback_metric(p, last, "postback_responses_skipped_total",
                                 "counter",
                                 "Responses without an event, by reason.");

    for (i = NGX_HTTP_POSTBACK_SKIP_SUBREQUEST;
         i < NGX_HTTP_POSTBACK_COUNTERS;
         i++)
    {
        p = ngx_slprintf(p, last,
                         "postback_responses_skipped_total{reason=\"%s\"} "
                         "%uL\n", ngx_http_postback_counter_names[i],
                         snap->counters[i]);
    }

    for (k = 0; k < sizeof(ngx_http_postback_series)
                    / sizeof(ngx_http_postback_series_t); k++)
    {
        series = &ngx_http_postback_series[k];

        p = ngx_http_postback_metric(p, last, series->name, series->type,
                                     series->help);

        for (i = 0; i < snap->nconfigured; i++) {
            cs = &snap->callbacks[i];
            p = ngx_slprintf(p, last, "%s{callback=\"%*s\"} %uL\n",
                             series->name, cs->name_len, cs->name,
                             *(uint64_t *) ((u_char *) cs + series->offset));
        }
    }

    p = ngx_http_postback_metric(p, last, "postback_disabled", "gauge",
                                 "1 when the callback is disabled.");

    for (i = 0; i < snap->nconfigured; i++) {
        cs = &snap->callbacks[i];
        p = ngx_slprintf(p, last, "postback_disabled{callback=\"%*s\"} %d\n",
                         cs->name_len, cs->name, cs->disabled ? 1 : 0);
    }

    p = ngx_http_postback_metric(p, last, "postback_attempts_total",
                                 "counter",
                                 "Attempts, by outcome: the answer's class, "
                                 "or error.");

    for (i = 0; i < snap->nconfigured; i++) {
        cs = &snap->callbacks[i];

        for (k = 0; k < PB_OUTCOMES; k++) {
            p = ngx_slprintf(p, last,
                             "postback_attempts_total{callback=\"%*s\","
                             "outcome=\"%s\"} %uL\n", cs->name_len, cs->name,
                             ngx_http_postback_outcome_names[k],
                             cs->outcomes[k]);
        }
    }

    p = ngx_http_postback_metric(p, last, "postback_attempt_duration_seconds",
                                 "histogram",
                                 "Time an attempt took, request to answer.");

    for (i = 0; i < snap->nconfigured; i++) {
        p = ngx_http_postback_histogram(p, last,
                                        "postback_attempt_duration_seconds",
                                        &snap->callbacks[i],
                                        &snap->callbacks[i].attempt_duration);
    }

    p = ngx_http_postback_metric(p, last,
                                 "postback_delivery_duration_seconds",
                                 "histogram",
                                 "Time from the event to its delivery, "
                                 "retries included.");

    for (i = 0; i < snap->nconfigured; i++) {
        p = ngx_http_postback_histogram(p, last,
                                        "postback_delivery_duration_seconds",
                                        &snap->callbacks[i],
                                        &snap->callbacks[i].delivery_latency);
    }

    if (p == last) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "postback: metrics do not fit in %uz bytes", size);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_postback_send(r, NGX_HTTP_OK,
                                  "text/plain; version=0.0.4; charset=utf-8",
                                  buf, p - buf);
}


static u_char *
ngx_http_postback_metric(u_char *p, u_char *last, const char *name,
    const char *type, const char *help)
{
    return ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                        name, help, name, type);
}


/* the journal's, unlabelled */

static u_char *
ngx_http_postback_spool_metrics(u_char *p, u_char *last,
    ngx_http_postback_spool_stats_t *st)
{
    ngx_uint_t  i;

    ngx_http_postback_series_t  *series;

    for (i = 0; i < sizeof(ngx_http_postback_spool_series)
                    / sizeof(ngx_http_postback_series_t); i++)
    {
        series = &ngx_http_postback_spool_series[i];

        p = ngx_http_postback_metric(p, last, series->name, series->type,
                                     series->help);
        p = ngx_slprintf(p, last, "%s %uL\n", series->name,
                         *(uint64_t *) ((u_char *) st + series->offset));
    }

    return p;
}


/* one callback's series of a histogram, its buckets counted up */

static u_char *
ngx_http_postback_histogram(u_char *p, u_char *last, const char *name,
    ngx_http_postback_cb_state_t *cs, ngx_http_postback_histogram_t *h)
{
    uint64_t    total;
    ngx_uint_t  i;

    total = 0;

    for (i = 0; i < NGX_HTTP_POSTBACK_BUCKETS; i++) {
        total += h->count[i];
        p = ngx_slprintf(p, last,
                         "%s_bucket{callback=\"%*s\",le=\"%M.%03M\"} %uL\n",
                         name, cs->name_len, cs->name,
                         ngx_http_postback_buckets[i] / 1000,
                         ngx_http_postback_buckets[i] % 1000, total);
    }

    total += h->count[NGX_HTTP_POSTBACK_BUCKETS];

    return ngx_slprintf(p, last,
                        "%s_bucket{callback=\"%*s\",le=\"+Inf\"} %uL\n"
                        "%s_sum{callback=\"%*s\"} %uL.%03uL\n"
                        "%s_count{callback=\"%*s\"} %uL\n",
                        name, cs->name_len, cs->name, total,
                        name, cs->name_len, cs->name,
                        h->sum / 1000, h->sum % 1000,
                        name, cs->name_len, cs->name, total);
}


static ngx_int_t
ngx_http_postback_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json)
{
    char       *text;
    u_char     *data;
    size_t      len;

    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    text = json_dumps(json, JSON_INDENT(1));
    json_decref(json);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(text);

    data = ngx_pnalloc(r->pool, len + 1);
    if (data == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(data, text, len);
    data[len++] = '\n';
    free(text);

    return ngx_http_postback_send(r, status, "application/json", data, len);
}


static ngx_int_t
ngx_http_postback_send(ngx_http_request_t *r, ngx_uint_t status, char *type,
    u_char *data, size_t len)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    /* counters change all the time */
    r->headers_out.last_modified_time = -1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Security-Policy");
    h->value = ngx_http_postback_policy;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Content-Type-Options");
    ngx_str_set(&h->value, "nosniff");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
