/*
 * distillguard.ingest._columnar: canonical JSON Lines -> exchange columns, in C.
 *
 * Why: per line, Python decoding and row building cost ~25 us for a 3 KB exchange, more than the
 * whole CPU budget of 100k exchanges/s on 2 cores. This walks a block of lines with yyjson (the parser
 * orjson itself is built on, so it accepts the JSON orjson.loads accepts) and writes the columns of EXCHANGE_SCHEMA straight into buffers that pyarrow wraps.
 *
 * Numbers beyond int64/uint64/double are read as raw text (YYJSON_READ_BIGNUM_AS_RAW) only to hand the line
 * back: Python keeps them as spelled in some lines and re-spells them in others.
 *
 * The contract is the same as ingest/fastpath.py: Python's model.flatten stays the definition. This
 * code accepts a strict subset of lines (the common shape, unknown top-level fields included) and must give them the Python path's values;
 * every other line, bad ones included, is handed back as "unusual" and Python decides it, errors and
 * all. tests/test_ingest_native.py checks both claims on fixtures and thousands of mutations.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "yyjson.h"
#define XXH_INLINE_ALL
#include "xxhash.h"

/* ---- growable byte buffers ------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    size_t hint; /* the size this buffer reached last time: reserved up front, so growing rarely copies */
} buf_t;

