/* Fast path of the decode stage: JSON objects of a *known* shape straight into Arrow buffers.
 *
 * decode(values, plan, check_utf8) parses every message (a list of bytes) as one JSON object,
 * optionally checking first that it is valid UTF-8, against a plan (the expected fields and their types, depth-first) and returns, per plan
 * node, the Arrow buffers of its column; or None as soon as any message does not fit the plan
 * exactly: an unknown key in a strict object, a value of another type, an integer that overflows,
 * a duplicate key, or anything that is not valid JSON. The caller then takes the general path
 * (pyarrow.json with inference and bisection), so this code only has to be right about what it
 * accepts. Parsing runs without the GIL.
 *
 * Plan nodes: (kind, name, number of children, strict). Kinds: 0 struct, 1 int64, 2 float64,
 * 3 bool, 4 string, 5 null. A non-strict struct skips (but still validates) unknown keys.
 * Returned per node: (null_count, validity[, values[, string data]]), each buffer handed over
 * without a copy as (address, size, owner).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { K_STRUCT = 0, K_INT64 = 1, K_DOUBLE = 2, K_BOOL = 3, K_STRING = 4, K_NULL = 5 };
enum { OK = 0, BAIL = 1, NOMEM = 2 };
#define MAX_SKIP_DEPTH 1100

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

typedef struct Node {
    int kind, strict, nchildren, hint;
    const char *name;
    Py_ssize_t name_len;
    struct Node **children;
    unsigned char *seen;
    Buf validity, values, data;
    int64_t length, nulls;
} Node;

typedef struct {
    const unsigned char *p, *end;
} Cur;

static int reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return OK;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) return NOMEM;
    b->p = p;
    b->cap = cap;
    return OK;
}

static int append_bytes(Buf *b, const void *src, size_t n) {
    if (reserve(b, n)) return NOMEM;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return OK;
}

static int append_bit(Buf *b, int64_t i, int v) {
    if ((i & 7) == 0) {
        if (reserve(b, 1)) return NOMEM;
        b->p[b->len++] = 0;
    }
    if (v) b->p[i >> 3] |= (char)(1 << (i & 7));
    return OK;
}

static int append_offset(Node *n) {
    if (n->data.len > INT32_MAX) return BAIL;
    int32_t end = (int32_t)n->data.len;
    return append_bytes(&n->values, &end, sizeof end);
}

static int append_null(Node *n) {
    int r = append_bit(&n->validity, n->length, 0);
    if (r) return r;
    switch (n->kind) {
    case K_INT64:
    case K_DOUBLE: {
        int64_t zero = 0;
        r = append_bytes(&n->values, &zero, sizeof zero);
        break;
    }
    case K_BOOL:
        r = append_bit(&n->values, n->length, 0);
        break;
    case K_STRING:
        r = append_offset(n);
        break;
    case K_STRUCT: /* children get a null slot too, as pyarrow's JSON reader does */
        for (int i = 0; i < n->nchildren && r == OK; i++) r = append_null(n->children[i]);
        break;
    }
    n->length++;
    n->nulls++;
    return r;
}

static int valid(Node *n) {
    int r = append_bit(&n->validity, n->length, 1);
    n->length++;
    return r;
}

static inline void ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int literal(Cur *c, const char *text, size_t n) {
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, text, n) != 0) return BAIL;
    c->p += n;
    return OK;
}

/* JSON number grammar; sets *integral when there is no fraction or exponent. */
static int scan_number(Cur *c, int *integral) {
    const unsigned char *p = c->p;
    *integral = 1;
    if (p < c->end && *p == '-') p++;
    if (p >= c->end) return BAIL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < c->end && *p >= '0' && *p <= '9') p++;
    } else {
        return BAIL;
    }
    if (p < c->end && *p == '.') {
        *integral = 0;
        p++;
        if (p >= c->end || *p < '0' || *p > '9') return BAIL;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < c->end && (*p == 'e' || *p == 'E')) {
        *integral = 0;
        p++;
        if (p < c->end && (*p == '+' || *p == '-')) p++;
        if (p >= c->end || *p < '0' || *p > '9') return BAIL;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
    }
    c->p = p;
    return OK;
}

static int hex4(Cur *c, uint32_t *out) {
    if (c->end - c->p < 4) return BAIL;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char h = c->p[i];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= (uint32_t)(h - '0');
        else if (h >= 'a' && h <= 'f') v |= (uint32_t)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') v |= (uint32_t)(h - 'A' + 10);
        else return BAIL;
    }
    c->p += 4;
    *out = v;
    return OK;
}

static int put_utf8(Buf *out, uint32_t cp) {
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return out ? append_bytes(out, b, n) : OK;
}

/* Whether any of 8 bytes is a quote, a backslash or a control character (may also flag bytes
 * after the first such byte; callers then look byte by byte). */
