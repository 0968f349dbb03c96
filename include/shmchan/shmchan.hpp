// Everything of the public API.
#pragma once
#include "shmchan/admin.hpp"
#include "shmchan/channel.hpp"
#include "shmchan/channel_ref.hpp"
#include "shmchan/error.hpp"
#include "shmchan/memory.hpp"
#include "shmchan/reader.hpp"
#include "shmchan/tls.hpp"
#include "shmchan/version.hpp"
#include "shmchan/worker.hpp"
#include "shmchan/engine.hpp"
#include "shmchan/writer.hpp"