static int buf_grow(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(buf_t *b, const void *src, size_t n) {
    if (buf_grow(b, n)) return -1;
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int buf_start(buf_t *b) {
    b->len = 0;
    return b->hint && !b->cap ? buf_grow(b, b->hint + b->hint / 8) : 0;
}

/* A finished buffer handed to Python without a copy: freed when the last Arrow array over it goes. */
typedef struct {
    PyObject_HEAD
    char *p;
    Py_ssize_t len;
} owned_t;

static void owned_dealloc(owned_t *self) {
    free(self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int owned_getbuffer(owned_t *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->p ? self->p : (char *)"", self->len, 1, flags);
}

static PyBufferProcs owned_as_buffer = {(getbufferproc)owned_getbuffer, NULL};

static PyTypeObject OwnedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.ingest._columnar.Buffer",
    .tp_doc = "Read-only bytes of one decoded column, owned by this object.",
    .tp_basicsize = sizeof(owned_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)owned_dealloc,
    .tp_as_buffer = &owned_as_buffer,
};

static PyObject *buf_steal(buf_t *b) {
    owned_t *owned = PyObject_New(owned_t, &OwnedType);
    if (!owned) return NULL;
    owned->p = b->p;
    owned->len = (Py_ssize_t)b->len;
    b->hint = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return (PyObject *)owned;
}

/* ---- columns, in EXCHANGE_SCHEMA order -------------------------------------------------------- */

enum kind { K_STR, K_U64, K_I64, K_I32, K_F64, K_BOOL };

enum col {
    C_ID, C_ID_HASH, C_TS, C_ACCOUNT_ID, C_API_KEY_ID, C_ORG_ID, C_IP, C_USER_AGENT, C_ASN, C_COUNTRY, C_TLS_FP,
    C_ENDPOINT, C_MODEL, C_STREAM, C_MAX_TOKENS, C_TEMPERATURE, C_TOP_P, C_REASONING_EFFORT, C_N_MESSAGES,
    C_N_USER_TURNS, C_N_ASSISTANT_TURNS, C_N_TOOLS, C_HAS_IMAGE, C_SYSTEM_TEXT, C_USER_TEXT, C_PROMPT_CHARS,
    C_RESPONSE_TEXT, C_REASONING_TEXT, C_RESPONSE_CHARS, C_REASONING_CHARS, C_N_TOOL_CALLS, C_FINISH_REASON,
    C_PROMPT_TOKENS, C_COMPLETION_TOKENS, C_REASONING_TOKENS, C_STATUS, C_LATENCY_MS, C_REQUEST_JSON,
    C_RESPONSE_JSON, C_EXTRA_JSON, C_N_CHOICES, C_LOGPROBS, C_TOP_LOGPROBS, C_CITED_CALL, C_ISSUED_CALL, N_COLS
};

static const char *const COL_NAMES[N_COLS] = {
    "id", "id_hash", "ts", "account_id", "api_key_id", "org_id", "ip", "user_agent", "asn", "country", "tls_fp",
    "endpoint", "model", "stream", "max_tokens", "temperature", "top_p", "reasoning_effort", "n_messages",
    "n_user_turns", "n_assistant_turns", "n_tools", "has_image", "system_text", "user_text", "prompt_chars",
    "response_text", "reasoning_text", "response_chars", "reasoning_chars", "n_tool_calls", "finish_reason",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "status", "latency_ms", "request_json",
    "response_json", "extra_json", "n_choices", "logprobs", "top_logprobs", "cited_call", "issued_call"};

static const enum kind COL_KINDS[N_COLS] = {
    K_STR, K_U64, K_I64, K_STR, K_STR, K_STR, K_STR, K_STR, K_I64, K_STR, K_STR,
    K_STR, K_STR, K_BOOL, K_I64, K_F64, K_F64, K_STR, K_I32,
    K_I32, K_I32, K_I32, K_BOOL, K_STR, K_STR, K_I64,
    K_STR, K_STR, K_I64, K_I64, K_I32, K_STR,
    K_I64, K_I64, K_I64, K_I32, K_I64, K_STR,
    K_STR, K_STR, K_I32, K_BOOL, K_I32, K_U64, K_U64};

typedef struct {
    buf_t values;  /* fixed-width values, or string bytes */
    buf_t offsets; /* int32 offsets (strings only), one per row plus the leading 0 */
    buf_t valid;   /* one byte per row: 1 valid, 0 null (packed into a bitmap by the caller) */
} column_t;

/* One line's values before they are committed: a line is either wholly appended or handed back. */
typedef struct {
    int valid;
    const char *s; /* strings */
    size_t n;
    int64_t i;
    uint64_t u;
    double f;
} cell_t;

typedef struct {
    column_t cols[N_COLS];
    buf_t rows;    /* int32: index (among non-blank lines) of each accepted row */
    buf_t scratch; /* joined texts of the current line */
    buf_t copy;    /* the current line, parsed in place (yyjson INSITU: strings point into it) */
    buf_t system;  /* system/developer texts of the current line, joined */
    Py_ssize_t n_rows;
    size_t committed; /* bytes of the lines decoded so far in this block */
    yyjson_alc *alc;
} state_t;

/* ---- small readers with flatten's rules --------------------------------------------------------- */

#define UNUSUAL 1
#define NO_MEMORY -1
#define TS_MIN_MS 0
#define TS_MAX_MS INT64_C(4102444800000) /* 2100-01-01T00:00:00Z */
#define TOP_LOGPROBS_MAX 20                /* model.exchange.TOP_LOGPROBS_MAX */

static inline int is_null_or_missing(yyjson_val *v) { return v == NULL || yyjson_is_null(v); }

/* Python's _str: null/missing -> None, string -> value, anything else an error (unusual here). */
static int opt_str(yyjson_val *v, cell_t *c) {
    if (is_null_or_missing(v)) {
        c->valid = 0;
        return 0;
    }
    if (!yyjson_is_str(v)) return UNUSUAL;
    c->valid = 1;
    c->s = yyjson_get_str(v);
    c->n = yyjson_get_len(v);
    return 0;
}

static int req_str(yyjson_val *v, cell_t *c) {
    if (opt_str(v, c) || !c->valid || c->n == 0) return UNUSUAL;
    return 0;
}

/* Python's _int: null/missing -> None, an integer in [-limit-1, limit] -> value, else an error. */
static int opt_int(yyjson_val *v, cell_t *c, int64_t limit) {
    if (is_null_or_missing(v)) {
        c->valid = 0;
        return 0;
    }
    if (yyjson_is_uint(v)) {
        uint64_t u = yyjson_get_uint(v);
        if (u > (uint64_t)limit) return UNUSUAL;
        c->i = (int64_t)u;
    } else if (yyjson_is_sint(v)) {
        int64_t i = yyjson_get_sint(v);
        if (i < -limit - 1) return UNUSUAL;
        c->i = i;
    } else {
        return UNUSUAL; /* bool, float, string, container */
    }
    c->valid = 1;
    return 0;
}

/* Python's _int(..., count=True): also never negative. */
static int opt_count(yyjson_val *v, cell_t *c) {
    if (opt_int(v, c, INT64_MAX)) return UNUSUAL;
    return c->valid && c->i < 0 ? UNUSUAL : 0;
}

/* Python's _num: an int or float as a float (C's int -> double conversion rounds like Python's float()). */
static int opt_num(yyjson_val *v, cell_t *c) {
    if (is_null_or_missing(v)) {
        c->valid = 0;
        return 0;
    }
    if (yyjson_is_real(v)) c->f = yyjson_get_real(v);
    else if (yyjson_is_uint(v)) c->f = (double)yyjson_get_uint(v);
    else if (yyjson_is_sint(v)) c->f = (double)yyjson_get_sint(v);
    else return UNUSUAL;
    c->valid = 1;
    return 0;
}

static inline int key_is(yyjson_val *key, const char *name, size_t n) {
    return yyjson_get_len(key) == n && memcmp(yyjson_get_str(key), name, n) == 0;
}
#define KEY(k, lit) key_is(k, lit, sizeof(lit) - 1)

/* dict.get with a dict's last-wins rule for duplicate keys (yyjson keeps them all; yyjson_obj_get finds the first) */
static yyjson_val *get_last(yyjson_val *obj, const char *name, size_t n) {
    yyjson_val *found = NULL, *key;
    yyjson_obj_iter it;
    yyjson_obj_iter_init(obj, &it);
    while ((key = yyjson_obj_iter_next(&it))) {
        if (key_is(key, name, n)) found = yyjson_obj_iter_get_val(key);
    }
    return found;
}
#define GET(obj, lit) get_last(obj, lit, sizeof(lit) - 1)

static inline int str_is(yyjson_val *v, const char *lit, size_t n) {
    return yyjson_is_str(v) && yyjson_get_len(v) == n && memcmp(yyjson_get_str(v), lit, n) == 0;
}
#define STR_IS(v, lit) str_is(v, lit, sizeof(lit) - 1)

/* code points in valid UTF-8 (yyjson has validated it): Python's len() of the decoded str. Eight bytes at a
 * time: a byte starts a code point unless it is 10xxxxxx. */
static int64_t code_points(const char *s, size_t n) {
    int64_t continuation = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        continuation += __builtin_popcountll(w & ~(w << 1) & 0x8080808080808080ULL);
    }
    for (; i < n; i++) continuation += ((unsigned char)s[i] & 0xC0) == 0x80;
    return (int64_t)n - continuation;
}

/* Deepest nesting below v (v counts 1), or TOO_ODD past `limit` or at a number beyond int64/uint64/double.
 * orjson reads 1024 levels but writes only 254, so flatten refuses deeper bodies; big numbers are kept as
 * spelled by the msgspec fast path and re-spelled by flatten. Python decides both. */
#define TOO_ODD (1 << 20)

static int depth(yyjson_val *v, int limit) {
    if (yyjson_is_raw(v)) return TOO_ODD;
    if (!yyjson_is_ctn(v)) return 1;
    if (limit <= 0) return TOO_ODD;
    int deepest = 0;
    yyjson_val *child;
    yyjson_arr_iter ai;
    yyjson_obj_iter oi;
    int array = yyjson_is_arr(v);
    if (array) yyjson_arr_iter_init(v, &ai);
    else yyjson_obj_iter_init(v, &oi);
    while ((child = array ? yyjson_arr_iter_next(&ai) : yyjson_obj_iter_next(&oi))) {
        if (!array) child = yyjson_obj_iter_get_val(child);
        if (yyjson_is_ctn(child) || yyjson_is_raw(child)) {
            int d = depth(child, limit - 1);
            if (d > deepest) deepest = d;
        }
    }
    return deepest + 1;
}

/* ---- timestamps: the strict RFC 3339 subset whose value is certain ----------------------------- */

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int64_t days_from_civil(int64_t y, int m, int d) { /* H. Hinnant's algorithm */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/*
 * YYYY-MM-DDTHH:MM:SS[.fff|.ffffff](Z|z|+HH:MM|-HH:MM) -> what parse_ts returns: int(ts.timestamp() * 1000),
 * where timestamp() divides the integer microseconds by 10**6 (correctly rounded, as C's double division is
 * while both operands are exact, below 2**53 us, i.e. before the year 2255). Other spellings are unusual.
 */
static int parse_ts(const char *s, size_t n, int64_t *out) {
    int year, month, day, hour, minute, second, frac = 0, oh = 0, om = 0, sign = 0;
    size_t frac_digits = 0;
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return UNUSUAL;
    if (digits(s, 4, &year) || digits(s + 5, 2, &month) || digits(s + 8, 2, &day) || digits(s + 11, 2, &hour)
        || digits(s + 14, 2, &minute) || digits(s + 17, 2, &second))
        return UNUSUAL;
    size_t pos = 19;
    if (s[pos] == '.') {
        size_t start = ++pos;
        while (pos < n && s[pos] >= '0' && s[pos] <= '9') pos++;
        frac_digits = pos - start;
        if (frac_digits != 3 && frac_digits != 6) return UNUSUAL;
        digits(s + start, (int)frac_digits, &frac);
        if (frac_digits == 3) frac *= 1000;
    }
    if (pos == n - 1 && (s[pos] == 'Z' || s[pos] == 'z')) {
        sign = 0;
    } else if (pos + 6 == n && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
        if (digits(s + pos + 1, 2, &oh) || digits(s + pos + 4, 2, &om) || oh > 23 || om > 59) return UNUSUAL;
        sign = s[pos] == '-' ? -1 : 1;
    } else {
        return UNUSUAL;
    }
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return UNUSUAL;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap)) return UNUSUAL;
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
                      - (int64_t)sign * (oh * 3600 + om * 60);
    int64_t micros = seconds * 1000000 + frac;
    if (micros >= ((int64_t)1 << 53) || micros <= -((int64_t)1 << 53)) return UNUSUAL;
    *out = (int64_t)(((double)micros / 1e6) * 1000.0);
    if (*out < TS_MIN_MS || *out >= TS_MAX_MS) return UNUSUAL; /* model.exchange.TS_MIN_MS/TS_MAX_MS */
    return 0;
}

