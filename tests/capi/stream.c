/* The C ABI from a C99 program: reads a stream `shmchan send` writes, writes one `shmchan recv`
 * reads, and walks the error paths.
 *   stream read REF_JSON OUT_FILE    every byte of the stream into OUT_FILE
 *   stream write IN_FILE             prints the reader ref, then streams IN_FILE (loans and writes)
 *   stream errors                    each error path returns its code (exit 0 when all do)
 *   stream readers                   several readers, their status; drop-oldest gaps, intact views
 */
#include <shmchan/shmchan.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__,    \
                    __LINE__, #cond, shmchan_last_error());                            \
            ++failures;                                                                 \
        }                                                                               \
    } while (0)

/* Every byte still the 0x5a a test filled it with. */
static int untouched(const unsigned char* p, size_t n) {
    size_t i;
    for (i = 0; i < n; ++i)
        if (p[i] != 0x5a) return 0;
    return 1;
}

static int die(const char* what, int rc) {
    fprintf(stderr, "stream: %s: %s (%s): %s\n", what, shmchan_error_name(rc), shmchan_strerror(rc),
            shmchan_last_error());
    return 1;
}

static int cmd_read(const char* ref, const char* path) {
    shmchan_reader* r = NULL;
    shmchan_item it;
    FILE* out = fopen(path, "wb");
    int rc;
    if (!out) return 1;
    rc = shmchan_open_reader(ref, NULL, &r);
    if (rc) return die("open_reader", rc);
    shmchan_item_init(&it);
    for (;;) {
        rc = shmchan_reader_next(r, &it, -1);
        if (rc) return die("next", rc);
        if (it.kind == SHMCHAN_ITEM_END) break;
        if (it.kind == SHMCHAN_ITEM_CHUNK || it.kind == SHMCHAN_ITEM_FRAME)
            if (fwrite(it.data, 1, it.data_size, out) != it.data_size) return 1;
    }
    shmchan_reader_free(r);
    return fclose(out) == 0 ? 0 : 1;
}

static int cmd_write(const char* path) {
    shmchan_options o;
    shmchan_channel* ch = NULL;
    shmchan_writer* w = NULL;
    FILE* in = fopen(path, "rb");
    int rc, turn = 0;
    if (!in) return 1;
    shmchan_options_init(&o);
    o.capacity = 1 << 20;
    rc = shmchan_create_channel(&o, &ch);
    if (rc) return die("create_channel", rc);
    printf("%s\n", shmchan_channel_reader_ref(ch));
    fflush(stdout);
    rc = shmchan_channel_take_writer(ch, &w);
    if (rc) return die("take_writer", rc);
    for (;;) {
        /* Alternate: a loan filled by fread, then a copy through write(). */
        char buf[70000];
        size_t n;
        if (turn++ % 2 == 0) {
            void* data = NULL;
            rc = shmchan_writer_loan(w, sizeof buf, &data, -1);
            if (rc) return die("loan", rc);
            n = fread(data, 1, sizeof buf, in);
            rc = n ? shmchan_writer_commit(w, n) : shmchan_writer_abandon(w);
            if (rc) return die("commit", rc);
        } else {
            n = fread(buf, 1, sizeof buf, in);
            rc = shmchan_writer_write(w, buf, n, -1);
            if (rc) return die("write", rc);
        }
        if (n == 0) break;
    }
    rc = shmchan_writer_send_message(w, "done", 4, -1);
    if (rc) return die("send_message", rc);
    rc = shmchan_writer_close(w, -1);
    if (rc) return die("close", rc);
    rc = shmchan_writer_wait_drained(w, 30000);
    if (rc) return die("wait_drained", rc);
    shmchan_writer_free(w);
    shmchan_channel_free(ch);
    fclose(in);
    return 0;
}

/* A fresh channel with both ends taken. */
static void make(size_t max_held, shmchan_channel** ch, shmchan_writer** w, shmchan_reader** r) {
    shmchan_options o;
    shmchan_options_init(&o);
    o.capacity = 64 << 10;
    o.max_held = max_held;
    CHECK(shmchan_create_channel(&o, ch) == 0);
    CHECK(shmchan_channel_take_writer(*ch, w) == 0);
    CHECK(shmchan_channel_take_reader(*ch, r) == 0);
}

