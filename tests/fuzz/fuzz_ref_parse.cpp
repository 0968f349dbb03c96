// Fuzzes channel_ref::parse and extract_channel_refs with arbitrary bytes.
//   parse: returns a ref or throws shmchan::error(errc::invalid_ref); never anything else.
//   A parsed ref survives dump() -> parse() unchanged.
//   extract_channel_refs: on any JSON nlohmann accepts, returns refs each of which has iii's
//   shape (is_channel_ref of the value at its path is not checked: paths are not unique when
//   keys contain '.' or '['), and never throws.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "shmchan/channel_ref.hpp"
#include "shmchan/error.hpp"

namespace {
[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_ref_parse: %s\n", what);
    std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    try {
        const shmchan::channel_ref r = shmchan::channel_ref::parse(text);
        if (r.channel_id.empty() || r.access_key.empty()) fail("parse accepted an empty field");
        if (shmchan::channel_ref::parse(r.dump()) != r) fail("dump/parse round trip changed the ref");
    } catch (const shmchan::error& e) {
        if (e.kind() != shmchan::errc::invalid_ref) fail("parse threw a shmchan::error other than invalid_ref");
    } catch (...) {
        fail("parse threw something other than shmchan::error");
    }

    const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded()) return 0;
    try {
        const auto refs = shmchan::extract_channel_refs(j);
        if (shmchan::is_channel_ref(j) && (refs.size() != 1 || !refs[0].first.empty()))
            fail("a root ref must be the only ref, at path \"\"");
        for (const auto& [path, ref] : refs)
            if (ref.channel_id.size() + ref.access_key.size() > size) fail("ref fields larger than the input");
    } catch (...) {
        fail("extract_channel_refs threw");
    }
    return 0;
}
