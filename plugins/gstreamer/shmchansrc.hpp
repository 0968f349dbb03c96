// shmchansrc: opens a channel from a reader ref (a ref file that shmchansink writes, or the JSON)
// and pushes its frames as buffers with their timestamps, flags and caps (docs/gstreamer.md).
#pragma once

#include <gst/base/gstbasesrc.h>

G_BEGIN_DECLS
#define SHMCHAN_TYPE_SRC (shmchan_src_get_type())
G_DECLARE_FINAL_TYPE(ShmchanSrc, shmchan_src, SHMCHAN, SRC, GstBaseSrc)
G_END_DECLS