static inline int special8(const unsigned char *p) {
    uint64_t w, ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    memcpy(&w, p, 8);
    uint64_t quote = w ^ (ones * '"'), slash = w ^ (ones * '\\');
    uint64_t control = (w - ones * 0x20) & ~w & highs;
    return (control | ((quote - ones) & ~quote & highs) | ((slash - ones) & ~slash & highs)) != 0;
}

/* A string at c->p (the opening quote), unescaped into out (NULL: only validated). */
static int scan_string(Cur *c, Buf *out) {
    c->p++;
    for (;;) {
        const unsigned char *s = c->p;
        while (c->end - c->p >= 8 && !special8(c->p)) c->p += 8;
        while (c->p < c->end && *c->p != '"' && *c->p != '\\' && *c->p >= 0x20) c->p++;
        if (out && c->p > s && append_bytes(out, s, (size_t)(c->p - s))) return NOMEM;
        if (c->p >= c->end || *c->p < 0x20) return BAIL;
        if (*c->p == '"') {
            c->p++;
            return OK;
        }
        c->p++; /* backslash */
        if (c->p >= c->end) return BAIL;
        unsigned char e = *c->p++;
        char plain;
        switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(c, &cp)) return BAIL;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return BAIL; /* lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u') return BAIL;
                c->p += 2;
                if (hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF) return BAIL;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (put_utf8(out, cp)) return NOMEM;
            continue;
        }
        default:
            return BAIL;
        }
        if (out && append_bytes(out, &plain, 1)) return NOMEM;
    }
}

/* Validate and skip any JSON value (an unknown key of a non-strict object). */
static int skip_value(Cur *c, int depth) {
    int integral;
    if (depth > MAX_SKIP_DEPTH) return BAIL;
    ws(c);
    if (c->p >= c->end) return BAIL;
    switch (*c->p) {
    case '"':
        return scan_string(c, NULL);
    case 't':
        return literal(c, "true", 4);
    case 'f':
        return literal(c, "false", 5);
    case 'n':
        return literal(c, "null", 4);
    case '{':
    case '[': {
        unsigned char close = *c->p == '{' ? '}' : ']';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return OK;
        }
        for (;;) {
            ws(c);
            if (close == '}') {
                if (c->p >= c->end || *c->p != '"' || scan_string(c, NULL)) return BAIL;
                ws(c);
                if (c->p >= c->end || *c->p != ':') return BAIL;
                c->p++;
            }
            if (skip_value(c, depth + 1)) return BAIL;
            ws(c);
            if (c->p >= c->end) return BAIL;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p == close) {
                c->p++;
                return OK;
            }
            return BAIL;
        }
    }
    default:
        return scan_number(c, &integral);
    }
}

static int parse_value(Node *n, Cur *c);

static inline int same_key(const Node *n, const unsigned char *key, size_t len) {
    if ((size_t)n->name_len != len) return 0;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)n->name[i] != key[i]) return 0;
    }
    return 1;
}

static int find_child(Node *n, const unsigned char *key, size_t len) {
    int h = n->hint;
    if (h < n->nchildren && same_key(n->children[h], key, len)) {
        n->hint = h + 1;
        return h;
    }
    for (int i = 0; i < n->nchildren; i++) {
        Node *ch = n->children[i];
        if (same_key(ch, key, len)) {
            n->hint = i + 1;
            return i;
        }
    }
    return -1;
}

static int parse_object(Node *n, Cur *c) {
    int r;
    c->p++; /* '{' */
    memset(n->seen, 0, (size_t)n->nchildren);
    n->hint = 0;
    ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
    } else {
        for (;;) {
            ws(c);
            if (c->p >= c->end || *c->p != '"') return BAIL;
            const unsigned char *key = ++c->p;
            int i = -1;
            Node *expected = n->hint < n->nchildren ? n->children[n->hint] : NULL;
            if (expected && c->end - key > expected->name_len &&
                memcmp(key, expected->name, (size_t)expected->name_len) == 0 && key[expected->name_len] == '"') {
                i = n->hint++; /* the usual case: keys come in the order last seen */
                c->p = key + expected->name_len + 1;
            } else {
                while (c->p < c->end && *c->p != '"' && *c->p != '\\' && *c->p >= 0x20) c->p++;
                if (c->p >= c->end || *c->p != '"') return BAIL; /* escaped or broken key: general path */
                size_t len = (size_t)(c->p - key);
                c->p++;
                i = find_child(n, key, len);
            }
            ws(c);
            if (c->p >= c->end || *c->p != ':') return BAIL;
            c->p++;
            if (i < 0) {
                if (n->strict || skip_value(c, 0)) return BAIL;
            } else {
                if (n->seen[i]) return BAIL; /* duplicate key */
                n->seen[i] = 1;
                if ((r = parse_value(n->children[i], c))) return r;
            }
            ws(c);
            if (c->p >= c->end) return BAIL;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p == '}') {
                c->p++;
                break;
            }
            return BAIL;
        }
    }
    for (int i = 0; i < n->nchildren; i++) {
        if (!n->seen[i] && (r = append_null(n->children[i]))) return r;
    }
    return valid(n);
}

