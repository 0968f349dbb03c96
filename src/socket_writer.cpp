// The write end over the engine's channel socket. Chunks and messages are WebSocket messages;
// a frame is its meta as a text message, then its bytes as one binary message
// (wire/frame_meta_json.hpp). Every call drives what it sent to completion before it returns
// (within its deadline): a record committed and then left alone must not wait for the
// writer's next call.
//
// After the upgrade the writer owns the socket both ways (Beast neither reads nor writes it:
// Beast answers a ping or a close by writing at once, which could land inside one of our
// writes). It writes its own frames, one gather write per call (a frame's meta and bytes
// together), each masked with a zero key (wire/ws_frame.hpp): the payload goes from the
// caller's memory as it is, and the engine has nothing to unmask. It reads the engine's
// frames itself (wire/client_frames.hpp, server side): a close (a refusal, the reader's fate,
// or the answer to ours), pings (answered between two writes).
//
// Small messages: over plain TCP, a write with nothing in flight is first tried with one
// sendmsg(2) of its own, outside the event loop; only what the socket does not take at once
// goes through Asio (whose completion costs an epoll_wait or two per message). A writer that
// streams small messages (the next comes within `streaming_gap` of the last) hands them to a
// sender thread instead (send_queue.hpp), which sends whatever queued while its last send ran
// in one send(2): one syscall per batch, not per message, and still nothing waits for the
// writer's next call. Anything larger, a control frame or the close goes after the queue has
// drained, so the order on the wire is the order of the calls. What the engine sent is looked
// for at the start of a call, at most every `poll_every`.
#include "socket_ends.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include "shmchan/shm/layout.hpp"
#include "send_queue.hpp"
#include "waiting.hpp"
#include "wire/channel_socket.hpp"
#include "wire/frame_meta_json.hpp"
#include "wire/ws_frame.hpp"
#include "writer_replies.hpp"
#include "ws_client.hpp"

namespace shmchan::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t chunk_bytes = std::size_t{1} << 20;  // largest chunk message this writer sends
// The largest frame when the engine does not say (an engine before frames): its default limit
// on one message.
constexpr std::size_t default_max_frame = std::size_t{16} << 20;
// How long a failed write waits for the engine's close frame, which says why it failed.
constexpr auto close_wait = std::chrono::seconds(1);
// How often a call looks for what the engine sent (a ping answered, a close reported, within
// about this long of the next call): each look is an epoll_wait, as dear as a small send.
constexpr auto poll_every = std::chrono::microseconds(200);
// The send queue: units (a message or a frame with its headers) of at most coalesce_max bytes
// go through it while the writer streams, i.e. its previous unit came less than streaming_gap
// ago (a ping-pong's message, a round trip apart, is sent at once by the caller's thread).
constexpr std::size_t coalesce_max = 16u << 10;
constexpr std::size_t queue_bytes = 256u << 10;
constexpr auto streaming_gap = std::chrono::microseconds(20);
// flush()'s `next` for "everything queued must be on the wire first".
constexpr std::size_t drain_all = std::numeric_limits<std::size_t>::max();

// The engine's max_frame_header, or the default when absent or not a number.
std::size_t max_frame_from(const websocket::response_type& res) {
    const auto it = res.find(max_frame_header);
    if (it == res.end()) return default_max_frame;
    const auto v = it->value();
    std::size_t n = 0;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size()) return default_max_frame;
    return std::min(n, shm::max_record_payload);
}

class socket_writer final : public writer_impl {
public:
    socket_writer(const channel_ref& ref, const std::string& engine, const tls_client_options& tls)
        : c_(engine, channel_socket_target(ref), socket_connect_timeout, tls, ws_client::upgrade::raw),
          max_frame_(max_frame_from(c_.upgrade_response())) {
        path_ = transport::socket;
        // A refusal's close frame may have come with the engine's answer to the upgrade.
        const std::string early = c_.take_early_bytes();
        if (!take(std::as_bytes(std::span(early)))) watch();
    }

    ~socket_writer() override {
        if (!finished) abort("writer destroyed without close()");
        shutdown();
        c_.run_until([this] { return !writing_ && !reading_; }, deadline::none());
    }

