#include "loan_pool.hpp"

struct _ShmchanLoanPool {
    GstBufferPool parent;
    std::shared_ptr<shmchan::gst::sink_channel>* ch;
    guint size;
};

G_DEFINE_TYPE(ShmchanLoanPool, shmchan_loan_pool, GST_TYPE_BUFFER_POOL)

namespace {

using shmchan::gst::sink_channel;

gboolean pool_set_config(GstBufferPool* pool, GstStructure* config) {
    GstCaps* caps = nullptr;
    guint size = 0, min = 0, max = 0;
    if (!gst_buffer_pool_config_get_params(config, &caps, &size, &min, &max)) return FALSE;
    if (min > 1) {
        // One loan at a time: say what would do, so upstream falls back to a pool of its own.
        gst_buffer_pool_config_set_params(config, caps, size, 1, 1);
        return FALSE;
    }
    SHMCHAN_LOAN_POOL(pool)->size = size;
    return GST_BUFFER_POOL_CLASS(shmchan_loan_pool_parent_class)->set_config(pool, config);
}

// Nothing is preallocated: every buffer is a fresh loan.
gboolean pool_start(GstBufferPool*) { return TRUE; }
gboolean pool_stop(GstBufferPool*) { return TRUE; }

GstFlowReturn pool_acquire(GstBufferPool* pool, GstBuffer** out, GstBufferPoolAcquireParams* params) {
    auto* self = SHMCHAN_LOAN_POOL(pool);
    if (GST_BUFFER_POOL_IS_FLUSHING(pool)) return GST_FLOW_FLUSHING;
    const bool dontwait = params && (params->flags & GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT);
    sink_channel::result r;
    GstBuffer* buf = (*self->ch)->acquire(
        self->size, [pool, dontwait] { return dontwait || GST_BUFFER_POOL_IS_FLUSHING(pool); }, r);
    if (r == sink_channel::result::flushing)
        return dontwait && !GST_BUFFER_POOL_IS_FLUSHING(pool) ? GST_FLOW_EOS : GST_FLOW_FLUSHING;
    // No loan to be had (too large, no channel yet, a broken channel): an ordinary buffer,
    // which render() copies, or where it reports the channel's error.
    *out = buf ? buf : gst_buffer_new_allocate(nullptr, self->size, nullptr);
    return GST_FLOW_OK;
}

// A buffer back from upstream or the sink is not kept: its memory's release frees the loan.
void pool_release(GstBufferPool*, GstBuffer* buf) { gst_buffer_unref(buf); }

void pool_finalize(GObject* obj) {
    delete SHMCHAN_LOAN_POOL(obj)->ch;
    G_OBJECT_CLASS(shmchan_loan_pool_parent_class)->finalize(obj);
}

}  // namespace

static void shmchan_loan_pool_class_init(ShmchanLoanPoolClass* klass) {
    G_OBJECT_CLASS(klass)->finalize = pool_finalize;
    auto* pc = GST_BUFFER_POOL_CLASS(klass);
    pc->set_config = pool_set_config;
    pc->start = pool_start;
    pc->stop = pool_stop;
    pc->acquire_buffer = pool_acquire;
    pc->release_buffer = pool_release;
}

static void shmchan_loan_pool_init(ShmchanLoanPool* self) {
    self->ch = new std::shared_ptr<sink_channel>();
    self->size = 0;
}

namespace shmchan::gst {
GstBufferPool* new_loan_pool(std::shared_ptr<sink_channel> ch) {
    auto* pool = SHMCHAN_LOAN_POOL(g_object_new(SHMCHAN_TYPE_LOAN_POOL, nullptr));
    gst_object_ref_sink(pool);
    *pool->ch = std::move(ch);
    return GST_BUFFER_POOL(pool);
}
}  // namespace shmchan::gst
