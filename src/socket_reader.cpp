// The read end over the engine's channel socket. Each WebSocket message is an item; a frame
// meta text message and the binary message after it are one frame item
// (wire/frame_meta_json.hpp). Holding several items (max_held > 1), each keeps its own buffer
// until released, from any thread.
//
// After the upgrade (done here, not by Beast: ws_client::upgrade::raw) the reader owns the
// socket both ways and parses the engine's frames itself (wire/ws_client_header.hpp, server
// frames: unmasked). Reads are large, and every message already read is delivered without the
// event loop: Beast completed even a buffered message through the io_context, an epoll_wait
// per message, half of a 64-byte reader's time (docs/benchmarks.md). A message's payload goes
// into its slot (straight from the socket when much of it is still to come: in a blocking
// next() over plain TCP with recv(2) and poll(2) of its own, see read_direct); a ping is answered
// with a pong between reads; the engine's close is answered with ours, then the connection
// ends. Anything the engine should not send (a masked frame, reserved bits, a fragmented or
// long control frame, text that is not UTF-8) is a protocol_error.
#include "socket_ends.hpp"

#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

#include "shmchan/shm/layout.hpp"
#include "waiting.hpp"
#include "wire/channel_socket.hpp"
#include "wire/client_frames.hpp"
#include "wire/frame_meta_json.hpp"
#include "wire/ws_client_header.hpp"
#include "wire/ws_frame.hpp"
#include "ws_client.hpp"

namespace shmchan::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

constexpr std::size_t message_max = std::size_t{64} << 20;  // a chunk or message; a frame: its size
constexpr std::size_t spare_slots = 4;  // released buffers kept for reuse (a frame's can be large)
constexpr std::chrono::milliseconds leave_timeout{200};  // the close frame of a reader leaving early
constexpr std::size_t inbox_bytes = std::size_t{256} << 10;  // one read's worth of small messages
constexpr std::size_t direct_min = std::size_t{64} << 10;    // payload left that is read into its slot
constexpr std::uint64_t lowat_max = std::uint64_t{128} << 10;  // what one wake-up of read_direct waits for

class socket_reader final : public reader_impl {
public:
    socket_reader(const channel_ref& ref, const std::string& engine, std::size_t max_held, const tls_client_options& tls)
        : reader_impl(max_held),
          c_(engine, channel_socket_target(ref), socket_connect_timeout, tls, ws_client::upgrade::raw),
          inbox_(inbox_bytes), cur_(std::make_unique<slot>()) {
        path_ = transport::socket;
        // Frames the engine sent right after its answer to the upgrade.
        const std::string early = c_.take_early_bytes();
        if (early.size() > inbox_.size()) inbox_.resize(early.size());
        std::memcpy(inbox_.data(), early.data(), early.size());
        end_ = early.size();
    }

    ~socket_reader() override {
        // A reader leaving early says so with a close frame and waits briefly for the engine's
        // (it may be gone), so that the writer learns peer_closed; a connection that just
        // breaks is peer_lost.
        if (!ended && !sticky && !close_received_) {
            leaving_ = true;
            queue_close(1000);
            const deadline dl(leave_timeout);
            while (!close_received_ && !broken_) {
                if (!reading_) {
                    if (parse() != step::need_io) break;  // the close came, or something wrong
                    start_read();
                }
                if (!c_.run_until([this] { return !reading_; }, dl)) break;
            }
        }
        c_.shutdown();  // the engine drops its end, the writer learns
        c_.run_until([this] { return !reading_ && !writing_; }, deadline::none());
    }

