// The single-producer record ring that lives in a channel segment, read by one or several
// readers (each sees every record).
//
// Positions (`head`, `tail`) count bytes ever released/committed and never wrap; the offset in
// the ring is position & (capacity - 1). The writer owns `tail`, each reader its own `head`;
// each side keeps a private cached copy of the other's index (the writer: the lowest head of
// the readers it still counts) and reloads it only when it seems to have run out (full /
// empty), so the shared cache lines move between cores rarely.
//
// Everything the reader takes from shared memory is validated before use: a corrupted or
// hostile segment yields ring_status::corrupt, never an out-of-bounds read.
//
// The writer's side is ring_producer.hpp, the readers' ring_consumer.hpp; this header brings both.
#pragma once

#include "shmchan/shm/ring_consumer.hpp"
#include "shmchan/shm/ring_producer.hpp"
