#include "shmchansrc.hpp"

#include <atomic>
#include <memory>
#include <string>

#include "source_channel.hpp"

GST_DEBUG_CATEGORY_STATIC(shmchan_src_debug);
#define GST_CAT_DEFAULT shmchan_src_debug

using shmchan::gst::source_channel;

struct _ShmchanSrc {
    GstBaseSrc parent;
    gchar* ref_file;
    guint ref_index;
    gchar* ref;
    gchar* engine;
    gdouble timeout;
    guint max_held;
    gboolean is_live;
    std::shared_ptr<source_channel>* ch;  // while started
    std::atomic<bool>* flushing;
    bool ref_from_file;  // `ref` shows what ref-file held: read the file again on restart
};

G_DEFINE_TYPE(ShmchanSrc, shmchan_src, GST_TYPE_BASE_SRC)

namespace {

enum { PROP_0, PROP_REF_FILE, PROP_REF, PROP_ENGINE, PROP_TIMEOUT, PROP_MAX_HELD, PROP_IS_LIVE, PROP_REF_INDEX };

constexpr guint default_max_held = 3;
constexpr gdouble default_timeout = 30;

GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

// Opens the reader from the properties (waiting for the ref file with `wait`); posts the
// ERROR when it cannot. A ref read from ref-file shows in `ref` from then on.
source_channel::status open_channel(ShmchanSrc* self, bool wait) {
    source_channel& ch = **self->ch;
    source_channel::settings s;
    GST_OBJECT_LOCK(self);
    s.ref = self->ref ? self->ref : "";
    s.ref_file = self->ref_file ? self->ref_file : "";
    s.ref_index = self->ref_index;
    s.engine = self->engine ? self->engine : "";
    s.timeout_s = self->timeout;
    s.max_held = self->max_held;
    GST_OBJECT_UNLOCK(self);
    const auto r = ch.open(s, *self->flushing, wait);
    if (r == source_channel::status::error)
        GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", ch.error().c_str()), (nullptr));
    if (r == source_channel::status::ok && s.ref.empty()) {
        GST_OBJECT_LOCK(self);
        g_free(self->ref);
        self->ref = g_strdup(ch.ref().c_str());
        self->ref_from_file = true;
        GST_OBJECT_UNLOCK(self);
        g_object_notify(G_OBJECT(self), "ref");
    }
    return r;
}

gboolean src_start(GstBaseSrc* bsrc) {
    auto* self = SHMCHAN_SRC(bsrc);
    *self->flushing = false;
    GST_OBJECT_LOCK(self);
    if (self->ref_from_file) {
        g_free(self->ref);
        self->ref = nullptr;
        self->ref_from_file = false;
    }
    GST_OBJECT_UNLOCK(self);
    self->ch = new std::shared_ptr<source_channel>(std::make_shared<source_channel>());
    // One attempt to open now: a ref that can never open (a ref-index beyond the file's refs, a
    // bad ref) then fails the state change itself. From create(), during preroll, its ERROR
    // left gst-launch-1.0 waiting forever about once in ten runs. Nothing to open yet (no ref
    // file, or a stale one): create() waits for it.
    if (open_channel(self, false) != source_channel::status::error) return TRUE;
    delete self->ch;  // a start that fails gets no stop()
    self->ch = nullptr;
    return FALSE;
}

gboolean src_stop(GstBaseSrc* bsrc) {
    auto* self = SHMCHAN_SRC(bsrc);
    if (self->ch && *self->ch)
        GST_INFO_OBJECT(self, "frames wrapped %" G_GUINT64_FORMAT ", copied %" G_GUINT64_FORMAT
                        ", dropped %" G_GUINT64_FORMAT,
                        static_cast<guint64>((*self->ch)->frames_wrapped()),
                        static_cast<guint64>((*self->ch)->frames_copied()),
                        static_cast<guint64>((*self->ch)->frames_dropped()));
    // Buffers still wrapping items keep the reader alive until they go.
    delete self->ch;
    self->ch = nullptr;
    return TRUE;
}

// The caps come from the stream (the sink's caps message): before that, anything.
GstCaps* src_get_caps(GstBaseSrc* bsrc, GstCaps* filter) {
    GstCaps* caps = gst_pad_get_current_caps(GST_BASE_SRC_PAD(bsrc));
    if (!caps) caps = gst_pad_get_pad_template_caps(GST_BASE_SRC_PAD(bsrc));
    if (filter) {
        GstCaps* both = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref(caps);
        caps = both;
    }
    return caps;
}

// Nothing to choose: create() sets the caps the stream carries, in order with the frames.
gboolean src_negotiate(GstBaseSrc*) { return TRUE; }
// Buffers wrap the ring (or copy into system memory): no pool from downstream.
gboolean src_decide_allocation(GstBaseSrc*, GstQuery*) { return TRUE; }

GstFlowReturn src_create(GstBaseSrc* bsrc, guint64, guint, GstBuffer** out) {
    auto* self = SHMCHAN_SRC(bsrc);
    source_channel& ch = **self->ch;
    using st = source_channel::status;
    if (!ch.is_open()) {
        const st r = open_channel(self, true);
        if (r == st::flushing) return GST_FLOW_FLUSHING;
        if (r != st::ok) return GST_FLOW_ERROR;
    }
    for (;;) {
        GstBuffer* buf = nullptr;
        std::string caps_text;
        switch (ch.next(*self->flushing, &buf, &caps_text)) {
        case st::flushing: return GST_FLOW_FLUSHING;
        case st::eos: return GST_FLOW_EOS;
        case st::later:  // open()'s only
        case st::error:
            GST_ELEMENT_ERROR(self, RESOURCE, READ, ("%s", ch.error().c_str()), (nullptr));
            return GST_FLOW_ERROR;
        case st::ok: break;
        }
        if (buf) {
            *out = buf;
            return GST_FLOW_OK;
        }
        GstCaps* caps = gst_caps_from_string(caps_text.c_str());
        if (!caps) {
            GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("the sink sent caps that do not parse: %s", caps_text.c_str()),
                              (nullptr));
            return GST_FLOW_ERROR;
        }
        GST_DEBUG_OBJECT(self, "caps from the stream: %s", caps_text.c_str());
        const gboolean ok = gst_base_src_set_caps(bsrc, caps);
        gst_caps_unref(caps);
        if (!ok) return GST_FLOW_NOT_NEGOTIATED;
    }
}

