/* shmchan's C ABI (C99): opaque handles, int returns, no C++ across the line.
 *
 * Every call that can fail returns 0 on success or a negative SHMCHAN_E_* code; the failing
 * call's message, with more detail than the code, is shmchan_last_error() on that thread.
 * Structs that may grow (shmchan_options, shmchan_item, shmchan_reader_status) begin with a
 * `size` field that the caller sets, through the shmchan_*_init() macros, to the size it was
 * compiled with; the library reads and writes only that much. See docs/c-api.md.
 *
 *   shmchan_options o; shmchan_options_init(&o);
 *   shmchan_channel* ch; shmchan_create_channel(&o, &ch);
 *   puts(shmchan_channel_reader_ref(ch));            // hand this JSON to the reading process
 *   shmchan_writer* w; shmchan_channel_take_writer(ch, &w);
 *   shmchan_writer_write(w, buf, len, -1); shmchan_writer_close(w, -1);
 *
 * Timeouts are milliseconds: negative waits for ever, 0 never blocks. Handles are used from one
 * thread at a time, as the C++ ends (a single producer, a single consumer).
 */
#ifndef SHMCHAN_SHMCHAN_H
#define SHMCHAN_SHMCHAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes; the library's SONAME is libshmchan.so.SHMCHAN_ABI_MAJOR. */
#define SHMCHAN_ABI_MAJOR 0

/* Error codes (the negatives of shmchan::errc, plus two of the C ABI's own). */
enum {
    SHMCHAN_OK = 0,
    SHMCHAN_E_WOULD_BLOCK = -1,       /* a call with timeout 0: not possible right now */
    SHMCHAN_E_TIMEOUT = -2,
    SHMCHAN_E_INVALID_REF = -3,       /* malformed or forged ref JSON */
    SHMCHAN_E_WRONG_DIRECTION = -4,
    SHMCHAN_E_BAD_KEY = -5,
    SHMCHAN_E_ALREADY_CLAIMED = -6,
    SHMCHAN_E_SEGMENT_MISSING = -7,
    SHMCHAN_E_NO_SPACE = -8,
    SHMCHAN_E_PERMISSION_DENIED = -9,
    SHMCHAN_E_PEER_LOST = -10,        /* the other end's process died */
    SHMCHAN_E_PEER_CLOSED = -11,      /* the reader went away before the writer finished */
    SHMCHAN_E_ABORTED = -12,          /* the writer aborted: shmchan_reader_abort_reason() */
    SHMCHAN_E_CLOSED = -13,           /* this end was already closed (or taken) */
    SHMCHAN_E_TOO_LARGE = -14,
    SHMCHAN_E_CORRUPT = -15,
    SHMCHAN_E_INVALID_ARGUMENT = -16,
    SHMCHAN_E_SYSTEM = -17,
    SHMCHAN_E_ENGINE_UNREACHABLE = -18,
    SHMCHAN_E_PROTOCOL = -19,
    SHMCHAN_E_FORKED = -20,
    SHMCHAN_E_HELD_LIMIT = -21,       /* the reader holds max_held items: release one first */
    SHMCHAN_E_DATA_LOST = -22,        /* overflow drop-oldest: records were overwritten unread */
    SHMCHAN_E_NO_MEMORY = -64,        /* allocation failed */
    SHMCHAN_E_INTERNAL = -65          /* an unexpected failure inside the library */
};

/* A fixed English sentence for a code ("peer process died"); never NULL. */
const char* shmchan_strerror(int code);
/* The short stable name of a code ("peer_lost"); never NULL. */
const char* shmchan_error_name(int code);
/* The message of the last failed call on this thread ("" when none); valid until this thread's
 * next shmchan call. */
const char* shmchan_last_error(void);
/* "0.1.0" */
const char* shmchan_version_string(void);

typedef struct shmchan_channel shmchan_channel;
typedef struct shmchan_writer shmchan_writer;
typedef struct shmchan_reader shmchan_reader;

enum { SHMCHAN_TRANSPORT_AUTO = 0, SHMCHAN_TRANSPORT_SHM = 1, SHMCHAN_TRANSPORT_SOCKET = 2 };
enum { SHMCHAN_LOAN_CLAIM_ADAPTIVE = 0, SHMCHAN_LOAN_CLAIM_ALWAYS = 1, SHMCHAN_LOAN_CLAIM_NEVER = 2 };
/* When the ring is full (docs/readers.md): wait for the slowest reader, or overwrite the oldest. */
enum { SHMCHAN_OVERFLOW_BLOCK = 0, SHMCHAN_OVERFLOW_DROP_OLDEST = 1 };

