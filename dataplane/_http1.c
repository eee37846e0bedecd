/*
 * HTTP/1.1 header serialisation for the proxy's hot path, in C: dataplane/http1.py's
 * header_block, the same result ~5x faster. http1.py stays the reference (and the fallback
 * when this module is not built); tests check both give the same answers.
 *
 * header_block(first_line, headers) -> (block, content_length, chunked, close)
 *
 *   block           first_line, then "name: value\r\n" for each (name, value) pair;
 *   content_length  the value of the last Content-Length header, or None;
 *   chunked         whether a Transfer-Encoding value mentions "chunked" (any case);
 *   close           whether a Connection value mentions "close" (any case).
 *
 * first_line must end with CRLF and hold no other CR or LF; names and values must hold
 * none (a CR or LF would split the message: header injection). Either raises ValueError.
 * Pairs that are not two bytes objects raise TypeError (http1.py then decides).
 *
 * raw_header(raw, name) -> bytes | None: headers.python_raw_header, the first value of `name`
 * in (name, value) pairs, without a Python frame. Every request looks up a few headers (Host,
 * X-Request-Id; Traceparent and User-Agent when traced), each a loop over its headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static int has_crlf(const char *s, Py_ssize_t n) {
    return memchr(s, '\r', (size_t)n) != NULL || memchr(s, '\n', (size_t)n) != NULL;
}

static unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* `s` equals the lower-case ASCII `word`, ignoring case. */
static int name_is(const char *s, Py_ssize_t n, const char *word, Py_ssize_t m) {
    if (n != m) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (lower((unsigned char)s[i]) != (unsigned char)word[i]) {
            return 0;
        }
    }
    return 1;
}

/* `s` contains the lower-case ASCII `word`, ignoring case. */
static int mentions(const char *s, Py_ssize_t n, const char *word, Py_ssize_t m) {
    for (Py_ssize_t i = 0; i + m <= n; i++) {
        if (name_is(s + i, m, word, m)) {
            return 1;
        }
    }
    return 0;
}

/* The pair at `item` as two bytes objects (borrowed), or -1 with TypeError set. */
static int pair(PyObject *item, PyObject **name, PyObject **value) {
    if ((PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2)) {
        *name = PyTuple_GET_ITEM(item, 0);
        *value = PyTuple_GET_ITEM(item, 1);
    } else if (PyList_Check(item) && PyList_GET_SIZE(item) == 2) {
        *name = PyList_GET_ITEM(item, 0);
        *value = PyList_GET_ITEM(item, 1);
    } else {
        PyErr_SetString(PyExc_TypeError, "a header is a (name, value) pair");
        return -1;
    }
    if (!PyBytes_Check(*name) || !PyBytes_Check(*value)) {
        PyErr_SetString(PyExc_TypeError, "header names and values are bytes");
        return -1;
    }
    return 0;
}

