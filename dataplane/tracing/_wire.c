/*
 * The span encoder of dataplane/tracing/wire.py, in C: the same bytes, ~10x faster.
 *
 * trace_spans(trace_id, spans) -> bytes: each span as a ScopeSpans.spans field (OTLP
 * trace/v1 wire format). Field numbers and value mapping are those of wire.py, which stays
 * the reference (and the fallback when this module is not built); tests check both against
 * the opentelemetry-proto message encoding. Values wire.py would treat specially (integers
 * outside 64 bits, non-str keys, IDs of the wrong length) raise TypeError, ValueError or
 * OverflowError here, and wire.py then encodes that trace itself.
 *
 * SpanBase: spans.Span as a C struct, so building a span on a traced request (its random ID,
 * its start time, its end, an error) costs no Python frames. spans.py uses it as Span and
 * keeps a pure-Python twin (PySpan) for builds without this module; tests run both. Its IDs
 * are integers in the struct (bytes objects are made only when Python reads them), its
 * attribute dict is made on first use, encoded_attributes holds attribute fields already
 * written (sent after the dict's), and freed spans are kept for reuse (a traced request makes
 * about ten and frees them when its trace is encoded).
 *
 * The rest does in C what a traced request would otherwise do in Python, each with its
 * Python version kept as the reference and fallback, and tests comparing the two:
 * RequestTrace (a request's trace and its span(...), recorder.PyRequestTrace and
 * PySpanMaker), PhaseEvents (the transport's events to phase spans,
 * proxy._TransportEvents), write_root (the root's standard attributes,
 * root.python_write_root) and traceparent (recorder.python_traceparent_header). trace_spans
 * and write_root hand what they refuse to their Python versions themselves (set_fallback),
 * so the node calls them without a Python wrapper.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static PyObject *s_error_type, *s_encoded_attributes, *s_span_id, *s_parent_id, *s_name, *s_kind, *s_start_ns, *s_end_ns,
    *s_attributes, *s_events, *s_status_code, *s_status_message, *s_time_ns;
static PyObject *s_head, *s_tail, *s_parent, *s_error_type_kw, *s_message, *s_exc;

/* A str's UTF-8 bytes: compact ASCII strings (attribute keys and nearly every value) are
 * read in place, without a call. */
static inline const char *utf8_of(PyObject *text, Py_ssize_t *size) {
    if (PyUnicode_IS_COMPACT_ASCII(text)) {
        *size = PyUnicode_GET_LENGTH(text);
        return (const char *)PyUnicode_DATA(text);
    }
    return PyUnicode_AsUTF8AndSize(text, size);
}

static int reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Scratch buffers kept between calls of an encoding function (the GIL serialises them): no
 * allocation per call once they fit the largest. A call takes its buffer (a nested call, from
 * a value's __str__, then starts its own) and gives it back after, unless it grew past
 * `max_cap` or a nested call gave one back first. */
static Buf take_scratch(Buf *scratch) {
    Buf taken = *scratch;
    *scratch = (Buf){NULL, 0, 0};
    taken.len = 0;
    return taken;
}

static void release_scratch(Buf *scratch, Buf *used, Py_ssize_t max_cap) {
    if (used->cap > max_cap || scratch->data != NULL) {
        PyMem_Free(used->data);
    } else {
        *scratch = *used;
    }
}

/* The writers below reserve once and then write in place: an attribute is a handful of
 * bytes, so a call (and a capacity check) per byte cost more than the bytes. */
static inline int room(Buf *b, Py_ssize_t n) {
    return b->len + n <= b->cap ? 0 : reserve(b, n);
}

static inline char *write_varint(char *p, uint64_t v) {
    while (v > 127) {
        *p++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static inline int put(Buf *b, const void *src, Py_ssize_t n) {
    if (n == 0) {
        return 0; /* src may be NULL (an empty temporary buffer) */
    }
    if (room(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static inline int put_byte(Buf *b, unsigned char c) {
    if (room(b, 1) < 0) {
        return -1;
    }
    b->data[b->len++] = (char)c;
    return 0;
}

static inline int put_varint(Buf *b, uint64_t v) {
    if (room(b, 10) < 0) {
        return -1;
    }
    b->len = write_varint(b->data + b->len, v) - b->data;
    return 0;
}

/* little-endian, as protobuf's fixed64: one 8-byte store (GCC at -O2 left the byte loop a
 * loop, ~56 instructions per value, two per span) */
static inline char *write_fixed64(char *p, uint64_t v) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
    return p + 8;
}

static inline int put_fixed64(Buf *b, uint64_t v) {
    if (room(b, 8) < 0) {
        return -1;
    }
    b->len = write_fixed64(b->data + b->len, v) - b->data;
    return 0;
}

/* tag + length + payload */
static inline int put_field(Buf *b, unsigned char tag, const char *payload, Py_ssize_t n) {
    if (room(b, 11 + n) < 0) {
        return -1;
    }
    char *p = b->data + b->len;
    *p++ = (char)tag;
    p = write_varint(p, (uint64_t)n);
    if (n) {
        memcpy(p, payload, (size_t)n);
    }
    b->len = (p + n) - b->data;
    return 0;
}

static int put_text(Buf *b, unsigned char tag, PyObject *text) {
    Py_ssize_t n;
    const char *utf8 = utf8_of(text, &n);
    if (utf8 == NULL) {
        return -1;
    }
    return put_field(b, tag, utf8, n);
}

/* A Python int as an unsigned 64-bit value. PyLong_AsUnsignedLong, not ...LongLong: for an
 * int of more than one digit (any time in nanoseconds) the latter goes through
 * _PyLong_AsByteArray (~170 instructions in CPython 3.11), the former shifts the digits in
 * (~20); unsigned long is 64 bits wide on every platform this builds for (LP64). */
_Static_assert(sizeof(unsigned long) == sizeof(uint64_t), "unsigned long must be 64 bits");

static int unsigned_value(PyObject *value, uint64_t *out) {
    unsigned long u = PyLong_AsUnsignedLong(value);
    if (u == (unsigned long)-1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (uint64_t)u;
    return 0;
}

/* A Python int as protobuf int64 (two's complement for negatives), or uint64 when larger. */
static int int64_value(PyObject *value, uint64_t *out) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow == 0) {
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        *out = (uint64_t)v;
        return 0;
    }
    if (overflow > 0) {
        return unsigned_value(value, out);
    }
    PyErr_SetString(PyExc_OverflowError, "integer below int64");
    return -1;
}

static int any_value(Buf *b, PyObject *value);

static int varint_len(uint64_t v) {
    int n = 1;
    while (v > 127) {
        v >>= 7;
        n++;
    }
    return n;
}

/* An AnyValue payload wrapped as a length-delimited field `tag`. Scalars (nearly every
 * attribute) are written in place, their size known up front; arrays and others go through
 * a temporary buffer. */
static int wrapped_any(Buf *b, unsigned char tag, PyObject *value) {
    if (PyUnicode_Check(value)) {
        Py_ssize_t n;
        const char *utf8 = utf8_of(value, &n);
        if (utf8 == NULL) {
            return -1;
        }
        uint64_t size = 1 + (uint64_t)varint_len((uint64_t)n) + (uint64_t)n;
        if (put_byte(b, tag) < 0 || put_varint(b, size) < 0) {
            return -1;
        }
        return put_field(b, 0x0A, utf8, n);
    }
    if (PyBool_Check(value)) {
        unsigned char field[4] = {tag, 2, 0x10, value == Py_True ? 1 : 0};
        return put(b, field, 4);
    }
    if (PyLong_Check(value)) {
        uint64_t v;
        if (int64_value(value, &v) < 0) {
            return -1;
        }
        unsigned char head[3] = {tag, (unsigned char)(1 + varint_len(v)), 0x18};
        if (put(b, head, 3) < 0) {
            return -1;
        }
        return put_varint(b, v);
    }
    if (PyFloat_Check(value)) {
        unsigned char field[11] = {tag, 9, 0x21};
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), (char *)field + 3, 1) < 0) {
            return -1;
        }
        return put(b, field, 11);
    }
    Buf inner = {NULL, 0, 0};
    int rc = any_value(&inner, value);
    if (rc == 0) {
        rc = put_field(b, tag, inner.data, inner.len);
    }
    PyMem_Free(inner.data);
    return rc;
}

/* The AnyValue payload of `value` (wire.py's _any). */
static int any_value(Buf *b, PyObject *value) {
    if (PyUnicode_Check(value)) {
        return put_text(b, 0x0A, value);
    }
    if (PyBool_Check(value)) {
        unsigned char field[2] = {0x10, value == Py_True ? 1 : 0};
        return put(b, field, 2);
    }
    if (PyLong_Check(value)) {
        uint64_t v;
        if (int64_value(value, &v) < 0 || put_byte(b, 0x18) < 0) {
            return -1;
        }
        return put_varint(b, v);
    }
    if (PyFloat_Check(value)) {
        unsigned char packed[8];
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), (char *)packed, 1) < 0) {
            return -1;
        }
        if (put_byte(b, 0x21) < 0) {
            return -1;
        }
        return put(b, packed, 8);
    }
    if (PyList_Check(value) || PyTuple_Check(value)) {
        /* A tuple copy owns its items: a value's __str__ changing the list cannot free one
         * under us. Nesting is bounded like Python's own recursion (RecursionError). */
        if (Py_EnterRecursiveCall(" while encoding a span attribute")) {
            return -1;
        }
        PyObject *items = PySequence_Tuple(value);
        if (items == NULL) {
            Py_LeaveRecursiveCall();
            return -1;
        }
        Buf array = {NULL, 0, 0};
        int rc = 0;
        Py_ssize_t count = PyTuple_GET_SIZE(items);
        for (Py_ssize_t i = 0; i < count && rc == 0; i++) {
            rc = wrapped_any(&array, 0x0A, PyTuple_GET_ITEM(items, i));
        }
        if (rc == 0) {
            rc = put_field(b, 0x2A, array.data, array.len);
        }
        PyMem_Free(array.data);
        Py_DECREF(items);
        Py_LeaveRecursiveCall();
        return rc;
    }
    if (PyBytes_Check(value)) {
        return put_field(b, 0x3A, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    PyObject *text = PyObject_Str(value);
    if (text == NULL) {
        return -1;
    }
    int rc = put_text(b, 0x0A, text);
    Py_DECREF(text);
    return rc;
}

/* The head of a KeyValue field `tag` (its size, the key, the value's tag and size) whose
 * AnyValue payload of `payload` bytes the caller writes at the returned position, then sets
 * b->len past it. Room is reserved for the whole field. NULL: no memory (error set). */
static inline char *kv_head(Buf *b, unsigned char tag, const char *key, Py_ssize_t key_len,
                            uint64_t payload) {
    uint64_t size = 1 + (uint64_t)varint_len((uint64_t)key_len) + (uint64_t)key_len + 1 +
                    (uint64_t)varint_len(payload) + payload;
    if (room(b, 11 + (Py_ssize_t)size) < 0) {
        return NULL;
    }
    char *p = b->data + b->len;
    *p++ = (char)tag;
    p = write_varint(p, size);
    *p++ = 0x0A; /* KeyValue.key */
    p = write_varint(p, (uint64_t)key_len);
    memcpy(p, key, (size_t)key_len);
    p += key_len;
    *p++ = 0x12; /* KeyValue.value */
    return write_varint(p, payload);
}

/* A KeyValue field `tag` whose value is a str, bool, int or float, written in place (its size
 * is known up front). Returns 1 when written, 0 for other values (nothing written), -1 on an
 * error. */
static int scalar_kv(Buf *b, unsigned char tag, PyObject *key, PyObject *value) {
    const char *text = NULL;
    Py_ssize_t text_len = 0;
    uint64_t number = 0;
    uint64_t payload; /* the AnyValue's size */
    if (PyUnicode_Check(value)) {
        text = utf8_of(value, &text_len);
        if (text == NULL) {
            return -1;
        }
        payload = 1 + (uint64_t)varint_len((uint64_t)text_len) + (uint64_t)text_len;
    } else if (PyBool_Check(value)) {
        payload = 2;
    } else if (PyLong_Check(value)) {
        if (int64_value(value, &number) < 0) {
            return -1;
        }
        payload = 1 + (uint64_t)varint_len(number);
    } else if (PyFloat_Check(value)) {
        payload = 9;
    } else {
        return 0;
    }
    Py_ssize_t key_len;
    const char *key_text = utf8_of(key, &key_len);
    if (key_text == NULL) {
        return -1;
    }
    char *p = kv_head(b, tag, key_text, key_len, payload);
    if (p == NULL) {
        return -1;
    }
    if (text != NULL) {
        *p++ = 0x0A; /* string_value */
        p = write_varint(p, (uint64_t)text_len);
        memcpy(p, text, (size_t)text_len);
        p += text_len;
    } else if (PyBool_Check(value)) {
        *p++ = 0x10; /* bool_value */
        *p++ = value == Py_True ? 1 : 0;
    } else if (PyLong_Check(value)) {
        *p++ = 0x18; /* int_value */
        p = write_varint(p, number);
    } else {
        *p++ = 0x21; /* double_value */
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), p, 1) < 0) {
            return -1;
        }
        p += 8;
    }
    b->len = p - b->data;
    return 1;
}

/* One attribute as a KeyValue field `tag`; `kv` is scratch for a value scalar_kv leaves. */
static int attribute(Buf *b, unsigned char tag, PyObject *key, PyObject *value, Buf *kv) {
    int written = scalar_kv(b, tag, key, value); /* nearly every attribute */
    if (written != 0) {
        return written < 0 ? -1 : 0;
    }
    /* Owned while in use: encoding a value may run its __str__. */
    Py_INCREF(key);
    Py_INCREF(value);
    kv->len = 0;
    int rc = put_text(kv, 0x0A, key);
    if (rc == 0) {
        rc = wrapped_any(kv, 0x12, value);
    }
    if (rc == 0) {
        rc = put_field(b, tag, kv->data, kv->len);
    }
    Py_DECREF(key);
    Py_DECREF(value);
    return rc;
}

/* Each attribute as a KeyValue field `tag` (wire.py's _attributes). */
static int attributes(Buf *b, unsigned char tag, PyObject *mapping) {
    if (mapping == Py_None) {
        return 0;
    }
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "attributes must be a dict");
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    Buf kv = {NULL, 0, 0};
    int rc = 0;
    while (rc == 0 && PyDict_Next(mapping, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "attribute keys must be str");
            rc = -1;
            break;
        }
        rc = attribute(b, tag, key, value, &kv);
    }
    PyMem_Free(kv.data);
    return rc;
}

/* attribute_fields(keys, values) -> bytes: the pairs whose value is not None as encoded
 * Span.attributes fields, for a span's encoded_attributes (wire.py's python_attribute_fields is
 * the reference). A span whose attributes are known when it starts is written so, without a
 * dict made, grown and walked on every traced request. */
static PyObject *attribute_fields_here(PyObject *module, PyObject *const *args,
                                       Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyTuple_Check(args[1]) ||
        PyTuple_GET_SIZE(args[0]) != PyTuple_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "attribute_fields(keys: tuple[str, ...], values: tuple of as many)");
        return NULL;
    }
    PyObject *keys = args[0], *values = args[1];
    Buf b = {NULL, 0, 0}, kv = {NULL, 0, 0};
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyTuple_GET_SIZE(keys); i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i), *value = PyTuple_GET_ITEM(values, i);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "attribute keys must be str");
            rc = -1;
            break;
        }
        if (value != Py_None) {
            rc = attribute(&b, 0x4A, key, value, &kv);
        }
    }
    PyObject *result = rc == 0 ? PyBytes_FromStringAndSize(b.data ? b.data : "", b.len) : NULL;
    PyMem_Free(b.data);
    PyMem_Free(kv.data);
    return result;
}