/* Options for creating and opening channels (shmchan::channel_options). New fields are only
 * ever added at the end. */
typedef struct shmchan_options {
    size_t size;             /* sizeof(shmchan_options): set by shmchan_options_init() */
    size_t capacity;         /* ring bytes, rounded up to a power of two */
    uint32_t spin_us;        /* busy-wait before sleeping */
    uint32_t spin_max_us;
    int transport;           /* SHMCHAN_TRANSPORT_*, for ends opened from refs */
    const char* engine;      /* "ws://127.0.0.1:49134" for the socket path; NULL: none */
    int loan_claim;          /* SHMCHAN_LOAN_CLAIM_* */
    size_t loan_claim_min;
    size_t max_held;         /* items a reader may hold at once (1: each next releases the last) */
    size_t readers;          /* readers of a created channel, 1 to 64 (a ref each) */
    int overflow;            /* SHMCHAN_OVERFLOW_*, for a created channel */
    int prefault;            /* 1 (default): an end maps the whole ring when claimed; 0: its pages
                                fault in as first touched (an event loop serving many channels) */
    int rmw_wakes;           /* 0 (default); 1: each commit or release wakes the peer with a locked
                                instruction, so that the peer's sleeps need no membarrier (a relay
                                or event loop whose peer sleeps between its records) */
} shmchan_options;

/* Fills in the defaults (the C++ ones) and the size. A macro, so that `size` is the caller's
 * sizeof: a program built against an older header writes and gets only the fields it has. */
void shmchan_options_init_size(shmchan_options* options, size_t size);
#define shmchan_options_init(options) shmchan_options_init_size((options), sizeof *(options))

/* --- channels -------------------------------------------------------------------------- */

/* Creates a channel (its shared-memory segment, mode 0600). options may be NULL (defaults). */
int shmchan_create_channel(const shmchan_options* options, shmchan_channel** out);
/* The refs as JSON text, owned by the channel: hand them to other processes. */
const char* shmchan_channel_writer_ref(const shmchan_channel* channel);
const char* shmchan_channel_reader_ref(const shmchan_channel* channel);
/* With options.readers > 1: how many readers, and reader i's ref (NULL beyond the last);
 * shmchan_channel_reader_ref is reader 0's. */
size_t shmchan_channel_reader_count(const shmchan_channel* channel);
const char* shmchan_channel_reader_ref_at(const shmchan_channel* channel, size_t index);
/* Moves the channel's local end out (once each; SHMCHAN_E_CLOSED the second time). The end
 * outlives the channel handle; free it with shmchan_writer_free/shmchan_reader_free. */
int shmchan_channel_take_writer(shmchan_channel* channel, shmchan_writer** out);
int shmchan_channel_take_reader(shmchan_channel* channel, shmchan_reader** out);
/* Frees the handle and any end not taken. NULL is fine. */
void shmchan_channel_free(shmchan_channel* channel);

/* 1 when `json` is an object shaped like a channel ref (iii's test), else 0. */
int shmchan_is_channel_ref(const char* json);

/* --- frames ---------------------------------------------------------------------------- */

#define SHMCHAN_TIME_NONE INT64_MIN      /* a time not set */
#define SHMCHAN_OFFSET_NONE UINT64_MAX   /* an offset not set */
#define SHMCHAN_FRAME_MAX_USER 256       /* most bytes of a frame's user header */
/* Frame flags (shmchan::frame_flags): the low 16 bits; 16-31 are the application's. */
enum {
    SHMCHAN_FRAME_KEYFRAME = 1 << 0,
    SHMCHAN_FRAME_DISCONT = 1 << 1,
    SHMCHAN_FRAME_GAP = 1 << 2,
    SHMCHAN_FRAME_HEADER = 1 << 3,
    SHMCHAN_FRAME_DROPPABLE = 1 << 4,
    SHMCHAN_FRAME_CORRUPTED = 1 << 5,
    SHMCHAN_FRAME_MARKER = 1 << 6,
    SHMCHAN_FRAME_RESYNC = 1 << 7,
    SHMCHAN_FRAME_LIVE = 1 << 8,
    SHMCHAN_FRAME_DECODE_ONLY = 1 << 9,
    SHMCHAN_FRAME_SYNC_AFTER = 1 << 10,
    SHMCHAN_FRAME_NON_DROPPABLE = 1 << 11
};