    item next(nanoseconds t, bool block) override {
        if (!held.enabled()) release_pending();
        if (ended) return bare(item::kind::end, {});
        if (sticky) return bare(item::kind::error, sticky);
        if (held_full()) return bare(item::kind::error, errc::held_limit);
        const deadline dl(t);
        for (;;) {
            if (reading_) {  // wait for the read under way: it is what parse() needs
                if (block) {
                    if (!c_.run_until([this] { return !reading_; }, dl)) return bare(item::kind::error, errc::timeout);
                } else {
                    c_.poll();
                    if (reading_) return bare(item::kind::error, errc::would_block);
                }
            }
            switch (parse()) {
                case step::message: break;
                case step::need_io:
                    if (broken_) return fail(close_received_ ? errc::protocol_error : errc::peer_lost);
                    if (block && direct_now()) {
                        if (!read_direct(dl)) return bare(item::kind::error, errc::timeout);
                        continue;
                    }
                    start_read();
                    continue;
                case step::closed: return closed();
                case step::violation: return fail(errc::protocol_error);
                case step::too_big: return fail(meta_ ? errc::protocol_error : errc::peer_lost);
            }
            if (auto it = message_done()) return std::move(*it);
        }
    }
    void release_pending() override {
        if (!pending) return;
        pending = false;
        cur_->size = 0;
    }
    // Held mode: frees the buffers of every item up to `cookie` (called with the held lock).
    void release_held_to(std::uint64_t cookie) override {
        while (!held_slots_.empty() && held_slots_.front()->id <= cookie) {
            auto s = std::move(held_slots_.front());
            held_slots_.pop_front();
            if (spare_.size() < spare_slots) {
                s->size = 0;
                s->user.clear();
                spare_.push_back(std::move(s));
            }
        }
    }
    int event_fd() override {
        throw error(errc::invalid_argument, "event_fd is available on shared-memory ends only");
    }

private:
    // One message's bytes (and a frame's user header), alive as long as its item. Not zeroed
    // when it grows: every byte up to `size` was read.
    struct slot {
        std::uint64_t id = 0;
        std::unique_ptr<std::byte[]> data;
        std::size_t size = 0, cap = 0;
        std::vector<std::byte> user;
        void reserve(std::size_t n) {
            if (n <= cap) return;
            const std::size_t c = std::max(n, cap * 2);
            std::unique_ptr<std::byte[]> d(new std::byte[c]);
            if (size) std::memcpy(d.get(), data.get(), size);
            data = std::move(d);
            cap = c;
        }
        std::span<const std::byte> bytes() const { return {data.get(), size}; }
    };

    enum class step : std::uint8_t { message, need_io, closed, violation, too_big };

