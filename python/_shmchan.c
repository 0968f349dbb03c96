/* shmchan._shmchan: the CPython extension under the `shmchan` package, written over the C ABI
 * (shmchan/shmchan.h) only. It does what must be native: handles, zero-copy memoryviews into
 * the ring, the buffer protocol for writes and loans, and blocking calls with the GIL released
 * and Ctrl-C honoured. Everything else (exceptions, refs, options, asyncio, context managers)
 * is Python in shmchan/__init__.py. Why the C API and not pybind11: docs/python.md. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shmchan/shmchan.h>

#include <limits.h>
#include <string.h>

/* Blocking calls wait in slices of this many ms with the GIL released, then run Python's
 * signal handlers (Ctrl-C raises KeyboardInterrupt between slices). */
#define SLICE_MS 50

static PyObject* error_factory = NULL; /* shmchan._raise_error(code, name, message, reason) */

/* Raises the exception for `rc` (through the Python layer's factory); returns NULL. */
static PyObject* raise_rc(int rc, const char* reason) {
    PyObject* exc;
    if (!error_factory) {
        PyErr_Format(PyExc_RuntimeError, "shmchan error %d: %s", rc, shmchan_last_error());
        return NULL;
    }
    exc = PyObject_CallFunction(error_factory, "isss", rc, shmchan_error_name(rc), shmchan_last_error(),
                                reason ? reason : "");
    if (exc) {
        PyErr_SetObject((PyObject*)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject* set_error_factory(PyObject* self, PyObject* f) {
    (void)self;
    Py_XSETREF(error_factory, Py_NewRef(f));
    Py_RETURN_NONE;
}

/* One slice of a timeout: ms < 0 is for ever. */
static int slice_of(int remaining) { return remaining < 0 || remaining > SLICE_MS ? SLICE_MS : remaining; }
/* After a slice timed out: 1 to go on, 0 when the caller's timeout is spent, -1 on a signal
 * whose handler raised (KeyboardInterrupt). */
static int go_on(int* remaining, int slice) {
    if (PyErr_CheckSignals() < 0) return -1;
    if (*remaining < 0) return 1;
    *remaining -= slice;
    return *remaining > 0;
}

/* A handle is used by one call at a time: a call that released the GIL marks it busy, so that
 * another Python thread cannot free it underneath. */
static int claim(int* busy, const char* what) {
    if (*busy) {
        PyErr_Format(PyExc_RuntimeError, "%s is in use by another thread", what);
        return -1;
    }
    *busy = 1;
    return 0;
}

static int parse_options(shmchan_options* o, Py_ssize_t capacity, Py_ssize_t max_held, int transport,
                         const char* engine, long spin_us) {
    shmchan_options_init(o);
    if (capacity > 0) o->capacity = (size_t)capacity;
    if (max_held > 0) o->max_held = (size_t)max_held;
    o->transport = transport;
    o->engine = engine;
    if (spin_us >= 0) o->spin_us = (uint32_t)spin_us;
    return 0;
}

/* --- frame meta ------------------------------------------------------------------------- */

static int i64_or_none(PyObject* o, int64_t none, int64_t* out) {
    long long v;
    if (o == Py_None) {
        *out = none;
        return 0;
    }
    v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

static int u64_or_none(PyObject* o, uint64_t* out) {
    unsigned long long v;
    if (o == Py_None) {
        *out = SHMCHAN_OFFSET_NONE;
        return 0;
    }
    v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* meta is (pts, dts, duration, offset, offset_end, flags, user-bytes-like) with None for unset;
 * `user` receives the buffer that backs meta->user (release it after the call). */
static int meta_from_tuple(PyObject* t, shmchan_frame_meta* m, Py_buffer* user) {
    PyObject *pts, *dts, *dur, *off, *off_end, *u;
    unsigned long flags;
    shmchan_frame_meta_init(m);
    user->obj = NULL;
    if (!PyArg_ParseTuple(t, "OOOOOkO;meta must be (pts, dts, duration, offset, offset_end, flags, user)",
                          &pts, &dts, &dur, &off, &off_end, &flags, &u))
        return -1;
    if (i64_or_none(pts, SHMCHAN_TIME_NONE, &m->pts) || i64_or_none(dts, SHMCHAN_TIME_NONE, &m->dts) ||
        i64_or_none(dur, SHMCHAN_TIME_NONE, &m->duration) || u64_or_none(off, &m->offset) ||
        u64_or_none(off_end, &m->offset_end))
        return -1;
    if (flags > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "flags must fit in 32 bits");
        return -1;
    }
    m->flags = (uint32_t)flags;
    if (u != Py_None) {
        if (PyObject_GetBuffer(u, user, PyBUF_SIMPLE) < 0) return -1;
        m->user = user->buf;
        m->user_size = (size_t)user->len;
    }
    return 0;
}

static PyObject* opt_i64(int64_t v) { return v == SHMCHAN_TIME_NONE ? Py_NewRef(Py_None) : PyLong_FromLongLong(v); }
static PyObject* opt_u64(uint64_t v) { return v == SHMCHAN_OFFSET_NONE ? Py_NewRef(Py_None) : PyLong_FromUnsignedLongLong(v); }

static PyObject* meta_to_tuple(const shmchan_frame_meta* m) {
    return Py_BuildValue("(NNNNNkN)", opt_i64(m->pts), opt_i64(m->dts), opt_i64(m->duration), opt_u64(m->offset),
                         opt_u64(m->offset_end), (unsigned long)m->flags,
                         PyBytes_FromStringAndSize(m->user ? (const char*)m->user : "", (Py_ssize_t)m->user_size));
}

/* --- Writer ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    shmchan_writer* w;
    int busy;
    int loan_open;
    Py_ssize_t loans;  /* live _Loan objects: their views point into this writer's mapping */
    int closing;       /* free() was called while loans were alive: freed with the last one */
} WriterObject;

static PyTypeObject WriterType;
static PyTypeObject LoanType;

static WriterObject* writer_live(PyObject* self) {
    WriterObject* w = (WriterObject*)self;
    if (!w->w || w->closing) {
        PyErr_SetString(PyExc_ValueError, "the writer is closed");
        return NULL;
    }
    return w;
}

static PyObject* writer_new_from(shmchan_writer* h) {
    WriterObject* o = PyObject_New(WriterObject, &WriterType);
    if (!o) {
        shmchan_writer_free(h);
        return NULL;
    }
    o->w = h;
    o->busy = 0;
    o->loan_open = 0;
    o->loans = 0;
    o->closing = 0;
    return (PyObject*)o;
}

static void writer_dealloc(PyObject* self) {
    WriterObject* w = (WriterObject*)self;
    if (w->w) {
        shmchan_writer* h = w->w;
        w->w = NULL;
        Py_BEGIN_ALLOW_THREADS shmchan_writer_free(h);
        Py_END_ALLOW_THREADS
    }
    PyObject_Free(self);
}

static PyObject* writer_write(PyObject* self, PyObject* args) {
    WriterObject* w;
    Py_buffer b;
    int timeout = -1, rc = 0;
    size_t off = 0;
    if (!PyArg_ParseTuple(args, "y*|i", &b, &timeout)) return NULL;
    if (!(w = writer_live(self)) || claim(&w->busy, "the writer") < 0) {
        PyBuffer_Release(&b);
        return NULL;
    }
    /* The caller's buffer goes straight into the ring (no intermediate copy); a timed-out
     * slice may have written part of it: go on from where it stopped. */
    for (;;) {
        int slice = slice_of(timeout), more;
        uint64_t before = shmchan_writer_bytes_written(w->w);
        Py_BEGIN_ALLOW_THREADS rc = shmchan_writer_write(w->w, (const char*)b.buf + off, (size_t)b.len - off, slice);
        Py_END_ALLOW_THREADS
        off += (size_t)(shmchan_writer_bytes_written(w->w) - before);
        if (rc != SHMCHAN_E_TIMEOUT) break;
        if ((more = go_on(&timeout, slice)) <= 0) {
            if (more < 0) rc = INT_MIN;
            break;
        }
    }
    w->busy = 0;
    PyBuffer_Release(&b);
    if (rc == INT_MIN) return NULL;
    if (rc) return raise_rc(rc, NULL);
    Py_RETURN_NONE;
}

typedef struct {
    PyObject_HEAD
    PyObject* writer; /* WriterObject, kept alive while the loan is */
    void* data;
    Py_ssize_t size;
    int frame;
    int open;
    Py_ssize_t exports;
} LoanObject;

static PyObject* writer_loan(PyObject* self, PyObject* args) {
    WriterObject* w;
    Py_ssize_t n;
    int timeout = -1, frame = 0, rc;
    void* data = NULL;
    LoanObject* l;
    if (!PyArg_ParseTuple(args, "n|ip", &n, &timeout, &frame)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "a loan's size cannot be negative");
        return NULL;
    }
    if (!(w = writer_live(self)) || claim(&w->busy, "the writer") < 0) return NULL;
    for (;;) {
        int slice = slice_of(timeout), more;
        Py_BEGIN_ALLOW_THREADS
        rc = frame ? shmchan_writer_frame_loan(w->w, (size_t)n, &data, slice)
                   : shmchan_writer_loan(w->w, (size_t)n, &data, slice);
        Py_END_ALLOW_THREADS
        if (rc != SHMCHAN_E_TIMEOUT) break;
        if ((more = go_on(&timeout, slice)) <= 0) {
            if (more < 0) rc = INT_MIN;
            break;
        }
    }
    w->busy = 0;
    if (rc == INT_MIN) return NULL;
    if (rc) return raise_rc(rc, NULL);
    l = PyObject_New(LoanObject, &LoanType);
    if (!l) {
        shmchan_writer_abandon(w->w);
        return NULL;
    }
    l->writer = Py_NewRef(self);
    l->data = data;
    l->size = n;
    l->frame = frame;
    l->open = 1;
    l->exports = 0;
    w->loan_open = 1;
    ++w->loans;
    return (PyObject*)l;
}

static PyObject* writer_write_frame(PyObject* self, PyObject* args) {
    WriterObject* w;
    Py_buffer b, user;
    PyObject* meta;
    shmchan_frame_meta m;
    int timeout = -1, rc;
    if (!PyArg_ParseTuple(args, "y*O|i", &b, &meta, &timeout)) return NULL;
    if (meta_from_tuple(meta, &m, &user) < 0 || !(w = writer_live(self)) || claim(&w->busy, "the writer") < 0) {
        PyBuffer_Release(&b);
        if (user.obj) PyBuffer_Release(&user);
        return NULL;
    }
    for (;;) {
        int slice = slice_of(timeout), more;
        Py_BEGIN_ALLOW_THREADS rc = shmchan_writer_write_frame(w->w, b.buf, (size_t)b.len, &m, slice);
        Py_END_ALLOW_THREADS
        if (rc != SHMCHAN_E_TIMEOUT) break;
        if ((more = go_on(&timeout, slice)) <= 0) {
            if (more < 0) rc = INT_MIN;
            break;
        }
    }
    w->busy = 0;
    PyBuffer_Release(&b);
    if (user.obj) PyBuffer_Release(&user);
    if (rc == INT_MIN) return NULL;
    if (rc) return raise_rc(rc, NULL);
    Py_RETURN_NONE;
}

/* send_message, close and wait_drained: one shape, a call retried in slices. */
enum { OP_MESSAGE, OP_CLOSE, OP_DRAIN };

static PyObject* writer_timed(PyObject* self, int op, const char* text, Py_ssize_t len, int timeout) {
    WriterObject* w;
    int rc;
    if (!(w = writer_live(self)) || claim(&w->busy, "the writer") < 0) return NULL;
    for (;;) {
        int slice = slice_of(timeout), more;
        Py_BEGIN_ALLOW_THREADS
        if (op == OP_MESSAGE) rc = shmchan_writer_send_message(w->w, text, (size_t)len, slice);
        else if (op == OP_CLOSE) rc = shmchan_writer_close(w->w, slice);
        else rc = shmchan_writer_wait_drained(w->w, slice);
        Py_END_ALLOW_THREADS
        if (rc != SHMCHAN_E_TIMEOUT) break;
        if ((more = go_on(&timeout, slice)) <= 0) {
            if (more < 0) rc = INT_MIN;
            break;
        }
    }
    w->busy = 0;
    if (rc == INT_MIN) return NULL;
    if (rc) return raise_rc(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject* writer_send_message(PyObject* self, PyObject* args) {
    const char* text;
    Py_ssize_t len;
    int timeout = -1;
    if (!PyArg_ParseTuple(args, "s#|i", &text, &len, &timeout)) return NULL;
    return writer_timed(self, OP_MESSAGE, text, len, timeout);
}

static PyObject* writer_close(PyObject* self, PyObject* args) {
    int timeout = -1;
    if (!PyArg_ParseTuple(args, "|i", &timeout)) return NULL;
    return writer_timed(self, OP_CLOSE, NULL, 0, timeout);
}

static PyObject* writer_wait_drained(PyObject* self, PyObject* args) {
    int timeout = -1;
    if (!PyArg_ParseTuple(args, "|i", &timeout)) return NULL;
    return writer_timed(self, OP_DRAIN, NULL, 0, timeout);
}

static PyObject* writer_abort(PyObject* self, PyObject* args) {
    WriterObject* w;
    const char* reason;
    int rc;
    if (!PyArg_ParseTuple(args, "s", &reason)) return NULL;
    if (!(w = writer_live(self)) || claim(&w->busy, "the writer") < 0) return NULL;
    rc = shmchan_writer_abort(w->w, reason);
    w->busy = 0;
    if (rc) return raise_rc(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject* writer_fileno(PyObject* self, PyObject* unused) {
    WriterObject* w;
    int fd;
    (void)unused;
    if (!(w = writer_live(self))) return NULL;
    fd = shmchan_writer_fd(w->w);
    if (fd < 0) return raise_rc(fd, NULL);
    return PyLong_FromLong(fd);
}

static PyObject* writer_free(PyObject* self, PyObject* unused) {
    WriterObject* w = (WriterObject*)self;
    (void)unused;
    if (w->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the writer is in use by another thread");
        return NULL;
    }
    if (w->loan_open) {
        PyErr_SetString(PyExc_RuntimeError, "a loan of this writer is open: commit or abandon it first");
        return NULL;
    }
    if (w->loans > 0) {  /* views of committed loans may still write: unmap when they are gone */
        w->closing = 1;
        Py_RETURN_NONE;
    }
    if (w->w) {
        shmchan_writer* h = w->w;
        w->w = NULL;
        Py_BEGIN_ALLOW_THREADS shmchan_writer_free(h);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject* writer_stats(PyObject* self, PyObject* unused) {
    WriterObject* w;
    (void)unused;
    if (!(w = writer_live(self))) return NULL;
    return Py_BuildValue("(Knn)", (unsigned long long)shmchan_writer_bytes_written(w->w),
                         (Py_ssize_t)shmchan_writer_max_record(w->w), (Py_ssize_t)shmchan_writer_max_frame(w->w));
}

static PyMethodDef writer_methods[] = {
    {"write", writer_write, METH_VARARGS, "write(buffer, timeout_ms=-1)"},
    {"loan", writer_loan, METH_VARARGS, "loan(n, timeout_ms=-1, frame=False) -> _Loan"},
    {"write_frame", writer_write_frame, METH_VARARGS, "write_frame(buffer, meta, timeout_ms=-1)"},
    {"send_message", writer_send_message, METH_VARARGS, "send_message(text, timeout_ms=-1)"},
    {"close", writer_close, METH_VARARGS, "close(timeout_ms=-1)"},
    {"wait_drained", writer_wait_drained, METH_VARARGS, "wait_drained(timeout_ms=-1)"},
    {"abort", writer_abort, METH_VARARGS, "abort(reason)"},
    {"fileno", writer_fileno, METH_NOARGS, "fileno() -> int"},
    {"free", writer_free, METH_NOARGS, "free(): gives the handle back (aborts an open stream)"},
    {"stats", writer_stats, METH_NOARGS, "stats() -> (bytes_written, max_record, max_frame)"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmchan._shmchan._Writer",
    .tp_basicsize = sizeof(WriterObject),
    .tp_dealloc = writer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The write end (use shmchan.Writer).",
    .tp_methods = writer_methods,
};

/* --- Loan: a writable buffer inside the ring -------------------------------------------- */

static int loan_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    LoanObject* l = (LoanObject*)self;
    if (!l->open) {
        PyErr_SetString(PyExc_BufferError, "the loan was committed or abandoned");
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, l->data, l->size, 0, flags) < 0) return -1;
    ++l->exports;
    return 0;
}

static void loan_releasebuffer(PyObject* self, Py_buffer* view) {
    (void)view;
    --((LoanObject*)self)->exports;
}

static PyBufferProcs loan_buffer = {loan_getbuffer, loan_releasebuffer};

static int loan_finish(LoanObject* l, const char* what) {
    if (!l->open) {
        PyErr_Format(PyExc_ValueError, "%s: the loan was already committed or abandoned", what);
        return -1;
    }
    l->open = 0;
    ((WriterObject*)l->writer)->loan_open = 0;
    return 0;
}

static PyObject* loan_commit(PyObject* self, PyObject* args) {
    LoanObject* l = (LoanObject*)self;
    WriterObject* w = (WriterObject*)l->writer;
    Py_ssize_t used = -1;
    PyObject* meta = Py_None;
    shmchan_frame_meta m;
    Py_buffer user;
    int rc;
    user.obj = NULL;
    if (!PyArg_ParseTuple(args, "|nO", &used, &meta)) return NULL;
    if (used < 0) used = l->size;
    if (used > l->size) {
        PyErr_Format(PyExc_ValueError, "commit(%zd): the loan holds %zd bytes", used, l->size);
        return NULL;
    }
    if (meta != Py_None && meta_from_tuple(meta, &m, &user) < 0) return NULL;
    if (loan_finish(l, "commit") < 0) {
        if (user.obj) PyBuffer_Release(&user);
        return NULL;
    }
    if (l->frame) rc = shmchan_writer_commit_frame(w->w, (size_t)used, meta == Py_None ? NULL : &m);
    else rc = shmchan_writer_commit(w->w, (size_t)used);
    if (user.obj) PyBuffer_Release(&user);
    if (rc) return raise_rc(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject* loan_abandon(PyObject* self, PyObject* unused) {
    LoanObject* l = (LoanObject*)self;
    (void)unused;
    if (loan_finish(l, "abandon") < 0) return NULL;
    shmchan_writer_abandon(((WriterObject*)l->writer)->w);
    Py_RETURN_NONE;
}

static PyObject* loan_state(PyObject* self, PyObject* unused) {
    LoanObject* l = (LoanObject*)self;
    (void)unused;
    /* The address is for tests that check where the bytes live (zero copy). */
    return Py_BuildValue("(iinK)", l->open, l->frame, l->size, (unsigned long long)(uintptr_t)l->data);
}

static void loan_dealloc(PyObject* self) {
    LoanObject* l = (LoanObject*)self;
    WriterObject* w = (WriterObject*)l->writer;
    if (l->open) {  /* dropped without commit: nothing reaches the reader */
        l->open = 0;
        w->loan_open = 0;
        if (w->w) shmchan_writer_abandon(w->w);
    }
    if (--w->loans == 0 && w->closing && w->w) {  /* the free() deferred for this loan */
        shmchan_writer_free(w->w);
        w->w = NULL;
    }
    Py_DECREF(l->writer);
    PyObject_Free(self);
}

static PyMethodDef loan_methods[] = {
    {"commit", loan_commit, METH_VARARGS, "commit(used=-1, meta=None)"},
    {"abandon", loan_abandon, METH_NOARGS, "abandon()"},
    {"state", loan_state, METH_NOARGS, "state() -> (open, frame, size, address)"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject LoanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmchan._shmchan._Loan",
    .tp_basicsize = sizeof(LoanObject),
    .tp_dealloc = loan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A region of the ring loaned to the writer (use shmchan.Loan).",
    .tp_methods = loan_methods,
    .tp_as_buffer = &loan_buffer,
};

/* --- Reader ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    shmchan_reader* r;
    int busy;
    /* A weak reference to the latest memoryview, released at the next call (max_held 1); weak,
     * because the view holds the reader (through its _View). */
    PyObject* last_view;
    int single;          /* max_held 1 */
    Py_ssize_t views;    /* live _View exporters: their bytes are in this reader's mapping */
    int closing;         /* free() was called while views were alive: freed with the last one */
} ReaderObject;

static PyTypeObject ReaderType;

/* The exporter behind each read view: it holds the reader, so the mapping outlives every
 * memoryview and numpy array made from an item (a stale one shows reused bytes, never unmapped
 * memory), and counts itself so that free() can wait for the last one. */
typedef struct {
    PyObject_HEAD
    PyObject* reader;
    void* data;
    Py_ssize_t size;
} ViewObject;

static int view_getbuffer(PyObject* self, Py_buffer* view, int flags) {
    ViewObject* v = (ViewObject*)self;
    return PyBuffer_FillInfo(view, self, v->data, v->size, /*readonly=*/1, flags);
}

static PyBufferProcs view_buffer = {view_getbuffer, NULL};

static void reader_free_handle(ReaderObject* r);

static void view_dealloc(PyObject* self) {
    ViewObject* v = (ViewObject*)self;
    ReaderObject* r = (ReaderObject*)v->reader;
    if (--r->views == 0 && r->closing) reader_free_handle(r);
    Py_DECREF(v->reader);
    PyObject_Free(self);
}

static PyTypeObject ViewType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmchan._shmchan._View",
    .tp_basicsize = sizeof(ViewObject),
    .tp_dealloc = view_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The bytes of one item in the ring (read-only).",
    .tp_as_buffer = &view_buffer,
};

/* A read-only memoryview of `size` bytes at `data`, owned through a _View. */
static PyObject* ring_view(ReaderObject* r, const void* data, size_t size) {
    PyObject* mv;
    ViewObject* v = PyObject_New(ViewObject, &ViewType);
    if (!v) return NULL;
    v->reader = Py_NewRef((PyObject*)r);
    v->data = data ? (void*)data : (void*)"";
    v->size = (Py_ssize_t)size;
    ++r->views;
    mv = PyMemoryView_FromObject((PyObject*)v);
    Py_DECREF(v);
    return mv;
}

static ReaderObject* reader_live(PyObject* self) {
    ReaderObject* r = (ReaderObject*)self;
    if (!r->r || r->closing) {
        PyErr_SetString(PyExc_ValueError, "the reader is closed");
        return NULL;
    }
    return r;
}

static PyObject* reader_new_from(shmchan_reader* h, int single) {
    ReaderObject* o = PyObject_New(ReaderObject, &ReaderType);
    if (!o) {
        shmchan_reader_free(h);
        return NULL;
    }
    o->r = h;
    o->busy = 0;
    o->last_view = NULL;
    o->single = single;
    o->views = 0;
    o->closing = 0;
    return (PyObject*)o;
}

/* The view of the previous item is about to be invalid: release it, so that using it raises
 * ValueError instead of reading reused ring bytes. A view still exported (a numpy array made
 * from it) cannot be released; that one is the caller's to drop, as documented. */
static void drop_last_view(ReaderObject* r) {
    PyObject* view;
    if (!r->last_view) return;
    view = PyWeakref_GetObject(r->last_view); /* borrowed; None once the view is gone */
    if (view && view != Py_None) {
        PyObject* res;
        Py_INCREF(view);
        res = PyObject_CallMethod(view, "release", NULL);
        if (res) Py_DECREF(res);
        else PyErr_Clear();
        Py_DECREF(view);
    } else {
        PyErr_Clear();
    }
    Py_CLEAR(r->last_view);
}

static void reader_free_handle(ReaderObject* r) {
    if (r->r) {
        shmchan_reader* h = r->r;
        r->r = NULL;
        Py_BEGIN_ALLOW_THREADS shmchan_reader_free(h);
        Py_END_ALLOW_THREADS
    }
}

/* No view can be alive here: each holds a reference to its reader. */
static void reader_dealloc(PyObject* self) {
    ReaderObject* r = (ReaderObject*)self;
    Py_CLEAR(r->last_view);
    reader_free_handle(r);
    PyObject_Free(self);
}

/* next(timeout_ms) -> (kind, payload, id, meta): payload a read-only memoryview into the ring
 * (chunk, frame), a str (message) or None (end); meta a tuple for frames, else None. */
static PyObject* reader_next(PyObject* self, PyObject* args) {
    ReaderObject* r;
    shmchan_item it;
    int timeout = -1, rc;
    PyObject *payload, *meta;
    if (!PyArg_ParseTuple(args, "|i", &timeout)) return NULL;
    if (!(r = reader_live(self)) || claim(&r->busy, "the reader") < 0) return NULL;
    if (r->single) drop_last_view(r);
    shmchan_item_init(&it);
    for (;;) {
        int slice = slice_of(timeout), more;
        Py_BEGIN_ALLOW_THREADS rc = shmchan_reader_next(r->r, &it, slice);
        Py_END_ALLOW_THREADS
        if (rc != SHMCHAN_E_TIMEOUT) break;
        if ((more = go_on(&timeout, slice)) <= 0) {
            if (more < 0) rc = INT_MIN;
            break;
        }
    }
    r->busy = 0;
    if (rc == INT_MIN) return NULL;
    if (rc) return raise_rc(rc, rc == SHMCHAN_E_ABORTED ? it.abort_reason : NULL);
    meta = Py_NewRef(Py_None);
    switch (it.kind) {
        case SHMCHAN_ITEM_MESSAGE:
            payload = PyUnicode_DecodeUTF8(it.data ? (const char*)it.data : "", (Py_ssize_t)it.data_size, "replace");
            break;
        case SHMCHAN_ITEM_END:
            payload = Py_NewRef(Py_None);
            break;
        case SHMCHAN_ITEM_FRAME:
            Py_SETREF(meta, meta_to_tuple(&it.meta));
            /* fall through: the bytes as for a chunk */
        default:
            /* Zero copy: a read-only view of the record's bytes in the shared mapping. */
            payload = ring_view(r, it.data, it.data_size);
            if (payload && r->single && !(r->last_view = PyWeakref_NewRef(payload, NULL))) Py_CLEAR(payload);
            break;
    }
    if (!payload || !meta) {
        Py_XDECREF(payload);
        Py_XDECREF(meta);
        return NULL;
    }
    return Py_BuildValue("(iNKN)", it.kind, payload, (unsigned long long)it.id, meta);
}

static PyObject* reader_release(PyObject* self, PyObject* args) {
    ReaderObject* r;
    unsigned long long id;
    if (!PyArg_ParseTuple(args, "K", &id)) return NULL;
    r = (ReaderObject*)self;
    if (!r->r) Py_RETURN_NONE;  /* freed: its items went with it */
    shmchan_reader_release_item(r->r, id);  /* safe from any thread: it takes the C ABI's lock */
    Py_RETURN_NONE;
}

static PyObject* reader_fileno(PyObject* self, PyObject* unused) {
    ReaderObject* r;
    int fd;
    (void)unused;
    if (!(r = reader_live(self))) return NULL;
    fd = shmchan_reader_fd(r->r);
    if (fd < 0) return raise_rc(fd, NULL);
    return PyLong_FromLong(fd);
}

static PyObject* reader_abort_reason(PyObject* self, PyObject* unused) {
    ReaderObject* r;
    (void)unused;
    if (!(r = reader_live(self))) return NULL;
    return PyUnicode_FromString(shmchan_reader_abort_reason(r->r));
}

static PyObject* reader_bytes_read(PyObject* self, PyObject* unused) {
    ReaderObject* r;
    (void)unused;
    if (!(r = reader_live(self))) return NULL;
    return PyLong_FromUnsignedLongLong(shmchan_reader_bytes_read(r->r));
}

static PyObject* reader_free(PyObject* self, PyObject* unused) {
    ReaderObject* r = (ReaderObject*)self;
    (void)unused;
    if (r->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the reader is in use by another thread");
        return NULL;
    }
    drop_last_view(r);
    if (r->views > 0) {  /* arrays still show its bytes: unmap when the last one is gone */
        r->closing = 1;
        Py_RETURN_NONE;
    }
    reader_free_handle(r);
    Py_RETURN_NONE;
}

static PyMethodDef reader_methods[] = {
    {"next", reader_next, METH_VARARGS, "next(timeout_ms=-1) -> (kind, payload, id, meta)"},
    {"release", reader_release, METH_VARARGS, "release(id)"},
    {"fileno", reader_fileno, METH_NOARGS, "fileno() -> int"},
    {"abort_reason", reader_abort_reason, METH_NOARGS, "abort_reason() -> str"},
    {"bytes_read", reader_bytes_read, METH_NOARGS, "bytes_read() -> int"},
    {"free", reader_free, METH_NOARGS, "free(): gives the handle back"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmchan._shmchan._Reader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The read end (use shmchan.Reader).",
    .tp_methods = reader_methods,
};

/* --- module functions ------------------------------------------------------------------- */

static char* option_kw[] = {"", "capacity", "max_held", "transport", "engine", "spin_us", NULL};

/* create_channel(capacity, max_held, transport, engine, spin_us) -> (writer_ref, reader_ref,
 * _Writer, _Reader) */
static PyObject* create_channel(PyObject* self, PyObject* args, PyObject* kw) {
    Py_ssize_t capacity = 0, max_held = 0;
    int transport = SHMCHAN_TRANSPORT_AUTO, rc;
    const char* engine = NULL;
    long spin_us = -1;
    shmchan_options o;
    shmchan_channel* ch = NULL;
    shmchan_writer* w = NULL;
    shmchan_reader* r = NULL;
    PyObject *wo, *ro;
    static char* kws[] = {"capacity", "max_held", "transport", "engine", "spin_us", NULL};
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|nnizl", kws, &capacity, &max_held, &transport, &engine, &spin_us))
        return NULL;
    parse_options(&o, capacity, max_held, transport, engine, spin_us);
    Py_BEGIN_ALLOW_THREADS rc = shmchan_create_channel(&o, &ch);
    Py_END_ALLOW_THREADS
    if (rc) return raise_rc(rc, NULL);
    if ((rc = shmchan_channel_take_writer(ch, &w)) || (rc = shmchan_channel_take_reader(ch, &r))) {
        shmchan_writer_free(w);
        shmchan_channel_free(ch);
        return raise_rc(rc, NULL);
    }
    wo = writer_new_from(w);
    ro = reader_new_from(r, o.max_held == 1);
    if (!wo || !ro) {
        Py_XDECREF(wo);
        Py_XDECREF(ro);
        shmchan_channel_free(ch);
        return NULL;
    }
    {
        PyObject* res = Py_BuildValue("(ssNN)", shmchan_channel_writer_ref(ch), shmchan_channel_reader_ref(ch), wo, ro);
        shmchan_channel_free(ch);  /* the ends were taken: they outlive the handle */
        return res;
    }
}

static PyObject* open_end(PyObject* args, PyObject* kw, int writer) {
    const char* ref;
    Py_ssize_t capacity = 0, max_held = 0;
    int transport = SHMCHAN_TRANSPORT_AUTO, rc;
    const char* engine = NULL;
    long spin_us = -1;
    shmchan_options o;
    shmchan_writer* w = NULL;
    shmchan_reader* r = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|nnizl", option_kw, &ref, &capacity, &max_held, &transport,
                                     &engine, &spin_us))
        return NULL;
    parse_options(&o, capacity, max_held, transport, engine, spin_us);
    Py_BEGIN_ALLOW_THREADS
    rc = writer ? shmchan_open_writer(ref, &o, &w) : shmchan_open_reader(ref, &o, &r);
    Py_END_ALLOW_THREADS
    if (rc) return raise_rc(rc, NULL);
    return writer ? writer_new_from(w) : reader_new_from(r, o.max_held == 1);
}

static PyObject* open_writer(PyObject* self, PyObject* args, PyObject* kw) {
    (void)self;
    return open_end(args, kw, 1);
}
static PyObject* open_reader(PyObject* self, PyObject* args, PyObject* kw) {
    (void)self;
    return open_end(args, kw, 0);
}

static PyObject* error_info(PyObject* self, PyObject* arg) {
    long code = PyLong_AsLong(arg);
    (void)self;
    if (code == -1 && PyErr_Occurred()) return NULL;
    return Py_BuildValue("(ss)", shmchan_error_name((int)code), shmchan_strerror((int)code));
}

static PyMethodDef module_methods[] = {
    {"create_channel", (PyCFunction)(void (*)(void))create_channel, METH_VARARGS | METH_KEYWORDS,
     "create_channel(capacity=0, max_held=0, transport=0, engine=None, spin_us=-1)"},
    {"open_writer", (PyCFunction)(void (*)(void))open_writer, METH_VARARGS | METH_KEYWORDS, "open_writer(ref_json, ...)"},
    {"open_reader", (PyCFunction)(void (*)(void))open_reader, METH_VARARGS | METH_KEYWORDS, "open_reader(ref_json, ...)"},
    {"error_info", error_info, METH_O, "error_info(code) -> (name, message)"},
    {"_set_error_factory", set_error_factory, METH_O, "the callable that makes exceptions"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "shmchan._shmchan",
                                    "The native part of shmchan (use the shmchan package).", -1, module_methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__shmchan(void) {
    PyObject* m;
    if (PyType_Ready(&WriterType) < 0 || PyType_Ready(&LoanType) < 0 || PyType_Ready(&ReaderType) < 0 ||
        PyType_Ready(&ViewType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "ITEM_CHUNK", SHMCHAN_ITEM_CHUNK) || PyModule_AddIntConstant(m, "ITEM_MESSAGE", SHMCHAN_ITEM_MESSAGE) ||
        PyModule_AddIntConstant(m, "ITEM_END", SHMCHAN_ITEM_END) || PyModule_AddIntConstant(m, "ITEM_FRAME", SHMCHAN_ITEM_FRAME) ||
        PyModule_AddIntConstant(m, "E_WOULD_BLOCK", SHMCHAN_E_WOULD_BLOCK) ||
        PyModule_AddStringConstant(m, "library_version", shmchan_version_string())) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