/* A span ID as its 8 bytes, big-endian (as W3C and OTLP write it): one 8-byte store. */
static inline void id_raw(uint64_t id, unsigned char raw[8]) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    id = __builtin_bswap64(id);
#endif
    memcpy(raw, &id, 8);
}

static inline int id_field(Buf *b, unsigned char tag, uint64_t id) {
    if (room(b, 10) < 0) {
        return -1;
    }
    char *p = b->data + b->len;
    p[0] = (char)tag;
    p[1] = 8;
    id_raw(id, (unsigned char *)p + 2);
    b->len += 10;
    return 0;
}

static int event(Buf *b, PyObject *ev) {
    Buf body = {NULL, 0, 0};
    int rc = -1;
    PyObject *time_ns = PyObject_GetAttr(ev, s_time_ns);
    PyObject *name = time_ns ? PyObject_GetAttr(ev, s_name) : NULL;
    PyObject *attrs = name ? PyObject_GetAttr(ev, s_attributes) : NULL;
    uint64_t t;
    if (attrs != NULL && unsigned_value(time_ns, &t) == 0 && put_byte(&body, 0x09) == 0 &&
        put_fixed64(&body, t) == 0 && put_text(&body, 0x12, name) == 0 &&
        attributes(&body, 0x1A, attrs) == 0) {
        rc = put_field(b, 0x5A, body.data, body.len);
    }
    Py_XDECREF(time_ns);
    Py_XDECREF(name);
    Py_XDECREF(attrs);
    PyMem_Free(body.data);
    return rc;
}


/* ---- SpanBase ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *name;
    uint64_t id;     /* span_id, big-endian as bytes */
    uint64_t parent; /* parent_id, when has_parent */
    int has_parent;  /* parent_id is b"" when not (a root without a remote parent) */
    PyObject *attributes;
    PyObject *events;
    PyObject *status_message;
    PyObject *encoded; /* attribute fields written already (bytes), after the dict's */
    unsigned long long start_ns;
    unsigned long long end_ns;
    int kind;
    int status_code;
} SpanObject;

static PyTypeObject SpanType;
static PyObject *empty_bytes = NULL; /* b"": a span's encoded_attributes until written */
static long long clock_offset_ns = 0; /* unix ns minus CLOCK_MONOTONIC ns (spans.py sets it) */
static uint64_t id_state = 0;

static unsigned long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock of time.perf_counter_ns on Linux */
    return (unsigned long long)((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec +
                                clock_offset_ns);
}

static void seed_ids(void) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 16);
    }
    id_state = seed;
}

/* splitmix64: a bijection of its counter, so IDs from one seed never repeat (2^64 period). */
static uint64_t next_id(void) {
    uint64_t z;
    do {
        z = (id_state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
    } while (z == 0); /* an all-zero span ID is invalid */
    return z;
}

/* 16 random bytes (two span IDs, so never all zero): a trace ID, or any 128-bit ID. */
static PyObject *trace_id(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    unsigned char bytes[16];
    uint64_t halves[2] = {next_id(), next_id()};
    for (int h = 0; h < 2; h++) {
        for (int i = 0; i < 8; i++) {
            bytes[h * 8 + i] = (unsigned char)(halves[h] >> (56 - 8 * i));
        }
    }
    return PyBytes_FromStringAndSize((const char *)bytes, 16);
}

static PyObject *new_span(PyTypeObject *type, PyObject *name, uint64_t parent, int has_parent,
                          unsigned long long start_ns, int kind, PyObject *attributes);

/* An 8-byte ID as an integer (big-endian), or b"" as none (``empty_ok``). */
static int id_of(PyObject *value, uint64_t *out, int *present, int empty_ok) {
    if (!PyBytes_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "span IDs are bytes");
        return -1;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(value);
    if (size == 0 && empty_ok) {
        *out = 0;
        *present = 0;
        return 0;
    }
    if (size != 8) {
        PyErr_SetString(PyExc_ValueError, "span IDs are 8 bytes");
        return -1;
    }
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(value);
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) {
        id = (id << 8) | raw[i];
    }
    *out = id;
    *present = 1;
    return 0;
}

static PyObject *id_bytes(uint64_t id) {
    unsigned char raw[8];
    id_raw(id, raw);
    return PyBytes_FromStringAndSize((const char *)raw, 8);
}

/* A span's start from its argument: None is now. */
static int start_time(PyObject *start, unsigned long long *out) {
    if (start == Py_None) {
        *out = now_ns();
        return 0;
    }
    uint64_t value;
    if (unsigned_value(start, &value) < 0) {
        return -1;
    }
    *out = value;
    return 0;
}

/* A span kind from its argument, in range of a C int (as the "i" format would say). */
static int span_kind(PyObject *value, int *out) {
    long kind = PyLong_AsLong(value);
    if (kind == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (kind > INT_MAX || kind < INT_MIN) {
        PyErr_SetString(PyExc_OverflowError, "span kind out of range");
        return -1;
    }
    *out = (int)kind;
    return 0;
}

static PyObject *span_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"name", "parent_id", "start_ns", "kind", "attributes", NULL};
    PyObject *name, *parent_id, *start = Py_None, *attributes = Py_None;
    int kind = 1;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (kwds == NULL && nargs >= 2 && nargs <= 5) { /* the hot path: positional arguments */
        name = PyTuple_GET_ITEM(args, 0);
        parent_id = PyTuple_GET_ITEM(args, 1);
        if (nargs > 2) {
            start = PyTuple_GET_ITEM(args, 2);
        }
        if (nargs > 3 && span_kind(PyTuple_GET_ITEM(args, 3), &kind) < 0) {
            return NULL;
        }
        if (nargs > 4) {
            attributes = PyTuple_GET_ITEM(args, 4);
        }
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OiO:Span", keywords, &name,
                                            &parent_id, &start, &kind, &attributes)) {
        return NULL;
    }
    unsigned long long start_ns;
    uint64_t parent;
    int has_parent;
    if (id_of(parent_id, &parent, &has_parent, 1) < 0 || start_time(start, &start_ns) < 0) {
        return NULL;
    }
    return new_span(type, name, parent, has_parent, start_ns, kind, attributes);
}

/* A span's attribute dict, made on first use: most phase spans never get one. Borrowed. */
static PyObject *span_dict(SpanObject *span) {
    if (span->attributes == NULL) {
        span->attributes = PyDict_New();
    }
    return span->attributes;
}

/* Freed SpanBase instances (not subclasses'), kept for the next ones: a traced request makes
 * about ten spans and frees them when its trace is encoded. */
#define MAX_FREE_SPANS 256
static SpanObject *free_spans[MAX_FREE_SPANS];
static int free_span_count = 0;

/* A started span of ``type`` (SpanBase or a subclass); ``attributes`` Py_None: none yet (a
 * dict is made when they are first read or set). */
static PyObject *new_span(PyTypeObject *type, PyObject *name, uint64_t parent, int has_parent,
                          unsigned long long start_ns, int kind, PyObject *attributes) {
    SpanObject *self;
    if (type == &SpanType && free_span_count > 0) {
        self = free_spans[--free_span_count];
        PyObject_Init((PyObject *)self, type); /* fields were cleared when it was freed */
        PyObject_GC_Track(self);
    } else {
        self = (SpanObject *)type->tp_alloc(type, 0);
        if (self == NULL) {
            return NULL;
        }
    }
    self->id = next_id();
    self->parent = parent;
    self->has_parent = has_parent;
    self->attributes = attributes == Py_None ? NULL : Py_NewRef(attributes);
    self->status_message = PyUnicode_FromStringAndSize(NULL, 0);
    if (self->status_message == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->name = Py_NewRef(name);
    self->events = Py_NewRef(Py_None);
    self->encoded = Py_NewRef(empty_bytes);
    self->start_ns = start_ns;
    self->end_ns = 0;
    self->kind = kind;
    self->status_code = 0;
    return (PyObject *)self;
}

/* A started child span of ``parent_id`` appended to the trace's ``spans``: a new reference. */
static PyObject *add_child(PyObject *spans, PyTypeObject *type, PyObject *name,
                           uint64_t parent_id, unsigned long long start_ns, int kind,
                           PyObject *attributes) {
    PyObject *span = new_span(type, name, parent_id, 1, start_ns, kind, attributes);
    if (span != NULL && PyList_Append(spans, span) < 0) {
        Py_CLEAR(span);
    }
    return span;
}

static int span_traverse(SpanObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->name);
    Py_VISIT(self->attributes);
    Py_VISIT(self->events);
    Py_VISIT(self->status_message);
    Py_VISIT(self->encoded);
    return 0;
}

static int span_clear(SpanObject *self) {
    Py_CLEAR(self->name);
    Py_CLEAR(self->attributes);
    Py_CLEAR(self->events);
    Py_CLEAR(self->status_message);
    Py_CLEAR(self->encoded);
    return 0;
}

/* A static type: for instances of a Python subclass, subtype_dealloc calls this and then
 * releases the subclass itself. */
static void span_dealloc(SpanObject *self) {
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, span_dealloc) /* deep attribute values must not overflow the stack */
    span_clear(self);
    if (Py_TYPE(self) == &SpanType && free_span_count < MAX_FREE_SPANS) {
        free_spans[free_span_count++] = self; /* untracked, fields cleared: new_span's to reuse */
    } else {
        Py_TYPE(self)->tp_free((PyObject *)self);
    }
    Py_TRASHCAN_END
}

static PyObject *span_end(SpanObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "end(end_ns=None)");
        return NULL;
    }
    if (self->end_ns == 0) {
        if (nargs == 1 && args[0] != Py_None) {
            uint64_t end;
            if (unsigned_value(args[0], &end) < 0) {
                return NULL;
            }
            self->end_ns = end;
        } else {
            self->end_ns = now_ns();
        }
    }
    Py_RETURN_NONE;
}

static PyObject *span_get_attributes(SpanObject *self, void *closure) {
    (void)closure;
    return Py_XNewRef(span_dict(self));
}

static int span_set_attributes(SpanObject *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a span's attributes cannot be deleted");
        return -1;
    }
    Py_XSETREF(self->attributes, Py_NewRef(value));
    return 0;
}

static PyObject *span_get_span_id(SpanObject *self, void *closure) {
    (void)closure;
    return id_bytes(self->id);
}

static int span_set_span_id(SpanObject *self, PyObject *value, void *closure) {
    (void)closure;
    int present;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a span's ID cannot be deleted");
        return -1;
    }
    return id_of(value, &self->id, &present, 0);
}

static PyObject *span_get_parent_id(SpanObject *self, void *closure) {
    (void)closure;
    return self->has_parent ? id_bytes(self->parent) : Py_NewRef(empty_bytes);
}

static int span_set_parent_id(SpanObject *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a span's parent ID cannot be deleted");
        return -1;
    }
    return id_of(value, &self->parent, &self->has_parent, 1);
}

