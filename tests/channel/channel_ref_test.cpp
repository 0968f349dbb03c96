#include <catch2/catch.hpp>

#include "shmchan/channel_ref.hpp"
#include "shmchan/error.hpp"

using namespace shmchan;
using nlohmann::json;

namespace {
json ref_json(const char* dir = "read") {
    return {{"channel_id", "5f1e2d3c-0000-4000-8000-000000000001"},
            {"access_key", "9a8b7c6d-0000-4000-8000-000000000002"},
            {"direction", dir}};
}
errc parse_error(const std::string& text) {
    try {
        channel_ref::parse(text);
    } catch (const error& e) {
        return e.kind();
    }
    return errc::ok;
}
}  // namespace

TEST_CASE("refs round-trip through JSON, with and without the shm extension", "[ref]") {
    channel_ref r = channel_ref::from_json(ref_json("write"));
    CHECK(r.dir == direction::write);
    CHECK_FALSE(r.shm);
    CHECK(channel_ref::parse(r.dump()) == r);
    CHECK(r.to_json() == ref_json("write"));

    r.shm = shm_extension{"/shmchan-5f1e2d3c-0000-4000-8000-000000000001", "host-a"};
    json j = r.to_json();
    CHECK(j["shm"]["segment"] == "/shmchan-5f1e2d3c-0000-4000-8000-000000000001");
    CHECK(j["shm"]["host"] == "host-a");
    CHECK(is_channel_ref(j));  // stock iii sees a ref and ignores "shm"
    CHECK(channel_ref::from_json(j) == r);
    CHECK(j.get<channel_ref>() == r);
}

TEST_CASE("malformed refs are refused with invalid_ref", "[ref][errors]") {
    CHECK(parse_error("not json") == errc::invalid_ref);
    CHECK(parse_error("[1,2]") == errc::invalid_ref);
    CHECK(parse_error("{}") == errc::invalid_ref);
    json j = ref_json();
    j["direction"] = "sideways";
    CHECK(parse_error(j.dump()) == errc::invalid_ref);
    j = ref_json();
    j["channel_id"] = 7;
    CHECK(parse_error(j.dump()) == errc::invalid_ref);
    j = ref_json();
    j.erase("access_key");
    CHECK(parse_error(j.dump()) == errc::invalid_ref);
    j = ref_json();
    j["shm"] = "x";
    CHECK(parse_error(j.dump()) == errc::invalid_ref);
    j = ref_json();
    j["shm"] = {{"segment", 3}};
    CHECK(parse_error(j.dump()) == errc::invalid_ref);
    try {
        channel_ref::parse(R"({"channel_id":"a","direction":"read"})");
        FAIL("no exception");
    } catch (const error& e) {
        CHECK(std::string(e.what()).find("access_key") != std::string::npos);
    }
}

TEST_CASE("is_channel_ref follows iii's shape test", "[ref]") {
    CHECK(is_channel_ref(ref_json()));
    CHECK(is_channel_ref(ref_json("write")));
    json extra = ref_json();
    extra["whatever"] = 1;
    CHECK(is_channel_ref(extra));
    CHECK_FALSE(is_channel_ref(json::object()));
    CHECK_FALSE(is_channel_ref(json::array()));
    CHECK_FALSE(is_channel_ref("ref"));
    json bad = ref_json("both");
    CHECK_FALSE(is_channel_ref(bad));
    bad = ref_json();
    bad["access_key"] = nullptr;
    CHECK_FALSE(is_channel_ref(bad));
}

TEST_CASE("extract_channel_refs finds refs anywhere with iii's paths", "[ref]") {
    json payload = {
        {"filename", "report.csv"},
        {"reader", ref_json("read")},
        {"a", {{"b", json::array({ref_json("write"), 5})}}},
        {"list", json::array({json::object({{"x", ref_json()}}), "s"})},
    };
    auto refs = extract_channel_refs(payload);
    std::vector<std::string> paths;
    for (auto& [p, r] : refs) paths.push_back(p);
    std::sort(paths.begin(), paths.end());
    CHECK(paths == std::vector<std::string>{"a.b[0]", "list[0].x", "reader"});

    auto top = extract_channel_refs(json::array({1, json::object({{"x", ref_json()}})}));
    REQUIRE(top.size() == 1);
    CHECK(top[0].first == "[1].x");
    auto root = extract_channel_refs(ref_json());
    REQUIRE(root.size() == 1);
    CHECK(root[0].first.empty());
    CHECK(extract_channel_refs(json{{"a", 1}}).empty());
    // Keys are used as they are, even empty or bracketed ones; as in the Node SDK, an empty
    // prefix adds no '.'.
    auto odd_keys = extract_channel_refs(json{{"", {{"[0]", ref_json()}}}, {"k", {{"", ref_json()}}}});
    REQUIRE(odd_keys.size() == 2);
    CHECK(odd_keys[0].first == "[0]");
    CHECK(odd_keys[1].first == "k.");

    // A ref-shaped object with a broken extension is still reported, without the extension.
    json odd = ref_json();
    odd["shm"] = 12;
    auto r2 = extract_channel_refs(json{{"r", odd}});
    REQUIRE(r2.size() == 1);
    CHECK_FALSE(r2[0].second.shm);
}

TEST_CASE("extract_channel_refs survives hostile nesting", "[ref][hostile]") {
    // 200k levels: a recursive walk would overflow the stack.
    std::string deep(200000, '[');
    deep += ref_json().dump();
    deep += std::string(200000, ']');
    json j = json::parse(deep, nullptr, false);
    if (j.is_discarded()) {
        SUCCEED("the JSON parser refused the depth");
        return;
    }
    auto refs = extract_channel_refs(j);
    REQUIRE(refs.size() == 1);
    CHECK(refs[0].first.size() == 200000 * 3);  // "[0]" per level
}