/* ---- client addresses: ipaddress.ip_address's rules, without IPv6 zones ------------------------- */

/* IPv4Address._ip_int_from_string: four decimal octets, 1-3 digits, no leading zero, at most 255. */
static int ipv4_ok(const char *s, size_t n, uint32_t *out) {
    size_t pos = 0;
    uint32_t value = 0;
    for (int octet = 0; octet < 4; octet++) {
        size_t start = pos;
        unsigned v = 0;
        while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
            v = v * 10 + (unsigned)(s[pos] - '0');
            if (++pos - start > 3) return 0;
        }
        size_t len = pos - start;
        if (len == 0 || (len > 1 && s[start] == '0') || v > 255) return 0;
        value = value << 8 | v;
        if (octet < 3) {
            if (pos >= n || s[pos] != '.') return 0;
            pos++;
        }
    }
    if (pos != n) return 0;
    if (out) *out = value;
    return 1;
}

static inline int is_hex(char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* IPv6Address._ip_int_from_string: split on ':' (3 to 9 parts, an IPv4 tail counting as two), at most one
 * empty part inside (the '::'), an empty first/last part only as part of it, 1-4 hex digits in the parts read. */
static int ipv6_ok(const char *s, size_t n) {
    enum { MAX_PARTS = 10 }; /* one more than allowed: enough to know there are too many */
    size_t starts[MAX_PARTS], lens[MAX_PARTS];
    int parts = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == ':') {
            if (parts == MAX_PARTS) return 0;
            starts[parts] = start;
            lens[parts] = i - start;
            parts++;
            start = i + 1;
        }
    }
    if (parts < 3) return 0;
    int v4_tail = memchr(s + starts[parts - 1], '.', lens[parts - 1]) != NULL;
    if (v4_tail && !ipv4_ok(s + starts[parts - 1], lens[parts - 1], NULL)) return 0;
    int total = parts + v4_tail; /* the tail becomes two hextets */
    if (total > 9) return 0;
    int skip = -1;
    for (int i = 1; i < total - 1; i++) {
        if (i < parts - (v4_tail ? 1 : 0) && lens[i] == 0) { /* the tail's two hextets are never empty */
            if (skip >= 0) return 0;
            skip = i;
        }
    }
    int hi, lo;
    if (skip >= 0) {
        hi = skip;
        lo = total - skip - 1;
        if (lens[0] == 0 && --hi) return 0;
        if (!v4_tail && lens[parts - 1] == 0 && --lo) return 0;
        if (8 - (hi + lo) < 1) return 0;
    } else {
        if (total != 8 || lens[0] == 0 || (!v4_tail && lens[parts - 1] == 0)) return 0;
        hi = total;
        lo = 0;
    }
    /* the hextets read: the first `hi` parts and the last `lo` (an IPv4 tail's two are already checked) */
    for (int k = 0; k < total; k++) {
        if (!(k < hi || k >= total - lo)) continue;
        if (v4_tail && k >= parts - 1) continue;
        if (lens[k] == 0 || lens[k] > 4) return 0;
        for (size_t j = 0; j < lens[k]; j++)
            if (!is_hex(s[starts[k] + j])) return 0;
    }
    return 1;
}

static int contains(const char *s, size_t n, const char *needle, size_t m) { /* memmem, which C11 lacks */
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, m) == 0) return 1;
    return 0;
}

