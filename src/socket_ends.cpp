// Channel ends over the engine's channel socket (what stock iii SDKs use), behind the same
// writer/reader interfaces as the shared-memory ends.
#include "socket_ends.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "waiting.hpp"
#include "wire/channel_socket.hpp"
#include "ws_client.hpp"

namespace shmchan::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t frame_bytes = std::size_t{1} << 20;  // largest frame this writer sends
const auto connect_timeout = 10s;

std::string target_for(const channel_ref& ref) {
    return "/ws/channels/" + ref.channel_id + "?key=" + ref.access_key + "&dir=" + to_string(ref.dir);
}

// What the engine's close frame to a writer means (wire/channel_socket.hpp): 1000 answers our
// own close; an abort never comes back to the writer that sent it.
std::error_code writer_close_code(const websocket::close_reason& r) {
    return decode_close(r.code, r.reason.c_str()).error;
}

class socket_writer final : public writer_impl {
public:
    socket_writer(const channel_ref& ref, const std::string& engine)
        : c_(engine, target_for(ref), connect_timeout) {
        path_ = transport::socket;
        watch();
    }

    ~socket_writer() override {
        if (!finished) abort("writer destroyed without close()");
        c_.shutdown();
        c_.run_until([this] { return !writing_ && !reading_; }, deadline::none());
    }

    std::error_code write(std::span<const std::byte> bytes, nanoseconds t) override {
        if (auto e = ready()) return e;
        const deadline dl(t);
        const bool no_deadline = dl.infinite();
        for (std::size_t off = 0; off < bytes.size();) {
            if (!flush(dl)) return errc::timeout;
            if (err_) return err_;
            const std::size_t n = std::min(frame_bytes, bytes.size() - off);
            // Without a deadline the call waits for the frame, so it may be sent from the
            // caller's memory; with one, the frame must outlive a timed-out call: copy it.
            if (no_deadline) send_frame(asio::buffer(bytes.data() + off, n), n, true);
            else start(bytes.subspan(off, n), true);
            off += n;
        }
        if (!flush(dl)) return errc::timeout;  // the last frame is on its way and counted
        return err_;
    }
    std::error_code try_write(std::span<const std::byte> bytes) override {
        if (auto e = ready()) return e;
        if (bytes.size() > max_record()) return errc::too_large;
        c_.poll();
        if (writing_) return errc::would_block;
        if (err_) return err_;
        start(bytes, true);
        c_.poll();
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
        if (!flush(deadline::none()) || err_) return;
        std::swap(out_, loan_buf_);
        out_.resize(used);
        send_owned(true);
    }
    void abandon_loan() override { loan_out_ = false; }
    // Frames over the socket: not carried yet (the wire encoding comes with the engine's bridges).
    std::error_code write_frame(std::span<const std::byte>, const frame_meta&, nanoseconds) override {
        detail_ = "frames are not carried over the socket path yet";
        return errc::invalid_argument;
    }
    loan make_frame_loan(std::size_t, nanoseconds) override {
        detail_ = "frames are not carried over the socket path yet";
        return failed_loan(errc::invalid_argument);
    }
    void commit_frame_loan(std::size_t, const frame_meta&) override {}
    std::size_t max_frame() const override { return 0; }
    std::error_code send_message(std::string_view text, nanoseconds t) override {
        if (auto e = ready()) return e;
        if (text.size() > max_record()) return errc::too_large;
        if (!flush(deadline(t))) return errc::timeout;
        if (err_) return err_;
        out_.assign(reinterpret_cast<const std::byte*>(text.data()),
                    reinterpret_cast<const std::byte*>(text.data()) + text.size());
        send_owned(false);
        written -= text.size();  // messages are not payload bytes
        return {};
    }
    std::error_code close(nanoseconds t) override {
        if (err_) return err_;
        if (finished) return errc::closed;
        loan_out_ = false;
        const deadline dl(t);
        if (!flush(dl)) return errc::timeout;
        if (err_) return err_;
        finished = true;
        return close_with({websocket::close_code::normal, "channel_close"}, dl);  // close_normal
    }
    void abort(std::string_view reason) override {
        if (finished) return;
        finished = true;
        loan_out_ = false;
        websocket::close_reason why;
        why.code = close_aborted;
        why.reason = aborted_close_reason(reason);
        // Bounded: an abort must not hang on a stuck connection.
        const deadline dl(2s);
        if (flush(dl)) (void)close_with(why, dl);
        c_.shutdown();
    }
    std::error_code wait_drained(nanoseconds) override {
        // Over a socket the writer only learns that the engine took every byte (the close
        // handshake completed); the reader's progress is not reported back.
        return err_;
    }
    std::size_t max_record() const override { return frame_bytes; }
    std::size_t capacity() const override { return frame_bytes; }
    int event_fd() override {
        throw error(errc::invalid_argument, "event_fd is available on shared-memory ends only");
    }

private:
    std::error_code ready() {
        if (err_) return err_;
        if (finished) return errc::closed;
        if (loan_out_) return errc::invalid_argument;
        return {};
    }
    // Waits for the frame in flight. False on deadline (the frame stays in flight).
    bool flush(const deadline& dl) {
        return c_.run_until([this] { return !writing_; }, dl);
    }
    void start(std::span<const std::byte> bytes, bool binary) {
        out_.assign(bytes.begin(), bytes.end());  // owned: a timed-out call may return first
        send_owned(binary);
    }
    void send_owned(bool binary) { send_frame(asio::buffer(out_), out_.size(), binary); }
    void send_frame(asio::const_buffer b, std::size_t n, bool binary) {
        writing_ = true;
        written += n;  // handed to the transport
        c_.ws().binary(binary);
        c_.ws().async_write(b, [this](beast::error_code ec, std::size_t) {
            writing_ = false;
            // The engine or the channel went away (the close frame, if any, says more: watch()).
            if (ec && !err_) err_ = make_error_code(errc::peer_lost);
        });
    }
    // The engine sends a writer nothing but a close frame: a refusal, or that it cannot deliver
    // (the reader left or died). A read stays posted to catch it, so the next write (not only
    // close()) reports it, and a writer never streams into a channel nobody reads.
    void watch() {
        reading_ = true;
        c_.ws().async_read(inbox_, [this](beast::error_code ec, std::size_t) {
            reading_ = false;
            if (!ec) {
                inbox_.consume(inbox_.size());
                return watch();
            }
            if (finished) return;  // after our own close or abort, close_with() reads the answer
            if (ec == websocket::error::closed) err_ = writer_close_code(c_.ws().reason());
            else if (!err_) err_ = make_error_code(errc::peer_lost);
        });
    }
    std::error_code close_with(websocket::close_reason why, const deadline& dl) {
        bool done = false;
        beast::error_code ec;
        c_.ws().async_close(why, [&](beast::error_code e) {
            ec = e;
            done = true;
        });
        if (!c_.run_until([&] { return done; }, dl)) {
            c_.shutdown();
            c_.run_until([&] { return done; }, deadline::none());
            return errc::timeout;
        }
        // The engine's close frame says whether it took the stream (1000), or refused or lost
        // it; without one, the connection broke.
        if (c_.ws().reason().code != websocket::close_code::none) return writer_close_code(c_.ws().reason());
        return ec ? (err_ ? err_ : make_error_code(errc::peer_lost)) : std::error_code();
    }