static int parse_value(Node *n, Cur *c) {
    int r, integral;
    ws(c);
    if (c->p >= c->end) return BAIL;
    if (*c->p == 'n') return literal(c, "null", 4) ? BAIL : append_null(n);
    switch (n->kind) {
    case K_STRUCT:
        return *c->p == '{' ? parse_object(n, c) : BAIL;
    case K_STRING:
        if (*c->p != '"') return BAIL;
        if ((r = scan_string(c, &n->data)) || (r = append_offset(n))) return r;
        return valid(n);
    case K_BOOL: {
        int v = *c->p == 't';
        if (literal(c, v ? "true" : "false", v ? 4 : 5)) return BAIL;
        if ((r = append_bit(&n->values, n->length, v))) return r;
        return valid(n);
    }
    case K_INT64: {
        const unsigned char *s = c->p;
        if (scan_number(c, &integral) || !integral) return BAIL;
        int neg = *s == '-';
        uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (const unsigned char *d = s + neg; d < c->p; d++) {
            uint64_t digit = (uint64_t)(*d - '0');
            if (v > (limit - digit) / 10) return BAIL; /* does not fit int64 */
            v = v * 10 + digit;
        }
        int64_t out = neg ? (int64_t)(0 - v) : (int64_t)v;
        if ((r = append_bytes(&n->values, &out, sizeof out))) return r;
        return valid(n);
    }
    case K_DOUBLE: {
        const unsigned char *s = c->p;
        char *end;
        if (scan_number(c, &integral)) return BAIL;
        double v = strtod((const char *)s, &end); /* correctly rounded; underflow gives 0 or subnormals */
        if ((const unsigned char *)end != c->p || isinf(v)) return BAIL;
        if ((r = append_bytes(&n->values, &v, sizeof v))) return r;
        return valid(n);
    }
    default: /* K_NULL: only null fits */
        return BAIL;
    }
}

/* -- plan and results ------------------------------------------------------------------------- */

/* Room for ``count`` rows up front: no regrowth (and page faults) while parsing. */
static int presize(Node *n, Py_ssize_t count) {
    size_t rows = (size_t)count;
    if (reserve(&n->validity, rows / 8 + 1)) return NOMEM;
    if ((n->kind == K_INT64 || n->kind == K_DOUBLE) && reserve(&n->values, 8 * rows)) return NOMEM;
    if (n->kind == K_BOOL && reserve(&n->values, rows / 8 + 1)) return NOMEM;
    if (n->kind == K_STRING && (reserve(&n->values, 4 * rows) || reserve(&n->data, 16 * rows))) return NOMEM;
    for (int i = 0; i < n->nchildren; i++) {
        if (presize(n->children[i], count)) return NOMEM;
    }
    return OK;
}

static void free_node(Node *n) {
    if (n == NULL) return;
    for (int i = 0; i < n->nchildren; i++) free_node(n->children[i]);
    free(n->children);
    free(n->seen);
    free(n->validity.p);
    free(n->values.p);
    free(n->data.p);
    free(n);
}

static Node *build_node(PyObject *plan, Py_ssize_t *at) {
    if (*at >= PyList_GET_SIZE(plan)) {
        PyErr_SetString(PyExc_ValueError, "plan ended early");
        return NULL;
    }
    PyObject *spec = PyList_GET_ITEM(plan, *at);
    (*at)++;
    int kind, nchildren, strict;
    const char *name;
    Py_ssize_t name_len;
    if (!PyArg_ParseTuple(spec, "iy#ii", &kind, &name, &name_len, &nchildren, &strict)) return NULL;
    Node *n = calloc(1, sizeof(Node));
    if (n == NULL) return (Node *)PyErr_NoMemory();
    n->kind = kind;
    n->strict = strict;
    n->name = name;
    n->name_len = name_len;
    if (kind == K_STRUCT && nchildren > 0) {
        n->children = calloc((size_t)nchildren, sizeof(Node *));
        n->seen = calloc((size_t)nchildren, 1);
        if (n->children == NULL || n->seen == NULL) {
            free_node(n);
            return (Node *)PyErr_NoMemory();
        }
        for (int i = 0; i < nchildren; i++) {
            n->children[i] = build_node(plan, at);
            n->nchildren = i + 1;
            if (n->children[i] == NULL) {
                free_node(n);
                return NULL;
            }
        }
    } else if (kind == K_STRUCT) {
        n->seen = calloc(1, 1);
    }
    if (kind == K_STRING && append_offset(n)) {
        free_node(n);
        return (Node *)PyErr_NoMemory();
    }
    return n;
}

