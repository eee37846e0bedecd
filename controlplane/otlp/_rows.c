/*
 * OTLP span batches to rows of the `spans` table, in C: controlplane/otlp/convert.py's
 * span_rows, reading the serialized ResourceSpans bytes instead of protobuf objects.
 *
 * Ingest on the control plane was bound by that conversion: reading every field through the
 * protobuf runtime cost ~0.27 µs per attribute, ~5.5 µs per span in all. This walks the wire
 * format once and writes each span's attributes and events as JSON text directly.
 *
 * node_span_batch(message) -> (batch_id, session_ids, [ResourceSpans bytes]) | None:
 *     a serialized cluster NodeMessage holding only a SpanBatch, split without parsing the
 *     spans; None for any other message (the caller parses it with protobuf).
 * rows(resource_spans, resource_info, dumps) -> (rows, per_trace, roots): what span_rows
 *     returns, roots as (trace_id, node_id, start_ns, end_ns, error, attributes) tuples.
 *     resource_info(Resource bytes) -> (service_name, node_id, resource_json, is_gateway)
 *     is Python's (once per ResourceSpans); dumps is the JSON encoder span_rows uses for a
 *     request root's attribute dict, so both paths write the same text.
 *
 * convert.span_rows stays the reference (and the fallback when this module is not built);
 * tests compare both on generated batches. Malformed input (truncated fields, invalid UTF-8,
 * nesting deeper than 100) raises ValueError. As with protobuf, unknown fields and fields of
 * an unexpected wire type (groups included) are skipped and the last of a repeated singular
 * field wins; unlike protobuf, a singular sub-message sent twice is not merged (the last one
 * wins; no encoder writes that), text is checked as UTF-8 only where it is read, and nesting
 * is limited per value rather than per message.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 100

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_START_GROUP = 3, WT_END_GROUP = 4, WT_FIXED32 = 5 };

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t field; /* the last tag's field number (a group's end must repeat it) */
} Rd;

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static PyObject *s_error_type, *s_nul_escape;

static int malformed(const char *what) {
    PyErr_Format(PyExc_ValueError, "malformed OTLP span batch: %s", what);
    return -1;
}

static int rd_varint(Rd *r, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) {
            return malformed("truncated varint");
        }
        uint8_t byte = *r->p++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return 0;
        }
    }
    return malformed("varint longer than 10 bytes");
}

static int rd_fixed64(Rd *r, uint64_t *out) {
    if (r->end - r->p < 8) {
        return malformed("truncated fixed64");
    }
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) {
        value = (value << 8) | r->p[i];
    }
    r->p += 8;
    *out = value;
    return 0;
}

/* The next field's number and wire type; 0 at the end of the message. */
static int rd_tag(Rd *r, uint32_t *field, int *wire_type) {
    if (r->p >= r->end) {
        *field = 0;
        return 0;
    }
    uint64_t tag;
    if (rd_varint(r, &tag) < 0) {
        return -1;
    }
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF) {
        return malformed("field number out of range");
    }
    *field = r->field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    return 0;
}

static int rd_bytes(Rd *r, Rd *out) {
    uint64_t n;
    if (rd_varint(r, &n) < 0) {
        return -1;
    }
    if (n > (uint64_t)(r->end - r->p)) {
        return malformed("length past the end of its message");
    }
    out->p = r->p;
    out->end = r->p + n;
    r->p += n;
    return 0;
}

/* Skips the field just read; a group (deprecated, but valid protobuf) up to its end tag. */
static int rd_skip_at(Rd *r, int wire_type, int depth) {
    uint64_t ignored;
    Rd inner;
    switch (wire_type) {
    case WT_VARINT:
        return rd_varint(r, &ignored);
    case WT_FIXED64:
        return rd_fixed64(r, &ignored);
    case WT_LEN:
        return rd_bytes(r, &inner);
    case WT_FIXED32:
        if (r->end - r->p < 4) {
            return malformed("truncated fixed32");
        }
        r->p += 4;
        return 0;
    case WT_START_GROUP: {
        if (depth >= MAX_DEPTH) {
            return malformed("groups nested too deep");
        }
        uint32_t group = r->field;
        for (;;) {
            uint32_t field;
            int inner_type;
            if (rd_tag(r, &field, &inner_type) < 0) {
                return -1;
            }
            if (field == 0) {
                return malformed("unterminated group");
            }
            if (inner_type == WT_END_GROUP) {
                return field == group ? 0 : malformed("group ended by another field's tag");
            }
            if (rd_skip_at(r, inner_type, depth + 1) < 0) {
                return -1;
            }
        }
    }
    case WT_END_GROUP:
        return malformed("a group's end without its start");
    default:
        return malformed("invalid wire type");
    }
}

