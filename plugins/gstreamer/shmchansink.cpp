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
    std::shared_ptr<sink_channel>* ch;  // while started
    bool wrote_ref_file;
};

G_DEFINE_TYPE(ShmchanSink, shmchan_sink, GST_TYPE_BASE_SINK)

namespace {

enum { PROP_0, PROP_REF_FILE, PROP_CAPACITY, PROP_ENGINE, PROP_REF };

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

bool ensure_channel(ShmchanSink* self, std::size_t frame_bytes) {
    sink_channel* ch = channel_of(self);
    if (!ch) return false;
    if (ch->created()) return true;
    GST_OBJECT_LOCK(self);
    const std::string ref_file = self->ref_file ? self->ref_file : "";
    const std::string engine = self->engine ? self->engine : "";
    std::size_t capacity = static_cast<std::size_t>(self->capacity);
    GST_OBJECT_UNLOCK(self);
    if (capacity == 0) capacity = auto_capacity(frame_bytes);
    if (capacity == 0) {
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE,
                          ("a frame of %zu bytes is larger than any channel can hold", frame_bytes), (nullptr));
        return false;
    }
    GST_INFO_OBJECT(self, "creating a channel of %zu bytes", capacity);
    if (!ch->create(engine, capacity, ref_file)) {
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE, ("%s", ch->error().c_str()), (nullptr));
        return false;
    }
    self->wrote_ref_file = !ref_file.empty();
    g_object_notify(G_OBJECT(self), "ref");
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
    GST_OBJECT_LOCK(self);
    const bool sized = self->capacity != 0;
    GST_OBJECT_UNLOCK(self);
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
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

void sink_get_property(GObject* obj, guint id, GValue* value, GParamSpec* pspec) {
    auto* self = SHMCHAN_SINK(obj);
    if (id == PROP_REF) {
        sink_channel* ch = channel_of(self);
        const std::string ref = ch ? ch->reader_ref() : std::string();
        g_value_set_string(value, ref.empty() ? nullptr : ref.c_str());
        return;
    }
    GST_OBJECT_LOCK(self);
    switch (id) {
    case PROP_REF_FILE: g_value_set_string(value, self->ref_file); break;
    case PROP_ENGINE: g_value_set_string(value, self->engine); break;
    case PROP_CAPACITY: g_value_set_uint64(value, self->capacity); break;
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
                            "Where to publish the channel's reader ref (one JSON line, written to a temporary "
                            "name and renamed into place once the channel exists; removed when the sink stops). "
                            "shmchansrc ref-file=PATH reads it.",
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
                            "The channel's reader ref (JSON), once the channel exists (read-only; for "
                            "applications that hand it to shmchansrc ref=... themselves).",
                            nullptr, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

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
    self->ch = nullptr;
    self->wrote_ref_file = false;
    // The sink must not keep the last buffer: a pool buffer alive blocks the next loan.
    gst_base_sink_set_last_sample_enabled(GST_BASE_SINK(self), FALSE);
    gst_base_sink_set_sync(GST_BASE_SINK(self), FALSE);
}
