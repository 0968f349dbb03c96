/* The read end and the views of its items (zero copy). */
#include "ext.h"

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

PyTypeObject ViewType = {
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

PyObject* reader_new_from(shmchan_reader* h, int single) {
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
 * (chunk, frame), a str (message), (records, bytes) missed (gap) or None (end); meta a tuple
 * for frames, else None. */
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
        case SHMCHAN_ITEM_GAP:
            payload = Py_BuildValue("(KK)", (unsigned long long)it.gap_records, (unsigned long long)it.gap_bytes);
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

/* intact(id) -> bool: the bytes read so far from that item were whole (drop_oldest: the
 * writer may have overwritten a view held a ring behind); False once it is released. */
static PyObject* reader_intact(PyObject* self, PyObject* args) {
    ReaderObject* r;
    unsigned long long id;
    if (!PyArg_ParseTuple(args, "K", &id)) return NULL;
    r = (ReaderObject*)self;
    if (!r->r) Py_RETURN_FALSE;  /* freed: its items went with it */
    return PyBool_FromLong(shmchan_reader_item_intact(r->r, id));
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
    {"intact", reader_intact, METH_VARARGS, "intact(id) -> bool"},
    {"fileno", reader_fileno, METH_NOARGS, "fileno() -> int"},
    {"abort_reason", reader_abort_reason, METH_NOARGS, "abort_reason() -> str"},
    {"bytes_read", reader_bytes_read, METH_NOARGS, "bytes_read() -> int"},
    {"free", reader_free, METH_NOARGS, "free(): gives the handle back"},
    {NULL, NULL, 0, NULL}};

PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmchan._shmchan._Reader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The read end (use shmchan.Reader).",
    .tp_methods = reader_methods,
};