gboolean src_unlock(GstBaseSrc* bsrc) {
    *SHMCHAN_SRC(bsrc)->flushing = true;
    return TRUE;
}

gboolean src_unlock_stop(GstBaseSrc* bsrc) {
    *SHMCHAN_SRC(bsrc)->flushing = false;
    return TRUE;
}

void src_set_property(GObject* obj, guint id, const GValue* value, GParamSpec* pspec) {
    auto* self = SHMCHAN_SRC(obj);
    GST_OBJECT_LOCK(self);
    switch (id) {
    case PROP_REF_FILE: g_free(self->ref_file); self->ref_file = g_value_dup_string(value); break;
    case PROP_REF_INDEX: self->ref_index = g_value_get_uint(value); break;
    case PROP_REF:
        g_free(self->ref);
        self->ref = g_value_dup_string(value);
        self->ref_from_file = false;
        break;
    case PROP_ENGINE: g_free(self->engine); self->engine = g_value_dup_string(value); break;
    case PROP_TIMEOUT: self->timeout = g_value_get_double(value); break;
    case PROP_MAX_HELD: self->max_held = g_value_get_uint(value); break;
    case PROP_IS_LIVE: self->is_live = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
    }
    const gboolean live = self->is_live;
    GST_OBJECT_UNLOCK(self);
    if (id == PROP_IS_LIVE) gst_base_src_set_live(GST_BASE_SRC(self), live);
}