    std::error_code write(std::span<const std::byte> bytes, nanoseconds t) override {
        if (auto e = ready()) return e;
        const deadline dl(t);
        const bool no_deadline = dl.infinite();
        for (std::size_t off = 0; off < bytes.size();) {
            const std::size_t n = std::min(chunk_bytes, bytes.size() - off);
            if (!flush(dl, n)) return errc::timeout;
            if (err_) return err_;
            // Without a deadline the call waits for the message, so it may be sent from the
            // caller's memory; with one, the message must outlive a timed-out call: copy it.
            if (no_deadline) send(asio::buffer(bytes.data() + off, n), n, true);
            else start(bytes.subspan(off, n), true);
            off += n;
        }
        if (!flush(dl)) return errc::timeout;  // the last message is on its way and counted
        return err_;
    }
    std::error_code try_write(std::span<const std::byte> bytes) override {
        if (auto e = ready()) return e;
        if (bytes.size() > max_record()) return errc::too_large;
        if (writing_) return errc::would_block;
        if (q_ && !q_->idle() && (bytes.size() > coalesce_max || !q_->has_room(unit_bytes(bytes.size()))))
            return errc::would_block;  // the queue goes first, and it must not be waited for here
        settle();
        if (err_) return err_;
        start(bytes, true);
        c_.poll();  // never blocks: what the socket takes now leaves now, the rest on the next call
        return err_;
    }
    loan make_loan(std::size_t n, nanoseconds) override {
        if (auto e = ready()) return failed_loan(e);
        if (n > max_record()) return failed_loan(errc::too_large);
        loan_buf_.resize(n);
        loan_out_ = true;
        return lend(loan_buf_.data(), n);
    }
    void commit_loan(std::size_t used) override {
        if (!loan_out_) return;
        loan_out_ = false;
        if (!flush(deadline::none(), used) || err_) return;
        std::swap(out_, loan_buf_);
        out_.resize(used);
        send_owned(true);
        (void)flush(deadline::none());  // committed: it leaves now (issue 14)
    }
    void abandon_loan() override { loan_out_ = false; }

    std::error_code write_frame(std::span<const std::byte> bytes, const frame_meta& meta, nanoseconds t) override {
        if (auto e = ready()) return e;
        if (auto e = refuse_frame(bytes.size(), meta)) return e;
        const deadline dl(t);
        meta_out_ = encode_frame_meta(bytes.size(), meta);
        if (!flush(dl, meta_out_.size() + bytes.size())) return errc::timeout;  // nothing sent: all or nothing
        if (err_) return err_;
        if (dl.infinite()) {
            send_frame(asio::buffer(bytes.data(), bytes.size()), bytes.size());
        } else {
            out_.assign(bytes.begin(), bytes.end());  // may outlive a call that returns at its deadline
            send_frame(asio::buffer(out_), out_.size());
        }
        // Started, so committed (all of it will go): wait for it within the deadline; past it,
        // it completes on the next call.
        (void)flush(dl);
        return err_;
    }
    loan make_frame_loan(std::size_t n, nanoseconds) override {
        if (auto e = ready()) return failed_loan(e);
        if (auto e = refuse_frame(n, {})) return failed_loan(e);
        loan_buf_.resize(n);
        loan_out_ = true;
        return lend_frame(loan_buf_.data(), n);
    }
    void commit_frame_loan(std::size_t used, const frame_meta& meta) override {
        if (!loan_out_) return;
        loan_out_ = false;
        meta_out_ = encode_frame_meta(used, meta);  // its user header was checked by loan::commit
        if (!flush(deadline::none(), meta_out_.size() + used) || err_) return;
        std::swap(out_, loan_buf_);
        out_.resize(used);
        send_frame(asio::buffer(out_), out_.size());
        (void)flush(deadline::none());
    }
    std::size_t max_frame() const override { return max_frame_; }