static int rd_skip(Rd *r, int wire_type) {
    return rd_skip_at(r, wire_type, 0);
}

/* The next length-delimited field numbered `want` in `r` (other fields skipped): 1 with its
 * bytes in `out`, 0 at the end of the message, -1 on error. Reads a repeated field in order. */
static int rd_next(Rd *r, uint32_t want, Rd *out) {
    for (;;) {
        uint32_t field;
        int wire_type;
        if (rd_tag(r, &field, &wire_type) < 0) {
            return -1;
        }
        if (field == 0) {
            return 0;
        }
        if (field == want && wire_type == WT_LEN) {
            return rd_bytes(r, out) < 0 ? -1 : 1;
        }
        if (rd_skip(r, wire_type) < 0) {
            return -1;
        }
    }
}

/* A singular field to read from a message: its number, wire type and where it goes (an Rd
 * for WT_LEN, a uint64_t for WT_VARINT and WT_FIXED64). */
typedef struct {
    uint32_t field;
    int wire_type;
    void *out;
} Field;

/* Reads `fields` from `message`, the last occurrence of each winning (as protobuf reads a
 * singular field); other fields are skipped. `last`, when given, gets the index of the last
 * field read (-1: none), which is how a oneof says which member is set. */
static int rd_fields(Rd message, const Field *fields, int count, int *last) {
    if (last != NULL) {
        *last = -1;
    }
    for (;;) {
        uint32_t number;
        int wire_type;
        if (rd_tag(&message, &number, &wire_type) < 0) {
            return -1;
        }
        if (number == 0) {
            return 0;
        }
        int i = 0;
        while (i < count && (fields[i].field != number || fields[i].wire_type != wire_type)) {
            i++;
        }
        int read;
        if (i == count) {
            read = rd_skip(&message, wire_type);
        } else if (wire_type == WT_LEN) {
            read = rd_bytes(&message, (Rd *)fields[i].out);
        } else if (wire_type == WT_VARINT) {
            read = rd_varint(&message, (uint64_t *)fields[i].out);
        } else {
            read = rd_fixed64(&message, (uint64_t *)fields[i].out);
        }
        if (read < 0) {
            return -1;
        }
        if (i < count && last != NULL) {
            *last = i;
        }
    }
}

static int reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap ? b->cap : 256;
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

