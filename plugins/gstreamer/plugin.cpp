// libgstshmchan.so: shmchansink and shmchansrc (docs/gstreamer.md).
#include <gst/gst.h>

#include "shmchansink.hpp"
#include "shmchansrc.hpp"

namespace {
gboolean plugin_init(GstPlugin* plugin) {
    return gst_element_register(plugin, "shmchansink", GST_RANK_NONE, SHMCHAN_TYPE_SINK) &&
           gst_element_register(plugin, "shmchansrc", GST_RANK_NONE, SHMCHAN_TYPE_SRC);
}
}  // namespace

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, shmchan,
                  "Frames between processes through shmchan channels (shared memory, zero copy)",
                  plugin_init, SHMCHAN_GST_VERSION, "unknown", "shmchan", "shmchan")