static int cmd_errors(void) {
    shmchan_channel* ch = NULL;
    shmchan_writer* w = NULL;
    shmchan_writer* w2 = NULL;
    shmchan_reader* r = NULL;
    shmchan_reader* r2 = NULL;
    shmchan_item it;
    shmchan_options o;
    shmchan_frame_meta m;
    void* data = NULL;
    char ref[1024];
    char* key;
    static const char user[] = "caps=video/x-raw";
    static const char long_user[SHMCHAN_FRAME_MAX_USER + 1] = {0};

    shmchan_item_init(&it);
    CHECK(strcmp(shmchan_error_name(SHMCHAN_E_PEER_LOST), "peer_lost") == 0);
    CHECK(strcmp(shmchan_version_string(), "") != 0);

    /* Bad refs and options. */
    CHECK(shmchan_open_reader("{not json", NULL, &r2) == SHMCHAN_E_INVALID_REF && r2 == NULL);
    CHECK(strlen(shmchan_last_error()) > 0);
    CHECK(shmchan_is_channel_ref("{\"channel_id\":\"a\",\"access_key\":\"k\",\"direction\":\"read\"}") == 1);
    CHECK(shmchan_is_channel_ref("[1]") == 0 && shmchan_is_channel_ref("{") == 0);
    memset(&o, 0, sizeof o);
    CHECK(shmchan_create_channel(&o, &ch) == SHMCHAN_E_INVALID_ARGUMENT && ch == NULL);
    shmchan_options_init(&o);
    o.transport = 42;
    CHECK(shmchan_create_channel(&o, &ch) == SHMCHAN_E_INVALID_ARGUMENT);

    make(1, &ch, &w, &r);
    CHECK(shmchan_writer_write(w, NULL, 0, -1) == 0);  /* the local end claims on first use */
    CHECK(shmchan_channel_take_writer(ch, &w2) == SHMCHAN_E_CLOSED);
    CHECK(shmchan_open_writer(shmchan_channel_reader_ref(ch), NULL, &w2) == SHMCHAN_E_WRONG_DIRECTION);
    /* The writer ref with another key. */
    snprintf(ref, sizeof ref, "%s", shmchan_channel_writer_ref(ch));
    key = strstr(ref, "\"access_key\":\"");
    CHECK(key != NULL);
    if (key) key[14] = key[14] == '0' ? '1' : '0';  /* hex digits: another value, not another case */
    CHECK(shmchan_open_writer(ref, NULL, &w2) == SHMCHAN_E_BAD_KEY);
    CHECK(shmchan_open_writer(shmchan_channel_writer_ref(ch), NULL, &w2) == SHMCHAN_E_ALREADY_CLAIMED);

    /* Empty ring: would_block at timeout 0, timeout after a wait. */
    CHECK(shmchan_reader_next(r, &it, 0) == SHMCHAN_E_WOULD_BLOCK && it.kind == SHMCHAN_ITEM_ERROR);
    CHECK(shmchan_reader_next(r, &it, 10) == SHMCHAN_E_TIMEOUT);
    CHECK(shmchan_reader_fd(r) >= 0);

    /* Loans: too large, commit without a loan, then one committed in place. */
    CHECK(shmchan_writer_loan(w, 1 << 20, &data, -1) == SHMCHAN_E_TOO_LARGE && data == NULL);
    CHECK(shmchan_writer_commit(w, 1) == SHMCHAN_E_INVALID_ARGUMENT);
    CHECK(shmchan_writer_loan(w, 5, &data, -1) == 0 && data != NULL);
    if (!data) return 1;
    CHECK(shmchan_writer_write(w, "x", 1, -1) == SHMCHAN_E_INVALID_ARGUMENT);  /* loan open */
    memcpy(data, "hello", 5);
    CHECK(shmchan_writer_commit(w, 5) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_CHUNK && it.data_size == 5 &&
          memcmp(it.data, "hello", 5) == 0);

    /* Frames: written, and loaned with meta. */
    shmchan_frame_meta_init(&m);
    m.pts = 40000000;
    m.flags = SHMCHAN_FRAME_KEYFRAME;
    m.user = user;
    m.user_size = sizeof user - 1;
    CHECK(shmchan_writer_write_frame(w, "frame", 5, &m, -1) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_FRAME && it.data_size == 5);
    CHECK(it.meta.pts == 40000000 && it.meta.dts == SHMCHAN_TIME_NONE && it.meta.flags == SHMCHAN_FRAME_KEYFRAME);
    CHECK(it.meta.user_size == sizeof user - 1 && memcmp(it.meta.user, user, sizeof user - 1) == 0);
    CHECK(shmchan_writer_frame_loan(w, 3, &data, -1) == 0);
    memcpy(data, "abc", 3);
    m.user = NULL;
    m.user_size = 0;
    m.duration = 7;
    CHECK(shmchan_writer_commit_frame(w, 3, &m) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_FRAME && it.meta.duration == 7 &&
          it.data_size == 3 && memcmp(it.data, "abc", 3) == 0);
    /* A loan committed with a user header too long: refused, the loan stays open, nothing lost. */
    CHECK(shmchan_writer_frame_loan(w, 3, &data, -1) == 0);
    memcpy(data, "xyz", 3);
    m.user = long_user;
    m.user_size = sizeof long_user;
    CHECK(shmchan_writer_commit_frame(w, 3, &m) == SHMCHAN_E_INVALID_ARGUMENT);
    CHECK(strstr(shmchan_last_error(), "at most 256") != NULL);
    CHECK(shmchan_reader_next(r, &it, 0) == SHMCHAN_E_WOULD_BLOCK);
    m.user_size = SHMCHAN_FRAME_MAX_USER;
    CHECK(shmchan_writer_commit_frame(w, 3, &m) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_FRAME && it.data_size == 3 &&
          memcmp(it.data, "xyz", 3) == 0 && it.meta.user_size == SHMCHAN_FRAME_MAX_USER);
    m.user = NULL;
    m.user_size = 0;
    CHECK(shmchan_writer_write_frame(w, "x", 1, NULL, -1) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.meta.pts == SHMCHAN_TIME_NONE);
    CHECK(shmchan_writer_write_frame(w, data, 1 << 20, NULL, -1) == SHMCHAN_E_TOO_LARGE);

    /* A message, then abort: the reason reaches the reader. */
    CHECK(shmchan_writer_send_message(w, "hi", 2, -1) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_MESSAGE && it.data_size == 2);
    CHECK(shmchan_writer_abort(w, "camera unplugged") == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == SHMCHAN_E_ABORTED && it.error == SHMCHAN_E_ABORTED);
    CHECK(strcmp(it.abort_reason, "camera unplugged") == 0);
    CHECK(strcmp(shmchan_reader_abort_reason(r), "camera unplugged") == 0);
    CHECK(shmchan_writer_write(w, "x", 1, -1) == SHMCHAN_E_CLOSED);
    shmchan_writer_free(w);
    shmchan_reader_free(r);
    shmchan_channel_free(ch);

    /* The reader leaves: the writer learns peer_closed. */
    make(1, &ch, &w, &r);
    CHECK(shmchan_writer_write(w, "x", 1, -1) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_CHUNK);
    shmchan_reader_free(r);
    CHECK(shmchan_writer_close(w, 1000) == SHMCHAN_E_PEER_CLOSED);
    shmchan_writer_free(w);
    shmchan_channel_free(ch);

    /* max_held 2: two items alive, the third waits for a release. */
    make(2, &ch, &w, &r);
    CHECK(shmchan_writer_write(w, "a", 1, -1) == 0);
    CHECK(shmchan_writer_send_message(w, "b", 1, -1) == 0);
    CHECK(shmchan_writer_write(w, "c", 1, -1) == 0);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.id != 0);
    {
        uint64_t first = it.id;
        CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_MESSAGE);
        CHECK(shmchan_reader_next(r, &it, 1000) == SHMCHAN_E_HELD_LIMIT);
        shmchan_reader_release_item(r, first);
    }
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.data_size == 1 && *(const char*)it.data == 'c');
    CHECK(shmchan_writer_close(w, -1) == 0);
    shmchan_reader_release(r);  /* "c": "b" before it still holds its space */
    shmchan_reader_release(r);  /* twice: nothing happens */
    CHECK(shmchan_reader_next(r, &it, 1000) == SHMCHAN_E_HELD_LIMIT);
    shmchan_reader_release_item(r, 2);
    CHECK(shmchan_reader_next(r, &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_END);
    shmchan_writer_free(w);
    shmchan_reader_free(r);
    shmchan_channel_free(ch);

    /* A smaller item struct (an older caller) is filled only as far as its size. */
    make(1, &ch, &w, &r);
    CHECK(shmchan_writer_write(w, "z", 1, -1) == 0);
    {
        shmchan_item small[2];
        memset(small, 0x5a, sizeof small);
        small[0].size = offsetof(shmchan_item, meta);
        CHECK(shmchan_reader_next(r, &small[0], 1000) == 0 && small[0].data_size == 1);
        CHECK(((unsigned char*)&small[0].meta)[0] == 0x5a);
        small[0].size = 1;
        CHECK(shmchan_reader_next(r, &small[0], 1000) == SHMCHAN_E_INVALID_ARGUMENT);
    }
    /* A size larger than the library's struct (a newer caller, or one that never initialised
     * it): nothing is written past the struct the library knows. */
    CHECK(shmchan_writer_write(w, "y", 1, -1) == 0);
    {
        struct { shmchan_item it; unsigned char guard[64]; } big;
        memset(&big, 0x5a, sizeof big);
        big.it.size = (size_t)1 << 30;
        CHECK(shmchan_reader_next(r, &big.it, 1000) == 0 && big.it.data_size == 1);
        CHECK(big.it.size == (size_t)1 << 30);
        CHECK(untouched(big.guard, sizeof big.guard));
    }
    /* A caller built against an older header: the init macros pass the library the caller's
     * sizeof, and nothing past it is written (the guard bytes). */
    {
        struct { shmchan_options o; unsigned char guard[64]; } g_o;
        struct { shmchan_item it; unsigned char guard[64]; } g_it;
        struct { shmchan_reader_status st; unsigned char guard[64]; } g_st;
        const size_t n_o = offsetof(shmchan_options, prefault);     /* before prefault, rmw_wakes */
        const size_t n_it = offsetof(shmchan_item, gap_records);   /* before the gap counts */
        const size_t n_st = offsetof(shmchan_reader_status, released) + sizeof g_st.st.released;
        memset(&g_o, 0x5a, sizeof g_o);
        memset(&g_it, 0x5a, sizeof g_it);
        memset(&g_st, 0x5a, sizeof g_st);
        shmchan_options_init_size(&g_o.o, n_o);
        shmchan_item_init_size(&g_it.it, n_it);
        shmchan_reader_status_init_size(&g_st.st, n_st);
        CHECK(g_o.o.size == n_o && g_o.o.max_held == 1 && g_o.o.spin_us == 50);
        CHECK(g_it.it.size == n_it && g_it.it.kind == SHMCHAN_ITEM_END);
        CHECK(g_st.st.size == n_st && g_st.st.released == 0);
        CHECK(untouched((const unsigned char*)&g_o + n_o, sizeof g_o - n_o));
        CHECK(untouched((const unsigned char*)&g_it + n_it, sizeof g_it - n_it));
        CHECK(untouched((const unsigned char*)&g_st + n_st, sizeof g_st - n_st));
    }
    shmchan_writer_free(w);  /* freed open: the stream is aborted */
    CHECK(shmchan_reader_next(r, &it, 1000) == SHMCHAN_E_ABORTED);
    shmchan_reader_free(r);
    shmchan_channel_free(ch);

    if (failures) fprintf(stderr, "%d checks failed\n", failures);
    else printf("errors: all paths checked\n");
    return failures ? 1 : 0;
}

