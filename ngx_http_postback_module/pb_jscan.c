
/*
 * Copyright (C) The ngx_http_postback_module authors
 *
 * A pushdown automaton over the body's bytes.  The stack is one bit per
 * open container (array or object); the values are numbered by depth, the
 * document being depth 1, so that a path's step i is matched by a value at
 * depth i + 2.  A path's "matched" counts the open values that match its
 * first steps; the values at a depth are compared with the paths only
 * when some path has come that far (live), and a value that matches every
 * step is copied as its bytes pass, to be written as text at the end.
 */


#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_escape.h"
#include "pb_jscan.h"


/* what is read next */
enum {
    PB_JS_ROOT = 0,             /* the document's '{' or '[' */
    PB_JS_VALUE,                /* after ':' or an array's ',' */
    PB_JS_FIRST_VALUE,          /* a value or ']', after '[' */
    PB_JS_FIRST_KEY,            /* a key or '}', after '{' */
    PB_JS_KEY,                  /* after an object's ',' */
    PB_JS_COLON,
    PB_JS_NEXT,                 /* ',' or the container's end */
    PB_JS_END,                  /* white space, to the end */
    PB_JS_STRING,               /* in a key or a string value */
    PB_JS_NUMBER,
    PB_JS_LITERAL               /* in true, false or null */
};

/* where in an escape */
enum {
    PB_JS_ESC_NONE = 0,
    PB_JS_ESC_START,            /* after the backslash */
    PB_JS_ESC_HEX,              /* in \uXXXX's digits */
    PB_JS_ESC_LOW,              /* after a high surrogate: its low's '\' */
    PB_JS_ESC_LOW_U             /* ... and its 'u' */
};

/* where in a number */
enum {
    PB_JS_NUM_SIGN = 0,         /* its first byte, maybe '-' */
    PB_JS_NUM_FIRST,            /* after '-' */
    PB_JS_NUM_ZERO,             /* a leading 0: no digit may follow */
    PB_JS_NUM_INT,
    PB_JS_NUM_DOT,
    PB_JS_NUM_FRAC,
    PB_JS_NUM_E,
    PB_JS_NUM_EXP_SIGN,
    PB_JS_NUM_EXP
};

/* what a byte does to a number */
enum {
    PB_JS_NUM_MORE = 0,         /* it is the number's */
    PB_JS_NUM_ENDED,            /* it is not: the number ended before it */
    PB_JS_NUM_BAD
};

/* the deepest value a path reaches: its last step's */
#define PB_JS_LEVELS  (PB_PATH_MAX_STEPS + 1)

/*
 * A number's significant digits kept: enough to tell whether it reaches
 * 2^1024 - 2^970 (309 digits), where jansson's strtod overflows.
 */
#define PB_JS_DIGITS     320
/* where 0.DIGITS x 10^point can reach it: below, it is under 1e308 */
#define PB_JS_INF_POINT  309
#define PB_JS_EXP_MAX    1000000000000000LL     /* past any body's length */

/* memory first taken for a value's bytes */
#define PB_JS_TEXT_MIN   64


typedef struct {
    const pb_path_step_t  *steps;
    size_t                 nsteps;
    size_t                 matched;     /* steps the open values match */
    size_t                 key_at;      /* bytes of the key read so far */
    unsigned               key_differs:1;   /* from the key step's */
    unsigned               open:1;      /* its value is being read */
    unsigned               found:1;
    const char            *from;        /* its value's bytes in this
                                           buffer; NULL: from the start */
    char                  *text;        /* the value's bytes, then text */
    size_t                 len;
    size_t                 cap;
} pb_jscan_match_t;


/* value: 0.DIGITS x 10^(point + exp); digits past those kept: sticky */
typedef struct {
    unsigned               part;        /* PB_JS_NUM_* */
    unsigned               negative:1;
    unsigned               real:1;      /* a fraction or an exponent */
    unsigned               exp_negative:1;
    unsigned               sticky:1;    /* a non-zero digit not kept */
    size_t                 ndigits;
    int64_t                point;
    int64_t                exp;
    char                   digits[PB_JS_DIGITS];
} pb_jscan_number_t;


struct pb_jscan_s {
    int                    state;       /* PB_JS_* */
    int                    rc;
    const char            *error;
    size_t                 error_at;
    const char            *buf;         /* the buffer being read */
    size_t                 offset;      /* of buf in the body */
    size_t                 depth;       /* containers open */

    unsigned               esc;         /* PB_JS_ESC_*, in a string */
    unsigned               hex;         /* digits of \uXXXX read */
    uint32_t               code;
    uint32_t               high;        /* a high surrogate, waiting */
    unsigned               utf8;        /* continuation bytes to come */
    unsigned char          lo;          /* the next one's range */
    unsigned char          hi;
    unsigned               key:1;       /* the string is a key ... */
    unsigned               compare:1;   /* ... compared with the paths' */

    unsigned               big_int:1;   /* every integer read as a real */
    unsigned               nul_key:1;   /* every \u0000 read as U+FFFD */
    unsigned               has_nul:1;

    const char            *literal;     /* "true", "false" or "null" */
    size_t                 literal_at;
    pb_jscan_number_t      num;

