/* The extension shmchan._shmchan (see module.c): what its files share. */
#ifndef SHMCHAN_PYTHON_EXT_H
#define SHMCHAN_PYTHON_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shmchan/shmchan.h>

#include <limits.h>
#include <string.h>

/* Blocking calls wait in slices of this many ms with the GIL released, then run Python's
 * signal handlers (Ctrl-C raises KeyboardInterrupt between slices). */
#define SLICE_MS 50

/* common.c */
PyObject* raise_rc(int rc, const char* reason);  /* the exception for a code; returns NULL */
PyObject* set_error_factory(PyObject* self, PyObject* f);
int slice_of(int remaining);
int go_on(int* remaining, int slice);
int claim(int* busy, const char* what);
int parse_options(shmchan_options* o, Py_ssize_t capacity, Py_ssize_t max_held, int transport,
                  const char* engine, long spin_us, int prefault, int rmw_wakes);
int meta_from_tuple(PyObject* t, shmchan_frame_meta* m, Py_buffer* user);
PyObject* meta_to_tuple(const shmchan_frame_meta* m);

/* writer.c, reader.c */
extern PyTypeObject WriterType, LoanType, ReaderType, ViewType;
PyObject* writer_new_from(shmchan_writer* h);
PyObject* reader_new_from(shmchan_reader* h, int single);

#endif