static int ip_ok(const char *s, size_t n) {
    if (memchr(s, '%', n)) return 0;
    return memchr(s, ':', n) ? ipv6_ok(s, n) : ipv4_ok(s, n, NULL);
}

/* ---- message content ------------------------------------------------------------------------- */

/* _content_text: the text of a content value (string, parts or null) into scratch; sets *image. */
static int content_text(state_t *st, yyjson_val *content, int *image, size_t *start, size_t *len) {
    *start = st->scratch.len;
    if (is_null_or_missing(content)) {
        *len = 0;
        return 0;
    }
    if (yyjson_is_str(content)) {
        if (buf_put(&st->scratch, yyjson_get_str(content), yyjson_get_len(content))) return NO_MEMORY;
    } else if (yyjson_is_arr(content)) {
        int first = 1;
        yyjson_val *part;
        yyjson_arr_iter it;
        yyjson_arr_iter_init(content, &it);
        while ((part = yyjson_arr_iter_next(&it))) {
            if (!yyjson_is_obj(part)) return UNUSUAL;
            yyjson_val *kind = GET(part, "type");
            if (STR_IS(kind, "text") || STR_IS(kind, "input_text") || STR_IS(kind, "output_text")) {
                yyjson_val *text = GET(part, "text");
                if (yyjson_is_str(text)) {
                    if ((!first && buf_put(&st->scratch, "\n", 1))
                        || buf_put(&st->scratch, yyjson_get_str(text), yyjson_get_len(text)))
                        return NO_MEMORY;
                    first = 0;
                }
            } else if (STR_IS(kind, "image_url") || STR_IS(kind, "input_image") || STR_IS(kind, "image")) {
                *image = 1;
            }
        }
    } else {
        return UNUSUAL;
    }
    *len = st->scratch.len - *start;
    return 0;
}

/* ---- one line ---------------------------------------------------------------------------------- */

typedef struct {
    cell_t c[N_COLS];
    size_t system_start, system_len, user_start, user_len, text_start, text_len;
    int has_system, has_response_text;
    const char *line, *copy; /* the line as read, and its copy that yyjson parsed in place */
    size_t n;
    yyjson_val *request_key, *request_next, *response_key, *response_next; /* keys around each body */
    const char *request_json, *response_json; /* the bodies as spelled: slices of the line, or written below */
    size_t request_json_len, response_json_len;
    char *written[2]; /* bodies yyjson wrote (with st->alc) when a slice could not be found */
    int has_extra;
    size_t extra_start, extra_len; /* extra_json, in scratch */
} line_t;

static void line_free(state_t *st, line_t *ln) {
    for (int i = 0; i < 2; i++) {
        if (ln->written[i]) st->alc->free(st->alc->ctx, ln->written[i]);
        ln->written[i] = NULL;
    }
}

static inline int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/*
 * The text of a top-level value as it arrived: from after `"name":` to before the next key's `,` (or the
 * root's closing brace). The parse has validated the JSON, so only whitespace and separators lie between
 * tokens. A key spelled with escapes is not looked for (returns -1; the caller writes the value instead).
 */
static int raw_value(line_t *ln, yyjson_val *key, yyjson_val *next, const char *name, size_t name_len,
                     const char **out, size_t *out_len) {
    const char *line = ln->line;
    size_t n = ln->n, o = (size_t)(yyjson_get_str(key) - ln->copy);
    if (o == 0 || o + name_len >= n || line[o - 1] != '"' || memcmp(line + o, name, name_len) != 0
        || line[o + name_len] != '"')
        return -1;
    size_t start = o + name_len + 1;
    while (start < n && is_ws(line[start])) start++;
    if (start >= n || line[start] != ':') return -1;
    start++;
    while (start < n && is_ws(line[start])) start++;
    size_t end;
    if (next) {
        end = (size_t)(yyjson_get_str(next) - ln->copy);
        if (end < 2 || end > n || line[end - 1] != '"') return -1;
        end--;
        while (end > start && is_ws(line[end - 1])) end--;
        if (end <= start || line[end - 1] != ',') return -1;
        end--;
    } else {
        end = n;
        while (end > start && is_ws(line[end - 1])) end--;
        if (end <= start || line[end - 1] != '}') return -1;
        end--;
    }
    while (end > start && is_ws(line[end - 1])) end--;
    if (end <= start) return -1;
    *out = line + start;
    *out_len = end - start;
    return 0;
}

/* A body's text: its slice of the line, or (for a key spelled with escapes) yyjson's writing of it. */
static int body_json(state_t *st, line_t *ln, yyjson_val *value, yyjson_val *key, yyjson_val *next,
                     const char *name, size_t name_len, int slot, const char **out, size_t *out_len) {
    if (raw_value(ln, key, next, name, name_len, out, out_len) == 0) return 0;
    yyjson_write_err err;
    ln->written[slot] = yyjson_val_write_opts(value, YYJSON_WRITE_NOFLAG, st->alc, out_len, &err);
    *out = ln->written[slot];
    return *out ? 0 : UNUSUAL;
}

#define TRY(expr)            \
    do {                     \
        int _r = (expr);     \
        if (_r) return _r;   \
    } while (0)

static int set_int(cell_t *c, int64_t v) {
    c->valid = 1;
    c->i = v;
    return 0;
}

/* model.exchange.call_hash: xxh3-64 of a non-empty string tool call id; anything else leaves the cell null. */
static void call_hash(yyjson_val *v, cell_t *c) {
    if (yyjson_is_str(v) && yyjson_get_len(v) > 0) {
        c->valid = 1;
        c->u = XXH3_64bits(yyjson_get_str(v), yyjson_get_len(v));
    }
}