    size_t                 open;        /* values being copied */
    uint32_t               live[PB_JS_LEVELS + 1];  /* paths the values
                                                       at a depth may
                                                       match */
    uint32_t               hits[PB_JS_LEVELS + 1];  /* paths the value
                                                       open there
                                                       matches */
    size_t                 index[PB_JS_LEVELS + 1]; /* of the next value,
                                                       in an array */
    unsigned char          arrays[PB_JSCAN_DEPTH_MAX / 8 + 1];
                                        /* bit per depth: an array */
    size_t                 npaths;
    pb_jscan_match_t       match[];
};


static const char *pb_jscan_read(pb_jscan_t *js, const char *p,
    const char *end);
static const char *pb_jscan_token(pb_jscan_t *js, const char *p,
    const char *end);
static const char *pb_jscan_value_start(pb_jscan_t *js, const char *p);
static const char *pb_jscan_open(pb_jscan_t *js, const char *p);
static const char *pb_jscan_close(pb_jscan_t *js, const char *p);
static const char *pb_jscan_next(pb_jscan_t *js, const char *p);
static const char *pb_jscan_key(pb_jscan_t *js, const char *p);
static const char *pb_jscan_literal_start(pb_jscan_t *js, const char *p,
    const char *literal);
static const char *pb_jscan_literal(pb_jscan_t *js, const char *p,
    const char *end);
static const char *pb_jscan_number(pb_jscan_t *js, const char *p,
    const char *end);
static int pb_jscan_number_byte(pb_jscan_number_t *n, char c);
static int pb_jscan_exponent_byte(pb_jscan_number_t *n, char c, int digit);
static int pb_jscan_number_end_or_exp(pb_jscan_number_t *n, char c);
static void pb_jscan_mantissa(pb_jscan_number_t *n, char c, int integral);
static void pb_jscan_exponent(pb_jscan_number_t *n, char c);
static int pb_jscan_int_overflows(const pb_jscan_number_t *n);
static int pb_jscan_real_overflows(const pb_jscan_number_t *n);
static const char *pb_jscan_string(pb_jscan_t *js, const char *p,
    const char *end);
static const char *pb_jscan_string_byte(pb_jscan_t *js, const char *p);
static const char *pb_jscan_string_end(pb_jscan_t *js, const char *p);
static const char *pb_jscan_escape(pb_jscan_t *js, const char *p);
static const char *pb_jscan_hex(pb_jscan_t *js, const char *p);
static const char *pb_jscan_code(pb_jscan_t *js, const char *p);
static const char *pb_jscan_utf8_start(pb_jscan_t *js, const char *p);
static const char *pb_jscan_utf8_next(pb_jscan_t *js, const char *p);
static const char *pb_jscan_token_end(pb_jscan_t *js, const char *p);
static const char *pb_jscan_scalar_end(pb_jscan_t *js, const char *p);
static int pb_jscan_begin(pb_jscan_t *js, const char *at);
static int pb_jscan_end(pb_jscan_t *js, size_t v, const char *at);
static void pb_jscan_root(pb_jscan_t *js, const char *at);
static int pb_jscan_root_end(pb_jscan_t *js, const char *at);
static void pb_jscan_step_in(pb_jscan_t *js, pb_jscan_match_t *m, size_t v,
    const char *at);
static int pb_jscan_step_out(pb_jscan_t *js, pb_jscan_match_t *m, size_t v,
    const char *at);
static void pb_jscan_key_start(pb_jscan_t *js);
static void pb_jscan_key_bytes(pb_jscan_t *js, const char *s, size_t n);
static void pb_jscan_open_value(pb_jscan_t *js, pb_jscan_match_t *m,
    const char *at);
static int pb_jscan_close_value(pb_jscan_t *js, pb_jscan_match_t *m,
    const char *at);
static int pb_jscan_keep_open(pb_jscan_t *js, const char *end);
static int pb_jscan_keep(pb_jscan_t *js, pb_jscan_match_t *m, const char *s,
    size_t n);
static int pb_jscan_reserve(pb_jscan_match_t *m, size_t size);
static int pb_jscan_write(pb_jscan_t *js, pb_jscan_match_t *m);
static int pb_jscan_write_number(pb_jscan_t *js, pb_jscan_match_t *m);
static int pb_jscan_write_json(pb_jscan_t *js, pb_jscan_match_t *m);
static size_t pb_jscan_unescape(char *s, size_t len, int nul_fffd);
static const char *pb_jscan_fail(pb_jscan_t *js, const char *at,
    const char *why);
static int pb_jscan_no_memory(pb_jscan_t *js);
static int pb_jscan_in_array(const pb_jscan_t *js);
static int pb_jscan_candidate(const pb_jscan_match_t *m, size_t v);
static int pb_jscan_unescaped(char c);
static int pb_jscan_hex_digit(char c);
static uint32_t pb_jscan_hex4(const char *p);
static size_t pb_jscan_utf8(uint32_t code, char *buf);


size_t
pb_jscan_size(size_t npaths)
{
    return sizeof(pb_jscan_t) + npaths * sizeof(pb_jscan_match_t);
}


pb_jscan_t *
pb_jscan_init(void *mem, const pb_jscan_path_t *paths, size_t npaths)
{
    size_t             i;
    pb_jscan_t        *js;
    pb_jscan_match_t  *m;

    js = mem;
    memset(js, 0, pb_jscan_size(npaths));
    js->npaths = npaths;

    for (i = 0; i < npaths; i++) {
        m = &js->match[i];
        m->steps = paths[i].steps;
        m->nsteps = paths[i].nsteps;

        /* the document's members are compared with their first steps */
        if (m->nsteps > 0) {
            js->live[2]++;
        }
    }

    return js;
}