static PyGetSetDef span_getset[] = {
    {"attributes", (getter)span_get_attributes, (setter)span_set_attributes, NULL, NULL},
    {"span_id", (getter)span_get_span_id, (setter)span_set_span_id, NULL, NULL},
    {"parent_id", (getter)span_get_parent_id, (setter)span_set_parent_id, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* Which of ``names`` (interned) a keyword is, or -1. A call site's keywords are interned
 * too, so the first loop finds them without comparing text. */
static inline int keyword_slot(PyObject *key, PyObject *const *names, int count) {
    for (int i = 0; i < count; i++) {
        if (key == names[i]) {
            return i;
        }
    }
    for (int i = 0; i < count; i++) {
        if (PyUnicode_Check(key) && PyUnicode_Compare(key, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* A method's arguments, by position or by keyword (``names``, interned), into ``out``
 * (borrowed; NULL where not given). ``required`` come first. */
static int method_args(const char *usage, PyObject *const *names, int count, int required,
                       PyObject *const *args, size_t nargsf, PyObject *kwnames, PyObject **out) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs > count) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    Py_ssize_t keywords = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < keywords; k++) {
        int slot = keyword_slot(PyTuple_GET_ITEM(kwnames, k), names, count);
        if (slot < 0 || out[slot] != NULL) {
            PyErr_SetString(PyExc_TypeError, usage);
            return -1;
        }
        out[slot] = args[nargs + k];
    }
    for (int i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_SetString(PyExc_TypeError, usage);
            return -1;
        }
    }
    return 0;
}

/* set_error(error_type, message=""): spans.PySpan.set_error. */
static PyObject *span_set_error(SpanObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames) {
    PyObject *names[] = {s_error_type_kw, s_message};
    PyObject *given[2];
    if (method_args("set_error(error_type, message='')", names, 2, 1, args, nargsf, kwnames,
                    given) < 0) {
        return NULL;
    }
    PyObject *message = given[1] ? Py_NewRef(given[1]) : PyUnicode_FromStringAndSize(NULL, 0);
    if (message == NULL) {
        return NULL;
    }
    self->status_code = 2; /* STATUS_ERROR */
    Py_XSETREF(self->status_message, message);
    PyObject *attributes = span_dict(self);
    if (attributes == NULL || PyObject_SetItem(attributes, s_error_type, given[0]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *exception_event = NULL; /* spans.exception_event(exc, time_ns) */

/* record_exception(exc, time_ns=None): an OTel "exception" event (spans.exception_event). */
static PyObject *span_record_exception(SpanObject *self, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames) {
    PyObject *names[] = {s_exc, s_time_ns};
    PyObject *given[2];
    if (method_args("record_exception(exc, time_ns=None)", names, 2, 1, args, nargsf, kwnames,
                    given) < 0) {
        return NULL;
    }
    if (exception_event == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_exception_event() was not called");
        return NULL;
    }
    if (self->events == NULL || self->events == Py_None) {
        PyObject *list = PyList_New(0);
        if (list == NULL) {
            return NULL;
        }
        Py_XSETREF(self->events, list);
    }
    PyObject *when = given[1] != NULL && given[1] != Py_None
                         ? Py_NewRef(given[1])
                         : PyLong_FromUnsignedLongLong(now_ns());
    if (when == NULL) {
        return NULL;
    }
    PyObject *call[2] = {given[0], when};
    PyObject *ev = PyObject_Vectorcall(exception_event, call, 2, NULL);
    Py_DECREF(when);
    if (ev == NULL) {
        return NULL;
    }
    PyObject *events = Py_NewRef(self->events); /* the event's making may have replaced it */
    PyObject *result = PyList_CheckExact(events)
                           ? (PyList_Append(events, ev) < 0 ? NULL : Py_NewRef(Py_None))
                           : PyObject_CallMethod(events, "append", "O", ev);
    Py_DECREF(events);
    Py_DECREF(ev);
    return result;
}

static PyObject *set_exception_event(PyObject *module, PyObject *factory) {
    (void)module;
    if (!PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError, "set_exception_event(factory): a callable");
        return NULL;
    }
    Py_XSETREF(exception_event, Py_NewRef(factory));
    Py_RETURN_NONE;
}

static PyMethodDef span_methods[] = {
    {"end", (PyCFunction)(void (*)(void))span_end, METH_FASTCALL,
     "Close the span (now, or at end_ns); ending twice keeps the first end."},
    {"set_error", (PyCFunction)(void (*)(void))span_set_error, METH_FASTCALL | METH_KEYWORDS,
     "Mark the span failed with an error.type."},
    {"record_exception", (PyCFunction)(void (*)(void))span_record_exception,
     METH_FASTCALL | METH_KEYWORDS,
     "Add an OTel exception event (at time_ns, or now)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef span_members[] = {
    {"name", T_OBJECT_EX, offsetof(SpanObject, name), 0, NULL},
    {"events", T_OBJECT, offsetof(SpanObject, events), 0, NULL},
    {"status_message", T_OBJECT_EX, offsetof(SpanObject, status_message), 0, NULL},
    {"encoded_attributes", T_OBJECT_EX, offsetof(SpanObject, encoded), 0, NULL},
    {"start_ns", T_ULONGLONG, offsetof(SpanObject, start_ns), 0, NULL},
    {"end_ns", T_ULONGLONG, offsetof(SpanObject, end_ns), 0, NULL},
    {"kind", T_INT, offsetof(SpanObject, kind), 0, NULL},
    {"status_code", T_INT, offsetof(SpanObject, status_code), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SpanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dataplane.tracing._wire.SpanBase",
    .tp_doc = "Span(name, parent_id, start_ns=None, kind=KIND_INTERNAL, attributes=None): "
              "one operation of a traced request, started now unless start_ns is given; "
              "end() closes it.",
    .tp_basicsize = sizeof(SpanObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = span_new,
    .tp_dealloc = (destructor)span_dealloc,
    .tp_traverse = (traverseproc)span_traverse,
    .tp_clear = (inquiry)span_clear,
    .tp_methods = span_methods,
    .tp_members = span_members,
    .tp_getset = span_getset,
};

/* ---- a trace's span(...) ---------------------------------------------------------------- */

/* span(name, parent, start_ns=None, kind=1, attributes=None): a started child span of
 * ``parent`` of ``type``, appended to ``spans`` (RequestTrace.span; recorder.PySpanMaker is
 * the Python version). */
static PyObject *make_child(PyObject *spans, PyTypeObject *type, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *given[5] = {NULL, NULL, Py_None, NULL, Py_None}; /* name .. attributes */
    if (nargs < 2 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError,
                        "span(name, parent, start_ns=None, kind=1, attributes=None)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        given[i] = args[i];
    }
    Py_ssize_t keywords = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < keywords; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject *names[] = {s_start_ns, s_kind, s_attributes};
        int slot = keyword_slot(key, names, 3);
        slot = slot < 0 ? -1 : slot + 2;
        if (slot < 0 || slot < nargs) {
            PyErr_Format(PyExc_TypeError, "span() got an unexpected or repeated argument %R",
                         key);
            return NULL;
        }
        given[slot] = args[nargs + i];
    }
    PyObject *parent = given[1];
    uint64_t parent_id;
    if (PyObject_TypeCheck(parent, &SpanType)) {
        parent_id = ((SpanObject *)parent)->id;
    } else {
        PyObject *id = PyObject_GetAttr(parent, s_span_id);
        int present;
        if (id == NULL) {
            return NULL;
        }
        int failed = id_of(id, &parent_id, &present, 0);
        Py_DECREF(id);
        if (failed < 0) {
            return NULL;
        }
    }
    unsigned long long start_ns;
    int kind = 1;
    if (start_time(given[2], &start_ns) < 0 ||
        (given[3] != NULL && span_kind(given[3], &kind) < 0)) {
        return NULL;
    }
    return add_child(spans, type, given[0], parent_id, start_ns, kind, given[4]);
}

/* ---- RequestTrace ------------------------------------------------------------------------ */

/* RequestTrace(*, head, tail, start_ns, parent=None): the spans of one traced request and the
 * sessions that (may) keep it (recorder.PyRequestTrace is the Python version and the
 * reference; tests run both). Made once per traced request: in C, its making (the trace ID,
 * the root span, the sessions' capture settings and in-flight counts) costs no Python frame,
 * and its ``span(...)`` is a method rather than a callable object of its own. */

typedef struct {
    PyObject_HEAD
    PyObject *head;
    PyObject *tail;
    PyObject *trace_id;
    PyObject *root;
    PyObject *spans;
    PyObject *logs;
    /* Py_True or Py_False: object members, which CPython 3.11 specializes a read of (a T_BOOL
     * member is read through the generic attribute lookup, ~100 instructions more) */
    PyObject *capture_headers;
    PyObject *capture_body;
    Py_ssize_t body_max_bytes;
} TraceObject;

static PyTypeObject TraceType;
static PyObject *s_http, *s_capture_headers, *s_capture_body, *s_body_max_bytes, *s_in_flight,
    *one;

/* Where a class keeps some of its attributes, found once from its member descriptors: reading
 * them through PyObject_GetAttr takes ~160 instructions each (type lookup, descriptor call), a
 * slot read is one load. Used for the classes the trace's start and end touch (NodeSession,
 * SpanExport and its batches: __slots__ classes). Any other class, one whose attributes are not
 * all plain object slots, or one changed since (its version tag) goes through getattr. */
typedef struct {
    PyTypeObject *type;   /* (a strong reference: its address stays its own) */
    unsigned int version; /* its tp_version_tag then: changed if it is */
    int count;
    PyObject **const *names; /* the interned names, set at import */
    Py_ssize_t offsets[20];
    int read_only; /* only read: the class may have its own __setattr__ (a frozen dataclass) */
} SlotTable;

static int slots_ready(SlotTable *table, PyTypeObject *type) {
    if (type == table->type && type->tp_version_tag == table->version &&
        PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) {
        return 1;
    }
    if (type->tp_getattro != PyObject_GenericGetAttr ||
        (!table->read_only && type->tp_setattro != PyObject_GenericSetAttr)) {
        return 0; /* its own __getattribute__/__getattr__/__setattr__ decides */
    }
    Py_ssize_t offsets[20];
    for (int i = 0; i < table->count; i++) {
        PyObject *found = _PyType_Lookup(type, *table->names[i]); /* borrowed; sets no error */
        if (found == NULL || !Py_IS_TYPE(found, &PyMemberDescr_Type) ||
            !PyType_IsSubtype(type, ((PyDescrObject *)found)->d_type)) {
            return 0; /* (a descriptor of another class's slot: its offset is not ours) */
        }
        PyMemberDef *member = ((PyMemberDescrObject *)found)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY)) {
            return 0;
        }
        offsets[i] = member->offset;
    }
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) {
        return 0; /* (_PyType_Lookup gives one unless the type cannot have one) */
    }
    memcpy(table->offsets, offsets, sizeof(Py_ssize_t) * (size_t)table->count);
    table->version = type->tp_version_tag;
    Py_XSETREF(table->type, (PyTypeObject *)Py_NewRef(type));
    return 1;
}

/* A slot's value, borrowed: NULL when it is unset (for a table slots_ready accepted). */
static inline PyObject *slot_value(PyObject *obj, const SlotTable *table, int field) {
    return *(PyObject **)((char *)obj + table->offsets[field]);
}

/* Store a new reference in a slot (the old value released). */
static inline void slot_store(PyObject *obj, const SlotTable *table, int field, PyObject *value) {
    Py_XSETREF(*(PyObject **)((char *)obj + table->offsets[field]), value);
}

/* What join_session reads of a session. */
enum { SESSION_HEADERS, SESSION_BODY, SESSION_MAX_BYTES, SESSION_IN_FLIGHT, SESSION_FIELDS };
static PyObject **const session_names[SESSION_FIELDS] = {&s_capture_headers, &s_capture_body,
                                                         &s_body_max_bytes, &s_in_flight};
static SlotTable session_table = {NULL, 0, SESSION_FIELDS, session_names, {0}};

/* A session's attribute: a new reference, or NULL with AttributeError (as getattr). */
static PyObject *session_get(PyObject *session, int slots, int field, PyObject *name) {
    PyObject *value = slots ? slot_value(session, &session_table, field) : NULL;
    if (value == NULL) {
        return PyObject_GetAttr(session, name); /* (unset: its AttributeError) */
    }
    return Py_NewRef(value);
}

static int session_set_in_flight(PyObject *session, int slots, PyObject *value) {
    if (!slots) {
        return PyObject_SetAttr(session, s_in_flight, value);
    }
    slot_store(session, &session_table, SESSION_IN_FLIGHT, Py_NewRef(value));
    return 0;
}

/* One session's part: its capture settings join the trace's, its in-flight count goes up. */
static int join_session(TraceObject *self, PyObject *session) {
    int slots = slots_ready(&session_table, Py_TYPE(session));
    PyObject *headers = session_get(session, slots, SESSION_HEADERS, s_capture_headers);
    PyObject *body =
        headers ? session_get(session, slots, SESSION_BODY, s_capture_body) : NULL;
    PyObject *max_bytes =
        body ? session_get(session, slots, SESSION_MAX_BYTES, s_body_max_bytes) : NULL;
    PyObject *in_flight =
        max_bytes ? session_get(session, slots, SESSION_IN_FLIGHT, s_in_flight) : NULL;
    PyObject *more = in_flight ? PyNumber_Add(in_flight, one) : NULL;
    int rc = -1;
    if (more != NULL) {
        int wants_headers = self->capture_headers == Py_True ? 1 : PyObject_IsTrue(headers);
        int wants_body = wants_headers < 0                ? -1
                         : self->capture_body == Py_True ? 1
                                                          : PyObject_IsTrue(body);
        Py_ssize_t size = wants_body < 0 ? -1 : PyLong_AsSsize_t(max_bytes);
        if (wants_body >= 0 && !(size == -1 && PyErr_Occurred()) &&
            session_set_in_flight(session, slots, more) == 0) {
            Py_SETREF(self->capture_headers, Py_NewRef(wants_headers ? Py_True : Py_False));
            Py_SETREF(self->capture_body, Py_NewRef(wants_body ? Py_True : Py_False));
            if (size > self->body_max_bytes) {
                self->body_max_bytes = size;
            }
            rc = 0;
        }
    }
    Py_XDECREF(headers);
    Py_XDECREF(body);
    Py_XDECREF(max_bytes);
    Py_XDECREF(in_flight);
    Py_XDECREF(more);
    return rc;
}

/* A trace of ``head`` and ``tail`` (lists of sessions, joined) starting at ``start_ns``, its
 * root's parent ``parent_id`` (if ``has_parent``) in trace ``trace`` (a reference it takes). */
static PyObject *make_trace(PyTypeObject *type, PyObject *head, PyObject *tail, PyObject *trace,
                            unsigned long long start_ns, uint64_t parent_id, int has_parent) {
    TraceObject *self = (TraceObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(trace);
        return NULL;
    }
    self->trace_id = trace;
    self->capture_headers = Py_NewRef(Py_False);
    self->capture_body = Py_NewRef(Py_False);
    self->head = Py_NewRef(head);
    self->tail = Py_NewRef(tail);
    self->root = new_span(&SpanType, s_http, parent_id, has_parent, start_ns, 2 /* SERVER */,
                          Py_None);
    self->spans = self->root ? PyList_New(1) : NULL;
    self->logs = self->spans ? PyList_New(0) : NULL;
    if (self->logs == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    PyList_SET_ITEM(self->spans, 0, Py_NewRef(self->root));
    for (int part = 0; part < 2; part++) {
        PyObject *sessions = part == 0 ? head : tail;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sessions); i++) {
            PyObject *session = Py_NewRef(PyList_GET_ITEM(sessions, i));
            int failed = join_session(self, session);
            Py_DECREF(session);
            if (failed) {
                Py_DECREF(self);
                return NULL;
            }
        }
    }
    return (PyObject *)self;
}

static PyObject *trace_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames) {
    PyObject *names[] = {s_head, s_tail, s_start_ns, s_parent};
    static const char usage[] = "RequestTrace(*, head, tail, start_ns, parent=None)";
    PyObject *given[4];
    if (PyVectorcall_NARGS(nargsf) != 0 ||
        method_args(usage, names, 4, 3, args, nargsf, kwnames, given) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, usage);
        }
        return NULL;
    }
    PyObject *head = given[0], *tail = given[1], *parent = given[3];
    if (!PyList_Check(head) || !PyList_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "head and tail are lists of sessions");
        return NULL;
    }
    uint64_t parent_id = 0;
    int has_parent = 0;
    PyObject *trace = NULL;
    if (parent != NULL && parent != Py_None) {
        if (!PyTuple_Check(parent) || PyTuple_GET_SIZE(parent) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(parent, 0))) {
            PyErr_SetString(PyExc_TypeError, "parent is (trace_id, span_id) bytes");
            return NULL;
        }
        if (id_of(PyTuple_GET_ITEM(parent, 1), &parent_id, &has_parent, 1) < 0) {
            return NULL;
        }
        trace = Py_NewRef(PyTuple_GET_ITEM(parent, 0));
    } else {
        trace = trace_id(NULL, NULL);
        if (trace == NULL) {
            return NULL;
        }
    }
    unsigned long long start_ns;
    if (start_time(given[2], &start_ns) < 0) {
        Py_DECREF(trace);
        return NULL;
    }
    return make_trace((PyTypeObject *)type, head, tail, trace, start_ns, parent_id, has_parent);
}

static PyObject *trace_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    /* type.__call__ with a kwargs dict (e.g. RequestTrace(**kwargs)): as the vectorcall */
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "RequestTrace(*, head, tail, start_ns, parent=None)");
        return NULL;
    }
    Py_ssize_t count = kwds ? PyDict_GET_SIZE(kwds) : 0;
    if (count > 4) {
        PyErr_SetString(PyExc_TypeError, "RequestTrace(*, head, tail, start_ns, parent=None)");
        return NULL;
    }
    PyObject *values[4], *names = PyTuple_New(count), *key, *value;
    if (names == NULL) {
        return NULL; /* (no memory: that error, not a TypeError) */
    }
    Py_ssize_t pos = 0, i = 0;
    while (kwds && PyDict_Next(kwds, &pos, &key, &value)) {
        PyTuple_SET_ITEM(names, i, Py_NewRef(key));
        values[i++] = value;
    }
    PyObject *result = trace_vectorcall((PyObject *)type, values, 0, names);
    Py_DECREF(names);
    return result;
}

static PyObject *trace_span(TraceObject *self, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames) {
    if (self->spans == NULL || !PyList_Check(self->spans)) {
        PyErr_SetString(PyExc_TypeError, "a trace's spans are a list");
        return NULL;
    }
    return make_child(self->spans, &SpanType, args, nargsf, kwnames);
}

static PyObject *trace_sessions(TraceObject *self, PyObject *unused) {
    (void)unused;
    if (self->head == NULL || self->tail == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a trace's sessions were deleted");
        return NULL;
    }
    return PySequence_Concat(self->head, self->tail);
}

static int trace_traverse(TraceObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->head);
    Py_VISIT(self->tail);
    Py_VISIT(self->trace_id);
    Py_VISIT(self->root);
    Py_VISIT(self->spans);
    Py_VISIT(self->logs);
    return 0;
}

static int trace_clear(TraceObject *self) {
    Py_CLEAR(self->head);
    Py_CLEAR(self->tail);
    Py_CLEAR(self->trace_id);
    Py_CLEAR(self->root);
    Py_CLEAR(self->spans);
    Py_CLEAR(self->logs);
    Py_CLEAR(self->capture_headers);
    Py_CLEAR(self->capture_body);
    return 0;
}