static int read_request(state_t *st, yyjson_val *request, line_t *ln) {
    cell_t *c = ln->c;
    for (int k = C_MODEL; k <= C_REASONING_EFFORT; k++) c[k].valid = 0;
    c[C_N_CHOICES].valid = c[C_LOGPROBS].valid = c[C_TOP_LOGPROBS].valid = c[C_CITED_CALL].valid = 0;
    set_int(&c[C_STREAM], 0);
    set_int(&c[C_N_MESSAGES], 0);
    set_int(&c[C_N_USER_TURNS], 0);
    set_int(&c[C_N_ASSISTANT_TURNS], 0);
    set_int(&c[C_N_TOOLS], 0);
    set_int(&c[C_HAS_IMAGE], 0);
    set_int(&c[C_PROMPT_CHARS], 0);
    ln->user_start = ln->user_len = 0;
    ln->has_system = 0;
    if (is_null_or_missing(request)) return 0; /* flatten reads null as {} and stores no body */
    if (!yyjson_is_obj(request)) return UNUSUAL;
    yyjson_val *model = NULL, *stream = NULL, *messages = NULL, *mct = NULL, *mt = NULL, *temperature = NULL,
               *top_p = NULL, *effort = NULL, *tools = NULL, *n = NULL, *logprobs = NULL, *top_logprobs = NULL,
               *key;
    yyjson_obj_iter it;
    yyjson_obj_iter_init(request, &it);
    while ((key = yyjson_obj_iter_next(&it))) {
        yyjson_val *v = yyjson_obj_iter_get_val(key);
        if (KEY(key, "model")) model = v;
        else if (KEY(key, "stream")) stream = v;
        else if (KEY(key, "messages")) messages = v;
        else if (KEY(key, "max_completion_tokens")) mct = v;
        else if (KEY(key, "max_tokens")) mt = v;
        else if (KEY(key, "temperature")) temperature = v;
        else if (KEY(key, "top_p")) top_p = v;
        else if (KEY(key, "reasoning_effort")) effort = v;
        else if (KEY(key, "tools")) tools = v;
        else if (KEY(key, "n")) n = v;
        else if (KEY(key, "logprobs")) logprobs = v;
        else if (KEY(key, "top_logprobs")) top_logprobs = v;
    }
    TRY(opt_str(model, &c[C_MODEL]));
    if (!is_null_or_missing(stream)) { /* bool(value): only booleans are common */
        if (!yyjson_is_bool(stream)) return UNUSUAL;
        c[C_STREAM].i = yyjson_get_bool(stream);
    }
    TRY(opt_int(mct, &c[C_MAX_TOKENS], INT64_MAX));
    if (!c[C_MAX_TOKENS].valid) TRY(opt_int(mt, &c[C_MAX_TOKENS], INT64_MAX));
    TRY(opt_num(temperature, &c[C_TEMPERATURE]));
    TRY(opt_num(top_p, &c[C_TOP_P]));
    TRY(opt_str(effort, &c[C_REASONING_EFFORT]));
    /* n: a positive int32; logprobs: a boolean (an integer is the legacy Completions API's count, which Python
     * reads); top_logprobs: 0..20. Anything else is a bad line or an odd one: Python decides. */
    TRY(opt_int(n, &c[C_N_CHOICES], INT32_MAX));
    if (c[C_N_CHOICES].valid && c[C_N_CHOICES].i < 1) return UNUSUAL;
    if (!is_null_or_missing(logprobs)) {
        if (!yyjson_is_bool(logprobs)) return UNUSUAL;
        set_int(&c[C_LOGPROBS], yyjson_get_bool(logprobs));
    }
    TRY(opt_int(top_logprobs, &c[C_TOP_LOGPROBS], INT32_MAX));
    if (c[C_TOP_LOGPROBS].valid && (c[C_TOP_LOGPROBS].i < 0 || c[C_TOP_LOGPROBS].i > TOP_LOGPROBS_MAX)) return UNUSUAL;
    if (!is_null_or_missing(tools)) {
        if (!yyjson_is_arr(tools)) return UNUSUAL;
        c[C_N_TOOLS].i = (int64_t)yyjson_arr_size(tools);
    }
    if (!is_null_or_missing(messages)) {
        if (!yyjson_is_arr(messages)) return UNUSUAL; /* falsy non-lists ("", 0, {}) are rare: flatten decides */
        c[C_N_MESSAGES].i = (int64_t)yyjson_arr_size(messages);
        /* system texts are joined in st->system (reused: no allocation per line), then copied after the rest */
        buf_t *system = &st->system;
        system->len = 0;
        int image = 0, n_system = 0;
        int64_t chars = 0;
        yyjson_val *message;
        yyjson_arr_iter ai;
        yyjson_arr_iter_init(messages, &ai);
        int rc = 0;
        while ((message = yyjson_arr_iter_next(&ai))) {
            if (!yyjson_is_obj(message)) {
                rc = UNUSUAL;
                break;
            }
            size_t start, len;
            rc = content_text(st, GET(message, "content"), &image, &start, &len);
            if (rc) break;
            chars += code_points(st->scratch.p + start, len);
            yyjson_val *role = GET(message, "role");
            if (STR_IS(role, "system") || STR_IS(role, "developer")) {
                if ((n_system++ && buf_put(system, "\n", 1)) || buf_put(system, st->scratch.p + start, len)) {
                    rc = NO_MEMORY;
                    break;
                }
                st->scratch.len = start;
            } else if (STR_IS(role, "user")) {
                c[C_N_USER_TURNS].i++;
                ln->user_start = start; /* the last user text wins; earlier ones stay in scratch unused */
                ln->user_len = len;
            } else {
                if (STR_IS(role, "assistant")) c[C_N_ASSISTANT_TURNS].i++;
                else if (STR_IS(role, "tool") && !c[C_CITED_CALL].valid) call_hash(GET(message, "tool_call_id"),
                                                                                   &c[C_CITED_CALL]);
                st->scratch.len = start;
            }
        }
        if (!rc && n_system) {
            ln->has_system = 1;
            ln->system_start = st->scratch.len;
            ln->system_len = system->len;
            if (buf_put(&st->scratch, system->p, system->len)) rc = NO_MEMORY;
        }
        if (rc) return rc;
        c[C_HAS_IMAGE].i = image;
        c[C_PROMPT_CHARS].i = chars;
    }
    if (yyjson_obj_size(request) > 0) /* flatten stores no body for {} */
        return body_json(st, ln, request, ln->request_key, ln->request_next, "request", 7, 0, &ln->request_json,
                         &ln->request_json_len);
    return 0;
}