int
pb_jscan_feed(pb_jscan_t *js, const char *buf, size_t len)
{
    const char  *p, *end;

    if (js->error != NULL) {
        return js->rc;
    }

    if (len == 0) {
        return PB_JSCAN_OK;
    }

    js->buf = buf;
    p = buf;
    end = buf + len;

    while (p != NULL && p < end) {
        p = pb_jscan_read(js, p, end);
    }

    if (p == NULL || pb_jscan_keep_open(js, end) != PB_JSCAN_OK) {
        return js->rc;
    }

    js->offset += len;

    return PB_JSCAN_OK;
}


int
pb_jscan_finish(pb_jscan_t *js)
{
    size_t  i;

    if (js->error != NULL) {
        return js->rc;
    }

    if (js->state != PB_JS_END) {
        js->rc = PB_JSCAN_REFUSED;
        js->error = (js->state == PB_JS_ROOT) ? "'[' or '{' expected"
                                              : "premature end of input";
        js->error_at = js->offset;
        return js->rc;
    }

    for (i = 0; i < js->npaths; i++) {
        if (js->match[i].found
            && pb_jscan_write(js, &js->match[i]) != PB_JSCAN_OK)
        {
            return pb_jscan_no_memory(js);
        }
    }

    return PB_JSCAN_OK;
}


const char *
pb_jscan_error(const pb_jscan_t *js, size_t *offset)
{
    *offset = js->error_at;

    return js->error;
}


int
pb_jscan_value(const pb_jscan_t *js, size_t i, const char **text,
    size_t *len)
{
    if (!js->match[i].found) {
        return 0;
    }

    *text = js->match[i].text;
    *len = js->match[i].len;

    return 1;
}


int
pb_jscan_has_nul(const pb_jscan_t *js)
{
    return js->has_nul;
}


void
pb_jscan_free(pb_jscan_t *js)
{
    size_t  i;

    for (i = 0; i < js->npaths; i++) {
        free(js->match[i].text);
        js->match[i].text = NULL;
        js->match[i].len = 0;
        js->match[i].cap = 0;
        js->match[i].found = 0;
    }
}


static const char *
pb_jscan_read(pb_jscan_t *js, const char *p, const char *end)
{
    switch (js->state) {

    case PB_JS_STRING:
        return pb_jscan_string(js, p, end);

    case PB_JS_NUMBER:
        return pb_jscan_number(js, p, end);

    case PB_JS_LITERAL:
        return pb_jscan_literal(js, p, end);

    default:
        return pb_jscan_token(js, p, end);
    }
}


/* white space, then what the state expects between values */

static const char *
pb_jscan_token(pb_jscan_t *js, const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    if (p == end) {
        return p;
    }

    switch (js->state) {

    case PB_JS_ROOT:
        return (*p == '{' || *p == '[')
               ? pb_jscan_value_start(js, p)
               : pb_jscan_fail(js, p, "'[' or '{' expected");

    case PB_JS_FIRST_VALUE:
        return (*p == ']') ? pb_jscan_close(js, p)
                           : pb_jscan_value_start(js, p);

    case PB_JS_VALUE:
        return pb_jscan_value_start(js, p);

    case PB_JS_FIRST_KEY:
        return (*p == '}') ? pb_jscan_close(js, p) : pb_jscan_key(js, p);

    case PB_JS_KEY:
        return pb_jscan_key(js, p);

    case PB_JS_COLON:
        if (*p != ':') {
            return pb_jscan_fail(js, p, "':' expected");
        }

        js->state = PB_JS_VALUE;
        return p + 1;

    case PB_JS_NEXT:
        return pb_jscan_next(js, p);

    default: /* PB_JS_END */
        return pb_jscan_fail(js, p, "end of file expected");
    }
}


static const char *
pb_jscan_value_start(pb_jscan_t *js, const char *p)
{
    if (pb_jscan_begin(js, p) != PB_JSCAN_OK) {
        return NULL;
    }

    switch (*p) {

    case '{':
    case '[':
        return pb_jscan_open(js, p);

    case '"':
        js->state = PB_JS_STRING;
        js->key = 0;
        js->compare = 0;
        return p + 1;

    case 't':
        return pb_jscan_literal_start(js, p, "true");

    case 'f':
        return pb_jscan_literal_start(js, p, "false");

    case 'n':
        return pb_jscan_literal_start(js, p, "null");

    default:
        if (*p != '-' && (*p < '0' || *p > '9')) {
            return pb_jscan_fail(js, p, "invalid token");
        }

        memset(&js->num, 0, offsetof(pb_jscan_number_t, digits));
        js->state = PB_JS_NUMBER;
        return p;
    }
}


static const char *
pb_jscan_open(pb_jscan_t *js, const char *p)
{
    size_t  d;

    d = ++js->depth;

    if (*p == '[') {
        js->arrays[d / 8] |= (unsigned char) (1 << (d % 8));
        js->state = PB_JS_FIRST_VALUE;

        if (d < PB_JS_LEVELS) {
            js->index[d + 1] = 0;
        }

    } else {
        js->arrays[d / 8] &= (unsigned char) ~(1 << (d % 8));
        js->state = PB_JS_FIRST_KEY;
    }

    return p + 1;
}


