// The public writer, reader, loan and item: thin forwards to the end behind them (ends.hpp),
// which a deferred end opens on first use.
#include <algorithm>
#include <utility>

#include "ends.hpp"
#include "shmchan/channel.hpp"

namespace shmchan {

namespace {
// Opens a deferred end in place: `impl` takes the opened end, or `failure` says why it could not.
template <class Impl, class Open>
Impl* open_deferred(std::unique_ptr<Impl>& impl, std::unique_ptr<detail::deferred_open>& deferred,
                    std::error_code& failure, Open open) noexcept {
    if (!impl && deferred) {
        try {
            impl = detail::end_access::release(open(deferred->ref, deferred->options));
        } catch (const error& e) {
            failure = e.code();
        } catch (...) {
            failure = errc::system_error;
        }
        deferred.reset();
    }
    return impl.get();
}
}  // namespace

// --- loan ------------------------------------------------------------------------------------
loan::loan(loan&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)), error_(o.error_), frame_(o.frame_) {}
loan& loan::operator=(loan&& o) noexcept {
    if (this != &o) {
        abandon();
        owner_ = std::exchange(o.owner_, nullptr);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
        error_ = o.error_;
        frame_ = o.frame_;
    }
    return *this;
}
loan::~loan() { abandon(); }
void loan::commit(std::size_t used) noexcept {
    if (frame_) return (void)commit(used, frame_meta{});  // no user header: cannot be refused
    if (owner_) owner_->commit_loan(std::min(used, size_));
    owner_ = nullptr;
    data_ = nullptr;
    size_ = 0;
}
std::error_code loan::commit(std::size_t used, const frame_meta& meta) noexcept {
    if (!frame_) {
        commit(used);
        return {};
    }
    if (owner_) {
        if (auto e = owner_->refuse_user_header(meta)) return e;  // the loan stays open
        owner_->commit_frame_loan(std::min(used, size_), meta);
    }
    owner_ = nullptr;
    data_ = nullptr;
    size_ = 0;
    return {};
}
void loan::abandon() noexcept {
    if (owner_) owner_->abandon_loan();
    owner_ = nullptr;
    data_ = nullptr;
    size_ = 0;
}

// --- writer ----------------------------------------------------------------------------------
writer::writer() = default;
writer::writer(std::unique_ptr<detail::writer_impl> impl) noexcept : impl_(std::move(impl)) {}
writer::writer(writer&&) noexcept = default;
writer& writer::operator=(writer&&) noexcept = default;
writer::~writer() = default;

// The slow path of every call: an end not opened yet (deferred) is opened here, once.
detail::writer_impl* writer::live() noexcept {
    return open_deferred(impl_, deferred_, failure_, [](const channel_ref& r, const channel_options& o) { return open_writer(r, o); });
}
std::error_code writer::failure() const noexcept { return failure_ ? failure_ : make_error_code(errc::closed); }

std::error_code writer::write(std::span<const std::byte> b, nanoseconds t) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    return w ? w->write(b, t) : failure();
}
std::error_code writer::try_write(std::span<const std::byte> b) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    return w ? w->try_write(b) : failure();
}
loan writer::get_loan(std::size_t n, nanoseconds t) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    if (!w) {
        loan l;
        l.error_ = failure();
        return l;
    }
    return w->make_loan(n, t);
}
loan writer::try_loan(std::size_t n) noexcept { return get_loan(n, nanoseconds::zero()); }
std::error_code writer::write_frame(std::span<const std::byte> b, const frame_meta& m, nanoseconds t) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    return w ? w->write_frame(b, m, t) : failure();
}
loan writer::get_frame_loan(std::size_t n, nanoseconds t) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    if (!w) {
        loan l;
        l.error_ = failure();
        return l;
    }
    return w->make_frame_loan(n, t);
}
std::error_code writer::send_message(std::string_view text, nanoseconds t) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    return w ? w->send_message(text, t) : failure();
}
std::error_code writer::close(nanoseconds t) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    return w ? w->close(t) : failure();
}
void writer::abort(std::string_view reason) noexcept {
    if (auto* w = impl_ ? impl_.get() : live()) w->abort(reason);
}
std::error_code writer::wait_drained(nanoseconds t) noexcept {
    auto* w = impl_ ? impl_.get() : live();
    return w ? w->wait_drained(t) : failure();
}
int writer::event_fd() {
    auto* w = impl_ ? impl_.get() : live();
    if (!w) throw error(static_cast<errc>(failure().value()), failure_ ? "event_fd: the writer end could not be opened" : "event_fd on an empty writer");
    return w->event_fd();
}
std::vector<reader_status> writer::readers() const { return impl_ ? impl_->readers() : std::vector<reader_status>{}; }
const char* to_string(reader_status::state s) noexcept {
    switch (s) {
        case reader_status::state::waiting: return "waiting";
        case reader_status::state::reading: return "reading";
        case reader_status::state::done: return "done";
        case reader_status::state::left: return "left";
        case reader_status::state::lost: return "lost";
    }
    return "?";
}
std::size_t writer::max_record() const noexcept { return impl_ ? impl_->max_record() : 0; }
std::size_t writer::capacity() const noexcept { return impl_ ? impl_->capacity() : 0; }
std::size_t writer::max_frame() const noexcept { return impl_ ? impl_->max_frame() : 0; }
std::string writer::last_error() const { return impl_ ? impl_->last_error() : std::string(); }
std::uint64_t writer::bytes_written() const noexcept { return impl_ ? impl_->bytes_written() : 0; }
bool writer::is_open() const noexcept { return deferred_ || (impl_ && !impl_->is_finished()); }
transport writer::via() const noexcept { return impl_ ? impl_->path() : transport::automatic; }

