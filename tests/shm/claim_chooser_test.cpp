// The loans' claim chooser (shmchan/shm/claim_chooser.hpp), fed synthetic costs: it learns both ways,
// settles on the cheaper one, keeps trying the other one rarely, and follows a change.
#include "shmchan/shm/claim_chooser.hpp"

#include <catch2/catch.hpp>

namespace {

// Runs `loans` loans where a claimed loan costs `claimed` ticks per byte and an unclaimed one
// `unclaimed`; returns how many were claimed.
int run(shmchan::shm::claim_chooser& c, int loans, double claimed, double unclaimed) {
    int n = 0;
    for (int i = 0; i < loans; ++i) {
        const bool claim = c.next();
        n += claim;
        c.took(static_cast<std::uint64_t>((claim ? claimed : unclaimed) * 65536), 65536);
    }
    return n;
}

}  // namespace

TEST_CASE("claim chooser: settles on the cheaper way, explores the other one rarely", "[claim]") {
    shmchan::shm::claim_chooser far;  // far cores: claiming is 3x cheaper
    const int claimed = run(far, 640, 1.0, 3.0);
    CHECK(far.claiming());
    CHECK(claimed >= 640 - 640 / 32 - 4);  // all but the explorations and the first tries
    CHECK(claimed < 640);                   // it did try the other way

    shmchan::shm::claim_chooser near;  // near cores: claiming is an extra pass
    const int near_claimed = run(near, 640, 1.5, 1.0);
    CHECK_FALSE(near.claiming());
    CHECK(near_claimed <= 640 / 32 + 4);
    CHECK(near_claimed > 0);
}

TEST_CASE("claim chooser: follows the cores moving apart and back", "[claim]") {
    shmchan::shm::claim_chooser c;
    run(c, 320, 1.5, 1.0);
    REQUIRE_FALSE(c.claiming());
    run(c, 320, 1.0, 3.0);  // the vCPUs moved apart: a few explorations see it
    CHECK(c.claiming());
    const int after = run(c, 320, 1.0, 3.0);
    CHECK(after >= 320 - 320 / 32 - 1);
    run(c, 320, 1.5, 1.0);  // and back
    CHECK_FALSE(c.claiming());
}

TEST_CASE("claim chooser: an empty commit teaches nothing", "[claim]") {
    shmchan::shm::claim_chooser c;
    for (int i = 0; i < 10; ++i) {
        (void)c.next();
        c.took(1000, 0);
    }
    CHECK_FALSE(c.claiming());  // no samples: the costs stay equal
}