static const char *
pb_jscan_close(pb_jscan_t *js, const char *p)
{
    if (pb_jscan_end(js, js->depth, p + 1) != PB_JSCAN_OK) {
        return NULL;
    }

    js->depth--;
    js->state = js->depth ? PB_JS_NEXT : PB_JS_END;

    return p + 1;
}


static const char *
pb_jscan_next(pb_jscan_t *js, const char *p)
{
    int  array;

    array = pb_jscan_in_array(js);

    if (*p == ',') {
        js->state = array ? PB_JS_VALUE : PB_JS_KEY;
        return p + 1;
    }

    if (*p == (array ? ']' : '}')) {
        return pb_jscan_close(js, p);
    }

    return pb_jscan_fail(js, p, array ? "',' or ']' expected"
                                      : "',' or '}' expected");
}


static const char *
pb_jscan_key(pb_jscan_t *js, const char *p)
{
    size_t  v;

    if (*p != '"') {
        return pb_jscan_fail(js, p, "string or '}' expected");
    }

    v = js->depth + 1;

    js->state = PB_JS_STRING;
    js->key = 1;
    js->compare = (v <= PB_JS_LEVELS && js->live[v] > 0);

    if (js->compare) {
        pb_jscan_key_start(js);
    }

    return p + 1;
}


static const char *
pb_jscan_literal_start(pb_jscan_t *js, const char *p, const char *literal)
{
    js->state = PB_JS_LITERAL;
    js->literal = literal;
    js->literal_at = 0;

    return p;
}


/* jansson reads a literal as all the letters there are */

static const char *
pb_jscan_literal(pb_jscan_t *js, const char *p, const char *end)
{
    char  c;

    for ( /* void */ ; p < end; p++) {
        c = js->literal[js->literal_at];

        if (c == '\0') {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
                break;
            }

            return pb_jscan_token_end(js, p);
        }

        if (*p != c) {
            break;
        }

        js->literal_at++;
    }

    return (p == end) ? p : pb_jscan_fail(js, p, "invalid token");
}


