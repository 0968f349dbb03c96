#include "shmchansink.hpp"

#include <gst/video/video.h>

#include <cstdio>
#include <memory>
#include <string>

#include <shmchan/channel.hpp>

#include "common.hpp"
#include "loan_pool.hpp"
#include "sink_channel.hpp"

GST_DEBUG_CATEGORY_STATIC(shmchan_sink_debug);
#define GST_CAT_DEFAULT shmchan_sink_debug

using shmchan::gst::sink_channel;

struct _ShmchanSink {
    GstBaseSink parent;
    gchar* ref_file;
    gchar* engine;
    guint64 capacity;
    guint readers;
    gint overflow;  // ShmchanSinkOverflow
    std::shared_ptr<sink_channel>* ch;  // while started
    bool wrote_ref_file;
};

G_DEFINE_TYPE(ShmchanSink, shmchan_sink, GST_TYPE_BASE_SINK)

namespace {

enum { PROP_0, PROP_REF_FILE, PROP_CAPACITY, PROP_ENGINE, PROP_REF, PROP_READERS, PROP_OVERFLOW, PROP_REFS };

enum ShmchanSinkOverflow { overflow_block, overflow_drop_oldest };

GType overflow_get_type() {
    static GType type = 0;
    if (g_once_init_enter(&type)) {
        static const GEnumValue values[] = {
            {overflow_block, "Lossless: the sink waits for the slowest source still attached", "block"},
            {overflow_drop_oldest,
             "Live: the sink never waits; a source that falls a ring behind skips the oldest frames "
             "(its next buffer is DISCONT)",
             "drop-oldest"},
            {0, nullptr, nullptr}};
        g_once_init_leave(&type, g_enum_register_static("ShmchanSinkOverflow", values));
    }
    return type;
}

GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

// capacity=0: a ring that holds at least four frames of this size (the source may keep some
// downstream while the sink fills the next), and never less than 4 MiB.
std::size_t auto_capacity(std::size_t frame) {
    std::size_t c = shmchan::capacity_for_frame(frame);
    if (c == 0) return 0;
    while (c < (std::size_t{4} << 20) || c < 4 * (frame + 1024)) c *= 2;
    return c;
}

sink_channel* channel_of(ShmchanSink* self) { return self->ch ? self->ch->get() : nullptr; }

sink_channel::settings settings_of(ShmchanSink* self) {
    GST_OBJECT_LOCK(self);
    sink_channel::settings s;
    s.ref_file = self->ref_file ? self->ref_file : "";
    s.engine = self->engine ? self->engine : "";
    s.capacity = static_cast<std::size_t>(self->capacity);
    s.readers = self->readers;
    s.drop_oldest = self->overflow == overflow_drop_oldest;
    GST_OBJECT_UNLOCK(self);
    return s;
}

bool ensure_channel(ShmchanSink* self, std::size_t frame_bytes) {
    sink_channel* ch = channel_of(self);
    if (!ch) return false;
    if (ch->created()) return true;
    sink_channel::settings s = settings_of(self);
    if (s.capacity == 0) s.capacity = auto_capacity(frame_bytes);
    if (s.capacity == 0) {
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE,
                          ("a frame of %zu bytes is larger than any channel can hold", frame_bytes), (nullptr));
        return false;
    }
    GST_INFO_OBJECT(self, "creating a channel of %zu bytes, %zu readers, overflow %s", s.capacity, s.readers,
                    s.drop_oldest ? "drop-oldest" : "block");
    if (!ch->create(s)) {
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE, ("%s", ch->error().c_str()), (nullptr));
        return false;
    }
    self->wrote_ref_file = !s.ref_file.empty();
    g_object_notify(G_OBJECT(self), "ref");
    g_object_notify(G_OBJECT(self), "refs");
    return true;
}

GstFlowReturn flow_of(ShmchanSink* self, sink_channel::result r) {
    if (r == sink_channel::result::ok) return GST_FLOW_OK;
    if (r == sink_channel::result::flushing) return GST_FLOW_FLUSHING;
    GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("%s", channel_of(self)->error().c_str()), (nullptr));
    return GST_FLOW_ERROR;
}

gboolean sink_start(GstBaseSink* bsink) {
    auto* self = SHMCHAN_SINK(bsink);
    self->ch = new std::shared_ptr<sink_channel>(std::make_shared<sink_channel>());
    self->wrote_ref_file = false;
    const sink_channel::settings s = settings_of(self);
    if (const std::string why = sink_channel::unsupported(s); !why.empty()) {
        GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("%s", why.c_str()), (nullptr));
        return FALSE;
    }
    const bool sized = s.capacity != 0;
    // A given capacity: the channel (and the ref file) now; else once the caps say the frame size.
    return !sized || ensure_channel(self, 0);
}