static int read_response(state_t *st, yyjson_val *response, line_t *ln) {
    cell_t *c = ln->c;
    ln->has_response_text = 0;
    c[C_REASONING_TEXT].valid = 0;
    c[C_FINISH_REASON].valid = 0;
    c[C_PROMPT_TOKENS].valid = c[C_COMPLETION_TOKENS].valid = c[C_REASONING_TOKENS].valid = 0;
    c[C_ISSUED_CALL].valid = 0;
    set_int(&c[C_N_TOOL_CALLS], 0);
    if (is_null_or_missing(response)) return 0;
    if (!yyjson_is_obj(response)) return UNUSUAL;
    yyjson_val *choices = GET(response, "choices");
    if (!is_null_or_missing(choices)) {
        if (!yyjson_is_arr(choices)) return UNUSUAL;
        yyjson_val *choice = yyjson_arr_get_first(choices);
        if (choice) {
            if (!yyjson_is_obj(choice)) return UNUSUAL;
            yyjson_val *message = GET(choice, "message");
            if (!is_null_or_missing(message) && !yyjson_is_obj(message)) return UNUSUAL;
            int image = 0;
            if (message) {
                TRY(content_text(st, GET(message, "content"), &image, &ln->text_start, &ln->text_len));
                yyjson_val *reasoning = GET(message, "reasoning_content");
                if (yyjson_is_str(reasoning)) TRY(opt_str(reasoning, &c[C_REASONING_TEXT]));
                yyjson_val *calls = GET(message, "tool_calls");
                if (yyjson_is_arr(calls)) {
                    c[C_N_TOOL_CALLS].i = (int64_t)yyjson_arr_size(calls);
                    yyjson_val *first = yyjson_arr_get_first(calls);
                    if (yyjson_is_obj(first)) call_hash(GET(first, "id"), &c[C_ISSUED_CALL]);
                }
            } else {
                ln->text_start = st->scratch.len;
                ln->text_len = 0;
            }
            ln->has_response_text = 1;
            yyjson_val *finish = GET(choice, "finish_reason");
            if (yyjson_is_str(finish)) TRY(opt_str(finish, &c[C_FINISH_REASON]));
        }
    }
    yyjson_val *usage = GET(response, "usage");
    if (!is_null_or_missing(usage)) {
        if (!yyjson_is_obj(usage)) return UNUSUAL;
        TRY(opt_count(GET(usage, "prompt_tokens"), &c[C_PROMPT_TOKENS]));
        TRY(opt_count(GET(usage, "completion_tokens"), &c[C_COMPLETION_TOKENS]));
        yyjson_val *details = GET(usage, "completion_tokens_details");
        if (yyjson_is_obj(details))
            TRY(opt_count(GET(details, "reasoning_tokens"), &c[C_REASONING_TOKENS]));
    }
    return body_json(st, ln, response, ln->response_key, ln->response_next, "response", 8, 1, &ln->response_json,
                     &ln->response_json_len);
}

/* extra_json for unknown top-level fields: {"key":value,...} from the line as spelled (flatten keeps them too).
 * A key spelled with escapes, or repeated, is left to Python (a dict's order and last-wins rule). */
static int extra_json(state_t *st, line_t *ln, yyjson_val **keys, int n_keys, const int *extra, int n_extra) {
    ln->extra_start = st->scratch.len;
    for (int e = 0; e < n_extra; e++) {
        yyjson_val *key = keys[extra[e]];
        for (int f = 0; f < e; f++)
            if (yyjson_equals_strn(keys[extra[f]], yyjson_get_str(key), yyjson_get_len(key))) return UNUSUAL;
        const char *value;
        size_t value_len, name_len = yyjson_get_len(key);
        yyjson_val *next = extra[e] + 1 < n_keys ? keys[extra[e] + 1] : NULL;
        if (raw_value(ln, key, next, yyjson_get_str(key), name_len, &value, &value_len)) return UNUSUAL;
        if (buf_put(&st->scratch, e ? ",\"" : "{\"", 2) || buf_put(&st->scratch, yyjson_get_str(key), name_len)
            || buf_put(&st->scratch, "\":", 2) || buf_put(&st->scratch, value, value_len))
            return NO_MEMORY;
    }
    if (buf_put(&st->scratch, "}", 1)) return NO_MEMORY;
    ln->extra_len = st->scratch.len - ln->extra_start;
    return 0;
}

#define MAX_KEYS 64