static const char *
pb_jscan_number(pb_jscan_t *js, const char *p, const char *end)
{
    for ( /* void */ ; p < end; p++) {

        switch (pb_jscan_number_byte(&js->num, *p)) {

        case PB_JS_NUM_MORE:
            continue;

        case PB_JS_NUM_BAD:
            return pb_jscan_fail(js, p, "invalid number");

        default: /* PB_JS_NUM_ENDED */
            if (!js->num.real && pb_jscan_int_overflows(&js->num)) {
                js->big_int = 1;
            }

            if (pb_jscan_real_overflows(&js->num)) {
                return pb_jscan_fail(js, p, "real number overflow");
            }

            return pb_jscan_token_end(js, p);
        }
    }

    return p;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static int
pb_jscan_number_byte(pb_jscan_number_t *n, char c)
{
    int  digit;

    digit = (c >= '0' && c <= '9');

    switch (n->part) {

    case PB_JS_NUM_SIGN:
        if (c == '-') {
            n->negative = 1;
            n->part = PB_JS_NUM_FIRST;
            return PB_JS_NUM_MORE;
        }

        /* fall through */

    case PB_JS_NUM_FIRST:
        if (!digit) {
            return PB_JS_NUM_BAD;
        }

        n->part = (c == '0') ? PB_JS_NUM_ZERO : PB_JS_NUM_INT;
        pb_jscan_mantissa(n, c, 1);
        return PB_JS_NUM_MORE;

    case PB_JS_NUM_ZERO:
    case PB_JS_NUM_INT:
        if (digit) {
            if (n->part == PB_JS_NUM_ZERO) {
                return PB_JS_NUM_BAD;
            }

            pb_jscan_mantissa(n, c, 1);
            return PB_JS_NUM_MORE;
        }

        if (c == '.') {
            n->real = 1;
            n->part = PB_JS_NUM_DOT;
            return PB_JS_NUM_MORE;
        }

        return pb_jscan_number_end_or_exp(n, c);

    case PB_JS_NUM_DOT:
        if (!digit) {
            return PB_JS_NUM_BAD;
        }

        n->part = PB_JS_NUM_FRAC;

        /* fall through */

    case PB_JS_NUM_FRAC:
        if (digit) {
            pb_jscan_mantissa(n, c, 0);
            return PB_JS_NUM_MORE;
        }

        return pb_jscan_number_end_or_exp(n, c);

    default:
        return pb_jscan_exponent_byte(n, c, digit);
    }
}


static int
pb_jscan_exponent_byte(pb_jscan_number_t *n, char c, int digit)
{
    switch (n->part) {

    case PB_JS_NUM_E:
        if (c == '+' || c == '-') {
            n->exp_negative = (c == '-');
            n->part = PB_JS_NUM_EXP_SIGN;
            return PB_JS_NUM_MORE;
        }

        /* fall through */

    case PB_JS_NUM_EXP_SIGN:
        if (!digit) {
            return PB_JS_NUM_BAD;
        }

        n->part = PB_JS_NUM_EXP;

        /* fall through */

    default: /* PB_JS_NUM_EXP */
        if (!digit) {
            return PB_JS_NUM_ENDED;
        }

        pb_jscan_exponent(n, c);
        return PB_JS_NUM_MORE;
    }
}


static int
pb_jscan_number_end_or_exp(pb_jscan_number_t *n, char c)
{
    if (c != 'e' && c != 'E') {
        return PB_JS_NUM_ENDED;
    }

    n->real = 1;
    n->part = PB_JS_NUM_E;

    return PB_JS_NUM_MORE;
}


static void
pb_jscan_mantissa(pb_jscan_number_t *n, char c, int integral)
{
    if (n->ndigits == 0 && c == '0') {
        /* not significant: 0.05 is 0.5 x 10^-1 */
        n->point -= !integral;
        return;
    }

    n->point += integral;

    if (n->ndigits < PB_JS_DIGITS) {
        n->digits[n->ndigits++] = c;

    } else if (c != '0') {
        n->sticky = 1;
    }
}


static void
pb_jscan_exponent(pb_jscan_number_t *n, char c)
{
    n->exp = n->exp * 10 + (c - '0');

    if (n->exp > PB_JS_EXP_MAX) {
        n->exp = PB_JS_EXP_MAX;
    }
}


/* an integer jansson's strtoll refuses (ERANGE) */

static int
pb_jscan_int_overflows(const pb_jscan_number_t *n)
{
    if (n->point != 19) {
        return n->point > 19;
    }

    return memcmp(n->digits, n->negative ? "9223372036854775808"
                                         : "9223372036854775807", 19) > 0;
}


/*
 * A number whose strtod is infinite, which jansson refuses (reals, and
 * integers once read as reals).  Near the limit, strtod decides on the
 * digits kept, one more standing for those that were not.
 */

static int
pb_jscan_real_overflows(const pb_jscan_number_t *n)
{
    char     text[PB_JS_DIGITS + sizeof("0.1e309")], *p;
    int64_t  point;

    point = n->point + (n->exp_negative ? -n->exp : n->exp);

    if (n->ndigits == 0 || point != PB_JS_INF_POINT) {
        return n->ndigits > 0 && point > PB_JS_INF_POINT;
    }

    p = text;
    *p++ = '0';
    *p++ = '.';
    memcpy(p, n->digits, n->ndigits);
    p += n->ndigits;

    if (n->sticky) {
        *p++ = '1';
    }

    memcpy(p, "e309", sizeof("e309"));

    return strtod(text, NULL) == HUGE_VAL;
}


static const char *
pb_jscan_string(pb_jscan_t *js, const char *p, const char *end)
{
    const char  *run;

    while (p != NULL && p < end && js->state == PB_JS_STRING) {

        if (js->esc != PB_JS_ESC_NONE) {
            p = pb_jscan_escape(js, p);
            continue;
        }

        if (js->utf8) {
            p = pb_jscan_utf8_next(js, p);
            continue;
        }

        run = p;

        p += pb_json_plain_len((const unsigned char *) p, end - p);

        if (js->compare && p != run) {
            pb_jscan_key_bytes(js, run, p - run);
        }

        if (p < end) {
            p = pb_jscan_string_byte(js, p);
        }
    }

    return p;
}


static const char *
pb_jscan_string_byte(pb_jscan_t *js, const char *p)
{
    unsigned char  c;

    c = (unsigned char) *p;

    if (c == '"') {
        return pb_jscan_string_end(js, p);
    }

    if (c == '\\') {
        js->esc = PB_JS_ESC_START;
        return p + 1;
    }

    if (c < 0x20) {
        return pb_jscan_fail(js, p, "control character in string");
    }

    return pb_jscan_utf8_start(js, p);
}


static const char *
pb_jscan_string_end(pb_jscan_t *js, const char *p)
{
    if (!js->key) {
        return pb_jscan_scalar_end(js, p + 1);
    }

    js->state = PB_JS_COLON;

    return p + 1;
}


static const char *
pb_jscan_escape(pb_jscan_t *js, const char *p)
{
    int   c;
    char  byte;

    switch (js->esc) {

    case PB_JS_ESC_HEX:
        return pb_jscan_hex(js, p);

    case PB_JS_ESC_LOW:
    case PB_JS_ESC_LOW_U:
        if (*p != (js->esc == PB_JS_ESC_LOW ? '\\' : 'u')) {
            return pb_jscan_fail(js, p, "invalid Unicode surrogate");
        }

        js->esc = (js->esc == PB_JS_ESC_LOW) ? PB_JS_ESC_LOW_U
                                             : PB_JS_ESC_HEX;
        return p + 1;

    default: /* PB_JS_ESC_START */
        if (*p == 'u') {
            js->esc = PB_JS_ESC_HEX;
            return p + 1;
        }

        c = pb_jscan_unescaped(*p);
        if (c < 0) {
            return pb_jscan_fail(js, p, "invalid escape");
        }

        js->esc = PB_JS_ESC_NONE;

        if (js->compare) {
            byte = (char) c;
            pb_jscan_key_bytes(js, &byte, 1);
        }

        return p + 1;
    }
}


static const char *
pb_jscan_hex(pb_jscan_t *js, const char *p)
{
    int  digit;

    digit = pb_jscan_hex_digit(*p);
    if (digit < 0) {
        return pb_jscan_fail(js, p, "invalid escape");
    }

    js->code = js->code * 16 + digit;

    if (++js->hex < 4) {
        return p + 1;
    }

    js->esc = PB_JS_ESC_NONE;

    return pb_jscan_code(js, p);
}


/* \uXXXX read, p at its last digit: surrogates paired, or refused */

static const char *
pb_jscan_code(pb_jscan_t *js, const char *p)
{
    char      buf[4];
    uint32_t  code;

    code = js->code;
    js->code = 0;
    js->hex = 0;

    if (js->high) {
        if (code < 0xdc00 || code > 0xdfff) {
            return pb_jscan_fail(js, p, "invalid Unicode surrogate");
        }

        code = 0x10000 + ((js->high - 0xd800) << 10) + (code - 0xdc00);
        js->high = 0;

    } else if (code >= 0xd800 && code <= 0xdbff) {
        js->high = code;
        js->esc = PB_JS_ESC_LOW;
        return p + 1;

    } else if (code >= 0xdc00 && code <= 0xdfff) {
        return pb_jscan_fail(js, p, "invalid Unicode surrogate");

    } else if (code == 0) {
        js->has_nul = 1;

        /* pb_json_parse reads the body again with U+FFFD for it */
        if (js->key) {
            js->nul_key = 1;
            code = 0xfffd;
        }
    }

    if (js->compare) {
        pb_jscan_key_bytes(js, buf, pb_jscan_utf8(code, buf));
    }

    return p + 1;
}


/* as jansson: no overlong forms, no surrogates, nothing over U+10FFFF */

static const char *
pb_jscan_utf8_start(pb_jscan_t *js, const char *p)
{
    unsigned char  c;

    c = (unsigned char) *p;
    js->lo = 0x80;
    js->hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        js->utf8 = 1;

    } else if (c >= 0xe0 && c <= 0xef) {
        js->utf8 = 2;
        js->lo = (c == 0xe0) ? 0xa0 : 0x80;
        js->hi = (c == 0xed) ? 0x9f : 0xbf;

    } else if (c >= 0xf0 && c <= 0xf4) {
        js->utf8 = 3;
        js->lo = (c == 0xf0) ? 0x90 : 0x80;
        js->hi = (c == 0xf4) ? 0x8f : 0xbf;

    } else {
        return pb_jscan_fail(js, p, "invalid UTF-8");
    }

    if (js->compare) {
        pb_jscan_key_bytes(js, p, 1);
    }

    return p + 1;
}