static void trace_dealloc(TraceObject *self) {
    PyObject_GC_UnTrack(self);
    trace_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef trace_methods[] = {
    {"span", (PyCFunction)(void (*)(void))trace_span, METH_FASTCALL | METH_KEYWORDS,
     "span(name, parent, start_ns=None, kind=KIND_INTERNAL, attributes=None): start a child "
     "span of parent (at start_ns, or now) and add it to the trace."},
    {"sessions", (PyCFunction)trace_sessions, METH_NOARGS,
     "Every session involved (kept or still deciding)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef trace_members[] = {
    {"head", T_OBJECT_EX, offsetof(TraceObject, head), 0, NULL},
    {"tail", T_OBJECT_EX, offsetof(TraceObject, tail), 0, NULL},
    {"trace_id", T_OBJECT_EX, offsetof(TraceObject, trace_id), 0, NULL},
    {"root", T_OBJECT_EX, offsetof(TraceObject, root), 0, NULL},
    {"spans", T_OBJECT_EX, offsetof(TraceObject, spans), 0, NULL},
    {"logs", T_OBJECT_EX, offsetof(TraceObject, logs), 0, NULL},
    {"capture_headers", T_OBJECT_EX, offsetof(TraceObject, capture_headers), 0, NULL},
    {"capture_body", T_OBJECT_EX, offsetof(TraceObject, capture_body), 0, NULL},
    {"body_max_bytes", T_PYSSIZET, offsetof(TraceObject, body_max_bytes), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject TraceType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dataplane.tracing._wire.RequestTrace",
    .tp_doc = "RequestTrace(*, head, tail, start_ns, parent=None): the spans of one request for "
              "the sessions that (may) keep it; head sessions kept it when it arrived, tail "
              "sessions decide at the log phase from response fields.",
    .tp_basicsize = sizeof(TraceObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = trace_new,
    .tp_vectorcall = trace_vectorcall,
    .tp_dealloc = (destructor)trace_dealloc,
    .tp_traverse = (traverseproc)trace_traverse,
    .tp_clear = (inquiry)trace_clear,
    .tp_methods = trace_methods,
    .tp_members = trace_members,
};

/* ---- PhaseEvents ------------------------------------------------------------------------- */

/* The transport's trace events turned into the upstream's phase spans (proxy._TransportEvents
 * is the Python version and the reference; tests run both). A "<phase>.started" event starts a
 * child span of the upstream span and appends it to the trace's spans; "<phase>.complete" ends
 * it. What needs more than that (an event outside the table, a failure, a complete event whose
 * phase is annotated from its info) goes to the Python ``fallback(upstream, opened, event,
 * info)`` registered with set_phase_table. */

#define MAX_PHASE_EVENTS 64
#define MAX_PHASES 16

typedef struct {
    int slot;          /* which phase; -1: the connection was reused (no phase) */
    PyObject *name;    /* the span to start, or NULL for a complete/failed event */
    int kind;
    int failed;
    int annotated;     /* its info sets attributes (Python does it) */
    PyObject *size_key;       /* or: this int in its info ... */
    PyObject *size_attribute; /* ... is this attribute (done here) */
} PhaseAction;

static PyObject *s_peer, *s_reused_attribute, *s_peer_attribute, *s_status_code_attribute;

static PhaseAction phase_actions[MAX_PHASE_EVENTS];
static PyObject *phase_index = NULL;    /* event -> index into phase_actions */
/* The same events, interned, by index: the transport's names are the same objects, so an
 * event is found by comparing pointers (a dict lookup and reading its int took ~160
 * instructions, seven times a traced request); an equal string that is not them goes
 * through the dict. */
static PyObject *phase_keys[MAX_PHASE_EVENTS]; /* borrowed: phase_index holds them */
static int phase_count = 0;
static PyTypeObject *phase_span_type = NULL;
static PyObject *phase_fallback = NULL;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *spans;
    PyObject *upstream;
    PyObject *open[MAX_PHASES];
} PhaseEventsObject;

/* The Python fallback does this event (``opened``: the phase's span, or Py_None). */
static PyObject *phase_fallback_call(PhaseEventsObject *self, PyObject *opened, PyObject *event,
                                     PyObject *info) {
    PyObject *call[4] = {self->upstream, opened, event, info};
    return PyObject_Vectorcall(phase_fallback, call, 4, NULL);
}

static PyObject *phase_events_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    PhaseEventsObject *self = (PhaseEventsObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        PyErr_SetString(PyExc_TypeError, "PhaseEvents(event, info)");
        return NULL;
    }
    PyObject *event = args[0], *info = args[1];
    SpanObject *upstream = (SpanObject *)self->upstream;
    int found = 0;
    while (found < phase_count && phase_keys[found] != event) {
        found++;
    }
    if (found == phase_count) {
        PyObject *index = PyDict_GetItemWithError(phase_index, event);
        if (index == NULL) { /* not in the table: Python does it */
            return PyErr_Occurred() ? NULL : phase_fallback_call(self, Py_None, event, info);
        }
        found = (int)PyLong_AsLong(index);
    }
    PhaseAction *action = &phase_actions[found];
    if (action->slot < 0) { /* reused: the upstream span says so, and the peer (an IP) */
        PyObject *peer = PyDict_Check(info) ? PyDict_GetItemWithError(info, s_peer) : NULL;
        PyObject *address = peer != NULL && PyTuple_Check(peer) && PyTuple_GET_SIZE(peer)
                                ? PyTuple_GET_ITEM(peer, 0)
                                : NULL;
        if (PyErr_Occurred() || (address == NULL && peer != NULL) ||
            (address != NULL && !PyUnicode_CheckExact(address))) {
            PyErr_Clear(); /* anything else: as Python does it */
            return phase_fallback_call(self, Py_None, event, info);
        }
        PyObject *attributes = span_dict(upstream);
        if (attributes == NULL || PyDict_SetItem(attributes, s_reused_attribute, Py_True) < 0 ||
            (address != NULL && PyDict_SetItem(attributes, s_peer_attribute, address) < 0)) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (action->name != NULL) { /* started */
        PyObject *span = add_child(self->spans, phase_span_type, action->name, upstream->id,
                                   now_ns(), action->kind, Py_None);
        if (span == NULL) {
            return NULL;
        }
        Py_XSETREF(self->open[action->slot], span);
        Py_RETURN_NONE;
    }
    PyObject *opened = self->open[action->slot];
    if (opened == NULL) {
        Py_RETURN_NONE;
    }
    self->open[action->slot] = NULL; /* the reference moves here */
    SpanObject *span = (SpanObject *)opened;
    PyObject *size = NULL;
    if (action->size_key != NULL && PyDict_Check(info)) {
        size = PyDict_GetItemWithError(info, action->size_key);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(opened);
        return NULL;
    }
    /* failed, attributes from its info, a size that is not an int: Python does it */
    if (action->failed || (action->annotated && PyDict_Check(info) && PyDict_GET_SIZE(info)) ||
        (size != NULL && !PyLong_CheckExact(size))) {
        PyObject *result = phase_fallback_call(self, opened, event, info);
        Py_DECREF(opened);
        return result;
    }
    if (size != NULL &&
        (span_dict(span) == NULL ||
         PyDict_SetItem(span->attributes, action->size_attribute, size) < 0)) {
        Py_DECREF(opened);
        return NULL;
    }
    if (span->end_ns == 0) {
        span->end_ns = now_ns();
    }
    Py_DECREF(opened);
    Py_RETURN_NONE;
}

/* PhaseEvents(trace, upstream): ``trace`` a RequestTrace (its spans) or the list of spans
 * itself. Made once per upstream try: called without an argument tuple. */
static PyObject *phase_events_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                                         PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "PhaseEvents(trace or spans, upstream)");
        return NULL;
    }
    PyObject *spans = args[0], *upstream = args[1];
    if (Py_IS_TYPE(spans, &TraceType)) {
        spans = ((TraceObject *)spans)->spans;
    }
    if (spans == NULL || !PyList_Check(spans) || !PyObject_TypeCheck(upstream, &SpanType)) {
        PyErr_SetString(PyExc_TypeError, "PhaseEvents(trace or spans: list, upstream: SpanBase)");
        return NULL;
    }
    if (phase_index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_phase_table() was not called");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)type;
    PhaseEventsObject *self = (PhaseEventsObject *)cls->tp_alloc(cls, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = phase_events_call;
    self->spans = Py_NewRef(spans);
    self->upstream = Py_NewRef(upstream);
    return (PyObject *)self;
}

static PyObject *phase_events_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "PhaseEvents(trace or spans, upstream)");
        return NULL;
    }
    return phase_events_vectorcall((PyObject *)type, &PyTuple_GET_ITEM(args, 0),
                                   (size_t)PyTuple_GET_SIZE(args), NULL);
}

static int phase_events_traverse(PhaseEventsObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->spans);
    Py_VISIT(self->upstream);
    for (int i = 0; i < MAX_PHASES; i++) {
        Py_VISIT(self->open[i]);
    }
    return 0;
}

static int phase_events_clear(PhaseEventsObject *self) {
    Py_CLEAR(self->spans);
    Py_CLEAR(self->upstream);
    for (int i = 0; i < MAX_PHASES; i++) {
        Py_CLEAR(self->open[i]);
    }
    return 0;
}