void src_get_property(GObject* obj, guint id, GValue* value, GParamSpec* pspec) {
    auto* self = SHMCHAN_SRC(obj);
    GST_OBJECT_LOCK(self);
    switch (id) {
    case PROP_REF_FILE: g_value_set_string(value, self->ref_file); break;
    case PROP_REF_INDEX: g_value_set_uint(value, self->ref_index); break;
    case PROP_REF: g_value_set_string(value, self->ref); break;
    case PROP_ENGINE: g_value_set_string(value, self->engine); break;
    case PROP_TIMEOUT: g_value_set_double(value, self->timeout); break;
    case PROP_MAX_HELD: g_value_set_uint(value, self->max_held); break;
    case PROP_IS_LIVE: g_value_set_boolean(value, self->is_live); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

void src_finalize(GObject* obj) {
    auto* self = SHMCHAN_SRC(obj);
    g_free(self->ref_file);
    g_free(self->ref);
    g_free(self->engine);
    delete self->ch;
    delete self->flushing;
    G_OBJECT_CLASS(shmchan_src_parent_class)->finalize(obj);
}

}  // namespace

static void shmchan_src_class_init(ShmchanSrcClass* klass) {
    auto* oc = G_OBJECT_CLASS(klass);
    oc->set_property = src_set_property;
    oc->get_property = src_get_property;
    oc->finalize = src_finalize;
    const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
    g_object_class_install_property(oc, PROP_REF_FILE,
        g_param_spec_string("ref-file", "Ref file",
                            "Read the reader ref from this file (written by shmchansink ref-file=PATH), waiting up "
                            "to 'timeout' seconds for it to appear; line 'ref-index' of it. Ignored when 'ref' is set.",
                            nullptr, rw));
    g_object_class_install_property(oc, PROP_REF_INDEX,
        g_param_spec_uint("ref-index", "Ref index",
                          "Which reader ref of ref-file to use: its line number from 0 (default 0), 0 to 63, for "
                          "a shmchansink with readers=N (each source its own index; a ref is claimed once). A file "
                          "with fewer lines is an ERROR.",
                          0, 63, 0, rw));
    g_object_class_install_property(oc, PROP_REF,
        g_param_spec_string("ref", "Reader ref",
                            "The channel's reader ref (JSON, e.g. shmchansink's 'ref'). Once started from a ref "
                            "file, the ref read from it.",
                            nullptr, rw));
    g_object_class_install_property(oc, PROP_ENGINE,
        g_param_spec_string("engine", "Engine",
                            "The shmchan engine (ws://HOST:PORT) serving the channel's socket path, for a ref whose "
                            "shared memory is not on this host (or SHMCHAN_TRANSPORT=socket); empty: shared memory only.",
                            nullptr, rw));
    g_object_class_install_property(oc, PROP_TIMEOUT,
        g_param_spec_double("timeout", "Timeout",
                            "Seconds to wait for the ref file to appear (and to replace a stale one) before an ERROR.",
                            0, G_MAXDOUBLE, default_timeout, rw));
    g_object_class_install_property(oc, PROP_MAX_HELD,
        g_param_spec_uint("max-held", "Max held",
                          "Frames alive at once: buffers downstream wrap ring memory (no copy) while fewer than "
                          "max-held - 1 of them are held; beyond that a frame is copied. 1: always copy. Frames "
                          "held downstream keep their ring space from the sink.",
                          1, 1024, default_max_held, rw));
    g_object_class_install_property(oc, PROP_IS_LIVE,
        g_param_spec_boolean("is-live", "Is live",
                             "Act as a live source (no preroll; timestamps are the sink's, unchanged).", FALSE, rw));

    auto* ec = GST_ELEMENT_CLASS(klass);
    gst_element_class_add_static_pad_template(ec, &src_template);
    gst_element_class_set_static_metadata(ec, "shmchan source", "Source/Network",
        "Receives buffers with their timestamps, flags and caps from a shmchan channel "
        "(shared memory, buffers wrap the ring without a copy)",
        "shmchan");

    auto* bc = GST_BASE_SRC_CLASS(klass);
    bc->start = src_start;
    bc->stop = src_stop;
    bc->get_caps = src_get_caps;
    bc->negotiate = src_negotiate;
    bc->decide_allocation = src_decide_allocation;
    bc->create = src_create;
    bc->unlock = src_unlock;
    bc->unlock_stop = src_unlock_stop;
    GST_DEBUG_CATEGORY_INIT(shmchan_src_debug, "shmchansrc", 0, "shmchan source");
}

static void shmchan_src_init(ShmchanSrc* self) {
    self->ref_file = nullptr;
    self->ref_index = 0;
    self->ref = nullptr;
    self->engine = nullptr;
    self->timeout = default_timeout;
    self->max_held = default_max_held;
    self->is_live = FALSE;
    self->ch = nullptr;
    self->flushing = new std::atomic<bool>(false);
    self->ref_from_file = false;
    gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}