static const char *
pb_jscan_utf8_next(pb_jscan_t *js, const char *p)
{
    unsigned char  c;

    c = (unsigned char) *p;

    if (c < js->lo || c > js->hi) {
        return pb_jscan_fail(js, p, "invalid UTF-8");
    }

    js->lo = 0x80;
    js->hi = 0xbf;
    js->utf8--;

    if (js->compare) {
        pb_jscan_key_bytes(js, p, 1);
    }

    return p + 1;
}


/*
 * A number or a literal ended at p.  jansson reads one byte past them and
 * puts it back, but a NUL put back is lost: it is skipped here too.
 */

static const char *
pb_jscan_token_end(pb_jscan_t *js, const char *p)
{
    if (pb_jscan_scalar_end(js, p) == NULL) {
        return NULL;
    }

    return (*p == '\0') ? p + 1 : p;
}


static const char *
pb_jscan_scalar_end(pb_jscan_t *js, const char *p)
{
    if (pb_jscan_end(js, js->depth + 1, p) != PB_JSCAN_OK) {
        return NULL;
    }

    js->state = PB_JS_NEXT;

    return p;
}


/* a value starts at at: the paths it takes further, or ends */

static int
pb_jscan_begin(pb_jscan_t *js, const char *at)
{
    int                    array;
    size_t                 v, i, index;
    pb_jscan_match_t      *m;
    const pb_path_step_t  *step;

    v = js->depth + 1;

    if (v > PB_JSCAN_DEPTH_MAX) {
        (void) pb_jscan_fail(js, at, "maximum parsing depth reached");
        return js->rc;
    }

    if (v == 1) {
        pb_jscan_root(js, at);
        return PB_JSCAN_OK;
    }

    if (v > PB_JS_LEVELS) {
        return PB_JSCAN_OK;
    }

    array = pb_jscan_in_array(js);
    index = array ? js->index[v]++ : 0;

    for (i = 0; js->live[v] > 0 && i < js->npaths; i++) {
        m = &js->match[i];

        if (!pb_jscan_candidate(m, v)) {
            continue;
        }

        step = &m->steps[v - 2];

        /* in an object, the member's key was compared as it was read */
        if (array ? (step->key == NULL && step->index == index)
                  : (step->key != NULL && !m->key_differs
                     && m->key_at == step->key_len))
        {
            pb_jscan_step_in(js, m, v, at);
        }
    }

    return PB_JSCAN_OK;
}


/* the value at depth v ended just before at */

static int
pb_jscan_end(pb_jscan_t *js, size_t v, const char *at)
{
    size_t             i;
    pb_jscan_match_t  *m;

    if (v == 1) {
        return pb_jscan_root_end(js, at);
    }

    if (v > PB_JS_LEVELS) {
        return PB_JSCAN_OK;
    }

    for (i = 0; js->hits[v] > 0 && i < js->npaths; i++) {
        m = &js->match[i];

        if (m->matched + 1 == v
            && pb_jscan_step_out(js, m, v, at) != PB_JSCAN_OK)
        {
            return js->rc;
        }
    }

    return PB_JSCAN_OK;
}