static inline int put(Buf *b, const void *src, Py_ssize_t n) {
    if (n == 0) {
        return 0;
    }
    if (reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT_LITERAL(b, text) put((b), (text), (Py_ssize_t)(sizeof(text) - 1))

static inline int put_char(Buf *b, char c) {
    if (reserve(b, 1) < 0) {
        return -1;
    }
    b->data[b->len++] = c;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* A JSON string of UTF-8 text, as convert._text writes it: json's escaping without
 * ensure_ascii, NUL replaced by U+FFFD (PostgreSQL's JSON types refuse \u0000). The bytes are
 * validated as UTF-8 when the finished buffer becomes a str. */
static int put_text(Buf *b, const uint8_t *s, Py_ssize_t n) {
    if (reserve(b, n * 6 + 2) < 0) {
        return -1;
    }
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        switch (c) {
        case '"': *out++ = '\\'; *out++ = '"'; break;
        case '\\': *out++ = '\\'; *out++ = '\\'; break;
        case '\n': *out++ = '\\'; *out++ = 'n'; break;
        case '\r': *out++ = '\\'; *out++ = 'r'; break;
        case '\t': *out++ = '\\'; *out++ = 't'; break;
        case '\b': *out++ = '\\'; *out++ = 'b'; break;
        case '\f': *out++ = '\\'; *out++ = 'f'; break;
        case 0: *out++ = (char)0xEF; *out++ = (char)0xBF; *out++ = (char)0xBD; break;
        default:
            memcpy(out, "\\u00", 4);
            out += 4;
            *out++ = HEX[c >> 4];
            *out++ = HEX[c & 15];
        }
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

static int put_hex(Buf *b, const uint8_t *s, Py_ssize_t n) {
    if (reserve(b, 2 * n) < 0) {
        return -1;
    }
    char *out = b->data + b->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        *out++ = HEX[s[i] >> 4];
        *out++ = HEX[s[i] & 15];
    }
    b->len = out - b->data;
    return 0;
}

/* A number's text (at most 20 digits and a sign). */
static int put_format(Buf *b, const char *format, ...) {
    char text[32];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (n < 0 || n >= (int)sizeof text) {
        return malformed("number text too long");
    }
    return put(b, text, n);
}

static PyObject *hex_str(const uint8_t *s, Py_ssize_t n) {
    PyObject *out = PyUnicode_New(2 * n, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *data = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        data[2 * i] = (Py_UCS1)HEX[s[i] >> 4];
        data[2 * i + 1] = (Py_UCS1)HEX[s[i] & 15];
    }
    return out;
}

/* Strict UTF-8 (protobuf's rule for string fields): other bytes make the batch malformed. */
static PyObject *utf8_str(const char *data, Py_ssize_t n) {
    PyObject *text = PyUnicode_DecodeUTF8(data, n, NULL);
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        malformed("text that is not UTF-8");
    }
    return text;
}

static PyObject *text_str(Rd text) {
    return utf8_str((const char *)text.p, text.end - text.p);
}

/* An AnyValue's set member: the last oneof field seen (field 0: none set). */
typedef struct {
    uint32_t field;
    uint64_t number;
    Rd bytes;
} Value;

static int read_value(Rd r, Value *value) {
    Field fields[] = {
        {1, WT_LEN, &value->bytes},        {2, WT_VARINT, &value->number},
        {3, WT_VARINT, &value->number},    {4, WT_FIXED64, &value->number},
        {5, WT_LEN, &value->bytes},        {6, WT_LEN, &value->bytes},
        {7, WT_LEN, &value->bytes},
    };
    int last;
    if (rd_fields(r, fields, 7, &last) < 0) {
        return -1;
    }
    value->field = last < 0 ? 0 : fields[last].field;
    return 0;
}

/* A KeyValue's key and value (absent ones empty). */
static int read_key_value(Rd r, Rd *key, Rd *value) {
    *key = *value = (Rd){NULL, NULL, 0};
    Field fields[] = {{1, WT_LEN, key}, {2, WT_LEN, value}};
    return rd_fields(r, fields, 2, NULL);
}

static double as_double(uint64_t bits) {
    double value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static int put_attributes(Buf *b, Rd list, uint32_t list_field, int depth);

/* convert._value_json */
static int put_value(Buf *b, Rd any, int depth) {
    if (depth > MAX_DEPTH) {
        return malformed("values nested too deep");
    }
    Value value;
    if (read_value(any, &value) < 0) {
        return -1;
    }
    switch (value.field) {
    case 1:
        return put_text(b, value.bytes.p, value.bytes.end - value.bytes.p);
    case 2:
        return value.number ? PUT_LITERAL(b, "true") : PUT_LITERAL(b, "false");
    case 3:
        return put_format(b, "%lld", (long long)(int64_t)value.number);
    case 4: {
        double number = as_double(value.number);
        if (!isfinite(number)) {
            return PUT_LITERAL(b, "null");
        }
        char *text = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) {
            return -1;
        }
        int result = put(b, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return result;
    }
    case 5: {
        if (put_char(b, '[') < 0) {
            return -1;
        }
        Rd r = value.bytes, item;
        int found;
        for (int first = 1; (found = rd_next(&r, 1, &item)) > 0; first = 0) {
            if ((!first && put_char(b, ',') < 0) || put_value(b, item, depth + 1) < 0) {
                return -1;
            }
        }
        return found < 0 ? -1 : put_char(b, ']');
    }
    case 6:
        return put_attributes(b, value.bytes, 1, depth + 1);
    case 7:
        return put_char(b, '"') < 0 || put_hex(b, value.bytes.p, value.bytes.end - value.bytes.p) < 0
                   ? -1
                   : put_char(b, '"');
    default:
        return PUT_LITERAL(b, "null");
    }
}

/* convert.attributes_json over the KeyValue fields numbered `list_field` of message `list`. */
static int put_attributes(Buf *b, Rd list, uint32_t list_field, int depth) {
    if (depth > MAX_DEPTH) {
        return malformed("values nested too deep");
    }
    Rd kv, key, value;
    int found, first = 1;
    for (; (found = rd_next(&list, list_field, &kv)) > 0; first = 0) {
        if (read_key_value(kv, &key, &value) < 0 || put_char(b, first ? '{' : ',') < 0 ||
            put_text(b, key.p, key.end - key.p) < 0 || put_char(b, ':') < 0 ||
            put_value(b, value, depth + 1) < 0) {
            return -1;
        }
    }
    if (found < 0) {
        return -1;
    }
    return first ? PUT_LITERAL(b, "{}") : put_char(b, '}');
}

static PyObject *attributes_dict(Rd list, uint32_t list_field, int depth);

/* convert.any_value */
static PyObject *value_object(Rd any, int depth) {
    if (depth > MAX_DEPTH) {
        malformed("values nested too deep");
        return NULL;
    }
    Value value;
    if (read_value(any, &value) < 0) {
        return NULL;
    }
    switch (value.field) {
    case 1:
        return text_str(value.bytes);
    case 2:
        return PyBool_FromLong(value.number != 0);
    case 3:
        return PyLong_FromLongLong((long long)(int64_t)value.number);
    case 4: {
        double number = as_double(value.number);
        if (!isfinite(number)) {
            Py_RETURN_NONE;
        }
        return PyFloat_FromDouble(number);
    }
    case 5: {
        PyObject *list = PyList_New(0);
        if (list == NULL) {
            return NULL;
        }
        Rd r = value.bytes, item;
        int found;
        while ((found = rd_next(&r, 1, &item)) > 0) {
            PyObject *element = value_object(item, depth + 1);
            if (element == NULL || PyList_Append(list, element) < 0) {
                Py_XDECREF(element);
                found = -1;
                break;
            }
            Py_DECREF(element);
        }
        if (found < 0) {
            Py_DECREF(list);
            return NULL;
        }
        return list;
    }
    case 6:
        return attributes_dict(value.bytes, 1, depth + 1);
    case 7:
        return hex_str(value.bytes.p, value.bytes.end - value.bytes.p);
    default:
        Py_RETURN_NONE;
    }
}

/* convert.attributes_dict */
static PyObject *attributes_dict(Rd list, uint32_t list_field, int depth) {
    if (depth > MAX_DEPTH) {
        malformed("values nested too deep");
        return NULL;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    Rd kv, key_bytes, value_bytes;
    int found;
    while ((found = rd_next(&list, list_field, &kv)) > 0) {
        if (read_key_value(kv, &key_bytes, &value_bytes) < 0) {
            break;
        }
        PyObject *key = text_str(key_bytes);
        PyObject *value = key == NULL ? NULL : value_object(value_bytes, depth + 1);
        int set = value == NULL ? -1 : PyDict_SetItem(dict, key, value);
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (set < 0) {
            break;
        }
    }
    if (found != 0) { /* an error (found < 0) or a break out of the loop (found > 0) */
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

/* convert._events_json over a span's events (field 11). */
static int put_events(Buf *b, Rd span) {
    Rd event;
    int found, first = 1;
    for (; (found = rd_next(&span, 11, &event)) > 0; first = 0) {
        uint64_t time_ns = 0;
        Rd name = {NULL, NULL, 0};
        Field fields[] = {{1, WT_FIXED64, &time_ns}, {2, WT_LEN, &name}};
        if (rd_fields(event, fields, 2, NULL) < 0 ||
            put(b, first ? "[{\"name\":" : ",{\"name\":", 9) < 0 ||
            put_text(b, name.p, name.end - name.p) < 0 ||
            PUT_LITERAL(b, ",\"time_unix_nano\":") < 0 ||
            put_format(b, "%llu", (unsigned long long)time_ns) < 0 ||
            PUT_LITERAL(b, ",\"attributes\":") < 0 || put_attributes(b, event, 3, 0) < 0 ||
            put_char(b, '}') < 0) {
            return -1;
        }
    }
    if (found < 0) {
        return -1;
    }
    return first ? PUT_LITERAL(b, "[]") : put_char(b, ']');
}

/* The finished buffer as a str (the text in it is checked here). */
static PyObject *take_str(Buf *b) {
    PyObject *text = utf8_str(b->data, b->len);
    b->len = 0;
    return text;
}

typedef struct {
    PyObject *rows;
    PyObject *per_trace;
    PyObject *roots;
    PyObject *dumps;
    PyObject *service_name;
    PyObject *node_id;
    PyObject *resource_json;
    PyObject *scope_json;
    int gateway;
    Buf json;
} Out;

static int add_span(Out *out, Rd span) {
    Rd trace_id = {0}, span_id = {0}, parent = {0}, name = {0}, status = {0}, status_message = {0};
    uint64_t kind = 0, start = 0, end = 0, status_code = 0;
    Field fields[] = {
        {1, WT_LEN, &trace_id}, {2, WT_LEN, &span_id},   {4, WT_LEN, &parent},
        {5, WT_LEN, &name},     {6, WT_VARINT, &kind},   {7, WT_FIXED64, &start},
        {8, WT_FIXED64, &end},  {15, WT_LEN, &status},
    };
    Field status_fields[] = {{2, WT_LEN, &status_message}, {3, WT_VARINT, &status_code}};
    if (rd_fields(span, fields, 8, NULL) < 0 || rd_fields(status, status_fields, 2, NULL) < 0) {
        return -1;
    }
    if (trace_id.end - trace_id.p != 16 || span_id.end - span_id.p != 8) {
        return 0; /* could not be joined to a trace */
    }
    int is_root = out->gateway && (int32_t)kind == 2; /* SPAN_KIND_SERVER */
    PyObject *trace = NULL, *root = NULL, *attributes = NULL, *events = NULL, *row = NULL;
    trace = hex_str(trace_id.p, 16);
    if (trace == NULL) {
        return -1;
    }
    if (is_root) {
        root = attributes_dict(span, 9, 0);
        if (root == NULL) {
            goto fail;
        }
        attributes = PyObject_CallOneArg(out->dumps, root);
        if (attributes == NULL) {
            goto fail;
        }
        int nul = PyUnicode_Contains(attributes, s_nul_escape);
        if (nul < 0) {
            goto fail;
        }
        if (nul) { /* PostgreSQL refuses \u0000: the NUL-safe text */
            Py_CLEAR(attributes);
        }
    }
    if (attributes == NULL) {
        if (put_attributes(&out->json, span, 9, 0) < 0 || (attributes = take_str(&out->json)) == NULL) {
            goto fail;
        }
    }
    out->json.len = 0;
    if (put_events(&out->json, span) < 0 || (events = take_str(&out->json)) == NULL) {
        goto fail;
    }
    row = PyTuple_New(15);
    if (row == NULL) {
        goto fail;
    }
    /* One item at a time: the first failure stops (no C API call with an exception set). */
    PyTuple_SET_ITEM(row, 11, attributes);
    PyTuple_SET_ITEM(row, 12, events);
    attributes = events = NULL; /* the row owns them now */
    PyTuple_SET_ITEM(row, 0, Py_NewRef(trace));
    PyTuple_SET_ITEM(row, 9, Py_NewRef(out->service_name));
    PyTuple_SET_ITEM(row, 10, Py_NewRef(out->node_id));
    PyTuple_SET_ITEM(row, 13, Py_NewRef(out->resource_json));
    PyTuple_SET_ITEM(row, 14, Py_NewRef(out->scope_json));
    PyObject *item;
    int complete = 0;
    do {
        if ((item = hex_str(span_id.p, 8)) == NULL) break;
        PyTuple_SET_ITEM(row, 1, item);
        item = parent.p == parent.end ? Py_NewRef(Py_None) : hex_str(parent.p, parent.end - parent.p);
        if (item == NULL) break;
        PyTuple_SET_ITEM(row, 2, item);
        if ((item = text_str(name)) == NULL) break;
        PyTuple_SET_ITEM(row, 3, item);
        if ((item = PyLong_FromLong((int32_t)kind)) == NULL) break;
        PyTuple_SET_ITEM(row, 4, item);
        if ((item = PyLong_FromUnsignedLongLong(start)) == NULL) break;
        PyTuple_SET_ITEM(row, 5, item);
        if ((item = PyLong_FromUnsignedLongLong(end)) == NULL) break;
        PyTuple_SET_ITEM(row, 6, item);
        if ((item = PyLong_FromLong((int32_t)status_code)) == NULL) break;
        PyTuple_SET_ITEM(row, 7, item);
        if ((item = text_str(status_message)) == NULL) break;
        PyTuple_SET_ITEM(row, 8, item);
        complete = 1;
    } while (0);
    if (!complete || PyList_Append(out->rows, row) < 0) {
        goto fail;
    }
    Py_CLEAR(row);
    PyObject *count = PyDict_GetItemWithError(out->per_trace, trace);
    if (count == NULL && PyErr_Occurred()) {
        goto fail;
    }
    PyObject *next = PyLong_FromLong(count == NULL ? 1 : PyLong_AsLong(count) + 1);
    if (next == NULL || PyDict_SetItem(out->per_trace, trace, next) < 0) {
        Py_XDECREF(next);
        goto fail;
    }
    Py_DECREF(next);
    if (root != NULL) {
        int error = (int32_t)status_code == 2; /* STATUS_CODE_ERROR */
        if (!error) {
            error = PyDict_Contains(root, s_error_type);
            if (error < 0) {
                goto fail;
            }
        }
        PyObject *node = out->node_id == Py_None ? PyUnicode_FromString("") : Py_NewRef(out->node_id);
        PyObject *entry = node == NULL ? NULL
                                       : Py_BuildValue("(ONKKNO)", trace, node, (unsigned long long)start,
                                                       (unsigned long long)end, PyBool_FromLong(error), root);
        if (entry == NULL || PyList_Append(out->roots, entry) < 0) {
            Py_XDECREF(entry);
            goto fail;
        }
        Py_DECREF(entry);
    }
    Py_DECREF(trace);
    Py_XDECREF(root);
    return 0;
fail:
    Py_XDECREF(trace);
    Py_XDECREF(root);
    Py_XDECREF(attributes);
    Py_XDECREF(events);
    Py_XDECREF(row);
    return -1;
}

static int set_resource(Out *out, PyObject *resource_info, Rd resource) {
    PyObject *info = PyObject_CallFunction(resource_info, "y#", (const char *)resource.p,
                                           (Py_ssize_t)(resource.end - resource.p));
    if (info == NULL) {
        return -1;
    }
    PyObject *service_name, *node_id, *resource_json;
    int gateway;
    if (!PyArg_ParseTuple(info, "UOUp", &service_name, &node_id, &resource_json, &gateway)) {
        Py_DECREF(info);
        return -1;
    }
    Py_XSETREF(out->service_name, Py_NewRef(service_name));
    Py_XSETREF(out->node_id, Py_NewRef(node_id));
    Py_XSETREF(out->resource_json, Py_NewRef(resource_json));
    out->gateway = gateway;
    Py_DECREF(info);
    return 0;
}

static int add_scope_spans(Out *out, Rd scope_spans) {
    /* The scope first (the last one sent, as protobuf reads it), then the spans in order. */
    Rd scope = {0}, scope_name = {0}, scope_version = {0}, span;
    Field fields[] = {{1, WT_LEN, &scope}};
    Field scope_fields[] = {{1, WT_LEN, &scope_name}, {2, WT_LEN, &scope_version}};
    if (rd_fields(scope_spans, fields, 1, NULL) < 0 || rd_fields(scope, scope_fields, 2, NULL) < 0) {
        return -1;
    }
    out->json.len = 0;
    if (PUT_LITERAL(&out->json, "{\"name\":") < 0 ||
        put_text(&out->json, scope_name.p, scope_name.end - scope_name.p) < 0 ||
        PUT_LITERAL(&out->json, ",\"version\":") < 0 ||
        put_text(&out->json, scope_version.p, scope_version.end - scope_version.p) < 0 ||
        put_char(&out->json, '}') < 0) {
        return -1;
    }
    PyObject *scope_json = take_str(&out->json);
    if (scope_json == NULL) {
        return -1;
    }
    Py_XSETREF(out->scope_json, scope_json);
    int found;
    while ((found = rd_next(&scope_spans, 2, &span)) > 0) {
        if (add_span(out, span) < 0) {
            return -1;
        }
    }
    return found;
}

static int add_resource_spans(Out *out, PyObject *resource_info, Rd resource_spans) {
    Rd resource = {(const uint8_t *)"", (const uint8_t *)"", 0}, scope_spans;
    Field fields[] = {{1, WT_LEN, &resource}};
    if (rd_fields(resource_spans, fields, 1, NULL) < 0 ||
        set_resource(out, resource_info, resource) < 0) {
        return -1;
    }
    int found;
    while ((found = rd_next(&resource_spans, 2, &scope_spans)) > 0) {
        if (add_scope_spans(out, scope_spans) < 0) {
            return -1;
        }
    }
    return found;
}

static PyObject *rows(PyObject *self, PyObject *args) {
    PyObject *resource_spans, *resource_info, *dumps;
    if (!PyArg_ParseTuple(args, "OOO:rows", &resource_spans, &resource_info, &dumps)) {
        return NULL;
    }
    PyObject *items = PySequence_Fast(resource_spans, "resource_spans must be a sequence of bytes");
    if (items == NULL) {
        return NULL;
    }
    Out out = {.rows = PyList_New(0), .per_trace = PyDict_New(), .roots = PyList_New(0), .dumps = dumps};
    PyObject *result = NULL;
    if (out.rows == NULL || out.per_trace == NULL || out.roots == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items); i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(items, i), &view, PyBUF_SIMPLE) < 0) {
            goto done;
        }
        Rd r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
        int added = add_resource_spans(&out, resource_info, r);
        PyBuffer_Release(&view);
        if (added < 0) {
            goto done;
        }
    }
    result = PyTuple_Pack(3, out.rows, out.per_trace, out.roots);
done:
    Py_DECREF(items);
    Py_XDECREF(out.rows);
    Py_XDECREF(out.per_trace);
    Py_XDECREF(out.roots);
    Py_XDECREF(out.service_name);
    Py_XDECREF(out.node_id);
    Py_XDECREF(out.resource_json);
    Py_XDECREF(out.scope_json);
    PyMem_Free(out.json.data);
    return result;
}

/* The length-delimited fields numbered `field` of `message`, in order, as a list of str
 * (`as_text`) or bytes. */
static PyObject *repeated(Rd message, uint32_t field, int as_text) {
    PyObject *list = PyList_New(0);
    Rd value;
    int found;
    while (list != NULL && (found = rd_next(&message, field, &value)) != 0) {
        PyObject *item = found < 0 ? NULL
                         : as_text ? text_str(value)
                                   : PyBytes_FromStringAndSize((const char *)value.p, value.end - value.p);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(item);
    }
    return list;
}

static PyObject *node_span_batch(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *batch_id = NULL, *session_ids = NULL, *resource_spans = NULL, *result = NULL;
    Rd message = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    Rd batch = {0};
    int batches = 0;
    for (;;) {
        uint32_t field;
        int wire_type;
        if (rd_tag(&message, &field, &wire_type) < 0) {
            goto done;
        }
        if (field == 0) {
            break;
        }
        if (field != 3 || wire_type != WT_LEN || ++batches > 1) {
            /* another message (or an unusual encoding): protobuf's to parse */
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (rd_bytes(&message, &batch) < 0) {
            goto done;
        }
    }
    if (batches == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Rd id = {0};
    Field fields[] = {{1, WT_LEN, &id}};
    if (rd_fields(batch, fields, 1, NULL) < 0 || (batch_id = text_str(id)) == NULL ||
        (session_ids = repeated(batch, 2, 1)) == NULL ||
        (resource_spans = repeated(batch, 3, 0)) == NULL) {
        goto done;
    }
    result = PyTuple_Pack(3, batch_id, session_ids, resource_spans);
done:
    PyBuffer_Release(&view);
    Py_XDECREF(batch_id);
    Py_XDECREF(session_ids);
    Py_XDECREF(resource_spans);
    return result;
}

static PyMethodDef methods[] = {
    {"rows", rows, METH_VARARGS, "ResourceSpans bytes to rows (see convert.span_rows)."},
    {"node_span_batch", node_span_batch, METH_O, "A serialized NodeMessage's SpanBatch, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rows", "OTLP span batches to spans rows in C (see convert.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rows(void) {
    s_error_type = PyUnicode_InternFromString("error.type");
    s_nul_escape = PyUnicode_InternFromString("\\u0000");
    if (s_error_type == NULL || s_nul_escape == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
