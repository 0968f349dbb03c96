/* shmchan._shmchan: the CPython extension under the `shmchan` package (module.c, common.c,
 * writer.c, reader.c), written over the C ABI (shmchan/shmchan.h) only. It does what must be native: handles, zero-copy memoryviews into
 * the ring, the buffer protocol for writes and loans, and blocking calls with the GIL released
 * and Ctrl-C honoured. Everything else (exceptions, refs, options, asyncio, context managers)
 * is Python in shmchan/__init__.py. Why the C API and not pybind11: docs/python.md. */
#include "ext.h"

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