    ws_client c_;
    std::vector<std::byte> out_, loan_buf_;
    beast::flat_buffer inbox_;
    bool reading_ = false;
    bool writing_ = false;
    bool loan_out_ = false;
    std::error_code err_;
};

class socket_reader final : public reader_impl {
public:
    socket_reader(const channel_ref& ref, const std::string& engine)
        : c_(engine, target_for(ref), connect_timeout) {
        path_ = transport::socket;
    }

    ~socket_reader() override {
        c_.shutdown();  // a reader leaving early: the engine drops its end, the writer learns
        c_.run_until([this] { return !reading_; }, deadline::none());
    }

    item next(nanoseconds t, bool block) override {
        release_pending();
        if (ended) return bare(item::kind::end, {});
        if (sticky) return bare(item::kind::error, sticky);
        if (!reading_ && !done_) {
            reading_ = true;
            c_.ws().async_read(buf_, [this](beast::error_code ec, std::size_t) {
                reading_ = false;
                done_ = true;
                ec_ = ec;
            });
        }
        if (block) {
            if (!c_.run_until([this] { return done_; }, deadline(t)))
                return bare(item::kind::error, errc::timeout);
        } else {
            c_.poll();
            if (!done_) return bare(item::kind::error, errc::would_block);
        }
        done_ = false;
        if (!ec_) {
            const bool text = c_.ws().got_text();
            const auto d = buf_.cdata();
            if (!text) bytes += d.size();
            return view(text ? item::kind::message : item::kind::chunk,
                        {static_cast<const std::byte*>(d.data()), d.size()});
        }
        if (ec_ == websocket::error::closed) {
            const auto& r = c_.ws().reason();
            close_meaning m = decode_close(r.code, r.reason.c_str());
            if (!m.error) {
                ended = true;
                return bare(item::kind::end, {});
            }
            reason = std::move(m.abort_reason);
            return fail(static_cast<errc>(m.error.value()));
        }
        return fail(errc::peer_lost);  // the connection to the engine broke
    }
    void release_pending() override {
        if (!pending) return;
        pending = false;
        buf_.consume(buf_.size());
    }
    void release_held_to(std::uint64_t) override {}  // one item at a time on this path
    int event_fd() override {
        throw error(errc::invalid_argument, "event_fd is available on shared-memory ends only");
    }

private:
    item fail(errc e) {
        sticky = e;
        c_.shutdown();
        return bare(item::kind::error, sticky);
    }

    ws_client c_;
    beast::flat_buffer buf_;
    bool reading_ = false, done_ = false;
    beast::error_code ec_;
};

}  // namespace

std::unique_ptr<writer_impl> open_socket_writer(const channel_ref& ref, const std::string& engine) {
    return std::make_unique<socket_writer>(ref, engine);
}
std::unique_ptr<reader_impl> open_socket_reader(const channel_ref& ref, const std::string& engine) {
    return std::make_unique<socket_reader>(ref, engine);
}

}  // namespace shmchan::detail