static void phase_events_dealloc(PhaseEventsObject *self) {
    PyObject_GC_UnTrack(self);
    phase_events_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject PhaseEventsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dataplane.tracing._wire.PhaseEvents",
    .tp_doc = "PhaseEvents(trace or spans, upstream): the transport's trace callable for one "
              "try.",
    .tp_basicsize = sizeof(PhaseEventsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(PhaseEventsObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = phase_events_new,
    .tp_vectorcall = phase_events_vectorcall,
    .tp_dealloc = (destructor)phase_events_dealloc,
    .tp_traverse = (traverseproc)phase_events_traverse,
    .tp_clear = (inquiry)phase_events_clear,
};

/* set_phase_table(table, span_type, fallback): ``table`` maps an event to (slot, span name or
 * "", kind, failed, annotated). Called once, at import of the proxy. */
static PyObject *set_phase_table(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyDict_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_IsSubtype((PyTypeObject *)args[1], &SpanType) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "set_phase_table(table: dict, span_type: SpanBase subclass, fallback)");
        return NULL;
    }
    if (PyDict_GET_SIZE(args[0]) > MAX_PHASE_EVENTS) {
        PyErr_SetString(PyExc_ValueError, "too many phase events");
        return NULL;
    }
    PyObject *index = PyDict_New();
    if (index == NULL) {
        return NULL;
    }
    PhaseAction actions[MAX_PHASE_EVENTS];
    PyObject *keys[MAX_PHASE_EVENTS];
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int count = 0;
    while (PyDict_Next(args[0], &pos, &key, &value)) {
        int slot, kind, failed, annotated;
        PyObject *name, *size_key = Py_None, *size_attribute = Py_None;
        if (!PyUnicode_Check(key) || !PyTuple_Check(value) ||
            !PyArg_ParseTuple(value, "iUipp|OO", &slot, &name, &kind, &failed, &annotated,
                              &size_key, &size_attribute) ||
            (size_key != Py_None && !PyUnicode_Check(size_key)) ||
            (size_attribute != Py_None && !PyUnicode_Check(size_attribute))) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "table: event -> (slot, name, kind, failed, "
                                                 "annotated[, size key, size attribute])");
            }
            Py_DECREF(index);
            return NULL;
        }
        if (slot < -1 || slot >= MAX_PHASES) {
            PyErr_SetString(PyExc_ValueError, "phase slot out of range");
            Py_DECREF(index);
            return NULL;
        }
        /* interned: the transport's event names are too (events.py), so a lookup finds its
         * key by identity instead of comparing text */
        PyObject *number = PyLong_FromLong(count), *event = Py_NewRef(key);
        if (PyUnicode_CheckExact(event)) {
            PyUnicode_InternInPlace(&event);
        }
        if (number == NULL || PyDict_SetItem(index, event, number) < 0) {
            Py_XDECREF(number);
            Py_DECREF(event);
            Py_DECREF(index);
            return NULL;
        }
        Py_DECREF(number);
        Py_DECREF(event);
        keys[count] = event; /* borrowed: the index holds it */
        actions[count].slot = slot;
        actions[count].name = PyUnicode_GET_LENGTH(name) ? name : NULL;
        actions[count].kind = kind;
        actions[count].failed = failed;
        actions[count].annotated = annotated;
        actions[count].size_key = size_key != Py_None && size_attribute != Py_None ? size_key : NULL;
        actions[count].size_attribute = actions[count].size_key ? size_attribute : NULL;
        count++;
    }
    for (int i = 0; i < MAX_PHASE_EVENTS; i++) { /* the old table's objects */
        Py_CLEAR(phase_actions[i].name);
        Py_CLEAR(phase_actions[i].size_key);
        Py_CLEAR(phase_actions[i].size_attribute);
    }
    for (int i = 0; i < count; i++) {
        phase_actions[i] = actions[i];
        Py_XINCREF(phase_actions[i].name);
        Py_XINCREF(phase_actions[i].size_key);
        Py_XINCREF(phase_actions[i].size_attribute);
    }
    memcpy(phase_keys, keys, sizeof(PyObject *) * (size_t)count);
    phase_count = count;
    Py_XSETREF(phase_index, index);
    Py_XSETREF(phase_span_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(phase_fallback, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

static PyObject *set_clock_offset(PyObject *module, PyObject *offset) {
    (void)module;
    long long value = PyLong_AsLongLong(offset);
    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    clock_offset_ns = value;
    Py_RETURN_NONE;
}

/* METH_FASTCALL rather than METH_NOARGS: CPython 3.11 specializes a call to the former
 * (PRECALL_NO_KW_BUILTIN_FAST), not to the latter. */
static PyObject *clock_ns(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    (void)args;
    if (nargs != 0) {
        PyErr_SetString(PyExc_TypeError, "now_ns() takes no arguments");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(now_ns());
}

/* What span_body writes of one span. The objects are new references. */
typedef struct {
    PyObject *name, *attributes, *events, *message, *encoded;
    uint64_t id, parent, kind, start, end, code;
    int has_parent;
} Fields;

static void fields_clear(Fields *f) {
    Py_XDECREF(f->name);
    Py_XDECREF(f->attributes);
    Py_XDECREF(f->events);
    Py_XDECREF(f->message);
    Py_XDECREF(f->encoded);
}

/* From the struct for SpanBase instances (no int objects made and read back), by attribute
 * for other span-like objects. An end of 0 (never ended) becomes the start. */
static int span_fields(PyObject *span, Fields *f) {
    if (PyObject_TypeCheck(span, &SpanType)) {
        SpanObject *s = (SpanObject *)span;
        if (s->name == NULL || s->status_message == NULL || s->encoded == NULL) {
            PyErr_SetString(PyExc_AttributeError, "span field deleted");
            return -1;
        }
        if (s->kind < 0 || s->status_code < 0) {
            /* wire.py writes these as protobuf does (10-byte two's complement) */
            PyErr_SetString(PyExc_OverflowError, "negative kind or status code");
            return -1;
        }
        f->id = s->id;
        f->parent = s->parent;
        f->has_parent = s->has_parent;
        f->name = Py_NewRef(s->name);
        f->attributes = Py_NewRef(s->attributes ? s->attributes : Py_None); /* None: none yet */
        f->events = Py_NewRef(s->events ? s->events : Py_None);
        f->message = Py_NewRef(s->status_message);
        f->encoded = Py_NewRef(s->encoded);
        f->kind = (uint64_t)s->kind;
        f->start = (uint64_t)s->start_ns;
        f->end = s->end_ns ? (uint64_t)s->end_ns : f->start;
        f->code = (uint64_t)s->status_code;
        return 0;
    }
    PyObject *ids[2] = {PyObject_GetAttr(span, s_span_id), NULL};
    if (ids[0] == NULL || (ids[1] = PyObject_GetAttr(span, s_parent_id)) == NULL) {
        Py_XDECREF(ids[0]);
        return -1;
    }
    /* a span-like's parent: any false value is none (as wire.py says) */
    int present, has_parent = PyObject_IsTrue(ids[1]);
    int bad = has_parent < 0 || id_of(ids[0], &f->id, &present, 0) < 0 ||
              (has_parent && id_of(ids[1], &f->parent, &present, 0) < 0);
    f->has_parent = has_parent > 0;
    Py_DECREF(ids[0]);
    Py_DECREF(ids[1]);
    if (bad) {
        return -1;
    }
    PyObject *names[] = {s_name, s_attributes, s_events, s_status_message};
    PyObject **slots[] = {&f->name, &f->attributes, &f->events, &f->message};
    for (int i = 0; i < 4; i++) {
        *slots[i] = PyObject_GetAttr(span, names[i]);
        if (*slots[i] == NULL) {
            return -1;
        }
    }
    f->encoded = PyObject_GetAttr(span, s_encoded_attributes); /* optional on span-likes */
    if (f->encoded == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        f->encoded = Py_NewRef(empty_bytes);
    }
    PyObject *numbers[4] = {NULL};
    PyObject *number_names[] = {s_kind, s_start_ns, s_end_ns, s_status_code};
    int rc = -1;
    for (int i = 0; i < 4; i++) {
        numbers[i] = PyObject_GetAttr(span, number_names[i]);
        if (numbers[i] == NULL) {
            goto done;
        }
    }
    int ended = PyObject_IsTrue(numbers[2]);
    if (ended < 0 || unsigned_value(numbers[0], &f->kind) < 0 ||
        unsigned_value(numbers[1], &f->start) < 0 ||
        unsigned_value(numbers[3], &f->code) < 0) {
        goto done;
    }
    f->end = f->start;
    if (ended && unsigned_value(numbers[2], &f->end) < 0) {
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(numbers[i]);
    }
    return rc;
}

/* One span's fields (wire.py's _span, without the outer ScopeSpans.spans field); ``extra``
 * (bytes or NULL): encoded attribute fields written after the span's own. */
static int span_body(Buf *b, const char *trace_field, PyObject *span, PyObject *extra) {
    Fields f = {NULL};
    int rc = -1;
    if (span_fields(span, &f) < 0) {
        goto done;
    }
    if (put(b, trace_field, 18) < 0 || id_field(b, 0x12, f.id) < 0 ||
        (f.has_parent && id_field(b, 0x22, f.parent) < 0)) {
        goto done;
    }
    if (put_text(b, 0x2A, f.name) < 0 || room(b, 1 + 10 + 2 * 9) < 0) {
        goto done;
    }
    char *p = b->data + b->len;
    *p++ = 0x30;
    p = write_varint(p, f.kind);
    *p++ = 0x39;
    p = write_fixed64(p, f.start);
    *p++ = 0x41;
    p = write_fixed64(p, f.end);
    b->len = p - b->data;
    int has_attributes = PyDict_CheckExact(f.attributes) ? PyDict_GET_SIZE(f.attributes) > 0
                                                         : PyObject_IsTrue(f.attributes);
    if (has_attributes < 0 || (has_attributes && attributes(b, 0x4A, f.attributes) < 0)) {
        goto done;
    }
    if (!PyBytes_Check(f.encoded)) {
        PyErr_SetString(PyExc_TypeError, "encoded_attributes must be bytes");
        goto done;
    }
    if (put(b, PyBytes_AS_STRING(f.encoded), PyBytes_GET_SIZE(f.encoded)) < 0 ||
        (extra != NULL && put(b, PyBytes_AS_STRING(extra), PyBytes_GET_SIZE(extra)) < 0)) {
        goto done;
    }
    int has_events = PyObject_IsTrue(f.events);
    if (has_events < 0) {
        goto done;
    }
    if (has_events) {
        PyObject *list = PySequence_Fast(f.events, "span events must be a sequence");
        if (list == NULL) {
            goto done;
        }
        Py_ssize_t count = PySequence_Fast_GET_SIZE(list);
        int failed = 0;
        for (Py_ssize_t i = 0; i < count && !failed; i++) {
            PyObject *ev = PySequence_Fast_GET_ITEM(list, i);
            Py_INCREF(ev);
            failed = event(b, ev) < 0;
            Py_DECREF(ev);
            count = PySequence_Fast_GET_SIZE(list); /* a list may shrink meanwhile */
        }
        Py_DECREF(list);
        if (failed) {
            goto done;
        }
    }
    if (f.code) {
        Buf status = {NULL, 0, 0};
        int ok = 0;
        int has_message = PyObject_IsTrue(f.message);
        if (has_message >= 0 && (!has_message || put_text(&status, 0x12, f.message) == 0) &&
            put_byte(&status, 0x18) == 0 && put_varint(&status, f.code) == 0) {
            ok = put_field(b, 0x7A, status.data, status.len) == 0;
        }
        PyMem_Free(status.data);
        if (!ok) {
            goto done;
        }
    }
    rc = 0;
done:
    fields_clear(&f);
    return rc;
}

/* A trace's spans as ScopeSpans.spans fields; ``root_extra`` (bytes or NULL): encoded attribute
 * fields added to the first span's. */
static PyObject *encode_spans(PyObject *trace_id, PyObject *sequence, PyObject *root_extra) {
    if (!PyBytes_Check(trace_id) || PyBytes_GET_SIZE(trace_id) != 16) {
        PyErr_SetString(PyExc_ValueError, "a trace ID is 16 bytes");
        return NULL;
    }
    char trace_field[18] = {0x0A, 0x10};
    memcpy(trace_field + 2, PyBytes_AS_STRING(trace_id), 16);
    PyObject *spans = PySequence_Fast(sequence, "spans must be a sequence");
    if (spans == NULL) {
        return NULL;
    }
    static Buf scratch_out = {NULL, 0, 0}, scratch_body = {NULL, 0, 0};
    Buf out = take_scratch(&scratch_out), body = take_scratch(&scratch_body);
    PyObject *result = NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(spans);
    for (Py_ssize_t i = 0; i < count; i++) {
        body.len = 0;
        PyObject *span = PySequence_Fast_GET_ITEM(spans, i);
        Py_INCREF(span);
        int failed = span_body(&body, trace_field, span, i == 0 ? root_extra : NULL) < 0 ||
                     put_field(&out, 0x12, body.data, body.len) < 0;
        Py_DECREF(span);
        if (failed) {
            goto done;
        }
        count = PySequence_Fast_GET_SIZE(spans); /* a list may shrink meanwhile */
    }
    result = PyBytes_FromStringAndSize(out.data ? out.data : "", out.len);
done:
    Py_DECREF(spans);
    release_scratch(&scratch_out, &out, 1 << 20);
    release_scratch(&scratch_body, &body, 1 << 20);
    return result;
}

static PyObject *trace_spans_here(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "trace_spans(trace_id, spans)");
        return NULL;
    }
    return encode_spans(args[0], args[1], NULL);
}

/* ---- write_root -------------------------------------------------------------------------- */

/* The root span's standard attributes (root.py's python_write_root is the reference, and the
 * fallback: anything this does not take raises TypeError, ValueError or OverflowError before
 * the span is touched). They are written once, as encoded KeyValue fields, into the span's
 * encoded_attributes: a request's root would otherwise build a dict of ~22 entries that the
 * encoder then walks again. */

enum {
    R_METHOD, R_SCHEME, R_HOST, R_PATH, R_QUERY, R_CLIENT_ADDRESS, R_CLIENT_PORT,
    R_SERVER_PORT, R_REQUEST_BODY_SIZE, R_RESPONSE_BODY_SIZE, R_REQUEST_ID, R_TOTAL_MS,
    R_UPSTREAM_MS, R_STATUS, R_USER_AGENT, R_CONSUMER_ID, R_FIELDS
};

/* The keys write_root may write; an extra attribute (set before, in the dict) under one of
 * them gives way, except error.type, which write_root writes only when there is none. */
static const char *const root_keys[] = {
    "http.request.method", "url.full", "url.path", "url.scheme", "client.address",
    "client.port", "server.address", "server.port", "network.protocol.version",
    "http.request.body.size", "http.response.body.size", "gateway.request.id",
    "gateway.latency.total_ms", "gateway.latency.upstream_ms", "gateway.latency.gateway_ms",
};
#define ROOT_ALWAYS (sizeof(root_keys) / sizeof(root_keys[0]))

/* A KeyValue span attribute (tag 0x4A) whose string value is the concatenation of parts. */
static inline int kv_text(Buf *b, const char *key, const char *const *parts, const Py_ssize_t *lens,
                   int n) {
    Py_ssize_t key_len = (Py_ssize_t)strlen(key), text_len = 0;
    for (int i = 0; i < n; i++) {
        text_len += lens[i];
    }
    uint64_t payload = 1 + (uint64_t)varint_len((uint64_t)text_len) + (uint64_t)text_len;
    char *p = kv_head(b, 0x4A, key, key_len, payload);
    if (p == NULL) {
        return -1;
    }
    *p++ = 0x0A; /* string_value */
    p = write_varint(p, (uint64_t)text_len);
    for (int i = 0; i < n; i++) {
        if (lens[i]) {
            memcpy(p, parts[i], (size_t)lens[i]);
            p += lens[i];
        }
    }
    b->len = p - b->data;
    return 0;
}

static inline int kv_str(Buf *b, const char *key, const char *text, Py_ssize_t len) {
    return kv_text(b, key, &text, &len, 1);
}

/* int_value (varint) or double_value (fixed64) KeyValue span attributes. */
static inline int kv_number(Buf *b, const char *key, int is_double, uint64_t number, double real) {
    Py_ssize_t key_len = (Py_ssize_t)strlen(key);
    uint64_t payload = is_double ? 9 : 1 + (uint64_t)varint_len(number);
    char *p = kv_head(b, 0x4A, key, key_len, payload);
    if (p == NULL) {
        return -1;
    }
    if (is_double) {
        *p++ = 0x21;
        if (PyFloat_Pack8(real, p, 1) < 0) {
            return -1;
        }
        p += 8;
    } else {
        *p++ = 0x18;
        p = write_varint(p, number);
    }
    b->len = p - b->data;
    return 0;
}

/* Milliseconds to three decimals, as root.py's ms3 (int() of the scaled value, halves away
 * from zero, over 1000.0): the same IEEE operations, so the same double. */
static int ms3(double value, double *out) {
    double scaled = value * 1000.0;
    scaled += value >= 0 ? 0.5 : -0.5;
    if (!(scaled > -9.0e15 && scaled < 9.0e15)) { /* NaN, inf, or past exact integers */
        PyErr_SetString(PyExc_ValueError, "latency out of range");
        return -1;
    }
    *out = (double)(long long)scaled / 1000.0;
    return 0;
}

static int root_int(PyObject *value, uint64_t *out) {
    if (!PyLong_CheckExact(value)) { /* a bool would be written as a bool by Python */
        PyErr_SetString(PyExc_TypeError, "root integers must be int");
        return -1;
    }
    return int64_value(value, out);
}

/* write_root(root, end_ns, values, route_attributes[, route_encoded]): see root.py. */
static PyObject *write_root_here(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs < 4 || nargs > 5 || !PyObject_TypeCheck(args[0], &SpanType) ||
        !PyTuple_Check(args[2]) || PyTuple_GET_SIZE(args[2]) != R_FIELDS ||
        !PyDict_Check(args[3]) || (nargs == 5 && !PyBytes_Check(args[4]))) {
        PyErr_SetString(PyExc_TypeError, "write_root(root: SpanBase, end_ns: int, values: tuple, "
                                         "route: dict, route_encoded: bytes = b'')");
        return NULL;
    }
    /* the route's attributes already encoded (the same as its dict's: router/candidate.py) */
    PyObject *route_encoded = nargs == 5 && PyBytes_GET_SIZE(args[4]) ? args[4] : NULL;
    SpanObject *root = (SpanObject *)args[0];
    PyObject *const *v = &PyTuple_GET_ITEM(args[2], 0);
    PyObject *route = args[3];
    if ((root->attributes != NULL && !PyDict_Check(root->attributes)) || root->encoded == NULL) {
        PyErr_SetString(PyExc_TypeError, "the root's attributes must be a dict");
        return NULL;
    }
    uint64_t end_ns;
    if (unsigned_value(args[1], &end_ns) < 0) {
        return NULL;
    }
    /* Every value checked and converted before anything is written. */
    const char *text[R_FIELDS] = {NULL};
    Py_ssize_t len[R_FIELDS] = {0};
    static const int strings[] = {R_METHOD, R_SCHEME, R_HOST, R_PATH, R_QUERY,
                                  R_CLIENT_ADDRESS, R_REQUEST_ID, R_USER_AGENT, R_CONSUMER_ID};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        int field = strings[i];
        if (v[field] == Py_None && (field == R_USER_AGENT || field == R_CONSUMER_ID)) {
            continue;
        }
        if (!PyUnicode_CheckExact(v[field])) {
            PyErr_SetString(PyExc_TypeError, "root strings must be str");
            return NULL;
        }
        text[field] = utf8_of(v[field], &len[field]);
        if (text[field] == NULL) {
            return NULL;
        }
    }
    uint64_t client_port, server_port, request_size, response_size, status;
    double total, upstream, gateway;
    if (root_int(v[R_CLIENT_PORT], &client_port) < 0 ||
        root_int(v[R_SERVER_PORT], &server_port) < 0 ||
        root_int(v[R_REQUEST_BODY_SIZE], &request_size) < 0 ||
        root_int(v[R_RESPONSE_BODY_SIZE], &response_size) < 0 ||
        root_int(v[R_STATUS], &status) < 0) {
        return NULL;
    }
    if (!PyFloat_CheckExact(v[R_TOTAL_MS]) || !PyFloat_CheckExact(v[R_UPSTREAM_MS])) {
        PyErr_SetString(PyExc_TypeError, "latencies are floats");
        return NULL;
    }
    double total_ms = PyFloat_AS_DOUBLE(v[R_TOTAL_MS]);
    double upstream_ms = PyFloat_AS_DOUBLE(v[R_UPSTREAM_MS]);
    if (ms3(total_ms, &total) < 0 || ms3(upstream_ms, &upstream) < 0 ||
        ms3(total_ms - upstream_ms, &gateway) < 0) {
        return NULL;
    }
    /* server.address: the host without its port ("[::1]:80" -> "[::1]") */
    Py_ssize_t address_len = len[R_HOST];
    const char *host = text[R_HOST];
    if (address_len && host[0] == '[') {
        const char *close = memchr(host, ']', (size_t)address_len);
        if (close != NULL) {
            address_len = close - host + 1;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)address_len);
        if (colon != NULL) {
            address_len = colon - host;
        }
    }
    int has_error_type = 0;
    /* NULL: none yet. Held: encoding a route value may run Python code that replaces it. */
    PyObject *extras = Py_XNewRef(root->attributes);
    if (extras != NULL && PyDict_GET_SIZE(extras)) {
        has_error_type = PyDict_Contains(extras, s_error_type);
        if (has_error_type < 0) {
            Py_DECREF(extras);
            return NULL;
        }
    }
    const char *const url_parts[] = {text[R_SCHEME], "://", host, text[R_PATH], "?",
                                     text[R_QUERY]};
    const Py_ssize_t url_lens[] = {len[R_SCHEME], 3, len[R_HOST], len[R_PATH], 1, len[R_QUERY]};
    int status_error = status >= 500 && status < (1ULL << 63);
    char status_text[24];
    int status_len = 0;
    if (status_error) {
        status_len = snprintf(status_text, sizeof status_text, "%llu", (unsigned long long)status);
    }
    static Buf scratch = {NULL, 0, 0};
    Buf b = take_scratch(&scratch);
    if (kv_str(&b, root_keys[0], text[R_METHOD], len[R_METHOD]) < 0 ||
        kv_text(&b, root_keys[1], url_parts, url_lens, len[R_QUERY] ? 6 : 4) < 0 ||
        kv_str(&b, root_keys[2], text[R_PATH], len[R_PATH]) < 0 ||
        kv_str(&b, root_keys[3], text[R_SCHEME], len[R_SCHEME]) < 0 ||
        kv_str(&b, root_keys[4], text[R_CLIENT_ADDRESS], len[R_CLIENT_ADDRESS]) < 0 ||
        kv_number(&b, root_keys[5], 0, client_port, 0) < 0 ||
        kv_str(&b, root_keys[6], host, address_len) < 0 ||
        kv_number(&b, root_keys[7], 0, server_port, 0) < 0 ||
        kv_str(&b, root_keys[8], "1.1", 3) < 0 ||
        kv_number(&b, root_keys[9], 0, request_size, 0) < 0 ||
        kv_number(&b, root_keys[10], 0, response_size, 0) < 0 ||
        kv_str(&b, root_keys[11], text[R_REQUEST_ID], len[R_REQUEST_ID]) < 0 ||
        kv_number(&b, root_keys[12], 1, 0, total) < 0 ||
        kv_number(&b, root_keys[13], 1, 0, upstream) < 0 ||
        kv_number(&b, root_keys[14], 1, 0, gateway) < 0 ||
        (route_encoded != NULL
             ? put(&b, PyBytes_AS_STRING(route_encoded), PyBytes_GET_SIZE(route_encoded)) < 0
             : PyDict_GET_SIZE(route) && attributes(&b, 0x4A, route) < 0) ||
        (status && kv_number(&b, "http.response.status_code", 0, status, 0) < 0) ||
        (len[R_QUERY] && kv_str(&b, "url.query", text[R_QUERY], len[R_QUERY]) < 0) ||
        (text[R_USER_AGENT] &&
         kv_str(&b, "user_agent.original", text[R_USER_AGENT], len[R_USER_AGENT]) < 0) ||
        (text[R_CONSUMER_ID] &&
         kv_str(&b, "gateway.consumer.id", text[R_CONSUMER_ID], len[R_CONSUMER_ID]) < 0) ||
        (status_error && !has_error_type &&
         kv_str(&b, "error.type", status_text, status_len) < 0)) {
        release_scratch(&scratch, &b, 1 << 16);
        Py_XDECREF(extras);
        return NULL;
    }
    PyObject *encoded = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
    release_scratch(&scratch, &b, 1 << 16);
    if (encoded == NULL) {
        Py_XDECREF(extras);
        return NULL;
    }
    /* Extras (set before) under a key written here give way, as in Python's merge. */
    if (extras != NULL && PyDict_GET_SIZE(extras)) {
        PyObject *keys = PyDict_Keys(extras);
        if (keys == NULL) {
            Py_DECREF(encoded);
            Py_DECREF(extras);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
            PyObject *key = PyList_GET_ITEM(keys, i);
            int replaced = 0;
            if (PyUnicode_Check(key)) {
                for (size_t k = 0; k < ROOT_ALWAYS && !replaced; k++) {
                    replaced = PyUnicode_CompareWithASCIIString(key, root_keys[k]) == 0;
                }
                replaced = replaced ||
                           (status && !PyUnicode_CompareWithASCIIString(
                                          key, "http.response.status_code")) ||
                           (len[R_QUERY] && !PyUnicode_CompareWithASCIIString(key, "url.query")) ||
                           (text[R_USER_AGENT] &&
                            !PyUnicode_CompareWithASCIIString(key, "user_agent.original")) ||
                           (text[R_CONSUMER_ID] &&
                            !PyUnicode_CompareWithASCIIString(key, "gateway.consumer.id"));
            }
            if (!replaced) {
                replaced = PyDict_Contains(route, key);
            }
            if (replaced < 0 || (replaced && PyDict_DelItem(extras, key) < 0)) {
                Py_DECREF(keys);
                Py_DECREF(encoded);
                Py_DECREF(extras);
                return NULL;
            }
        }
        Py_DECREF(keys);
    }
    Py_XDECREF(extras);
    Py_XSETREF(root->encoded, encoded); /* (a route value's code may have deleted it) */
    if (status_error) {
        root->status_code = 2; /* STATUS_ERROR */
    }
    if (root->end_ns == 0) {
        root->end_ns = end_ns;
    }
    Py_RETURN_NONE;
}

