// shmchansink: creates a channel, publishes its reader ref, and writes each buffer as one frame
// with its timestamps, offsets and flags; caps travel as messages (docs/gstreamer.md).
#pragma once

#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS
#define SHMCHAN_TYPE_SINK (shmchan_sink_get_type())
G_DECLARE_FINAL_TYPE(ShmchanSink, shmchan_sink, SHMCHAN, SINK, GstBaseSink)
G_END_DECLS
