#include "send_queue.hpp"

#include <cerrno>
#include <cstdint>
#include <utility>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace shmchan::detail {

send_queue::send_queue(int fd, std::size_t capacity, std::function<void()> notify)
    : fd_(fd), capacity_(capacity), notify_(std::move(notify)) {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd for the send queue");
    staged_.reserve(capacity_);
    sending_.reserve(capacity_);
    thread_ = std::thread([this] { run(); });
}

send_queue::~send_queue() {
    stop();
    ::close(stop_fd_);
}

bool send_queue::try_append(std::span<const std::span<const std::byte>> pieces) {
    std::size_t n = 0;
    for (const auto& p : pieces) n += p.size();
    std::unique_lock lk(m_);
    if (err_ || stopping_ || staged_.size() + n > capacity_) return false;
    for (const auto& p : pieces) staged_.insert(staged_.end(), p.begin(), p.end());
    const bool wake = sleeping_;
    lk.unlock();
    if (wake) cv_.notify_one();
    return true;
}

bool send_queue::idle() const {
    std::lock_guard lk(m_);
    return !busy_ && staged_.empty();
}

bool send_queue::has_room(std::size_t n) const {
    std::lock_guard lk(m_);
    return staged_.size() + n <= capacity_;
}

void send_queue::want_room() {
    std::lock_guard lk(m_);
    want_room_ = true;
}

std::error_code send_queue::error() const {
    std::lock_guard lk(m_);
    return err_;
}

void send_queue::stop() noexcept {
    {
        std::lock_guard lk(m_);
        stopping_ = true;
    }
    cv_.notify_one();
    const std::uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);  // a sender waiting in poll() for room in the socket
    if (thread_.joinable()) thread_.join();
    std::lock_guard lk(m_);
    staged_.clear();  // dropped: idle() holds, so nothing waits for it
}

void send_queue::run() {
    std::unique_lock lk(m_);
    for (;;) {
        if (staged_.empty() && !stopping_) {
            sleeping_ = true;
            cv_.wait(lk, [this] { return stopping_ || !staged_.empty(); });
            sleeping_ = false;
        }
        if (stopping_) return;
        // SYNC POINT: what the owner staged until now is this batch; try_append stages the
        // next one meanwhile.
        std::swap(staged_, sending_);
        busy_ = true;
        lk.unlock();
        const std::error_code e = send_all(sending_);
        lk.lock();
        sending_.clear();
        busy_ = false;
        if (e) {
            err_ = e;
            staged_.clear();
        }
        // The owner hears of an idle queue, of room it waits for, and of a failure.
        const bool tell = e || staged_.empty() || want_room_;
        if (tell) {
            want_room_ = false;
            lk.unlock();
            notify_();
            lk.lock();
        }
        if (e) return;
    }
}

std::error_code send_queue::send_all(const std::vector<std::byte>& bytes) {
    for (std::size_t off = 0; off < bytes.size();) {
        const ssize_t r = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            off += static_cast<std::size_t>(r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // The socket is full (the engine reads no faster): wait for room, or for stop().
            pollfd p[2] = {{fd_, POLLOUT, 0}, {stop_fd_, POLLIN, 0}};
            if (::poll(p, 2, -1) < 0 && errno != EINTR) return {errno, std::system_category()};
            if (p[1].revents != 0) return make_error_code(std::errc::operation_canceled);
            continue;
        }
        return {r < 0 ? errno : EPIPE, std::system_category()};
    }
    return {};
}

}  // namespace shmchan::detail
