/* Errors, waiting in slices, options and frame meta for the extension. */
#include "ext.h"


static PyObject* error_factory = NULL; /* shmchan._raise_error(code, name, message, reason) */

/* Raises the exception for `rc` (through the Python layer's factory); returns NULL. */
PyObject* raise_rc(int rc, const char* reason) {
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

PyObject* set_error_factory(PyObject* self, PyObject* f) {
    (void)self;
    Py_XSETREF(error_factory, Py_NewRef(f));
    Py_RETURN_NONE;
}

/* One slice of a timeout: ms < 0 is for ever. */
int slice_of(int remaining) { return remaining < 0 || remaining > SLICE_MS ? SLICE_MS : remaining; }
/* After a slice timed out: 1 to go on, 0 when the caller's timeout is spent, -1 on a signal
 * whose handler raised (KeyboardInterrupt). */
int go_on(int* remaining, int slice) {
    if (PyErr_CheckSignals() < 0) return -1;
    if (*remaining < 0) return 1;
    *remaining -= slice;
    return *remaining > 0;
}

/* A handle is used by one call at a time: a call that released the GIL marks it busy, so that
 * another Python thread cannot free it underneath. */
int claim(int* busy, const char* what) {
    if (*busy) {
        PyErr_Format(PyExc_RuntimeError, "%s is in use by another thread", what);
        return -1;
    }
    *busy = 1;
    return 0;
}

int parse_options(shmchan_options* o, Py_ssize_t capacity, Py_ssize_t max_held, int transport,
                         const char* engine, long spin_us, int prefault, int rmw_wakes) {
    shmchan_options_init(o);
    if (capacity > 0) o->capacity = (size_t)capacity;
    if (max_held > 0) o->max_held = (size_t)max_held;
    o->transport = transport;
    o->engine = engine;
    if (spin_us >= 0) o->spin_us = (uint32_t)spin_us;
    o->prefault = prefault != 0;
    o->rmw_wakes = rmw_wakes != 0;
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
int meta_from_tuple(PyObject* t, shmchan_frame_meta* m, Py_buffer* user) {
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

PyObject* meta_to_tuple(const shmchan_frame_meta* m) {
    return Py_BuildValue("(NNNNNkN)", opt_i64(m->pts), opt_i64(m->dts), opt_i64(m->duration), opt_u64(m->offset),
                         opt_u64(m->offset_end), (unsigned long)m->flags,
                         PyBytes_FromStringAndSize(m->user ? (const char*)m->user : "", (Py_ssize_t)m->user_size));
}