static PyObject *header_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "header_block(first_line, headers)");
        return NULL;
    }
    PyObject *first = args[0];
    if (!PyBytes_Check(first)) {
        PyErr_SetString(PyExc_TypeError, "the first line is bytes");
        return NULL;
    }
    const char *first_data = PyBytes_AS_STRING(first);
    Py_ssize_t first_len = PyBytes_GET_SIZE(first);
    if (first_len < 2 || first_data[first_len - 2] != '\r' || first_data[first_len - 1] != '\n' ||
        has_crlf(first_data, first_len - 2)) {
        PyErr_SetString(PyExc_ValueError, "CR or LF inside the first line");
        return NULL;
    }
    PyObject *headers = PySequence_Fast(args[1], "headers must be a sequence");
    if (headers == NULL) {
        return NULL;
    }
    /* Two passes over the pairs: sizes first, then the copy. Nothing between them runs
     * Python code, so the sequence cannot change. */
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    Py_ssize_t total = first_len;
    PyObject *name, *value;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (pair(PySequence_Fast_GET_ITEM(headers, i), &name, &value) < 0) {
            Py_DECREF(headers);
            return NULL;
        }
        Py_ssize_t nlen = PyBytes_GET_SIZE(name), vlen = PyBytes_GET_SIZE(value);
        if (nlen > PY_SSIZE_T_MAX - 4 - total || vlen > PY_SSIZE_T_MAX - 4 - total - nlen) {
            PyErr_SetString(PyExc_OverflowError, "header block too large");
            Py_DECREF(headers);
            return NULL;
        }
        total += nlen + vlen + 4;
    }
    PyObject *block = PyBytes_FromStringAndSize(NULL, total);
    if (block == NULL) {
        Py_DECREF(headers);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(block);
    memcpy(out, first_data, (size_t)first_len);
    out += first_len;
    PyObject *length = Py_None;
    int chunked = 0, close = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        pair(PySequence_Fast_GET_ITEM(headers, i), &name, &value);
        const char *n = PyBytes_AS_STRING(name), *v = PyBytes_AS_STRING(value);
        Py_ssize_t nlen = PyBytes_GET_SIZE(name), vlen = PyBytes_GET_SIZE(value);
        if (has_crlf(n, nlen) || has_crlf(v, vlen)) {
            PyErr_SetString(PyExc_ValueError, "CR or LF in a header name or value");
            Py_DECREF(block);
            Py_DECREF(headers);
            return NULL;
        }
        memcpy(out, n, (size_t)nlen);
        out += nlen;
        *out++ = ':';
        *out++ = ' ';
        memcpy(out, v, (size_t)vlen);
        out += vlen;
        *out++ = '\r';
        *out++ = '\n';
        if (name_is(n, nlen, "content-length", 14)) {
            length = value;
        } else if (name_is(n, nlen, "transfer-encoding", 17)) {
            chunked = chunked || mentions(v, vlen, "chunked", 7);
        } else if (name_is(n, nlen, "connection", 10)) {
            close = close || mentions(v, vlen, "close", 5);
        }
    }
    /* PyTuple_Pack, not Py_BuildValue: no format string parsed on every request */
    PyObject *result = PyTuple_Pack(4, block, length, chunked ? Py_True : Py_False,
                                    close ? Py_True : Py_False);
    Py_DECREF(block);
    Py_DECREF(headers);
    return result;
}

static PyObject *raw_header(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "raw_header(raw, name) takes two arguments");
        return NULL;
    }
    PyObject *name = args[1];
    PyObject *pairs = PySequence_Fast(args[0], "raw headers must be iterable");
    if (pairs == NULL) {
        return NULL;
    }
    int name_is_bytes = PyBytes_CheckExact(name);
    /* The size is read again each time round: a key's __eq__ may change the list. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(pairs); i++) {
        /* A tuple or list (as ASGI gives them) is used as it is; anything else unpacks as
         * Python's `for key, value in raw` would (TypeError when it is not iterable). */
        PyObject *pair = PySequence_Fast(PySequence_Fast_GET_ITEM(pairs, i),
                                         "cannot unpack a header that is not a (name, value) pair");
        if (pair == NULL) {
            Py_DECREF(pairs);
            return NULL;
        }
        if (PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "raw headers must be (name, value) pairs");
            Py_DECREF(pair);
            Py_DECREF(pairs);
            return NULL;
        }
        PyObject *key = PySequence_Fast_GET_ITEM(pair, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(pair, 1);
        int equal; /* a match holds a reference to its value */
        if (name_is_bytes && PyBytes_CheckExact(key)) { /* no Python code runs */
            Py_ssize_t n = PyBytes_GET_SIZE(key);
            equal = n == PyBytes_GET_SIZE(name) &&
                    memcmp(PyBytes_AS_STRING(key), PyBytes_AS_STRING(name), (size_t)n) == 0;
            if (equal) {
                Py_INCREF(value);
            }
        } else {
            Py_INCREF(key); /* __eq__ may change the list or the pair */
            Py_INCREF(value);
            equal = PyObject_RichCompareBool(key, name, Py_EQ);
            Py_DECREF(key);
            if (equal <= 0) {
                Py_DECREF(value);
            }
        }
        Py_DECREF(pair);
        if (equal != 0) {
            Py_DECREF(pairs);
            return equal < 0 ? NULL : value;
        }
    }
    Py_DECREF(pairs);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"raw_header", (PyCFunction)(void (*)(void))raw_header, METH_FASTCALL,
     "raw_header(raw, name) -> the first value of name in (name, value) pairs, or None."},
    {"header_block", (PyCFunction)(void (*)(void))header_block, METH_FASTCALL,
     "header_block(first_line, headers) -> (block, content_length, chunked, close)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_http1", "HTTP/1.1 header serialisation in C (see http1.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__http1(void) { return PyModule_Create(&module); }