/* Several readers and the writer's view of them, and overflow drop-oldest's gap items and intact
 * views. */
static int cmd_readers(void) {
    shmchan_options o;
    shmchan_channel* ch = NULL;
    shmchan_writer* w = NULL;
    shmchan_reader* r[2] = {NULL, NULL};
    shmchan_item it;
    shmchan_reader_status st;
    char rec[600];
    int i;
    uint64_t held_id;
    shmchan_options_init(&o);
    CHECK(o.readers == 1 && o.overflow == SHMCHAN_OVERFLOW_BLOCK && o.prefault == 1 && o.rmw_wakes == 0);
    o.capacity = 4096;
    o.overflow = 7;
    CHECK(shmchan_create_channel(&o, &ch) == SHMCHAN_E_INVALID_ARGUMENT);
    o.overflow = SHMCHAN_OVERFLOW_BLOCK;
    o.readers = 65;
    CHECK(shmchan_create_channel(&o, &ch) == SHMCHAN_E_INVALID_ARGUMENT);

    /* block: both readers get the record (every end promising read-modify-write wakes) */
    o.readers = 2;
    o.rmw_wakes = 1;
    CHECK(shmchan_create_channel(&o, &ch) == 0);
    CHECK(shmchan_channel_reader_count(ch) == 2);
    CHECK(strcmp(shmchan_channel_reader_ref_at(ch, 0), shmchan_channel_reader_ref(ch)) == 0);
    CHECK(shmchan_channel_reader_ref_at(ch, 2) == NULL);
    CHECK(shmchan_open_reader(shmchan_channel_reader_ref_at(ch, 0), NULL, &r[0]) == 0);
    CHECK(shmchan_open_reader(shmchan_channel_reader_ref_at(ch, 1), NULL, &r[1]) == 0);
    CHECK(shmchan_channel_take_writer(ch, &w) == 0);
    CHECK(shmchan_writer_write(w, "hello", 5, -1) == 0);
    shmchan_item_init(&it);
    for (i = 0; i < 2; ++i) {
        CHECK(shmchan_reader_next(r[i], &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_CHUNK && it.data_size == 5);
        CHECK(shmchan_reader_item_intact(r[i], it.id) == 1);
    }
    /* the writer's view of its readers */
    shmchan_reader_status_init(&st);
    CHECK(shmchan_writer_reader_count(w) == 2);
    CHECK(shmchan_writer_reader_status(w, 0, &st) == 0 && st.state == SHMCHAN_READER_READING);
    CHECK(strcmp(shmchan_reader_state_name(st.state), "reading") == 0);
    CHECK(shmchan_writer_reader_status(w, 2, &st) == SHMCHAN_E_INVALID_ARGUMENT);
    st.size = 0;
    CHECK(shmchan_writer_reader_status(w, 0, &st) == SHMCHAN_E_INVALID_ARGUMENT);
    shmchan_reader_status_init(&st);
    CHECK(shmchan_writer_close(w, -1) == 0);
    for (i = 0; i < 2; ++i) {
        CHECK(shmchan_reader_next(r[i], &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_END);
        shmchan_reader_free(r[i]);
    }
    CHECK(shmchan_writer_wait_drained(w, 1000) == 0);
    for (i = 0; i < 2; ++i) {
        CHECK(shmchan_writer_reader_status(w, (size_t)i, &st) == 0 && st.state == SHMCHAN_READER_DONE);
        CHECK(st.released > 5);  /* the record, with its header, and the end */
    }
    CHECK(strcmp(shmchan_reader_state_name(99), "?") == 0);
    shmchan_writer_free(w);
    shmchan_channel_free(ch);

    /* drop-oldest: the writer never waits; the reader is told what it missed */
    o.readers = 1;
    o.rmw_wakes = 0;
    o.overflow = SHMCHAN_OVERFLOW_DROP_OLDEST;
    CHECK(shmchan_create_channel(&o, &ch) == 0);
    CHECK(shmchan_channel_take_writer(ch, &w) == 0);
    CHECK(shmchan_channel_take_reader(ch, &r[0]) == 0);
    CHECK(shmchan_reader_next(r[0], &it, 0) == SHMCHAN_E_WOULD_BLOCK); /* claimed: starts here */
    memset(rec, 1, sizeof rec);
    CHECK(shmchan_writer_write(w, rec, sizeof rec, -1) == 0);
    CHECK(shmchan_reader_next(r[0], &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_CHUNK);
    held_id = it.id;
    for (i = 0; i < 20; ++i) CHECK(shmchan_writer_write(w, rec, sizeof rec, 0) == 0); /* never waits */
    CHECK(shmchan_reader_item_intact(r[0], held_id) == 0); /* overwritten while held */
    CHECK(shmchan_reader_next(r[0], &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_GAP);
    CHECK(it.gap_records > 10 && it.gap_bytes == it.gap_records * sizeof rec);
    CHECK(shmchan_reader_next(r[0], &it, 1000) == 0 && it.kind == SHMCHAN_ITEM_CHUNK);
    CHECK(shmchan_writer_close(w, -1) == 0);
    shmchan_reader_free(r[0]);
    shmchan_writer_free(w);
    shmchan_channel_free(ch);
    if (failures) fprintf(stderr, "%d checks failed\n", failures);
    else printf("readers: all checked\n");
    return failures ? 1 : 0;
}

int main(int argc, char** argv) {
    if (argc == 4 && strcmp(argv[1], "read") == 0) return cmd_read(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "write") == 0) return cmd_write(argv[2]);
    if (argc == 2 && strcmp(argv[1], "errors") == 0) return cmd_errors();
    if (argc == 2 && strcmp(argv[1], "readers") == 0) return cmd_readers();
    fprintf(stderr, "usage: stream read REF OUT | write IN | errors\n");
    return 2;
}