/* the document itself is the value of the paths without steps ("$") */

static void
pb_jscan_root(pb_jscan_t *js, const char *at)
{
    size_t  i;

    for (i = 0; i < js->npaths; i++) {
        if (js->match[i].nsteps == 0) {
            pb_jscan_open_value(js, &js->match[i], at);
        }
    }
}


static int
pb_jscan_root_end(pb_jscan_t *js, const char *at)
{
    size_t  i;

    for (i = 0; i < js->npaths; i++) {
        if (js->match[i].open
            && pb_jscan_close_value(js, &js->match[i], at) != PB_JSCAN_OK)
        {
            return js->rc;
        }
    }

    return PB_JSCAN_OK;
}


/*
 * m's step at depth v matched.  A value it had found is dropped: it was
 * under an earlier member of the same key, which jansson replaces by this
 * one.
 */

static void
pb_jscan_step_in(pb_jscan_t *js, pb_jscan_match_t *m, size_t v,
    const char *at)
{
    m->matched = v - 1;
    js->live[v]--;
    js->hits[v]++;

    if (m->nsteps > m->matched) {
        m->found = 0;
        js->live[v + 1]++;
        return;
    }

    pb_jscan_open_value(js, m, at);
}


static int
pb_jscan_step_out(pb_jscan_t *js, pb_jscan_match_t *m, size_t v,
    const char *at)
{
    if (m->nsteps > m->matched) {
        js->live[v + 1]--;
    }

    m->matched = v - 2;
    js->live[v]++;
    js->hits[v]--;

    return m->open ? pb_jscan_close_value(js, m, at) : PB_JSCAN_OK;
}


/* a key of the object at the top starts: compared as it is decoded */

static void
pb_jscan_key_start(pb_jscan_t *js)
{
    size_t             i, v;
    pb_jscan_match_t  *m;

    v = js->depth + 1;

    for (i = 0; i < js->npaths; i++) {
        m = &js->match[i];

        if (pb_jscan_candidate(m, v)) {
            m->key_at = 0;
            m->key_differs = (m->steps[v - 2].key == NULL);
        }
    }
}


static void
pb_jscan_key_bytes(pb_jscan_t *js, const char *s, size_t n)
{
    size_t                 i, v;
    pb_jscan_match_t      *m;
    const pb_path_step_t  *step;

    v = js->depth + 1;

    for (i = 0; i < js->npaths; i++) {
        m = &js->match[i];

        if (!pb_jscan_candidate(m, v) || m->key_differs) {
            continue;
        }

        step = &m->steps[v - 2];

        if (n > step->key_len - m->key_at
            || memcmp(step->key + m->key_at, s, n) != 0)
        {
            m->key_differs = 1;
            continue;
        }

        m->key_at += n;
    }
}


static void
pb_jscan_open_value(pb_jscan_t *js, pb_jscan_match_t *m, const char *at)
{
    m->found = 0;
    m->len = 0;
    m->open = 1;
    m->from = at;
    js->open++;
}


static int
pb_jscan_close_value(pb_jscan_t *js, pb_jscan_match_t *m, const char *at)
{
    const char  *from;

    from = m->from ? m->from : js->buf;
    m->open = 0;
    m->found = 1;
    js->open--;

    return pb_jscan_keep(js, m, from, at - from);
}


/* the buffer ends: the values being read keep their bytes of it */

static int
pb_jscan_keep_open(pb_jscan_t *js, const char *end)
{
    size_t             i;
    const char        *from;
    pb_jscan_match_t  *m;

    for (i = 0; js->open > 0 && i < js->npaths; i++) {
        m = &js->match[i];

        if (!m->open) {
            continue;
        }

        from = m->from ? m->from : js->buf;
        m->from = NULL;

        if (pb_jscan_keep(js, m, from, end - from) != PB_JSCAN_OK) {
            return js->rc;
        }
    }

    return PB_JSCAN_OK;
}


static int
pb_jscan_keep(pb_jscan_t *js, pb_jscan_match_t *m, const char *s, size_t n)
{
    if (pb_jscan_reserve(m, m->len + n + 1) != PB_JSCAN_OK) {
        return pb_jscan_no_memory(js);
    }

    memcpy(m->text + m->len, s, n);
    m->len += n;

    return PB_JSCAN_OK;
}


static int
pb_jscan_reserve(pb_jscan_match_t *m, size_t size)
{
    char    *text;
    size_t   cap;

    if (size <= m->cap) {
        return PB_JSCAN_OK;
    }

    cap = (m->cap < PB_JS_TEXT_MIN) ? PB_JS_TEXT_MIN : m->cap * 2;

    if (cap < size) {
        cap = size;
    }

    text = realloc(m->text, cap);
    if (text == NULL) {
        return PB_JSCAN_NOMEM;
    }

    m->text = text;
    m->cap = cap;

    return PB_JSCAN_OK;
}


/* a value's bytes (valid JSON) made its text, NUL-terminated */

static int
pb_jscan_write(pb_jscan_t *js, pb_jscan_match_t *m)
{
    switch (m->text[0]) {

    case '"':
        m->len = pb_jscan_unescape(m->text, m->len, js->nul_key);
        break;

    case '{':
    case '[':
        return pb_jscan_write_json(js, m);

    case 'n':
        m->len = 0;
        break;

    case 't':
    case 'f':
        break;

    default:
        return pb_jscan_write_number(js, m);
    }

    m->text[m->len] = '\0';

    return PB_JSCAN_OK;
}