static int read_line(state_t *st, yyjson_val *root, line_t *ln) {
    cell_t *c = ln->c;
    if (!yyjson_is_obj(root)) return UNUSUAL;
    yyjson_val *id = NULL, *ts = NULL, *account = NULL, *key_id = NULL, *org = NULL, *client = NULL,
               *endpoint = NULL, *request = NULL, *response = NULL, *status = NULL, *latency = NULL, *key;
    yyjson_val *keys[MAX_KEYS]; /* the root's keys in order: a value's text ends where the next key starts */
    int n_keys = 0, n_extra = 0, extra[MAX_KEYS], request_at = -1, response_at = -1;
    yyjson_obj_iter it;
    yyjson_obj_iter_init(root, &it);
    while ((key = yyjson_obj_iter_next(&it))) {
        if (n_keys == MAX_KEYS) return UNUSUAL;
        keys[n_keys] = key;
        yyjson_val *v = yyjson_obj_iter_get_val(key);
        if (KEY(key, "id")) id = v;
        else if (KEY(key, "ts")) ts = v;
        else if (KEY(key, "account_id")) account = v;
        else if (KEY(key, "api_key_id")) key_id = v;
        else if (KEY(key, "org_id")) org = v;
        else if (KEY(key, "client")) client = v;
        else if (KEY(key, "endpoint")) endpoint = v;
        else if (KEY(key, "request")) request = v, request_at = n_keys;
        else if (KEY(key, "response")) response = v, response_at = n_keys;
        else if (KEY(key, "status")) status = v;
        else if (KEY(key, "latency_ms")) latency = v;
        else extra[n_extra++] = n_keys;
        n_keys++;
    }
    if (request_at >= 0) {
        ln->request_key = keys[request_at];
        ln->request_next = request_at + 1 < n_keys ? keys[request_at + 1] : NULL;
    }
    if (response_at >= 0) {
        ln->response_key = keys[response_at];
        ln->response_next = response_at + 1 < n_keys ? keys[response_at + 1] : NULL;
    }
    ln->has_extra = n_extra > 0;
    if (n_extra) TRY(extra_json(st, ln, keys, n_keys, extra, n_extra));
    TRY(req_str(id, &c[C_ID]));
    if (!yyjson_is_str(ts) || parse_ts(yyjson_get_str(ts), yyjson_get_len(ts), &c[C_TS].i)) return UNUSUAL;
    c[C_TS].valid = 1;
    TRY(req_str(account, &c[C_ACCOUNT_ID]));
    if (!yyjson_is_obj(client)) return UNUSUAL;
    TRY(req_str(GET(client, "ip"), &c[C_IP]));
    if (!ip_ok(c[C_IP].s, c[C_IP].n)) return UNUSUAL;
    TRY(opt_str(GET(client, "user_agent"), &c[C_USER_AGENT]));
    TRY(opt_int(GET(client, "asn"), &c[C_ASN], INT64_MAX));
    TRY(opt_str(GET(client, "country"), &c[C_COUNTRY]));
    TRY(opt_str(GET(client, "tls_fp"), &c[C_TLS_FP]));
    TRY(opt_str(key_id, &c[C_API_KEY_ID]));
    TRY(opt_str(org, &c[C_ORG_ID]));
    TRY(opt_str(endpoint, &c[C_ENDPOINT]));
    /* Responses API bodies (model.exchange.is_responses_endpoint) are read by Python */
    if (c[C_ENDPOINT].valid && contains(c[C_ENDPOINT].s, c[C_ENDPOINT].n, "/responses", 10)) return UNUSUAL;
    TRY(opt_int(status, &c[C_STATUS], INT32_MAX));
    TRY(opt_count(latency, &c[C_LATENCY_MS]));
    if (depth(root, 200) > 200) return UNUSUAL; /* deep nesting, big numbers */
    TRY(read_request(st, request, ln));
    TRY(read_response(st, response, ln));
    c[C_ID_HASH].valid = 1;
    c[C_ID_HASH].u = XXH3_64bits(c[C_ID].s, c[C_ID].n);
    return 0;
}

/* ---- committing a line ------------------------------------------------------------------------- */

static int put_str(column_t *col, const char *s, size_t n, int valid) {
    if (valid && buf_put(&col->values, s, n)) return NO_MEMORY;
    int32_t end = (int32_t)col->values.len;
    char flag = (char)valid;
    if (buf_put(&col->offsets, &end, sizeof end) || buf_put(&col->valid, &flag, 1)) return NO_MEMORY;
    return 0;
}

static int commit(state_t *st, line_t *ln, int32_t index) {
    cell_t *c = ln->c;
    /* Arrow's string offsets are int32 and no column holds more than its lines' bytes (twice, for a body that
     * yyjson wrote out): past 1 GiB of lines, a (huge) block's later lines are left to Python. */
    if (st->committed + ln->n > INT32_MAX / 2) return UNUSUAL;
    st->committed += ln->n;
    const char *scratch = st->scratch.p;
    c[C_SYSTEM_TEXT] = (cell_t){.valid = ln->has_system, .s = scratch + ln->system_start, .n = ln->system_len};
    c[C_USER_TEXT] = (cell_t){.valid = 1, .s = scratch + ln->user_start, .n = ln->user_len};
    c[C_RESPONSE_TEXT] = (cell_t){.valid = ln->has_response_text, .s = scratch + ln->text_start,
                                  .n = ln->text_len};
    set_int(&c[C_RESPONSE_CHARS], ln->has_response_text ? code_points(c[C_RESPONSE_TEXT].s, ln->text_len) : 0);
    set_int(&c[C_REASONING_CHARS], c[C_REASONING_TEXT].valid ? code_points(c[C_REASONING_TEXT].s,
                                                                           c[C_REASONING_TEXT].n) : 0);
    c[C_REQUEST_JSON] = (cell_t){.valid = ln->request_json != NULL, .s = ln->request_json, .n = ln->request_json_len};
    c[C_RESPONSE_JSON] = (cell_t){.valid = ln->response_json != NULL, .s = ln->response_json, .n = ln->response_json_len};
    c[C_EXTRA_JSON] = (cell_t){.valid = ln->has_extra, .s = scratch + ln->extra_start, .n = ln->extra_len};
    for (int k = 0; k < N_COLS; k++) {
        column_t *col = &st->cols[k];
        cell_t *cell = &c[k];
        char flag = (char)cell->valid;
        switch (COL_KINDS[k]) {
        case K_STR:
            if (put_str(col, cell->s, cell->n, cell->valid)) return NO_MEMORY;
            continue;
        case K_U64:
            if (buf_put(&col->values, &cell->u, 8)) return NO_MEMORY;
            break;
        case K_I64: {
            int64_t v = cell->valid ? cell->i : 0;
            if (buf_put(&col->values, &v, 8)) return NO_MEMORY;
            break;
        }
        case K_I32: {
            int32_t v = cell->valid ? (int32_t)cell->i : 0;
            if (buf_put(&col->values, &v, 4)) return NO_MEMORY;
            break;
        }
        case K_F64: {
            double v = cell->valid ? cell->f : 0.0;
            if (buf_put(&col->values, &v, 8)) return NO_MEMORY;
            break;
        }
        case K_BOOL: {
            char v = cell->valid ? (char)(cell->i != 0) : 0;
            if (buf_put(&col->values, &v, 1)) return NO_MEMORY;
            break;
        }
        }
        if (buf_put(&col->valid, &flag, 1)) return NO_MEMORY;
    }
    if (buf_put(&st->rows, &index, sizeof index)) return NO_MEMORY;
    st->n_rows++;
    return 0;
}