// --- item / reader ---------------------------------------------------------------------------
item::item(item&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), token_(o.token_), kind_(o.kind_), data_(o.data_),
      error_(o.error_), meta_(o.meta_), gap_(o.gap_), end_(o.end_) {}
item& item::operator=(item&& o) noexcept {
    if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
        token_ = o.token_;
        kind_ = o.kind_;
        data_ = o.data_;
        error_ = o.error_;
        meta_ = o.meta_;
        gap_ = o.gap_;
        end_ = o.end_;
    }
    return *this;
}
bool item::intact() const noexcept {
    if (owner_) return owner_->intact(end_);
    return kind_ != kind::chunk && kind_ != kind::frame && kind_ != kind::message;  // released
}
void item::release() noexcept {
    if (owner_) owner_->release_token(token_);
    owner_ = nullptr;
}

reader::reader() = default;
reader::reader(std::unique_ptr<detail::reader_impl> impl) noexcept : impl_(std::move(impl)) {}
reader::reader(reader&&) noexcept = default;
reader& reader::operator=(reader&&) noexcept = default;
reader::~reader() = default;

detail::reader_impl* reader::live() noexcept {
    return open_deferred(impl_, deferred_, failure_, [](const channel_ref& r, const channel_options& o) { return open_reader(r, o); });
}

item reader::next(nanoseconds t) noexcept {
    auto* r = impl_ ? impl_.get() : live();
    if (!r) return detail::reader_impl::bare(item::kind::error, failure_ ? failure_ : make_error_code(errc::closed));
    return r->next(t, true);
}
item reader::try_next() noexcept {
    auto* r = impl_ ? impl_.get() : live();
    if (!r) return detail::reader_impl::bare(item::kind::error, failure_ ? failure_ : make_error_code(errc::closed));
    return r->next(nanoseconds::zero(), false);
}
item reader::next_binary(nanoseconds t) noexcept {
    for (;;) {
        item it = next(t);
        if (!it.is_message()) return it;
        if (on_message_) on_message_(it.text());
    }
}
void reader::on_message(std::function<void(std::string_view)> cb) {
    on_message_ = std::move(cb);
}
std::error_code reader::read_all(std::vector<std::byte>& out, nanoseconds t) noexcept {
    for (;;) {
        item it = next(t);
        switch (it.type()) {
            case item::kind::chunk:
            case item::kind::frame:
                out.insert(out.end(), it.data().begin(), it.data().end());
                break;
            case item::kind::message:
                if (on_message_) on_message_(it.text());
                break;
            case item::kind::end: return {};
            case item::kind::error: return it.error();
            case item::kind::gap: return errc::data_lost;  // the stream has a hole: not "all"
        }
    }
}
std::vector<std::byte> reader::read_all(nanoseconds t) {
    std::vector<std::byte> out;
    if (auto e = read_all(out, t)) {
        std::string what = std::string("read_all: ") + e.message();
        if (e == errc::aborted) what += ": " + abort_reason();
        throw error(static_cast<errc>(e.value()), what);
    }
    return out;
}
int reader::event_fd() {
    auto* r = impl_ ? impl_.get() : live();
    if (!r) {
        if (failure_) throw error(static_cast<errc>(failure_.value()), "event_fd: the reader end could not be opened");
        throw error(errc::closed, "event_fd on an empty reader");
    }
    return r->event_fd();
}
std::string reader::abort_reason() const { return impl_ ? impl_->abort_reason() : std::string(); }
std::error_code reader::status() const noexcept { return impl_ ? impl_->status() : failure_; }
bool reader::at_end() const noexcept { return impl_ && impl_->at_end(); }
std::uint64_t reader::bytes_read() const noexcept { return impl_ ? impl_->bytes_read() : 0; }
transport reader::via() const noexcept { return impl_ ? impl_->path() : transport::automatic; }

namespace detail {
writer deferred_writer(const channel_ref& ref, const channel_options& options) {
    return end_access::deferred_writer({ref, options});
}
reader deferred_reader(const channel_ref& ref, const channel_options& options) {
    return end_access::deferred_reader({ref, options});
}
}  // namespace detail

}  // namespace shmchan