/* as pb_json_number_text writes jansson's integer or real */

static int
pb_jscan_write_number(pb_jscan_t *js, pb_jscan_match_t *m)
{
    char     number[PB_JSON_NUMBER_LEN];
    size_t   n;
    json_t  *real;

    m->text[m->len] = '\0';

    if (!js->big_int && strpbrk(m->text, ".eE") == NULL) {
        /* an integer's text is its digits, but for -0 */
        if (m->len == 2 && memcmp(m->text, "-0", 2) == 0) {
            memcpy(m->text, "0", 2);
            m->len = 1;
        }

        return PB_JSCAN_OK;
    }

    real = json_real(strtod(m->text, NULL));
    n = (real != NULL) ? pb_json_number_text(real, number) : 0;
    json_decref(real);

    if (n == 0 || pb_jscan_reserve(m, n + 1) != PB_JSCAN_OK) {
        return PB_JSCAN_NOMEM;
    }

    memcpy(m->text, number, n);
    m->text[n] = '\0';
    m->len = n;

    return PB_JSCAN_OK;
}


/*
 * An object or an array: its text is jansson's compact JSON of it (keys
 * in the order they came, a duplicate's value the last one), so jansson
 * reads it, as the document would have been read.
 */

static int
pb_jscan_write_json(pb_jscan_t *js, pb_jscan_match_t *m)
{
    char          *text;
    size_t         len;
    json_t        *value;
    json_error_t   err;

    if (js->nul_key) {
        pb_json_nul_to_fffd(m->text, m->len);
    }

    value = json_loadb(m->text, m->len,
                       JSON_ALLOW_NUL
                       | (js->big_int ? JSON_DECODE_INT_AS_REAL : 0),
                       &err);

    text = (value != NULL) ? pb_json_value_text(value, &len) : NULL;
    json_decref(value);

    if (text == NULL) {
        return PB_JSCAN_NOMEM;
    }

    free(m->text);
    m->text = text;
    m->len = len;
    m->cap = len + 1;

    return PB_JSCAN_OK;
}


/* a string's bytes, quotes and all, unescaped in place (they were valid) */

static size_t
pb_jscan_unescape(char *s, size_t len, int nul_fffd)
{
    char        *w;
    uint32_t     code;
    const char  *r, *end;

    w = s;
    r = s + 1;
    end = s + len - 1;

    while (r < end) {
        if (*r != '\\') {
            *w++ = *r++;
            continue;
        }

        if (r[1] != 'u') {
            *w++ = (char) pb_jscan_unescaped(r[1]);
            r += 2;
            continue;
        }

        code = pb_jscan_hex4(r + 2);
        r += 6;

        if (code >= 0xd800 && code <= 0xdbff) {
            code = 0x10000 + ((code - 0xd800) << 10)
                   + (pb_jscan_hex4(r + 2) - 0xdc00);
            r += 6;
        }

        w += pb_jscan_utf8((code == 0 && nul_fffd) ? 0xfffd : code, w);
    }

    return w - s;
}


static const char *
pb_jscan_fail(pb_jscan_t *js, const char *at, const char *why)
{
    js->rc = PB_JSCAN_REFUSED;
    js->error = why;
    js->error_at = js->offset + (size_t) (at - js->buf);

    return NULL;
}


static int
pb_jscan_no_memory(pb_jscan_t *js)
{
    js->rc = PB_JSCAN_NOMEM;
    js->error = "out of memory";
    js->error_at = js->offset;

    return js->rc;
}


/* whether the container at the top is an array */

static int
pb_jscan_in_array(const pb_jscan_t *js)
{
    return (js->arrays[js->depth / 8] >> (js->depth % 8)) & 1;
}


/* whether a value at depth v (2 or more) is compared with m's steps */

static int
pb_jscan_candidate(const pb_jscan_match_t *m, size_t v)
{
    return m->matched + 2 == v && m->nsteps > m->matched;
}


/* the byte of a one-letter escape, or -1 */

static int
pb_jscan_unescaped(char c)
{
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return -1;
    }
}


static int
pb_jscan_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


static uint32_t
pb_jscan_hex4(const char *p)
{
    int       i;
    uint32_t  code;

    code = 0;

    for (i = 0; i < 4; i++) {
        code = code * 16 + pb_jscan_hex_digit(p[i]);
    }

    return code;
}


static size_t
pb_jscan_utf8(uint32_t code, char *buf)
{
    if (code < 0x80) {
        buf[0] = (char) code;
        return 1;
    }

    if (code < 0x800) {
        buf[0] = (char) (0xc0 | (code >> 6));
        buf[1] = (char) (0x80 | (code & 0x3f));
        return 2;
    }

    if (code < 0x10000) {
        buf[0] = (char) (0xe0 | (code >> 12));
        buf[1] = (char) (0x80 | ((code >> 6) & 0x3f));
        buf[2] = (char) (0x80 | (code & 0x3f));
        return 3;
    }

    buf[0] = (char) (0xf0 | (code >> 18));
    buf[1] = (char) (0x80 | ((code >> 12) & 0x3f));
    buf[2] = (char) (0x80 | ((code >> 6) & 0x3f));
    buf[3] = (char) (0x80 | (code & 0x3f));

    return 4;
}