/* Fixed for the life of ABI major 0 (it has no size field and sits inside shmchan_item, and
 * the library reads a caller's whole struct): more per-frame fields would come as new fields at
 * the end of shmchan_item and as a new call for writing them. */
typedef struct shmchan_frame_meta {
    int64_t pts;             /* nanoseconds, or SHMCHAN_TIME_NONE */
    int64_t dts;
    int64_t duration;
    uint64_t offset;         /* or SHMCHAN_OFFSET_NONE */
    uint64_t offset_end;
    uint32_t flags;          /* SHMCHAN_FRAME_* */
    const void* user;        /* the application's header: writing, copied; reading, in the ring */
    size_t user_size;        /* at most SHMCHAN_FRAME_MAX_USER */
} shmchan_frame_meta;

/* Every time and offset unset, no flags, no user header. */
void shmchan_frame_meta_init(shmchan_frame_meta* meta);

/* --- writer ---------------------------------------------------------------------------- */

/* Opens the write end from a writer ref (JSON) and claims it. options may be NULL. */
int shmchan_open_writer(const char* ref_json, const shmchan_options* options, shmchan_writer** out);
/* Copies the bytes into the channel (split into records as needed), waiting while it is full.
 * On an error part may have been written: shmchan_writer_bytes_written() tells. */
int shmchan_writer_write(shmchan_writer* w, const void* data, size_t size, int timeout_ms);
/* Zero-copy: *data points at `size` bytes inside the ring; fill them, then commit (or
 * abandon). One loan at a time. */
int shmchan_writer_loan(shmchan_writer* w, size_t size, void** data, int timeout_ms);
int shmchan_writer_commit(shmchan_writer* w, size_t used);
int shmchan_writer_abandon(shmchan_writer* w);
/* One frame, delivered whole with its meta (meta may be NULL: all unset). */
int shmchan_writer_write_frame(shmchan_writer* w, const void* data, size_t size,
                               const shmchan_frame_meta* meta, int timeout_ms);
/* Zero-copy frame: a loan committed with shmchan_writer_commit_frame. A user header longer than
 * SHMCHAN_FRAME_MAX_USER is refused (SHMCHAN_E_INVALID_ARGUMENT) and the loan stays open. */
int shmchan_writer_frame_loan(shmchan_writer* w, size_t size, void** data, int timeout_ms);
int shmchan_writer_commit_frame(shmchan_writer* w, size_t used, const shmchan_frame_meta* meta);
/* A text message (`size` bytes of UTF-8), in order with the binary data. */
int shmchan_writer_send_message(shmchan_writer* w, const char* text, size_t size, int timeout_ms);
/* Ends the stream cleanly (an open loan is abandoned first). */
int shmchan_writer_close(shmchan_writer* w, int timeout_ms);
/* Ends the stream as broken; the reader gets SHMCHAN_E_ABORTED with `reason`. Never blocks.
 * An open loan is abandoned first. */
int shmchan_writer_abort(shmchan_writer* w, const char* reason);
/* Waits until the reader has consumed every committed byte. */
int shmchan_writer_wait_drained(shmchan_writer* w, int timeout_ms);
/* An fd that polls readable when a write may make progress (read 8 bytes to clear it);
 * negative code on failure. Owned by the writer. */
int shmchan_writer_fd(shmchan_writer* w);
uint64_t shmchan_writer_bytes_written(const shmchan_writer* w);
size_t shmchan_writer_max_record(const shmchan_writer* w);
size_t shmchan_writer_max_frame(const shmchan_writer* w);
/* A writer freed while open aborts the stream ("writer destroyed without close()"). */
void shmchan_writer_free(shmchan_writer* w);

/* The channel's readers as the writer last saw them (shmchan::reader_status, docs/readers.md). */
enum {
    SHMCHAN_READER_WAITING = 0,  /* its ref was not used yet */
    SHMCHAN_READER_READING = 1,  /* attached */
    SHMCHAN_READER_DONE = 2,     /* closed after releasing everything committed */
    SHMCHAN_READER_LEFT = 3,     /* closed early, with records unread */
    SHMCHAN_READER_LOST = 4      /* its process died (or it wrote an impossible position) */
};
/* New fields are only ever added at the end. */
typedef struct shmchan_reader_status {
    size_t size;             /* sizeof(shmchan_reader_status): set by shmchan_reader_status_init() */
    int state;               /* SHMCHAN_READER_* */
    int pid;                 /* the reader's process, for display only (namespace-local, recycled) */
    uint64_t released;       /* ring bytes it released so far: its position in the stream */
} shmchan_reader_status;

