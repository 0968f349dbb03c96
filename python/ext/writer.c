/* The write end and its loans (a buffer exporter over the ring). */
#include "ext.h"

/* --- Writer ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    shmchan_writer* w;
    int busy;
    int loan_open;
    Py_ssize_t loans;  /* live _Loan objects: their views point into this writer's mapping */
    int closing;       /* free() was called while loans were alive: freed with the last one */
} WriterObject;


static WriterObject* writer_live(PyObject* self) {
    WriterObject* w = (WriterObject*)self;
    if (!w->w || w->closing) {
        PyErr_SetString(PyExc_ValueError, "the writer is closed");
        return NULL;
    }
    return w;
}

PyObject* writer_new_from(shmchan_writer* h) {
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

/* readers() -> [(state, released, pid), ...] in the order of the reader refs; [] on the socket
 * path. Claims the writer: the C++ writer's view of its readers is its thread's. */
static PyObject* writer_readers(PyObject* self, PyObject* unused) {
    WriterObject* w;
    PyObject* out;
    size_t i, n;
    int rc = 0;
    (void)unused;
    if (!(w = writer_live(self)) || claim(&w->busy, "the writer") < 0) return NULL;
    n = shmchan_writer_reader_count(w->w);
    out = PyList_New(0);
    for (i = 0; out && i < n; ++i) {
        shmchan_reader_status st;
        PyObject* t;
        shmchan_reader_status_init(&st);
        if ((rc = shmchan_writer_reader_status(w->w, i, &st))) break;
        t = Py_BuildValue("(sKi)", shmchan_reader_state_name(st.state), (unsigned long long)st.released, st.pid);
        if (!t || PyList_Append(out, t) < 0) Py_CLEAR(out);
        Py_XDECREF(t);
    }
    w->busy = 0;
    if (rc) {
        Py_XDECREF(out);
        return raise_rc(rc, NULL);
    }
    return out;
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
    {"readers", writer_readers, METH_NOARGS, "readers() -> [(state, released, pid), ...]"},
    {"stats", writer_stats, METH_NOARGS, "stats() -> (bytes_written, max_record, max_frame)"},
    {NULL, NULL, 0, NULL}};

PyTypeObject WriterType = {
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
    if (!l->open) return PyErr_Format(PyExc_ValueError, "commit: the loan was already committed or abandoned");
    if (meta != Py_None && meta_from_tuple(meta, &m, &user) < 0) return NULL;
    if (l->frame) rc = shmchan_writer_commit_frame(w->w, (size_t)used, meta == Py_None ? NULL : &m);
    else rc = shmchan_writer_commit(w->w, (size_t)used);
    if (user.obj) PyBuffer_Release(&user);
    if (rc) return raise_rc(rc, NULL);  /* refused (a user header too long): the loan stays open */
    (void)loan_finish(l, "commit");
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

PyTypeObject LoanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmchan._shmchan._Loan",
    .tp_basicsize = sizeof(LoanObject),
    .tp_dealloc = loan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A region of the ring loaned to the writer (use shmchan.Loan).",
    .tp_methods = loan_methods,
    .tp_as_buffer = &loan_buffer,
};