gboolean sink_stop(GstBaseSink* bsink) {
    auto* self = SHMCHAN_SINK(bsink);
    if (sink_channel* ch = channel_of(self)) {
        GST_INFO_OBJECT(self, "frames in place %" G_GUINT64_FORMAT ", copied %" G_GUINT64_FORMAT,
                        static_cast<guint64>(ch->frames_in_place()), static_cast<guint64>(ch->frames_copied()));
        ch->abort("pipeline stopped before EOS");  // nothing when it was closed or aborted already
        if (self->wrote_ref_file) {
            GST_OBJECT_LOCK(self);
            std::remove(self->ref_file);
            GST_OBJECT_UNLOCK(self);
        }
    }
    // Buffers still wrapping loans keep the channel alive until they go.
    delete self->ch;
    self->ch = nullptr;
    g_object_notify(G_OBJECT(self), "ref");
    g_object_notify(G_OBJECT(self), "refs");
    return TRUE;
}

gboolean sink_set_caps(GstBaseSink* bsink, GstCaps* caps) {
    auto* self = SHMCHAN_SINK(bsink);
    GstVideoInfo info;
    if (gst_video_info_from_caps(&info, caps) && !ensure_channel(self, info.size)) return FALSE;
    gchar* text = gst_caps_to_string(caps);
    const auto r = channel_of(self)->set_caps(text);
    g_free(text);
    return flow_of(self, r) != GST_FLOW_ERROR;
}

gboolean sink_propose_allocation(GstBaseSink* bsink, GstQuery* query) {
    auto* self = SHMCHAN_SINK(bsink);
    GstCaps* caps = nullptr;
    gboolean need_pool = FALSE;
    gst_query_parse_allocation(query, &caps, &need_pool);
    GstVideoInfo info;
    // A pool of loans for raw video in system memory, whose frame size the caps tell. Video meta
    // is not offered: frames keep the default layout, which the caps alone describe.
    sink_channel* ch = channel_of(self);
    if (!caps || !ch || !ch->created() || !gst_video_info_from_caps(&info, caps) ||
        !gst_caps_features_is_equal(gst_caps_get_features(caps, 0), GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY))
        return TRUE;
    GstBufferPool* pool = shmchan::gst::new_loan_pool(*self->ch);
    GstStructure* config = gst_buffer_pool_get_config(pool);
    gst_buffer_pool_config_set_params(config, caps, static_cast<guint>(info.size), 1, 1);
    if (!gst_buffer_pool_set_config(pool, config)) {
        gst_object_unref(pool);
        return TRUE;
    }
    gst_query_add_allocation_pool(query, pool, static_cast<guint>(info.size), 1, 1);
    gst_object_unref(pool);
    return TRUE;
}

GstFlowReturn sink_render(GstBaseSink* bsink, GstBuffer* buf) {
    auto* self = SHMCHAN_SINK(bsink);
    if (!ensure_channel(self, gst_buffer_get_size(buf))) return GST_FLOW_ERROR;
    return flow_of(self, channel_of(self)->render(buf));
}

gboolean sink_event(GstBaseSink* bsink, GstEvent* event) {
    auto* self = SHMCHAN_SINK(bsink);
    if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
        // A stream with no buffer still ends cleanly for a source waiting on the ref file.
        if (!ensure_channel(self, 0)) return FALSE;
        const GstFlowReturn f = flow_of(self, channel_of(self)->finish());
        if (f != GST_FLOW_OK) {
            gst_event_unref(event);
            return FALSE;
        }
        if (const std::string w = channel_of(self)->warning(); !w.empty())
            GST_ELEMENT_WARNING(self, RESOURCE, WRITE, ("not every source read the whole stream: %s", w.c_str()),
                                (nullptr));
    }
    return GST_BASE_SINK_CLASS(shmchan_sink_parent_class)->event(bsink, event);
}

gboolean sink_unlock(GstBaseSink* bsink) {
    if (sink_channel* ch = channel_of(SHMCHAN_SINK(bsink))) ch->set_flushing(true);
    return TRUE;
}

gboolean sink_unlock_stop(GstBaseSink* bsink) {
    if (sink_channel* ch = channel_of(SHMCHAN_SINK(bsink))) ch->set_flushing(false);
    return TRUE;
}