    // Takes what the inbox holds: up to the end of the next whole message (step::message, in
    // cur_), or all of it (need_io). Control frames are acted on as they come.
    step parse() {
        for (;;) {
            if (in_frame_) {
                const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, end_ - pos_));
                if (n && !leaving_) std::memcpy(cur_->data.get() + cur_->size, inbox_.data() + pos_, n);
                if (!leaving_) cur_->size += n;
                pos_ += n;
                left_ -= n;
                if (left_ > 0) return step::need_io;
                in_frame_ = false;
                if (frame_fin_ && !leaving_) return step::message;
                continue;
            }
            ws_client_header h;
            const auto r = parse_client_header(std::span(inbox_).subspan(pos_, end_ - pos_), in_message_, h,
                                               frame_from::server);
            using st = ws_header_result::status;
            if (r.what == st::need_more) return step::need_io;
            if (r.what == st::violation) return step::violation;
            if (h.is_control()) {
                const std::size_t whole = h.header_size + h.length;
                if (end_ - pos_ < whole) return step::need_io;
                std::size_t used = 0;
                const auto ev = control_.feed(std::span(inbox_).subspan(pos_, whole), used);
                pos_ += whole;
                using kind = client_event::kind;
                switch (ev.what) {
                    case kind::none:
                    case kind::pong: break;
                    case kind::ping:
                        ctl_.pong(ev.payload);
                        write_control();
                        break;
                    case kind::close:
                        close_received_ = true;
                        peer_code_ = ev.code;
                        peer_reason_.assign(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
                        queue_close(ev.code == close_no_status ? 1000 : ev.code);
                        return step::closed;
                    case kind::violation: return step::violation;
                }
                continue;
            }
            pos_ += h.header_size;
            if (h.opcode != ws_op_continuation) {  // a message begins
                msg_text_ = h.opcode == ws_op_text;
                if (!leaving_) cur_->size = 0;
            }
            const std::size_t limit = meta_ ? std::max(meta_->size + 1, message_max) : message_max;
            if (!leaving_ && cur_->size + h.length > limit) return step::too_big;
            if (!leaving_) cur_->reserve(cur_->size + static_cast<std::size_t>(h.length));
            in_message_ = !h.fin;
            in_frame_ = true;
            frame_fin_ = h.fin;
            left_ = h.length;
        }
    }

    // Reads more: into the inbox, or (much of a payload still to come, the inbox drained)
    // straight into the message's slot.
    void start_read() {
        reading_ = true;
        if (payload_direct()) {
            pos_ = end_ = 0;
            const std::size_t n = static_cast<std::size_t>(left_);
            c_.ws().next_layer().async_read_some(asio::buffer(cur_->data.get() + cur_->size, n),
                                                 [this](beast::error_code ec, std::size_t got) {
                                                     reading_ = false;
                                                     if (ec) return read_failed();
                                                     cur_->size += got;
                                                     left_ -= got;
                                                 });
            return;
        }
        if (pos_ > 0) {  // what is left of the last read goes to the front
            std::memmove(inbox_.data(), inbox_.data() + pos_, end_ - pos_);
            end_ -= pos_;
            pos_ = 0;
        }
        c_.ws().next_layer().async_read_some(asio::buffer(inbox_.data() + end_, inbox_.size() - end_),
                                             [this](beast::error_code ec, std::size_t got) {
                                                 reading_ = false;
                                                 if (ec) return read_failed();
                                                 end_ += got;
                                             });
    }
    void read_failed() { broken_ = true; }

    // Much of a large payload still to come and nothing buffered: it is read into its slot.
    bool payload_direct() const { return in_frame_ && !leaving_ && pos_ == end_ && left_ >= direct_min; }
    // ... and over plain TCP, read_direct() may take it (a blocking next() only; try_next()
    // and TLS go through the event loop).
    bool direct_now() { return payload_direct() && !c_.ws().next_layer().is_tls(); }
    // The rest of the payload straight into its slot with recv(2), waiting in poll(2), outside
    // the event loop: Asio's way costs a recv that fails, an epoll_wait and the recv again per
    // piece. Reads no byte past the payload. False when `dl` passed first (what came is kept).
    bool read_direct(const deadline& dl) {
        pos_ = end_ = 0;
        const int fd = c_.ws().next_layer().tcp().socket().native_handle();
        while (left_ > 0) {
            const ssize_t r = ::recv(fd, cur_->data.get() + cur_->size, static_cast<std::size_t>(left_), MSG_DONTWAIT);
            if (r > 0) {
                cur_->size += static_cast<std::size_t>(r);
                left_ -= static_cast<std::uint64_t>(r);
                continue;
            }
            if (r < 0 && errno == EINTR) continue;
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                broken_ = true;  // the connection ended or broke mid-message: parse() says so
                lowat(fd, 1);
                return true;
            }
            if (dl.passed()) return lowat(fd, 1), false;
            lowat(fd, static_cast<int>(std::min<std::uint64_t>(left_, lowat_max)));
            pollfd p{fd, POLLIN, 0};
            const auto wait = std::chrono::ceil<std::chrono::milliseconds>(dl.next_sleep(true));
            (void)::poll(&p, 1, static_cast<int>(wait.count()));
        }
        lowat(fd, 1);
        return true;
    }
    // SO_RCVLOWAT: poll(2) wakes once this much is there (1: any byte, as the event loop needs).
    void lowat(int fd, int n) {
        if (n == lowat_) return;
        lowat_ = n;
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &n, sizeof n);
    }

    // A whole message is in cur_: an item, or (a frame's meta) the next message's announcement.
    std::optional<item> message_done() {
        const std::span<const std::byte> payload = cur_->bytes();
        if (msg_text_) {
            const std::string_view s(reinterpret_cast<const char*>(payload.data()), payload.size());
            if (!valid_utf8(s)) return fail(errc::protocol_error);
            if (!meta_ && is_frame_meta(s)) {
                auto dm = decode_frame_meta(s, shm::max_record_payload);
                if (!dm) return fail(errc::protocol_error);
                cur_->size = 0;
                meta_ = std::move(dm);
                return std::nullopt;
            }
        }
        if (meta_) {  // the frame's bytes must come next, exactly as many as announced
            if (msg_text_ || payload.size() != meta_->size) return fail(errc::protocol_error);
            cur_->user = std::move(meta_->user);
            frame_meta m = meta_->meta;
            m.user = cur_->user;
            meta_.reset();
            bytes += payload.size();
            return deliver(item::kind::frame, payload, &m);
        }
        if (!msg_text_) bytes += payload.size();
        return deliver(msg_text_ ? item::kind::message : item::kind::chunk, payload, nullptr);
    }

    item deliver(item::kind k, std::span<const std::byte> d, const frame_meta* m) {
        if (!held.enabled()) return m ? frame_view(d, *m) : view(k, d);
        // The item owns cur_ now: it goes to the held list, and the next message gets another.
        const std::uint64_t id = ++slot_seq_;
        cur_->id = id;
        {
            std::lock_guard g(held_lock());
            held_slots_.push_back(std::move(cur_));
            if (!spare_.empty()) {
                cur_ = std::move(spare_.back());
                spare_.pop_back();
            }
        }
        if (!cur_) cur_ = std::make_unique<slot>();
        return m ? frame_view(d, *m, id) : view(k, d, id);
    }
    // The engine closed: the end, an abort, or an error, as its close frame says.
    item closed() {
        close_meaning m = decode_close(peer_code_, peer_reason_);
        if (!m.error) {
            if (meta_ || in_message_) return fail(errc::protocol_error);  // a frame meta (or half a message), then the end
            ended = true;
            flush_close();
            return bare(item::kind::end, {});
        }
        reason = std::move(m.abort_reason);
        return fail(static_cast<errc>(m.error.value()));
    }
    item fail(errc e) {
        sticky = e;
        if (close_received_) flush_close();
        c_.shutdown();
        return bare(item::kind::error, sticky);
    }

    // Control frames, one write at a time, between reads: a pong (the latest ping's), our close.
    void queue_close(std::uint16_t code) {
        if (close_queued_) return;
        close_queued_ = true;
        ctl_.close(code, "");
        write_control();
    }
    void write_control() {
        if (writing_) return;
        const std::size_t n = ctl_.next();
        if (!n) return;
        writing_ = true;
        asio::async_write(c_.ws().next_layer(), asio::buffer(ctl_.out.data(), n), [this](beast::error_code ec, std::size_t) {
            writing_ = false;
            if (ec) broken_ = true;
            else write_control();
        });
    }
    // Our answer to the engine's close goes out; then the engine ends the connection (the
    // server closes first, RFC 6455 7.1.1), which is waited for briefly, as Beast's client
    // does, so that ours does not end before it with the engine's last bytes unread.
    void flush_close() {
        const deadline dl(leave_timeout);
        if (!c_.run_until([this] { return !writing_; }, dl)) return;
        while (!broken_) {
            if (!reading_) {
                pos_ = end_ = 0;  // nothing after the close is parsed: read and drop
                in_frame_ = false;
                start_read();
            }
            if (!c_.run_until([this] { return !reading_; }, dl)) return;
        }
    }

    ws_client c_;
    // The inbox: bytes read, [pos_, end_) not yet parsed.
    std::vector<std::byte> inbox_;
    int lowat_ = 1;  // the socket's SO_RCVLOWAT
    std::size_t pos_ = 0, end_ = 0;
    // The frame being read: `left_` payload bytes still to come into cur_.
    bool in_frame_ = false, frame_fin_ = false, in_message_ = false, msg_text_ = false;
    std::uint64_t left_ = 0;
    client_frame_parser control_{client_frame_parser::source::server};  // checks control frames
    bool reading_ = false, writing_ = false, broken_ = false;
    bool leaving_ = false;  // the destructor drains until the engine's close: data is dropped
    // Control frames out; the engine's close in.
    ws_client_controls ctl_;
    bool close_queued_ = false, close_received_ = false;
    std::uint16_t peer_code_ = 0;
    std::string peer_reason_;

    std::unique_ptr<slot> cur_;  // what the next message is read into
    std::optional<decoded_frame_meta> meta_;  // a frame announced, its bytes not read yet
    // Held mode: the delivered items' slots in delivery order, and spares (the held lock).
    std::deque<std::unique_ptr<slot>> held_slots_;
    std::vector<std::unique_ptr<slot>> spare_;
    std::uint64_t slot_seq_ = 0;
};

}  // namespace

std::unique_ptr<reader_impl> open_socket_reader(const channel_ref& ref, const std::string& engine, std::size_t max_held,
                                                const tls_client_options& tls) {
    return std::make_unique<socket_reader>(ref, engine, max_held, tls);
}

}  // namespace shmchan::detail
