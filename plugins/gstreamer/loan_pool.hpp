// shmchansink's buffer pool: each buffer wraps a frame loan of the ring, so that upstream renders
// straight into shared memory. One buffer at a time (max-buffers 1): the writer has one claim at
// a time, and a new loan waits until the previous buffer's memory is freed.
#pragma once

#include <gst/gst.h>

#include <memory>

#include "sink_channel.hpp"

G_BEGIN_DECLS
#define SHMCHAN_TYPE_LOAN_POOL (shmchan_loan_pool_get_type())
G_DECLARE_FINAL_TYPE(ShmchanLoanPool, shmchan_loan_pool, SHMCHAN, LOAN_POOL, GstBufferPool)
G_END_DECLS

namespace shmchan::gst {
GstBufferPool* new_loan_pool(std::shared_ptr<sink_channel> ch);
}