/* write_root, trace_spans and attribute_fields hand what C refuses (TypeError, ValueError,
 * OverflowError, raised before anything is touched) to the Python version registered with
 * set_fallback (root.py's python_write_root, wire.py's python_trace_spans and
 * python_attribute_fields), which decides and raises what it raises: the node calls these
 * directly, without a Python wrapper per call deciding. */
static PyObject *root_fallback = NULL, *spans_fallback = NULL, *fields_fallback = NULL;

/* Whether the error set is one of those C raises for what it leaves to Python. */
static int refused_by_c(void) {
    return PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError) ||
           PyErr_ExceptionMatches(PyExc_OverflowError);
}

static PyObject *python_decides(PyObject *result, PyObject *fallback, PyObject *const *args,
                                Py_ssize_t nargs) {
    if (result == NULL && fallback != NULL && refused_by_c()) {
        PyErr_Clear();
        return PyObject_Vectorcall(fallback, args, (size_t)nargs, NULL);
    }
    return result;
}

static PyObject *write_root(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    return python_decides(write_root_here(module, args, nargs), root_fallback, args, nargs);
}

static PyObject *trace_spans(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    return python_decides(trace_spans_here(module, args, nargs), spans_fallback, args, nargs);
}

static PyObject *attribute_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    return python_decides(attribute_fields_here(module, args, nargs), fields_fallback, args,
                          nargs);
}

/* ---- finish_root: the root's standard attributes, gathered from the exchange ------------- */

/* proxy.py's _finish_root gathers the request's values from the exchange (16 attributes, a
 * header, the route's) for write_root: here they are read at the exchange's and the match's
 * slots, without the ~100 bytecodes. It sets the root's name and calls write_root (which hands
 * what it refuses to Python) as the Python path does, and returns True; or returns False having
 * touched nothing (another class, a value of another type, no match): the proxy then gathers
 * them in Python. */
static PyObject *s_trace, *s_method, *s_scheme, *s_host, *s_path, *s_client_query, *s_client_ip,
    *s_client_port, *s_server_port, *s_request_body_size, *s_response_body_size, *s_request_id,
    *s_total_ms, *s_upstream_ms, *s_response_status, *s_request_headers, *s_consumer,
    *s_matched_path, *s_span_attributes, *s_encoded_span_attributes, *s_raw, *s_id,
    *s_redacted_query;

enum { X_TRACE, X_METHOD, X_SCHEME, X_HOST, X_PATH, X_CLIENT_QUERY, X_CLIENT_IP, X_CLIENT_PORT,
       X_SERVER_PORT, X_REQUEST_BODY_SIZE, X_RESPONSE_BODY_SIZE, X_REQUEST_ID, X_TOTAL_MS,
       X_UPSTREAM_MS, X_RESPONSE_STATUS, X_REQUEST_HEADERS, X_CONSUMER, X_FIELDS };
static PyObject **const exchange_names[X_FIELDS] = {
    &s_trace, &s_method, &s_scheme, &s_host, &s_path, &s_client_query, &s_client_ip,
    &s_client_port, &s_server_port, &s_request_body_size, &s_response_body_size,
    &s_request_id, &s_total_ms, &s_upstream_ms, &s_response_status, &s_request_headers,
    &s_consumer};
static SlotTable exchange_table = {NULL, 0, X_FIELDS, exchange_names, {0}, 1};

enum { M_MATCHED_PATH, M_SPAN_ATTRIBUTES, M_ENCODED, M_FIELDS };
static PyObject **const match_names[M_FIELDS] = {&s_matched_path, &s_span_attributes,
                                                 &s_encoded_span_attributes};
static SlotTable match_table = {NULL, 0, M_FIELDS, match_names, {0}, 1};

static PyObject **const headers_names[1] = {&s_raw};
static SlotTable headers_table = {NULL, 0, 1, headers_names, {0}, 1};

/* The first "user-agent" value in a header list of (bytes, bytes) tuples (borrowed), NULL if
 * none; 0 if the list is not such a list (no Python code runs). */
static int user_agent_of(PyObject *raw, PyObject **out) {
    *out = NULL;
    if (!PyList_CheckExact(raw)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(raw); i++) {
        PyObject *pair = PyList_GET_ITEM(raw, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 1))) {
            return 0;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0);
        if (PyBytes_GET_SIZE(key) == 10 && memcmp(PyBytes_AS_STRING(key), "user-agent", 10) == 0) {
            *out = PyTuple_GET_ITEM(pair, 1);
            return 1;
        }
    }
    return 1;
}

/* "a b" (the root's name: method and route path). Both ASCII, nearly always: written at once
 * (PyUnicode_FromFormat parses its format and measures its arguments: ~900 instructions). */
static PyObject *spaced(PyObject *a, PyObject *b) {
    if (!PyUnicode_IS_ASCII(a) || !PyUnicode_IS_ASCII(b)) {
        return PyUnicode_FromFormat("%U %U", a, b);
    }
    Py_ssize_t left = PyUnicode_GET_LENGTH(a), right = PyUnicode_GET_LENGTH(b);
    PyObject *joined = PyUnicode_New(left + 1 + right, 127);
    if (joined != NULL) {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(joined);
        memcpy(out, PyUnicode_1BYTE_DATA(a), (size_t)left);
        out[left] = ' ';
        memcpy(out + left + 1, PyUnicode_1BYTE_DATA(b), (size_t)right);
    }
    return joined;
}

static PyObject *finish_root(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "finish_root(exchange, match)");
        return NULL;
    }
    PyObject *exchange = args[0], *match = args[1];
    if (!slots_ready(&exchange_table, Py_TYPE(exchange)) || match == Py_None ||
        !slots_ready(&match_table, Py_TYPE(match))) {
        Py_RETURN_FALSE;
    }
    PyObject *x[X_FIELDS];
    for (int i = 0; i < X_FIELDS; i++) {
        x[i] = slot_value(exchange, &exchange_table, i);
        if (x[i] == NULL) {
            Py_RETURN_FALSE; /* (unset: Python's AttributeError) */
        }
    }
    PyObject *route_path = slot_value(match, &match_table, M_MATCHED_PATH);
    PyObject *route = slot_value(match, &match_table, M_SPAN_ATTRIBUTES);
    PyObject *route_encoded = slot_value(match, &match_table, M_ENCODED);
    PyObject *trace = x[X_TRACE], *headers = x[X_REQUEST_HEADERS], *user_agent = NULL;
    if (route_path == NULL || route == NULL || route_encoded == NULL ||
        !Py_IS_TYPE(trace, &TraceType) || ((TraceObject *)trace)->root == NULL ||
        !PyObject_TypeCheck(((TraceObject *)trace)->root, &SpanType) ||
        !PyUnicode_CheckExact(x[X_METHOD]) ||
        !(route_path == Py_None || PyUnicode_CheckExact(route_path)) ||
        !PyBytes_CheckExact(x[X_CLIENT_QUERY]) ||
        !(x[X_TOTAL_MS] == Py_None || PyFloat_CheckExact(x[X_TOTAL_MS])) ||
        !(x[X_UPSTREAM_MS] == Py_None || PyFloat_CheckExact(x[X_UPSTREAM_MS])) ||
        !slots_ready(&headers_table, Py_TYPE(headers)) ||
        !user_agent_of(slot_value(headers, &headers_table, 0), &user_agent)) {
        Py_RETURN_FALSE;
    }
    /* From here on, as the Python path: nothing is left to it. */
    SpanObject *root = (SpanObject *)Py_NewRef(((TraceObject *)trace)->root);
    /* held: the Python code asked below may change the exchange */
    PyObject *held[] = {exchange, match, route, route_encoded, route_path, user_agent};
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        Py_XINCREF(held[i]);
    }
    for (int i = 0; i < X_FIELDS; i++) {
        Py_INCREF(x[i]);
    }
    PyObject *values = PyTuple_New(R_FIELDS), *result = NULL, *call[5] = {NULL};
    unsigned long long end_ns = now_ns();
    if (values == NULL) {
        goto done;
    }
    PyObject *name = route_path != Py_None && PyUnicode_GET_LENGTH(route_path)
                         ? spaced(x[X_METHOD], route_path)
                         : Py_NewRef(x[X_METHOD]);
    if (name == NULL) {
        goto done;
    }
    Py_SETREF(root->name, name);
    /* the values in ROOT_FIELDS order; what needs Python code (the redacted query, the
     * consumer's ID) is asked of it, as the Python path asks */
    PyObject *query = PyBytes_GET_SIZE(x[X_CLIENT_QUERY])
                          ? PyObject_CallMethodOneArg(exchange, s_redacted_query,
                                                      x[X_CLIENT_QUERY])
                          : PyUnicode_FromStringAndSize("", 0);
    PyTuple_SET_ITEM(values, R_QUERY, query);
    PyObject *total = x[X_TOTAL_MS] != Py_None
                          ? Py_NewRef(x[X_TOTAL_MS])
                          : PyFloat_FromDouble(
                                (double)((long long)(root->end_ns ? root->end_ns : end_ns) -
                                         (long long)root->start_ns) /
                                1e6);
    PyTuple_SET_ITEM(values, R_TOTAL_MS, total);
    PyObject *upstream = x[X_UPSTREAM_MS] != Py_None && PyFloat_AS_DOUBLE(x[X_UPSTREAM_MS]) != 0.0
                             ? Py_NewRef(x[X_UPSTREAM_MS])
                             : PyFloat_FromDouble(0.0);
    PyTuple_SET_ITEM(values, R_UPSTREAM_MS, upstream);
    PyObject *agent = user_agent != NULL
                          ? PyUnicode_DecodeLatin1(PyBytes_AS_STRING(user_agent),
                                                   PyBytes_GET_SIZE(user_agent), NULL)
                          : Py_NewRef(Py_None);
    PyTuple_SET_ITEM(values, R_USER_AGENT, agent);
    PyObject *consumer = x[X_CONSUMER] != Py_None ? PyObject_GetAttr(x[X_CONSUMER], s_id)
                                                  : Py_NewRef(Py_None);
    PyTuple_SET_ITEM(values, R_CONSUMER_ID, consumer);
    if (query == NULL || total == NULL || upstream == NULL || agent == NULL || consumer == NULL) {
        goto done;
    }
    static const struct {
        int field, slot;
    } plain[] = {{R_METHOD, X_METHOD},
                 {R_SCHEME, X_SCHEME},
                 {R_HOST, X_HOST},
                 {R_PATH, X_PATH},
                 {R_CLIENT_ADDRESS, X_CLIENT_IP},
                 {R_CLIENT_PORT, X_CLIENT_PORT},
                 {R_SERVER_PORT, X_SERVER_PORT},
                 {R_REQUEST_BODY_SIZE, X_REQUEST_BODY_SIZE},
                 {R_RESPONSE_BODY_SIZE, X_RESPONSE_BODY_SIZE},
                 {R_REQUEST_ID, X_REQUEST_ID},
                 {R_STATUS, X_RESPONSE_STATUS}};
    /* read again, as the Python path reads them after asking: the Python code above may have
     * changed the exchange (or its class: then through getattr) */
    int slots = slots_ready(&exchange_table, Py_TYPE(exchange));
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        PyObject *value = slots ? slot_value(exchange, &exchange_table, plain[i].slot) : NULL;
        value = value != NULL ? Py_NewRef(value)
                              : PyObject_GetAttr(exchange, *exchange_names[plain[i].slot]);
        if (value == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(values, plain[i].field, value);
    }
    call[0] = (PyObject *)root;
    call[1] = PyLong_FromUnsignedLongLong(end_ns);
    if (call[1] == NULL) {
        goto done;
    }
    call[2] = values;
    call[3] = route;
    call[4] = route_encoded;
    result = write_root(module, call, 5);
    Py_DECREF(call[1]);
    if (result != NULL) {
        Py_SETREF(result, Py_NewRef(Py_True));
    }
done:
    Py_XDECREF(values);
    Py_DECREF(root);
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        Py_XDECREF(held[i]);
    }
    for (int i = 0; i < X_FIELDS; i++) {
        Py_DECREF(x[i]);
    }
    return result;
}

/* ---- finish_head: the end of a trace that one head session kept, whole ------------------- */

/* Tracer.finish (tracer.py) for nearly every trace: no tail session, one head session, its
 * batch has room and the export buffer is under its bound. It does what the Python path does
 * (the session's root fields added to the root, the spans encoded into the batch the session's
 * IDs are filling, the span counts, the session's in-flight count down) without the two Python
 * frames and their ~150 bytecodes, reading and writing the objects' slots at their offsets.
 * Anything else returns None before touching anything, and Tracer.finish does it in Python:
 * another class, a value of another type, a batch to start or to send, the buffer's bound, a
 * session whose end is reported once its last trace is out, a span C does not encode. */