static void free_capsule(PyObject *capsule) { free(PyCapsule_GetPointer(capsule, "lakeport.buffer")); }

/* A buffer handed over without a copy: (address, size, owner); the owner frees it. */
static PyObject *export_buf(Buf *b) {
    if (b->p == NULL && (b->p = malloc(1)) == NULL) return PyErr_NoMemory();
    PyObject *owner = PyCapsule_New(b->p, "lakeport.buffer", free_capsule);
    if (owner == NULL) return NULL;
    PyObject *out = Py_BuildValue("(KnN)", (unsigned long long)(uintptr_t)b->p, (Py_ssize_t)b->len, owner);
    b->p = NULL; /* owned by the capsule now (also if building the tuple failed: it holds the capsule) */
    b->len = b->cap = 0;
    return out;
}

static int export_node(Node *n, PyObject *out) {
    PyObject *item;
    int bufs = n->kind == K_STRING ? 3 : (n->kind == K_INT64 || n->kind == K_DOUBLE || n->kind == K_BOOL) ? 2 : 1;
    Buf *order[3] = {&n->validity, &n->values, &n->data};
    item = PyTuple_New(1 + bufs);
    if (item == NULL) return -1;
    PyTuple_SET_ITEM(item, 0, PyLong_FromLongLong((long long)n->nulls));
    for (int i = 0; i < bufs; i++) {
        PyObject *buf = export_buf(order[i]);
        if (buf == NULL) {
            Py_DECREF(item);
            return -1;
        }
        PyTuple_SET_ITEM(item, 1 + i, buf);
    }
    if (PyList_Append(out, item) < 0) {
        Py_DECREF(item);
        return -1;
    }
    Py_DECREF(item);
    for (int i = 0; i < n->nchildren; i++) {
        if (export_node(n->children[i], out) < 0) return -1;
    }
    return 0;
}

/* Whether [p, end) is valid UTF-8 as Python's strict codec sees it (no overlongs, no surrogates). */
static int valid_utf8(const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & 0x8080808080808080ULL)) {
                p += 8;
                continue;
            }
        }
        unsigned char c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        int n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (end - p <= n) return 0;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (uint32_t)(p[i] & 0x3F);
        }
        if (n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
        if (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
        p += n + 1;
    }
    return 1;
}

static PyObject *fastjson_decode(PyObject *self, PyObject *args) {
    PyObject *values, *plan;
    int check_utf8;
    if (!PyArg_ParseTuple(args, "O!O!p", &PyList_Type, &values, &PyList_Type, &plan, &check_utf8)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t at = 0, count = PyList_GET_SIZE(values);
    Node *root = NULL;
    const unsigned char **ptrs = calloc((size_t)count + 1, sizeof *ptrs);
    Py_ssize_t *lens = calloc((size_t)count + 1, sizeof *lens);
    if (ptrs == NULL || lens == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) { /* the list holds the bytes alive while unlocked */
        PyObject *v = PyList_GET_ITEM(values, i);
        if (!PyBytes_Check(v)) {
            PyErr_SetString(PyExc_TypeError, "values must be bytes");
            goto done;
        }
        ptrs[i] = (const unsigned char *)PyBytes_AS_STRING(v);
        lens[i] = PyBytes_GET_SIZE(v);
    }
    root = build_node(plan, &at);
    if (root == NULL) goto done;
    if (root->kind != K_STRUCT) {
        PyErr_SetString(PyExc_ValueError, "the plan's root must be a struct");
        goto done;
    }
    if (presize(root, count)) {
        PyErr_NoMemory();
        goto done;
    }
    int r = OK;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && r == OK; i++) {
        Cur c = {ptrs[i], ptrs[i] + lens[i]};
        if (check_utf8 && !valid_utf8(c.p, c.end)) {
            r = BAIL;
            break;
        }
        ws(&c);
        if (c.p >= c.end || *c.p != '{') {
            r = BAIL;
            break;
        }
        r = parse_object(root, &c);
        ws(&c);
        if (r == OK && c.p != c.end) r = BAIL;
    }
    Py_END_ALLOW_THREADS
    if (r == NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (r == BAIL) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    result = PyList_New(0);
    if (result != NULL && export_node(root, result) < 0) Py_CLEAR(result);
done:
    free_node(root);
    free(ptrs);
    free(lens);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", fastjson_decode, METH_VARARGS, "Parse JSON objects of a known shape into Arrow buffers, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_fastjson", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastjson(void) { return PyModule_Create(&module); }
