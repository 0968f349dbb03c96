// A sender thread for one socket, so that a stream of small messages costs one send(2) per
// batch instead of one per message, and no message waits for its writer's next call.
//
// The owner (one thread) appends whole frames (header and payload pieces), which are copied
// into a staging buffer; the sender takes everything staged while its previous send ran and
// sends it in one go. A message appended while the sender sleeps wakes it at once: nothing is
// held back to fill a batch (issue 14: a committed record leaves at once). Batches form only
// when the owner writes faster than the socket takes single sends.
//
// The owner learns of progress through `notify`, called on the sender thread (the socket
// writer posts it to its io_context): when the queue went idle, when a batch freed room while
// the owner waits for it, and when a send failed. The queue never reads the socket and never
// closes it: stop() (or the destructor) joins the thread first, and then the owner may close.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

namespace shmchan::detail {

class send_queue {
public:
    // `capacity`: bytes staged at most (one batch in flight holds as much again).
    send_queue(int fd, std::size_t capacity, std::function<void()> notify);
    ~send_queue();
    send_queue(const send_queue&) = delete;
    send_queue& operator=(const send_queue&) = delete;

    // Copies the pieces, in order, as one unit; false (nothing copied) when they do not fit
    // now, or after a failure. A unit larger than the capacity never fits.
    bool try_append(std::span<const std::span<const std::byte>> pieces);
    // Nothing staged and nothing being sent (what was appended is in the kernel's hands).
    bool idle() const;
    // Room for `n` more bytes now.
    bool has_room(std::size_t n) const;
    // Asks for a notify when a batch frees room (the owner is about to wait for it).
    void want_room();
    // The first send error (sticky); nothing is sent after it.
    std::error_code error() const;
    // Stops the sender and joins it; what was not sent is dropped. Idempotent.
    void stop() noexcept;

private:
    void run();
    std::error_code send_all(const std::vector<std::byte>& bytes);

    const int fd_;
    const std::size_t capacity_;
    const std::function<void()> notify_;
    int stop_fd_ = -1;  // eventfd: wakes a sender waiting for the socket to take more

    mutable std::mutex m_;
    std::condition_variable cv_;
    std::vector<std::byte> staged_, sending_;  // guarded by m_ (sending_: owned by the sender while busy_)
    bool busy_ = false;        // a batch is being sent
    bool sleeping_ = false;    // the sender waits on cv_
    bool want_room_ = false;   // the owner waits for room
    bool stopping_ = false;
    std::error_code err_;
    std::thread thread_;  // last: started once the rest is built
};

}  // namespace shmchan::detail