    std::error_code send_message(std::string_view text, nanoseconds t) override {
        if (auto e = ready()) return e;
        if (text.size() > max_record()) return errc::too_large;
        const deadline dl(t);
        if (!flush(dl, text.size())) return errc::timeout;
        if (err_) return err_;
        out_.assign(reinterpret_cast<const std::byte*>(text.data()),
                    reinterpret_cast<const std::byte*>(text.data()) + text.size());
        send_owned(false);
        written -= text.size();  // messages are not payload bytes
        (void)flush(dl);         // sent (it goes, whatever the deadline): wait for it within it
        return err_;
    }
    // A close that runs out of time stays under way (its close frame is sent): the next
    // close() waits on for the engine's answer, as a shared-memory close() is tried again.
    std::error_code close(nanoseconds t) override {
        if (err_ && !closing_) return err_;
        const deadline dl(t);
        if (!finished) {
            loan_out_ = false;
            if (!flush(dl, drain_all)) return errc::timeout;
            if (err_) return err_;
            finished = true;
            start_close(close_normal, "channel_close");
        } else if (!closing_) {
            return errc::closed;
        }
        return finish_close(dl);
    }
    void abort(std::string_view reason) override {
        if (closing_) {  // a close under way, given up on: the engine has the end record or not
            shutdown();
            (void)finish_close(deadline::none());
            return;
        }
        if (finished) return;
        finished = true;
        loan_out_ = false;
        // Bounded: an abort must not hang on a stuck connection.
        const deadline dl(2s);
        if (flush(dl, drain_all)) {
            start_close(close_aborted, aborted_close_reason(reason));
            (void)finish_close(dl);
        }
        shutdown();
        if (closing_) (void)finish_close(deadline::none());  // its handler runs after the shutdown
    }
    std::error_code wait_drained(nanoseconds) override {
        // Over a socket the writer only learns that the engine took every byte (the close
        // handshake completed); the reader's progress is not reported back.
        return err_;
    }
    std::size_t max_record() const override { return chunk_bytes; }
    std::size_t capacity() const override { return chunk_bytes; }
    int event_fd() override {
        throw error(errc::invalid_argument, "event_fd is available on shared-memory ends only");
    }

private:
    // A call first takes what the engine sent meanwhile (looked for at most every poll_every):
    // a ping is answered before this call's write, and a close (a refusal, the reader gone) is
    // reported by this call rather than after it streamed into a channel nobody reads.
    std::error_code ready() {
        if (const auto now = std::chrono::steady_clock::now(); now - last_poll_ >= poll_every) {
            last_poll_ = now;
            c_.poll();
        }
        settle();
        if (err_) return err_;
        if (finished) return errc::closed;
        if (loan_out_) return errc::invalid_argument;
        return {};
    }
    // check_frame's refusals, said of the socket path: the limit is the channel's ring, which
    // the engine announced at the upgrade.
    std::error_code refuse_frame(std::size_t n, const frame_meta& meta) {
        const std::error_code e = check_frame(n, meta);
        if (e == errc::too_large) {
            const std::size_t c = capacity_for_frame(n);
            detail_ = "frame of " + std::to_string(n) + " bytes exceeds the largest frame of this channel (" +
                      std::to_string(max_frame_) + " bytes, from the engine)";
            detail_ += c ? "; create the channel with capacity >= " + std::to_string(c)
                         : "; no channel holds a frame this large";
        }
        return e;
    }
    // Waits for the message in flight, and for the queue to take a unit of `next` payload
    // bytes (room for a small one; for a larger one, or drain_all, an empty queue). False on
    // deadline (what is in flight stays in flight).
    bool flush(const deadline& dl, std::size_t next = 0) {
        // One condition: a handler run while waiting for the queue may start a pong's write.
        const auto ready = [this, next] { return !writing_ && (!q_ || queue_ready(next)); };
        if (!ready()) {
            // The sender's notify (posted to the io_context) ends a wait for the queue; the
            // guard keeps run_one from returning at once when nothing else is pending.
            std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
            if (q_) {
                guard.emplace(c_.ioc().get_executor());
                q_->want_room();
            }
            if (!c_.run_until(ready, dl)) return false;
        }
        settle();
        return true;
    }
    bool queue_ready(std::size_t next) const {
        if (q_->error()) return true;  // nothing more goes through it: settle() reports why
        if (next <= coalesce_max) return q_->has_room(unit_bytes(next));
        return q_->idle();
    }
    // A message's bytes on the wire with its header (a frame's two headers at most).
    static std::size_t unit_bytes(std::size_t n) { return n + 2 * ws_client_header_max; }
    // A write fails when the engine closed the connection: its close frame, if one came, says
    // why (peer_closed, too_large, ...), and may still be on its way in. Without one: peer_lost.
    // A send queue that failed is such a write.
    void settle() {
        if (q_ && !write_failed_ && q_->error()) write_failed_ = true;
        if (!write_failed_ || writing_ || err_) return;
        (void)c_.run_until([this] { return !reading_; }, deadline(close_wait));
        if (!err_) err_ = make_error_code(errc::peer_lost);
    }
    void start(std::span<const std::byte> bytes, bool binary) {
        out_.assign(bytes.begin(), bytes.end());  // owned: a timed-out call may return first
        send_owned(binary);
    }
    void send_owned(bool binary) { send(asio::buffer(out_), out_.size(), binary); }
    void send(asio::const_buffer b, std::size_t n, bool binary) {
        written += n;  // handed to the transport
        const std::size_t h = ws_zero_key_header(head_, binary ? 0x2 : 0x1, n);
        out_bufs_ = {asio::buffer(head_.data(), h), b};
        write_out(2);
    }
    // A frame: meta_out_ as a text message, then `b` as one binary message, in one write.
    void send_frame(asio::const_buffer b, std::size_t n) {
        written += n;
        const std::size_t h1 = ws_zero_key_header(head_, 0x1, meta_out_.size());
        const std::size_t h2 = ws_zero_key_header(head2_, 0x2, n);
        out_bufs_ = {asio::buffer(head_.data(), h1), asio::buffer(meta_out_), asio::buffer(head2_.data(), h2), b};
        write_out(4);
    }
    void write_out(std::size_t nbufs) {
        if (queued(nbufs)) return;
        std::size_t done = send_now(nbufs), first = 0;
        last_unit_ = clock::now();
        while (first < nbufs && done >= out_bufs_[first].size()) done -= out_bufs_[first++].size();
        if (first == nbufs) return sent({});  // the socket took all of it
        out_bufs_[first] += done;
        writing_ = true;
        asio::async_write(c_.ws().next_layer(), std::span(out_bufs_.data() + first, nbufs - first),
                          transfer_all_at_once{}, [this](beast::error_code ec, std::size_t) { sent(ec); });
    }
    // Sends out_bufs_ through the send queue when the writer streams small units over plain
    // TCP (true then); otherwise first waits for the queue to drain, so the caller's write
    // follows what was queued before it.
    bool queued(std::size_t nbufs) {
        std::size_t n = 0;
        for (std::size_t i = 0; i < nbufs; ++i) n += out_bufs_[i].size();
        const auto now = clock::now();
        const bool streaming = (q_ && !q_->idle()) || now - last_unit_ < streaming_gap;
        // Measured as flush() measures it (payload plus room for two headers), so that a unit
        // flush() made room for is taken, and one it did not wait to drain for is not.
        if (n <= unit_bytes(coalesce_max) && streaming && !c_.ws().next_layer().is_tls()) {
            if (!q_) start_queue();
            std::array<std::span<const std::byte>, 4> pieces;
            for (std::size_t i = 0; i < nbufs; ++i)
                pieces[i] = {static_cast<const std::byte*>(out_bufs_[i].data()), out_bufs_[i].size()};
            if (q_->try_append(std::span(pieces.data(), nbufs))) {
                last_unit_ = now;
                return true;
            }
            // No room (a caller that did not flush for it) or a failed queue.
        }
        if (q_ && !q_->idle()) (void)flush(deadline::none(), drain_all);
        if (q_ && q_->error()) {
            write_failed_ = true;  // reported by settle(), as a failed write
            return true;
        }
        return false;
    }
    void start_queue() {
        auto& s = c_.ws().next_layer().tcp().socket();
        q_.emplace(s.native_handle(), queue_bytes,
                   [this] { asio::post(c_.ioc(), [this] { on_queue(); }); });
    }
    // On the writer's thread, after the sender went idle, freed room or failed: a control frame
    // held back while the queue was busy goes now.
    void on_queue() {
        if (q_->error()) write_failed_ = true;
        write_control();
    }
    // The sender stops before the socket closes (it must never send on a closed descriptor).
    void shutdown() {
        if (q_) q_->stop();
        c_.shutdown();
    }
    // What the socket takes at once of out_bufs_, without waiting: plain TCP only (TLS records
    // go through the stream). An error sends nothing here; Asio's write meets it and reports it.
    std::size_t send_now(std::size_t nbufs) {
        auto& s = c_.ws().next_layer();
        if (s.is_tls()) return 0;
        std::array<iovec, 4> iov{};
        for (std::size_t i = 0; i < nbufs; ++i)
            iov[i] = {const_cast<void*>(out_bufs_[i].data()), out_bufs_[i].size()};
        msghdr m{};
        m.msg_iov = iov.data();
        m.msg_iovlen = nbufs;
        const ssize_t r = ::sendmsg(s.tcp().socket().native_handle(), &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        return r > 0 ? static_cast<std::size_t>(r) : 0;
    }
    void sent(beast::error_code ec) {
        writing_ = false;
        // The engine or the channel went away: the close frame, if any, says more (watch(),
        // waited for by flush()).
        if (ec) write_failed_ = true;
        else write_control();
    }
    // A pong, or our close, between two writes (at once when none is under way).
    void write_control() {
        if (writing_ || write_failed_ || (q_ && !q_->idle())) return;
        const std::size_t n = ctl_.next();
        if (!n) return;
        writing_ = true;
        asio::async_write(c_.ws().next_layer(), asio::buffer(ctl_.out.data(), n),
                          [this](beast::error_code ec, std::size_t) { sent(ec); });
    }
    // The engine sends a writer nothing but a close frame: a refusal, or that it cannot deliver
    // (the reader left or died). A read stays posted to catch it, so the next write (not only
    // close()) reports it, and a writer never streams into a channel nobody reads.
    void watch() {
        reading_ = true;
        c_.ws().next_layer().async_read_some(asio::buffer(inbox_), [this](beast::error_code ec, std::size_t n) {
            reading_ = false;
            if (ec) return read_ended();
            if (!take(std::span(inbox_).first(n))) watch();
        });
    }
    // Parses what the engine sent; true when it sends nothing more.
    bool take(std::span<const std::byte> in) {
        if (!replies_.take(in, [this](std::span<const std::byte> ping) {
                ctl_.pong(ping);
                write_control();
            }))
            return false;
        // A refusal or the reader's fate, which a close frame replaces whatever a failed write
        // said (after our own close or abort, finish_close() reads the answer); broken bytes
        // are peer_lost.
        if (!finished && (replies_.close_received() || !err_)) err_ = replies_.fate();
        close_done_ = true;
        return true;
    }
    // The connection broke (or ended) without a close frame.
    void read_ended() {
        close_done_ = true;
        if (!finished && !err_) err_ = make_error_code(errc::peer_lost);
    }
    // Sends the close frame; finish_close() waits for the engine's answer.
    void start_close(std::uint16_t code, std::string_view reason) {
        closing_ = true;
        ctl_.close(code, close_reason_text(reason));
        write_control();
    }
    // errc::timeout when the answer has not come by `dl` (the close stays under way).
    std::error_code finish_close(const deadline& dl) {
        if (!c_.run_until([this] { return close_done_; }, dl)) return errc::timeout;
        closing_ = false;
        // The handshake is over: the connection goes now, not when the writer is destroyed. A
        // server's teardown (Beast's) waits for our end of it before it reports the close.
        shutdown();
        // The engine's close frame says whether it took the stream (1000), or refused or lost
        // it; without one, the connection broke.
        if (replies_.close_received()) return replies_.fate();
        return err_ ? err_ : make_error_code(errc::peer_lost);
    }

    ws_client c_;
    const std::size_t max_frame_;
    std::vector<std::byte> out_, loan_buf_;
    std::string meta_out_;
    // Writing: the headers and buffers of the write under way; a pong and our close, queued.
    ws_client_header_bytes head_{}, head2_{};
    std::array<asio::const_buffer, 4> out_bufs_;
    ws_client_controls ctl_;
    // Reading: the engine's frames.
    std::array<std::byte, 512> inbox_{};
    writer_replies replies_;
    bool reading_ = false;
    bool writing_ = false;
    bool write_failed_ = false;
    bool loan_out_ = false;
    bool closing_ = false;     // our close frame is sent, the engine's answer not yet read
    bool close_done_ = false;
    std::error_code err_;
    std::chrono::steady_clock::time_point last_poll_{};
    clock::time_point last_unit_{};  // when the previous unit was sent or queued
    // After c_ (it sends on c_'s socket and posts to its io_context): destroyed first.
    std::optional<send_queue> q_;
};

}  // namespace

std::unique_ptr<writer_impl> open_socket_writer(const channel_ref& ref, const std::string& engine,
                                                const tls_client_options& tls) {
    return std::make_unique<socket_writer>(ref, engine, tls);
}

}  // namespace shmchan::detail