static PyObject *s_ids, *s_root_fields, *s_state, *s_active, *s_pending, *s_batch_spans,
    *s_pending_spans, *s_unacked_spans, *s_max_spans, *s_kept_traces, *s_spans, *s_traces;

enum { END_IDS, END_ROOT_FIELDS, END_IN_FLIGHT, END_STATE, END_FIELDS };
static PyObject **const end_names[END_FIELDS] = {&s_ids, &s_root_fields, &s_in_flight,
                                                 &s_state};
static SlotTable end_table = {NULL, 0, END_FIELDS, end_names, {0}};

enum { EXPORT_PENDING, EXPORT_BATCH_SPANS, EXPORT_PENDING_SPANS, EXPORT_UNACKED_SPANS,
       EXPORT_MAX_SPANS, EXPORT_KEPT_TRACES, EXPORT_FIELDS };
static PyObject **const export_names[EXPORT_FIELDS] = {
    &s_pending, &s_batch_spans, &s_pending_spans, &s_unacked_spans, &s_max_spans,
    &s_kept_traces};
static SlotTable export_table = {NULL, 0, EXPORT_FIELDS, export_names, {0}};

enum { BATCH_SPANS, BATCH_TRACES, BATCH_FIELDS };
static PyObject **const batch_names[BATCH_FIELDS] = {&s_spans, &s_traces};
static SlotTable batch_table = {NULL, 0, BATCH_FIELDS, batch_names, {0}};

/* Whether a session's state (an exact str) is "active" (as NodeSession.take compares it). */
static inline int is_active(PyObject *state) {
    return state == s_active || PyUnicode_Compare(state, s_active) == 0;
}

/* An exact int that fits: 1 and its value, else 0 (no error set). */
static int plain_int(PyObject *value, Py_ssize_t *out) {
    if (value == NULL || !PyLong_CheckExact(value)) {
        return 0;
    }
    Py_ssize_t number = PyLong_AsSsize_t(value);
    if (number == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = number;
    return 1;
}

/* The batch for ``ids`` (borrowed) if the fast path may add ``count`` spans to it now, with
 * what it reads; NULL (no error set) if not. No Python code runs here: the IDs are strs. */
typedef struct {
    PyObject *batch, *traces;
    Py_ssize_t filled, pending, in_flight, kept;
} EndState;

static int end_state(PyObject *session, PyObject *export, PyObject *ids, Py_ssize_t count,
                     EndState *out) {
    if (!slots_ready(&end_table, Py_TYPE(session)) ||
        !slots_ready(&export_table, Py_TYPE(export))) {
        return 0;
    }
    PyObject *state = slot_value(session, &end_table, END_STATE);
    Py_ssize_t batch_spans, unacked, max_spans;
    PyObject *pending = slot_value(export, &export_table, EXPORT_PENDING);
    if (state == NULL || !PyUnicode_CheckExact(state) ||
        !plain_int(slot_value(session, &end_table, END_IN_FLIGHT), &out->in_flight) ||
        pending == NULL || !PyDict_CheckExact(pending) ||
        !plain_int(slot_value(export, &export_table, EXPORT_BATCH_SPANS), &batch_spans) ||
        !plain_int(slot_value(export, &export_table, EXPORT_PENDING_SPANS), &out->pending) ||
        !plain_int(slot_value(export, &export_table, EXPORT_UNACKED_SPANS), &unacked) ||
        !plain_int(slot_value(export, &export_table, EXPORT_MAX_SPANS), &max_spans) ||
        !plain_int(slot_value(export, &export_table, EXPORT_KEPT_TRACES), &out->kept)) {
        return 0;
    }
    /* its last trace out of an ended session: the end is reported (Tracer marks it) */
    if (out->in_flight <= 1 && !is_active(state)) {
        return 0;
    }
    if (out->pending > max_spans - unacked - count) {
        return 0; /* past the bound: Python drops the oldest */
    }
    PyObject *batch = PyDict_GetItemWithError(pending, ids); /* borrowed */
    if (batch == NULL) {
        PyErr_Clear(); /* (none: the first trace of these sessions starts one) */
        return 0;
    }
    if (!slots_ready(&batch_table, Py_TYPE(batch)) ||
        !plain_int(slot_value(batch, &batch_table, BATCH_SPANS), &out->filled)) {
        return 0;
    }
    PyObject *traces = slot_value(batch, &batch_table, BATCH_TRACES);
    if (traces == NULL || !PyList_CheckExact(traces) || out->filled > batch_spans - count - 1) {
        return 0; /* full once this trace is in: Python starts the next or wakes the sender */
    }
    out->batch = batch;
    out->traces = traces;
    return 1;
}

static PyObject *finish_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "finish_head(trace, export)");
        return NULL;
    }
    if (!Py_IS_TYPE(args[0], &TraceType)) {
        Py_RETURN_NONE;
    }
    TraceObject *trace = (TraceObject *)args[0];
    PyObject *export = args[1], *head = trace->head, *tail = trace->tail, *spans = trace->spans;
    if (head == NULL || !PyList_CheckExact(head) || PyList_GET_SIZE(head) != 1 || tail == NULL ||
        !PyList_CheckExact(tail) || PyList_GET_SIZE(tail) != 0 || spans == NULL ||
        !PyList_CheckExact(spans) || PyList_GET_SIZE(spans) == 0 || trace->root == NULL ||
        PyList_GET_ITEM(spans, 0) != trace->root || !PyObject_TypeCheck(trace->root, &SpanType) ||
        trace->trace_id == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *session = PyList_GET_ITEM(head, 0);
    if (!slots_ready(&end_table, Py_TYPE(session))) {
        Py_RETURN_NONE;
    }
    PyObject *ids = slot_value(session, &end_table, END_IDS);
    PyObject *root_fields = slot_value(session, &end_table, END_ROOT_FIELDS);
    SpanObject *root = (SpanObject *)trace->root;
    if (ids == NULL || !PyTuple_CheckExact(ids) || PyTuple_GET_SIZE(ids) == 0 ||
        root_fields == NULL || !PyBytes_CheckExact(root_fields) || root->encoded == NULL ||
        !PyBytes_CheckExact(root->encoded)) {
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ids); i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(ids, i))) {
            Py_RETURN_NONE; /* (hashing another kind of key may run Python code) */
        }
    }
    Py_ssize_t count = PyList_GET_SIZE(spans);
    EndState st;
    if (!end_state(session, export, ids, count, &st)) {
        Py_RETURN_NONE;
    }
    /* Encoding may run Python code (an attribute value's conversion): everything it read is
     * held, and read again after. */
    PyObject *held[] = {session, ids, root_fields, spans, head, tail, (PyObject *)root};
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        Py_INCREF(held[i]);
    }
    PyObject *result = NULL, *encoded = encode_spans(trace->trace_id, spans, root_fields);
    PyObject *numbers[4] = {NULL}, *root_encoded = NULL;
    if (encoded == NULL) {
        if (refused_by_c()) {
            PyErr_Clear(); /* Python decides (wire.trace_spans' fallback) */
            result = Py_NewRef(Py_None);
        }
        goto done;
    }
    if (trace->head != head || PyList_GET_SIZE(head) != 1 || PyList_GET_ITEM(head, 0) != session ||
        trace->spans != spans || PyList_GET_SIZE(spans) != count || trace->tail != tail ||
        PyList_GET_SIZE(tail) != 0 || trace->root != (PyObject *)root ||
        PyList_GET_ITEM(spans, 0) != (PyObject *)root || slot_value(session, &end_table, END_IDS) != ids ||
        slot_value(session, &end_table, END_ROOT_FIELDS) != root_fields ||
        !PyBytes_CheckExact(root->encoded) || !end_state(session, export, ids, count, &st)) {
        result = Py_NewRef(Py_None); /* changed meanwhile: Python does it all again */
        goto done;
    }
    /* everything that can fail first, then the stores (no Python code runs between them) */
    numbers[0] = PyLong_FromSsize_t(st.filled + count);
    numbers[1] = PyLong_FromSsize_t(st.pending + count);
    numbers[2] = PyLong_FromSsize_t(st.in_flight - 1);
    numbers[3] = PyLong_FromSsize_t(st.kept + 1);
    if (numbers[0] == NULL || numbers[1] == NULL || numbers[2] == NULL || numbers[3] == NULL) {
        goto done;
    }
    Py_ssize_t own = PyBytes_GET_SIZE(root->encoded), more = PyBytes_GET_SIZE(root_fields);
    root_encoded = PyBytes_FromStringAndSize(NULL, own + more);
    if (root_encoded == NULL) {
        goto done;
    }
    memcpy(PyBytes_AS_STRING(root_encoded), PyBytes_AS_STRING(root->encoded), (size_t)own);
    memcpy(PyBytes_AS_STRING(root_encoded) + own, PyBytes_AS_STRING(root_fields), (size_t)more);
    if (PyList_Append(st.traces, encoded) < 0) {
        goto done;
    }
    slot_store(st.batch, &batch_table, BATCH_SPANS, numbers[0]);
    slot_store(export, &export_table, EXPORT_PENDING_SPANS, numbers[1]);
    slot_store(session, &end_table, END_IN_FLIGHT, numbers[2]);
    slot_store(export, &export_table, EXPORT_KEPT_TRACES, numbers[3]);
    numbers[0] = numbers[1] = numbers[2] = numbers[3] = NULL;
    Py_SETREF(root->encoded, root_encoded);
    root_encoded = NULL;
    result = Py_NewRef(ids);
done:
    Py_XDECREF(encoded);
    Py_XDECREF(root_encoded);
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(numbers[i]);
    }
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        Py_DECREF(held[i]);
    }
    return result;
}

/* ---- finish_trace: the root's fields and the trace's end in one call ---------------------- */

/* What the proxy does when a traced request ends (proxy.py, Proxy.__call__): _finish_root
 * (finish_root, then the root's log events and captured headers) and Tracer.finish (finish_head),
 * in one call from Python instead of two Python frames. finish_root's and finish_head's own
 * rules decide what C does; between them, a trace with log records or header capture goes back
 * to Python. Returns True when all is done; False when the root is written and the rest (the
 * extras, Tracer.finish) is Python's; None when nothing was touched (finish_root left it all to
 * Python). */
static PyObject *finish_trace(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "finish_trace(exchange, match, trace, export)");
        return NULL;
    }
    PyObject *written = finish_root(module, args, 2);
    if (written != Py_True) {
        if (written == Py_False) {
            Py_DECREF(written);
            Py_RETURN_NONE;
        }
        return written; /* (NULL: its error) */
    }
    Py_DECREF(written);
    PyObject *trace = args[2];
    if (!Py_IS_TYPE(trace, &TraceType)) {
        Py_RETURN_FALSE;
    }
    PyObject *logs = ((TraceObject *)trace)->logs;
    if (logs == NULL || !PyList_CheckExact(logs) || PyList_GET_SIZE(logs) != 0 ||
        ((TraceObject *)trace)->capture_headers != Py_False) {
        Py_RETURN_FALSE;
    }
    PyObject *head_args[2] = {trace, args[3]};
    PyObject *ids = finish_head(module, head_args, 2);
    if (ids == NULL) {
        return NULL;
    }
    int finished = ids != Py_None;
    Py_DECREF(ids);
    return PyBool_FromLong(finished);
}

/* ---- begin_head: a trace that head sessions keep, started in C ---------------------------- */

/* Tracer.begin (tracer.py) for nearly every traced request: sessions without a rule or a tail
 * rule, none of them filled by this request, no incoming traceparent. It counts the request on
 * each session that takes it and makes the trace, as the Python path does, without its frame;
 * given the router's end and encoded fields, it adds the router span the proxy makes next
 * (Proxy.__call__), a child of the root from the request's start to the router's end.
 * Anything else returns None having touched nothing, and Tracer.begin decides in Python (a
 * rule to match, a tail session, a session this request fills, a traceparent to parse, another
 * class or type). */
static PyObject *s_rule, *s_taken, *s_max_samples, *s_router_span;

enum { BEGIN_TAIL, BEGIN_RULE, BEGIN_STATE, BEGIN_TAKEN, BEGIN_MAX, BEGIN_FIELDS };
static PyObject **const begin_names[BEGIN_FIELDS] = {&s_tail, &s_rule, &s_state, &s_taken,
                                                     &s_max_samples};
static SlotTable begin_table = {NULL, 0, BEGIN_FIELDS, begin_names, {0}};

#define MAX_BEGIN_SESSIONS 8

static PyObject *begin_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "begin_head(candidates, start_ns, traceparent[, "
                                         "router_end_ns, router_fields])");
        return NULL;
    }
    PyObject *candidates = args[0], *traceparent = args[2];
    PyObject *router_fields = nargs == 5 ? args[4] : NULL;
    if (!PyTuple_CheckExact(candidates) || PyTuple_GET_SIZE(candidates) == 0 ||
        PyTuple_GET_SIZE(candidates) > MAX_BEGIN_SESSIONS ||
        (traceparent != Py_None &&
         !(PyBytes_CheckExact(traceparent) && PyBytes_GET_SIZE(traceparent) == 0)) ||
        (router_fields != NULL && !PyBytes_CheckExact(router_fields))) {
        Py_RETURN_NONE;
    }
    unsigned long long start_ns;
    uint64_t router_end_ns = 0;
    if (start_time(args[1], &start_ns) < 0 ||
        (router_fields != NULL &&
         (unsigned_value(args[3], &router_end_ns) < 0 || router_end_ns == 0))) {
        PyErr_Clear(); /* (Python's RequestTrace and Span.end say what is wrong) */
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(candidates), taking = 0;
    PyObject *takes[MAX_BEGIN_SESSIONS];
    Py_ssize_t taken[MAX_BEGIN_SESSIONS];
    PyTypeObject *type = Py_TYPE(PyTuple_GET_ITEM(candidates, 0));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *session = PyTuple_GET_ITEM(candidates, i);
        /* one class (the table holds one class's offsets), each session once */
        if (Py_TYPE(session) != type || !slots_ready(&begin_table, type)) {
            Py_RETURN_NONE;
        }
        for (Py_ssize_t j = 0; j < i; j++) {
            if (PyTuple_GET_ITEM(candidates, j) == session) {
                Py_RETURN_NONE;
            }
        }
        PyObject *state = slot_value(session, &begin_table, BEGIN_STATE);
        Py_ssize_t max_samples;
        if (slot_value(session, &begin_table, BEGIN_TAIL) != Py_False ||
            slot_value(session, &begin_table, BEGIN_RULE) != Py_None || state == NULL ||
            !PyUnicode_CheckExact(state) ||
            !plain_int(slot_value(session, &begin_table, BEGIN_TAKEN), &taken[taking]) ||
            !plain_int(slot_value(session, &begin_table, BEGIN_MAX), &max_samples)) {
            Py_RETURN_NONE;
        }
        if (!is_active(state) ||
            taken[taking] >= max_samples) {
            continue; /* it takes no more (as NodeSession.take) */
        }
        if (taken[taking] + 1 >= max_samples) {
            Py_RETURN_NONE; /* this request fills it: Tracer ends the session */
        }
        takes[taking++] = session;
    }
    if (taking == 0) {
        Py_RETURN_NONE; /* (Python finds none either) */
    }
    /* everything that can fail first, then the counts (no Python code runs between them) */
    PyObject *head = PyList_New(taking), *tail = PyList_New(0), *counts[MAX_BEGIN_SESSIONS] = {0};
    PyObject *trace = NULL;
    int failed = head == NULL || tail == NULL;
    for (Py_ssize_t i = 0; i < taking && !failed; i++) {
        counts[i] = PyLong_FromSsize_t(taken[i] + 1);
        failed = counts[i] == NULL;
    }
    PyObject *id = failed ? NULL : trace_id(NULL, NULL);
    if (id != NULL && !slots_ready(&begin_table, type)) {
        /* (the collector, run by an allocation above, ran code that changed the class) */
        Py_CLEAR(id);
        trace = Py_NewRef(Py_None);
    }
    if (id != NULL) {
        for (Py_ssize_t i = 0; i < taking; i++) {
            PyList_SET_ITEM(head, i, Py_NewRef(takes[i]));
            slot_store(takes[i], &begin_table, BEGIN_TAKEN, counts[i]);
            counts[i] = NULL;
        }
        trace = make_trace(&TraceType, head, tail, id, start_ns, 0, 0);
    }
    if (trace != NULL && trace != Py_None && router_fields != NULL) {
        /* the router span (what the proxy does after Tracer.begin): [start, router_end_ns] */
        TraceObject *made = (TraceObject *)trace;
        PyObject *router = add_child(made->spans, &SpanType, s_router_span,
                                     ((SpanObject *)made->root)->id, start_ns, 1 /* INTERNAL */,
                                     Py_None);
        if (router == NULL) {
            /* (out of memory) the trace without its router span, rather than none: the
             * sessions counted it already, and its end must count it out */
            PyErr_Clear();
        } else {
            Py_SETREF(((SpanObject *)router)->encoded, Py_NewRef(router_fields));
            ((SpanObject *)router)->end_ns = router_end_ns;
            Py_DECREF(router);
        }
    }
    for (Py_ssize_t i = 0; i < taking; i++) {
        Py_XDECREF(counts[i]);
    }
    Py_XDECREF(head);
    Py_XDECREF(tail);
    return trace;
}

