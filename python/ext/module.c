/* shmchan._shmchan: the CPython extension under the `shmchan` package (module.c, common.c,
 * writer.c, reader.c), written over the C ABI (shmchan/shmchan.h) only. It does what must be native: handles, zero-copy memoryviews into
 * the ring, the buffer protocol for writes and loans, and blocking calls with the GIL released
 * and Ctrl-C honoured. Everything else (exceptions, refs, options, asyncio, context managers)
 * is Python in shmchan/__init__.py. Why the C API and not pybind11: docs/python.md. */
#include "ext.h"

/* --- module functions ------------------------------------------------------------------- */

static char* option_kw[] = {"", "capacity", "max_held", "transport", "engine", "spin_us", "prefault", "rmw_wakes", NULL};

/* create_channel(capacity, max_held, transport, engine, spin_us, readers, overflow, prefault, rmw_wakes) ->
 * (writer_ref, [reader_ref, ...], _Writer, _Reader): the local reader is reader 0's. */
static PyObject* create_channel(PyObject* self, PyObject* args, PyObject* kw) {
    Py_ssize_t capacity = 0, max_held = 0, readers = 1;
    int transport = SHMCHAN_TRANSPORT_AUTO, overflow = SHMCHAN_OVERFLOW_BLOCK, prefault = 1, rmw_wakes = 0, rc;
    const char* engine = NULL;
    long spin_us = -1;
    shmchan_options o;
    shmchan_channel* ch = NULL;
    shmchan_writer* w = NULL;
    shmchan_reader* r = NULL;
    PyObject *wo, *ro, *refs, *res = NULL;
    size_t i, n;
    static char* kws[] = {"capacity", "max_held", "transport", "engine", "spin_us", "readers", "overflow", "prefault", "rmw_wakes", NULL};
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|nnizlnipp", kws, &capacity, &max_held, &transport, &engine, &spin_us,
                                     &readers, &overflow, &prefault, &rmw_wakes))
        return NULL;
    parse_options(&o, capacity, max_held, transport, engine, spin_us, prefault, rmw_wakes);
    o.readers = readers > 0 ? (size_t)readers : 0;  /* 0 and > 64: the library's InvalidArgument */
    o.overflow = overflow;
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
    n = shmchan_channel_reader_count(ch);
    refs = PyList_New((Py_ssize_t)n);
    for (i = 0; refs && i < n; ++i) {
        PyObject* ref = PyUnicode_FromString(shmchan_channel_reader_ref_at(ch, i));
        if (!ref) {
            Py_CLEAR(refs);
            break;
        }
        PyList_SET_ITEM(refs, (Py_ssize_t)i, ref);
    }
    if (wo && ro && refs) res = Py_BuildValue("(sOOO)", shmchan_channel_writer_ref(ch), refs, wo, ro);
    Py_XDECREF(wo);
    Py_XDECREF(ro);
    Py_XDECREF(refs);
    shmchan_channel_free(ch);  /* the ends were taken: they outlive the handle */
    return res;
}

static PyObject* open_end(PyObject* args, PyObject* kw, int writer) {
    const char* ref;
    Py_ssize_t capacity = 0, max_held = 0;
    int transport = SHMCHAN_TRANSPORT_AUTO, prefault = 1, rmw_wakes = 0, rc;
    const char* engine = NULL;
    long spin_us = -1;
    shmchan_options o;
    shmchan_writer* w = NULL;
    shmchan_reader* r = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|nnizlpp", option_kw, &ref, &capacity, &max_held, &transport,
                                     &engine, &spin_us, &prefault, &rmw_wakes))
        return NULL;
    parse_options(&o, capacity, max_held, transport, engine, spin_us, prefault, rmw_wakes);
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
     "create_channel(capacity=0, max_held=0, transport=0, engine=None, spin_us=-1, readers=1, overflow=0, prefault=True)"},
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
        PyModule_AddIntConstant(m, "ITEM_GAP", SHMCHAN_ITEM_GAP) ||
        PyModule_AddIntConstant(m, "OVERFLOW_BLOCK", SHMCHAN_OVERFLOW_BLOCK) ||
        PyModule_AddIntConstant(m, "OVERFLOW_DROP_OLDEST", SHMCHAN_OVERFLOW_DROP_OLDEST) ||
        PyModule_AddIntConstant(m, "E_DATA_LOST", SHMCHAN_E_DATA_LOST) ||
        PyModule_AddIntConstant(m, "E_WOULD_BLOCK", SHMCHAN_E_WOULD_BLOCK) ||
        PyModule_AddStringConstant(m, "library_version", shmchan_version_string())) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