/* Zeroes it and sets the size (the caller's sizeof, as shmchan_options_init). */
void shmchan_reader_status_init_size(shmchan_reader_status* status, size_t size);
#define shmchan_reader_status_init(status) shmchan_reader_status_init_size((status), sizeof *(status))
/* "waiting", "reading", "done", "left", "lost" ("?" for anything else); never NULL. */
const char* shmchan_reader_state_name(int state);
/* How many readers the writer's channel has, in the order of its reader refs (0 on the
 * engine's socket path, which has no view of them). */
size_t shmchan_writer_reader_count(const shmchan_writer* w);
/* Reader `index`'s status now; SHMCHAN_E_INVALID_ARGUMENT beyond the last. */
int shmchan_writer_reader_status(const shmchan_writer* w, size_t index, shmchan_reader_status* out);

/* --- reader ---------------------------------------------------------------------------- */

enum {
    SHMCHAN_ITEM_CHUNK = 0,
    SHMCHAN_ITEM_MESSAGE = 1,
    SHMCHAN_ITEM_END = 2,
    SHMCHAN_ITEM_ERROR = 3,
    SHMCHAN_ITEM_FRAME = 4,
    SHMCHAN_ITEM_GAP = 5     /* overflow drop-oldest: records were lost before the next item */
};

/* One thing read. data/data_size view the ring (a chunk's or frame's bytes, a message's text,
 * not NUL-terminated): valid until the item is released and, with max_held 1, until the
 * reader's next call. New fields are only ever added at the end. */
typedef struct shmchan_item {
    size_t size;             /* sizeof(shmchan_item): set by shmchan_item_init() */
    int kind;                /* SHMCHAN_ITEM_* */
    int error;               /* the code of an SHMCHAN_ITEM_ERROR, else 0 */
    const void* data;
    size_t data_size;
    const char* abort_reason;  /* after SHMCHAN_E_ABORTED: the writer's reason, else "" */
    uint64_t id;             /* for shmchan_reader_release_item (max_held > 1) */
    shmchan_frame_meta meta; /* a frame's; all unset for anything else */
    uint64_t gap_records;    /* SHMCHAN_ITEM_GAP: records missed before the next item */
    uint64_t gap_bytes;      /* and their payload bytes */
} shmchan_item;

/* An empty item (kind END) with the size (the caller's sizeof, as shmchan_options_init). */
void shmchan_item_init_size(shmchan_item* item, size_t size);
#define shmchan_item_init(item) shmchan_item_init_size((item), sizeof *(item))

/* Opens the read end from a reader ref (JSON) and claims it. options may be NULL. */
int shmchan_open_reader(const char* ref_json, const shmchan_options* options, shmchan_reader** out);
/* The next chunk, frame, message or end, waiting up to timeout_ms. Returns 0 with the item, or
 * a negative code (then item->kind is SHMCHAN_ITEM_ERROR and item->error the code): TIMEOUT and
 * WOULD_BLOCK (timeout 0) and HELD_LIMIT can be retried, the others are final. */
int shmchan_reader_next(shmchan_reader* r, shmchan_item* item, int timeout_ms);
/* Gives the latest item's space back to the writer (next() also does, with max_held 1). */
void shmchan_reader_release(shmchan_reader* r);
/* Releases the item with this id (max_held > 1; from any thread). */
void shmchan_reader_release_item(shmchan_reader* r, uint64_t id);
/* Overflow drop-oldest: 1 if the bytes read so far from the item with this id were whole (the
 * writer never waits, so a reader a ring behind can find a held view overwritten; check after
 * using them), 0 if not or if the item is released. Always 1 under block while it is held. */
int shmchan_reader_item_intact(shmchan_reader* r, uint64_t id);
/* An fd that polls readable when shmchan_reader_next(r, item, 0) may have something; read 8
 * bytes from it to clear it. Negative code on failure. Owned by the reader. */
int shmchan_reader_fd(shmchan_reader* r);
/* The writer's reason after SHMCHAN_E_ABORTED ("" otherwise); owned by the reader. */
const char* shmchan_reader_abort_reason(shmchan_reader* r);
uint64_t shmchan_reader_bytes_read(const shmchan_reader* r);
void shmchan_reader_free(shmchan_reader* r);

#ifdef __cplusplus
}
#endif

#endif /* SHMCHAN_SHMCHAN_H */