/* ---- the block ----------------------------------------------------------------------------------- */

static inline int blank(const char *s, size_t n) { /* bytes.isspace() or empty */
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\x0b' && ch != '\x0c') return 0;
    }
    return 1;
}

/* The decoder's state lives as long as the process (calls hold the GIL). Column buffers are handed to Python
 * at the end of each call, without a copy, and the next call reserves what they reached. */
static state_t STATE;

static int state_reset(state_t *st) {
    for (int k = 0; k < N_COLS; k++) {
        column_t *col = &st->cols[k];
        if (buf_start(&col->values) || buf_start(&col->offsets) || buf_start(&col->valid)) return NO_MEMORY;
        int32_t zero = 0;
        if (COL_KINDS[k] == K_STR && buf_put(&col->offsets, &zero, sizeof zero)) return NO_MEMORY;
    }
    if (buf_start(&st->rows)) return NO_MEMORY;
    st->scratch.len = 0;
    st->n_rows = 0;
    st->committed = 0;
    if (!st->alc) st->alc = yyjson_alc_dyn_new();
    return st->alc ? 0 : NO_MEMORY;
}


PyDoc_STRVAR(decode_block_doc,
"decode_block(block) -> (lines, newlines, rows, columns, row_index, unusual)\n\n"
"Decode a block of canonical JSON Lines. ``lines``: non-blank lines; ``newlines``: b'\\n' in the block;\n"
"``rows``: lines decoded here;\n"
"``columns``: per EXCHANGE_SCHEMA column, (values, offsets or None, validity) as read-only buffers (one validity byte\n"
"per row; int32 offsets for strings); ``row_index``: int32 index among non-blank lines of each row;\n"
"``unusual``: (index among non-blank lines, line offset in the block, start, end) of lines left to Python.");

static PyObject *decode_block(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    state_t *st = &STATE;
    PyObject *unusual = PyList_New(0), *result = NULL;
    int failed = 0;
    Py_ssize_t nonblank = 0;
    if (!unusual) goto done;
    if (state_reset(st)) {
        PyErr_NoMemory();
        goto done;
    }
    const char *data = view.buf;
    size_t size = (size_t)view.len, pos = 0;
    Py_ssize_t offset = 0, newlines = 0;
    while (pos < size) {
        const char *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size;
        newlines += nl != NULL;
        const char *line = data + pos;
        size_t n = end - pos;
        if (!blank(line, n)) {
            int rc = UNUSUAL;
            line_t ln;
            memset(&ln, 0, sizeof ln);
            st->scratch.len = 0;
            st->copy.len = 0;
            yyjson_doc *doc = NULL;
            if (buf_put(&st->copy, line, n) || buf_grow(&st->copy, YYJSON_PADDING_SIZE)) {
                rc = NO_MEMORY;
            } else {
                memset(st->copy.p + n, 0, YYJSON_PADDING_SIZE);
                ln.line = line;
                ln.copy = st->copy.p;
                ln.n = n;
                doc = yyjson_read_opts(st->copy.p, n, YYJSON_READ_INSITU | YYJSON_READ_BIGNUM_AS_RAW, st->alc, NULL);
            }
            if (doc) {
                rc = read_line(st, yyjson_doc_get_root(doc), &ln);
                if (rc == 0) rc = commit(st, &ln, (int32_t)nonblank);
                line_free(st, &ln);
                yyjson_doc_free(doc);
            }
            if (rc == NO_MEMORY) {
                failed = 1;
                break;
            }
            if (rc == UNUSUAL) {
                PyObject *item = Py_BuildValue("(nnnn)", nonblank, offset, (Py_ssize_t)pos, (Py_ssize_t)end);
                if (!item || PyList_Append(unusual, item) < 0) {
                    Py_XDECREF(item);
                    goto done;
                }
                Py_DECREF(item);
            }
            nonblank++;
        }
        offset++;
        pos = end + 1;
    }
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *columns = PyList_New(N_COLS);
    if (!columns) goto done;
    for (int k = 0; k < N_COLS; k++) {
        column_t *col = &st->cols[k];
        PyObject *offsets = COL_KINDS[k] == K_STR ? buf_steal(&col->offsets) : Py_NewRef(Py_None);
        PyObject *item = Py_BuildValue("(NNN)", buf_steal(&col->values), offsets, buf_steal(&col->valid));
        if (!item) {
            Py_DECREF(columns);
            goto done;
        }
        PyList_SET_ITEM(columns, k, item);
    }
    result = Py_BuildValue("(nnnNNO)", nonblank, newlines, st->n_rows, columns, buf_steal(&st->rows), unusual);
done:
    Py_XDECREF(unusual);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *column_names(PyObject *self, PyObject *unused) {
    PyObject *names = PyTuple_New(N_COLS);
    if (!names) return NULL;
    for (int k = 0; k < N_COLS; k++) {
        PyObject *name = PyUnicode_FromString(COL_NAMES[k]);
        if (!name) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, k, name);
    }
    return names;
}

static PyMethodDef methods[] = {
    {"decode_block", decode_block, METH_O, decode_block_doc},
    {"column_names", column_names, METH_NOARGS, "The columns decode_block returns, in order."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_columnar", "Canonical JSON Lines to exchange columns.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__columnar(void) {
    if (PyType_Ready(&OwnedType) < 0) return NULL;
    return PyModule_Create(&module);
}
