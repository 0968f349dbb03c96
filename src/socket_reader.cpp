// The read end over the engine's channel socket. Each WebSocket message is an item; a frame
// meta text message and the binary message after it are one frame item
// (wire/frame_meta_json.hpp). Holding several items (max_held > 1), each keeps its own buffer
// until released, from any thread.
#include "socket_ends.hpp"

#include <deque>
#include <optional>
#include <vector>

#include "shmchan/shm/layout.hpp"
#include "waiting.hpp"
#include "wire/channel_socket.hpp"
#include "wire/frame_meta_json.hpp"
#include "ws_client.hpp"

namespace shmchan::detail {

namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

constexpr std::size_t message_max = std::size_t{64} << 20;  // a chunk or message; a frame: its size
constexpr std::size_t spare_slots = 4;
constexpr std::chrono::milliseconds leave_timeout{200};  // the close frame of a reader leaving early  // released buffers kept for reuse (a frame's can be large)

class socket_reader final : public reader_impl {
public:
    socket_reader(const channel_ref& ref, const std::string& engine, std::size_t max_held, const tls_client_options& tls)
        : reader_impl(max_held), c_(engine, channel_socket_target(ref), socket_connect_timeout, tls),
          cur_(std::make_unique<slot>()) {
        path_ = transport::socket;
        c_.ws().read_message_max(message_max);
    }

    ~socket_reader() override {
        // A reader leaving early says so with a close frame (briefly: the engine may be gone),
        // so that the writer learns peer_closed; a connection that just breaks is peer_lost.
        bool closed = false;  // outlives the handler, which may run in the last run_until below
        if (!ended && !sticky) {
            c_.ws().async_close(websocket::close_code::normal, [&](beast::error_code) { closed = true; });
            c_.run_until([&] { return closed; }, deadline(leave_timeout));
        }
        c_.shutdown();  // the engine drops its end, the writer learns
        c_.run_until([this] { return !reading_; }, deadline::none());
    }

    item next(nanoseconds t, bool block) override {
        if (!held.enabled()) release_pending();
        if (ended) return bare(item::kind::end, {});
        if (sticky) return bare(item::kind::error, sticky);
        if (held_full()) return bare(item::kind::error, errc::held_limit);
        const deadline dl(t);
        for (;;) {
            if (!reading_ && !done_) {
                reading_ = true;
                c_.ws().async_read(cur_->buf, [this](beast::error_code ec, std::size_t) {
                    reading_ = false;
                    done_ = true;
                    ec_ = ec;
                });
            }
            if (block) {
                if (!c_.run_until([this] { return done_; }, dl)) return bare(item::kind::error, errc::timeout);
            } else {
                c_.poll();
                if (!done_) return bare(item::kind::error, errc::would_block);
            }
            done_ = false;
            if (ec_) return closed();
            const bool text = c_.ws().got_text();
            const auto d = cur_->buf.cdata();
            const std::span<const std::byte> payload(static_cast<const std::byte*>(d.data()), d.size());
            if (meta_) {  // the frame's bytes must come next, exactly as many as announced
                c_.ws().read_message_max(message_max);
                if (text || payload.size() != meta_->size) return fail(errc::protocol_error);
                cur_->user = std::move(meta_->user);
                frame_meta m = meta_->meta;
                m.user = cur_->user;
                meta_.reset();
                bytes += d.size();
                return deliver(item::kind::frame, payload, &m);
            }
            const std::string_view s(static_cast<const char*>(d.data()), d.size());
            if (text && is_frame_meta(s)) {
                auto dm = decode_frame_meta(s, shm::max_record_payload);
                if (!dm) return fail(errc::protocol_error);
                cur_->buf.consume(cur_->buf.size());
                c_.ws().read_message_max(std::max(dm.size, message_max));
                meta_ = std::move(dm);
                continue;
            }
            if (!text) bytes += d.size();
            return deliver(text ? item::kind::message : item::kind::chunk, payload, nullptr);
        }
    }
    void release_pending() override {
        if (!pending) return;
        pending = false;
        cur_->buf.consume(cur_->buf.size());
    }
    // Held mode: frees the buffers of every item up to `cookie` (called with the held lock).
    void release_held_to(std::uint64_t cookie) override {
        while (!held_slots_.empty() && held_slots_.front()->id <= cookie) {
            auto s = std::move(held_slots_.front());
            held_slots_.pop_front();
            if (spare_.size() < spare_slots) {
                s->buf.consume(s->buf.size());
                s->user.clear();
                spare_.push_back(std::move(s));
            }
        }
    }
    int event_fd() override {
        throw error(errc::invalid_argument, "event_fd is available on shared-memory ends only");
    }

private:
    // One message's bytes (and a frame's user header), alive as long as its item.
    struct slot {
        std::uint64_t id = 0;
        beast::flat_buffer buf;
        std::vector<std::byte> user;
    };

    item deliver(item::kind k, std::span<const std::byte> d, const frame_meta* m) {
        if (!held.enabled()) return m ? frame_view(d, *m) : view(k, d);
        // The item owns cur_ now: it goes to the held list, and the next read gets another.
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
    item closed() {
        if (ec_ == websocket::error::closed) {
            const auto& r = c_.ws().reason();
            close_meaning m = decode_close(r.code, r.reason.c_str());
            if (!m.error) {
                if (meta_) return fail(errc::protocol_error);  // a frame meta, then the end
                ended = true;
                return bare(item::kind::end, {});
            }
            reason = std::move(m.abort_reason);
            return fail(static_cast<errc>(m.error.value()));
        }
        // Beyond read_message_max after a meta: more bytes than announced.
        if (meta_ && ec_ == websocket::error::message_too_big) return fail(errc::protocol_error);
        return fail(errc::peer_lost);  // the connection to the engine broke
    }
    item fail(errc e) {
        sticky = e;
        c_.shutdown();
        return bare(item::kind::error, sticky);
    }

    ws_client c_;
    std::unique_ptr<slot> cur_;  // what the next message is read into
    std::optional<decoded_frame_meta> meta_;  // a frame announced, its bytes not read yet
    bool reading_ = false, done_ = false;
    beast::error_code ec_;
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