void sink_set_property(GObject* obj, guint id, const GValue* value, GParamSpec* pspec) {
    auto* self = SHMCHAN_SINK(obj);
    GST_OBJECT_LOCK(self);
    switch (id) {
    case PROP_REF_FILE: g_free(self->ref_file); self->ref_file = g_value_dup_string(value); break;
    case PROP_ENGINE: g_free(self->engine); self->engine = g_value_dup_string(value); break;
    case PROP_CAPACITY: self->capacity = g_value_get_uint64(value); break;
    case PROP_READERS: self->readers = g_value_get_uint(value); break;
    case PROP_OVERFLOW: self->overflow = g_value_get_enum(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

void sink_get_property(GObject* obj, guint id, GValue* value, GParamSpec* pspec) {
    auto* self = SHMCHAN_SINK(obj);
    if (id == PROP_REF || id == PROP_REFS) {
        sink_channel* ch = channel_of(self);
        const std::string ref = !ch ? std::string() : id == PROP_REF ? ch->reader_ref() : ch->reader_refs();
        g_value_set_string(value, ref.empty() ? nullptr : ref.c_str());
        return;
    }
    GST_OBJECT_LOCK(self);
    switch (id) {
    case PROP_REF_FILE: g_value_set_string(value, self->ref_file); break;
    case PROP_ENGINE: g_value_set_string(value, self->engine); break;
    case PROP_CAPACITY: g_value_set_uint64(value, self->capacity); break;
    case PROP_READERS: g_value_set_uint(value, self->readers); break;
    case PROP_OVERFLOW: g_value_set_enum(value, self->overflow); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

void sink_finalize(GObject* obj) {
    auto* self = SHMCHAN_SINK(obj);
    g_free(self->ref_file);
    g_free(self->engine);
    delete self->ch;
    G_OBJECT_CLASS(shmchan_sink_parent_class)->finalize(obj);
}

}  // namespace

static void shmchan_sink_class_init(ShmchanSinkClass* klass) {
    auto* oc = G_OBJECT_CLASS(klass);
    oc->set_property = sink_set_property;
    oc->get_property = sink_get_property;
    oc->finalize = sink_finalize;
    const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
    g_object_class_install_property(oc, PROP_REF_FILE,
        g_param_spec_string("ref-file", "Ref file",
                            "Where to publish the channel's reader refs (one JSON line per reader, written to a "
                            "temporary name and renamed into place once the channel exists; removed when the "
                            "sink stops). shmchansrc ref-file=PATH ref-index=I reads line I.",
                            nullptr, rw));
    g_object_class_install_property(oc, PROP_CAPACITY,
        g_param_spec_uint64("capacity", "Capacity",
                            "Ring bytes (rounded up to a power of two). 0: sized from the first caps (raw video) "
                            "or the first buffer, to hold at least 4 frames and at least 4 MiB. A frame larger "
                            "than about half of it is an error naming the capacity it needs.",
                            0, G_MAXUINT64, 0, rw));
    g_object_class_install_property(oc, PROP_ENGINE,
        g_param_spec_string("engine", "Engine",
                            "Create the channel through the shmchan engine at this address (ws://HOST:PORT), "
                            "for readers that may use its socket path; empty: create it directly in /dev/shm. "
                            "Through the engine the ring is at most 64 MiB.",
                            nullptr, rw));
    g_object_class_install_property(oc, PROP_REF,
        g_param_spec_string("ref", "Reader ref",
                            "The channel's first reader ref (JSON), once the channel exists (read-only; for "
                            "applications that hand it to shmchansrc ref=... themselves; 'refs' has them all).",
                            nullptr, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
    g_object_class_install_property(oc, PROP_REFS,
        g_param_spec_string("refs", "Reader refs",
                            "Every reader ref (JSON), one line per reader in reader order, once the channel "
                            "exists (read-only; the ref file's contents).",
                            nullptr, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
    g_object_class_install_property(oc, PROP_READERS,
        g_param_spec_uint("readers", "Readers",
                          "How many shmchansrc may read the stream, 1 to 64 (default 1): each gets its own ref "
                          "(line I of ref-file, for shmchansrc ref-index=I) and every frame, written once. "
                          "Not with 'engine'.",
                          1, 64, 1, rw));
    g_object_class_install_property(oc, PROP_OVERFLOW,
        g_param_spec_enum("overflow", "Overflow",
                          "When the ring is full (default block). block: lossless, the sink waits for the "
                          "slowest source still attached (a dead one is dropped). drop-oldest: live, for "
                          "previews: the sink never waits; a source a ring behind loses the oldest frames and "
                          "marks its next buffer DISCONT; caps are repeated before every frame so a source "
                          "may join at any time. Not with 'engine'.",
                          overflow_get_type(), overflow_block, rw));

    auto* ec = GST_ELEMENT_CLASS(klass);
    gst_element_class_add_static_pad_template(ec, &sink_template);
    gst_element_class_set_static_metadata(ec, "shmchan sink", "Sink/Network",
        "Sends buffers with their timestamps, flags and caps through a shmchan channel "
        "(shared memory, zero copy with its buffer pool)",
        "shmchan");

    auto* bc = GST_BASE_SINK_CLASS(klass);
    bc->start = sink_start;
    bc->stop = sink_stop;
    bc->set_caps = sink_set_caps;
    bc->propose_allocation = sink_propose_allocation;
    bc->render = sink_render;
    bc->event = sink_event;
    bc->unlock = sink_unlock;
    bc->unlock_stop = sink_unlock_stop;
    GST_DEBUG_CATEGORY_INIT(shmchan_sink_debug, "shmchansink", 0, "shmchan sink");
}

static void shmchan_sink_init(ShmchanSink* self) {
    self->ref_file = nullptr;
    self->engine = nullptr;
    self->capacity = 0;
    self->readers = 1;
    self->overflow = overflow_block;
    self->ch = nullptr;
    self->wrote_ref_file = false;
    // The sink must not keep the last buffer: a pool buffer alive blocks the next loan.
    gst_base_sink_set_last_sample_enabled(GST_BASE_SINK(self), FALSE);
    gst_base_sink_set_sync(GST_BASE_SINK(self), FALSE);
}