/* set_fallback(name, version): the Python version of write_root, trace_spans or
 * attribute_fields (None: raise instead). */
static PyObject *set_fallback(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    PyObject **slot = NULL;
    if (nargs == 2 && PyUnicode_Check(args[0])) {
        if (PyUnicode_CompareWithASCIIString(args[0], "write_root") == 0) {
            slot = &root_fallback;
        } else if (PyUnicode_CompareWithASCIIString(args[0], "trace_spans") == 0) {
            slot = &spans_fallback;
        } else if (PyUnicode_CompareWithASCIIString(args[0], "attribute_fields") == 0) {
            slot = &fields_fallback;
        }
    }
    if (slot == NULL || (args[1] != Py_None && !PyCallable_Check(args[1]))) {
        PyErr_SetString(PyExc_TypeError,
                        "set_fallback('write_root', 'trace_spans' or 'attribute_fields', a "
                        "callable or None)");
        return NULL;
    }
    Py_XSETREF(*slot, args[1] == Py_None ? NULL : Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* traceparent(trace_id, span) -> bytes: recorder.format_traceparent's header value, as bytes
 * (a sampled W3C traceparent: "00-<trace hex>-<span hex>-01"). ``span`` is a span (its ID read
 * from the struct: no bytes object made, as reading ``span.span_id`` would) or a span ID's
 * bytes. */
static PyObject *traceparent(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    int is_span = nargs == 2 && PyObject_TypeCheck(args[1], &SpanType);
    if (nargs != 2 || !PyBytes_Check(args[0]) || !(is_span || PyBytes_Check(args[1]))) {
        PyErr_SetString(PyExc_TypeError,
                        "traceparent(trace_id: bytes, span: SpanBase | span_id: bytes)");
        return NULL;
    }
    static const char digits[] = "0123456789abcdef";
    unsigned char span_id[8];
    if (is_span) {
        id_raw(((SpanObject *)args[1])->id, span_id);
    }
    Py_ssize_t trace_len = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t span_len = is_span ? 8 : PyBytes_GET_SIZE(args[1]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, 7 + 2 * (trace_len + span_len));
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    *p++ = '0';
    *p++ = '0';
    for (int part = 0; part < 2; part++) {
        const unsigned char *id = part == 0  ? (const unsigned char *)PyBytes_AS_STRING(args[0])
                                  : is_span ? span_id
                                            : (const unsigned char *)PyBytes_AS_STRING(args[1]);
        Py_ssize_t len = part == 0 ? trace_len : span_len;
        *p++ = '-';
        for (Py_ssize_t i = 0; i < len; i++) {
            *p++ = digits[id[i] >> 4];
            *p++ = digits[id[i] & 0x0F];
        }
    }
    memcpy(p, "-01", 3);
    return out;
}

/* start_upstream(trace, parent, name, kind, keys, values) -> (span, traceparent, events): the
 * start of one try's upstream span (proxy.python_start_upstream: a child of ``parent`` started
 * now, its known attributes encoded at once, the traceparent header it sends and the
 * transport's trace callable for it) in one call instead of four. None, having touched
 * nothing, for a trace or parent of another type (Python's to do). */
static PyObject *start_upstream(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "start_upstream(trace, parent, name, kind, keys, values)");
        return NULL;
    }
    PyObject *trace = args[0], *parent = args[1];
    if (!Py_IS_TYPE(trace, &TraceType) || !PyObject_TypeCheck(parent, &SpanType) ||
        ((TraceObject *)trace)->spans == NULL || !PyList_Check(((TraceObject *)trace)->spans) ||
        ((TraceObject *)trace)->trace_id == NULL ||
        !PyBytes_Check(((TraceObject *)trace)->trace_id)) {
        Py_RETURN_NONE;
    }
    int kind;
    if (span_kind(args[3], &kind) < 0) {
        return NULL;
    }
    /* the attributes first (as python_start_upstream): encoding them may run Python code, and
     * a failure leaves no span behind */
    PyObject *fields_args[2] = {args[4], args[5]};
    PyObject *fields = attribute_fields(module, fields_args, 2);
    if (fields == NULL) {
        return NULL;
    }
    if (!PyBytes_Check(fields)) {
        Py_DECREF(fields);
        PyErr_SetString(PyExc_TypeError, "encoded attributes are bytes");
        return NULL;
    }
    TraceObject *owner = (TraceObject *)trace;
    PyObject *span = add_child(owner->spans, &SpanType, args[2], ((SpanObject *)parent)->id,
                               now_ns(), kind, Py_None);
    if (span == NULL) {
        Py_DECREF(fields);
        return NULL;
    }
    Py_SETREF(((SpanObject *)span)->encoded, fields);
    PyObject *header_args[2] = {owner->trace_id, span};
    PyObject *header = traceparent(module, header_args, 2);
    PyObject *events_args[2] = {trace, span};
    PyObject *events = header == NULL ? NULL
                                      : PyObject_Vectorcall((PyObject *)&PhaseEventsType,
                                                            events_args, 2, NULL);
    PyObject *result = events == NULL ? NULL : PyTuple_Pack(3, span, header, events);
    Py_DECREF(span);
    Py_XDECREF(header);
    Py_XDECREF(events);
    return result;
}

/* upstream_answered(span, status, peer) -> bool: what a try's response adds to its upstream span
 * (proxy.python_upstream_answered: the status code, the peer's address, an error status from
 * 400 on) in one call. False, having touched nothing, for a span of another type or a status
 * that is not an int (Python's to do). */
static PyObject *upstream_answered(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "upstream_answered(span, status, peer)");
        return NULL;
    }
    PyObject *status = args[1], *peer = args[2];
    if (!PyObject_TypeCheck(args[0], &SpanType) || !PyLong_CheckExact(status)) {
        Py_RETURN_FALSE;
    }
    SpanObject *span = (SpanObject *)args[0];
    PyObject *attributes = span_dict(span); /* borrowed */
    if (attributes == NULL || PyObject_SetItem(attributes, s_status_code_attribute, status) < 0) {
        return NULL;
    }
    int given = PyObject_IsTrue(peer);
    if (given < 0) {
        return NULL;
    }
    if (given) {
        PyObject *address = PyTuple_Check(peer) ? PySequence_GetItem(peer, 0) : PyObject_Str(peer);
        if (address == NULL) {
            return NULL;
        }
        /* (read again: the peer's Python code may have replaced the dict) */
        attributes = span_dict(span);
        int failed = attributes == NULL ||
                     PyObject_SetItem(attributes, s_peer_attribute, address) < 0;
        Py_DECREF(address);
        if (failed) {
            return NULL;
        }
    }
    int overflow;
    long code = PyLong_AsLongAndOverflow(status, &overflow);
    if (overflow > 0 || (overflow == 0 && code >= 400)) {
        PyObject *text = PyObject_Str(status);
        if (text == NULL) {
            return NULL;
        }
        PyObject *done = span_set_error(span, &text, 1, NULL);
        Py_DECREF(text);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"attribute_fields", (PyCFunction)(void (*)(void))attribute_fields, METH_FASTCALL,
     "attribute_fields(keys, values) -> bytes: the pairs whose value is not None as encoded "
     "Span.attributes fields (for encoded_attributes)."},
    {"trace_spans", (PyCFunction)(void (*)(void))trace_spans, METH_FASTCALL,
     "trace_spans(trace_id, spans) -> bytes: the spans as ScopeSpans.spans fields (what C "
     "refuses goes to the Python encoder given to set_fallback)."},
    {"set_clock_offset", set_clock_offset, METH_O,
     "set_clock_offset(ns): unix time minus CLOCK_MONOTONIC, for span times."},
    {"now_ns", (PyCFunction)(void (*)(void))clock_ns, METH_FASTCALL,
     "now_ns() -> unix nanoseconds on the span clock."},
    {"trace_id", trace_id, METH_NOARGS, "trace_id() -> 16 random bytes, never all zero."},
    {"set_exception_event", set_exception_event, METH_O,
     "set_exception_event(factory): record_exception's factory(exc, time_ns) -> SpanEvent."},
    {"traceparent", (PyCFunction)(void (*)(void))traceparent, METH_FASTCALL,
     "traceparent(trace_id, span or span_id) -> bytes: a sampled W3C traceparent header "
     "value."},
    {"write_root", (PyCFunction)(void (*)(void))write_root, METH_FASTCALL,
     "write_root(root, end_ns, values, route, route_encoded=b''): the root span's standard "
     "attributes (what C refuses goes to the Python writer given to set_fallback)."},
    {"finish_root", (PyCFunction)(void (*)(void))finish_root, METH_FASTCALL,
     "finish_root(exchange, match) -> bool: proxy._finish_root's naming and write_root of the "
     "root from the exchange's slots (False: not done, nothing touched)."},
    {"begin_head", (PyCFunction)(void (*)(void))begin_head, METH_FASTCALL,
     "begin_head(candidates, start_ns, traceparent[, router_end_ns, router_fields]) -> "
     "RequestTrace, or None: Tracer.begin for sessions without rules, none filled by this "
     "request and no traceparent, done in C, with the proxy's router span when its end and "
     "encoded fields are given (None: Tracer.begin decides)."},
    {"start_upstream", (PyCFunction)(void (*)(void))start_upstream, METH_FASTCALL,
     "start_upstream(trace, parent, name, kind, keys, values) -> (span, traceparent, events), "
     "or None: a try's upstream span started with its attributes, its traceparent header and "
     "the transport's trace callable (None: another type, Python's to do)."},
    {"upstream_answered", (PyCFunction)(void (*)(void))upstream_answered, METH_FASTCALL,
     "upstream_answered(span, status, peer) -> bool: the response's status, peer address and "
     "error status on a try's upstream span (False: another type, Python's to do)."},
    {"finish_trace", (PyCFunction)(void (*)(void))finish_trace, METH_FASTCALL,
     "finish_trace(exchange, match, trace, export) -> bool | None: finish_root, then (no log "
     "records, no header capture) finish_head; True: all done, False: the root only, None: "
     "nothing"},
    {"finish_head", (PyCFunction)(void (*)(void))finish_head, METH_FASTCALL,
     "finish_head(trace, export) -> session IDs, or None: Tracer.finish for a trace one head "
     "session kept, done whole in C when nothing calls for Python (None: not done)."},
    {"set_fallback", (PyCFunction)(void (*)(void))set_fallback, METH_FASTCALL,
     "set_fallback(name, version): write_root's or trace_spans' Python version, for what C "
     "leaves to it."},
    {"set_phase_table", (PyCFunction)(void (*)(void))set_phase_table, METH_FASTCALL,
     "set_phase_table(table, span_type, fallback): what PhaseEvents does per event."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_wire",
    "OTLP span wire encoding in C (see wire.py).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__wire(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_span_id, "span_id"},         {&s_parent_id, "parent_id"},
        {&s_name, "name"},               {&s_kind, "kind"},
        {&s_start_ns, "start_ns"},       {&s_end_ns, "end_ns"},
        {&s_attributes, "attributes"},   {&s_events, "events"},
        {&s_status_code, "status_code"}, {&s_status_message, "status_message"},
        {&s_time_ns, "time_ns"},         {&s_peer, "peer"},
        {&s_encoded_attributes, "encoded_attributes"},
        {&s_error_type, "error.type"},
        {&s_head, "head"},               {&s_tail, "tail"},
        {&s_parent, "parent"},           {&s_error_type_kw, "error_type"},
        {&s_message, "message"},         {&s_exc, "exc"},
        {&s_reused_attribute, "gateway.connection.reused"},
        {&s_peer_attribute, "network.peer.address"},
        {&s_status_code_attribute, "http.response.status_code"},
        {&s_http, "HTTP"},
        {&s_capture_headers, "capture_headers"},
        {&s_capture_body, "capture_body"},
        {&s_body_max_bytes, "body_max_bytes"},
        {&s_in_flight, "in_flight"},
        {&s_ids, "ids"},                 {&s_root_fields, "root_fields"},
        {&s_state, "state"},             {&s_active, "active"},
        {&s_pending, "pending"},         {&s_batch_spans, "batch_spans"},
        {&s_pending_spans, "pending_spans"},
        {&s_unacked_spans, "unacked_spans"},
        {&s_max_spans, "max_spans"},     {&s_spans, "spans"},
        {&s_kept_traces, "kept_traces"},
        {&s_traces, "traces"},
        {&s_rule, "rule"},               {&s_taken, "taken"},
        {&s_max_samples, "max_samples"},
        {&s_router_span, "gateway.router"},
        {&s_trace, "trace"},             {&s_method, "method"},
        {&s_scheme, "scheme"},           {&s_host, "host"},
        {&s_path, "path"},               {&s_client_query, "client_query"},
        {&s_client_ip, "client_ip"},     {&s_client_port, "client_port"},
        {&s_server_port, "server_port"}, {&s_request_body_size, "request_body_size"},
        {&s_response_body_size, "response_body_size"},
        {&s_request_id, "request_id"},   {&s_total_ms, "total_ms"},
        {&s_upstream_ms, "upstream_ms"}, {&s_response_status, "response_status"},
        {&s_request_headers, "request_headers"},
        {&s_consumer, "consumer"},       {&s_matched_path, "matched_path"},
        {&s_span_attributes, "span_attributes"},
        {&s_encoded_span_attributes, "encoded_span_attributes"},
        {&s_raw, "raw"},                 {&s_id, "id"},
        {&s_redacted_query, "redacted_query"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return NULL;
        }
    }
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    one = PyLong_FromLong(1);
    if (empty_bytes == NULL || one == NULL) {
        return NULL;
    }
    seed_ids();
    pthread_atfork(NULL, NULL, seed_ids); /* a forked child must not repeat its parent's IDs */
    if (PyType_Ready(&SpanType) < 0 || PyType_Ready(&PhaseEventsType) < 0 ||
        PyType_Ready(&TraceType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "SpanBase", (PyObject *)&SpanType) < 0 ||
        PyModule_AddObjectRef(m, "PhaseEvents", (PyObject *)&PhaseEventsType) < 0 ||
        PyModule_AddObjectRef(m, "RequestTrace", (PyObject *)&TraceType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
