// Business rules and live availability through ugr.hpp, under AddressSanitizer + UBSan:
// constrained results hold only allowed items and K of them; bad rules throw ugr::Error with
// their status; availability changed by one thread while two others serve is seen whole.
#include "ugr.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                            \
    do {                                                                       \
        ++checks;                                                              \
        if (!(cond)) {                                                         \
            ++failures;                                                        \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

static bool contains(const std::vector<uint32_t>& v, uint32_t x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

static ugr_status status_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ugr::Error& e) {
        return e.status();
    }
    return UGR_STATUS_OK;
}

static std::vector<uint32_t> items_of(const std::vector<ugr_recommendation>& recs) {
    std::vector<uint32_t> out;
    for (const auto& r : recs) out.push_back(r.item);
    return out;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: rules_test MODEL\n");
        return 2;
    }
    const ugr::Engine engine = ugr::Engine::open(argv[1]);
    const std::vector<uint32_t> history{1, 2, 3};
    const auto plain = items_of(engine.recommend(history));
    CHECK(plain.size() == 10);

    // Deny the unconstrained top 5: ten other items still come back.
    ugr::Constraints deny_top;
    deny_top.deny.assign(plain.begin(), plain.begin() + 5);
    const auto denied = items_of(engine.recommend(history, deny_top));
    CHECK(denied.size() == 10);
    for (uint32_t x : denied) CHECK(!contains(deny_top.deny, x));

    // An allowlist of three items returns exactly those three.
    ugr::Constraints three;
    three.allow = std::vector<uint32_t>{40, 41, 42};
    auto got = items_of(engine.recommend(history, three));
    std::sort(got.begin(), got.end());
    CHECK(got == *three.allow);

    // Bad rules: typed errors, no crash.
    ugr::Constraints empty_allow;
    empty_allow.allow = std::vector<uint32_t>{};
    CHECK(status_of([&] { (void)engine.recommend(history, empty_allow); }) == UGR_STATUS_INVALID_ARGUMENT);
    ugr::Constraints unknown;
    unknown.deny = {4000000000u};
    CHECK(status_of([&] { (void)engine.recommend(history, unknown); }) == UGR_STATUS_UNKNOWN_ITEM);
    ugr::Constraints bad_prefix;
    bad_prefix.prefixes = {"<a_1"};
    CHECK(status_of([&] { (void)engine.recommend(history, bad_prefix); }) == UGR_STATUS_INVALID_ARGUMENT);

    // A batch under one set of rules equals single calls.
    const std::vector<std::vector<uint32_t>> users{{1}, {2, 3}, {}};
    const auto batch = engine.recommend_batch(users, deny_top);
    for (size_t u = 0; u < users.size(); ++u) {
        CHECK(items_of(batch[u]) == items_of(engine.recommend(users[u], deny_top)));
    }

    // Availability: the same answer as the denylist, then back to the plain one.
    CHECK(engine.set_available(deny_top.deny, false) == 5);
    CHECK(!engine.is_available(plain[0]));
    CHECK(items_of(engine.recommend(history)) == denied);
    CHECK(status_of([&] { (void)engine.set_available({plain[5], 4000000000u}, false); }) == UGR_STATUS_UNKNOWN_ITEM);
    CHECK(engine.is_available(plain[5]));
    CHECK(engine.set_available(deny_top.deny, true) == 5);
    CHECK(items_of(engine.recommend(history)) == plain);

    // One writer toggles the top 5 as one batch; two readers see the whole batch or none.
    std::atomic<bool> stop{false};
    std::atomic<int> torn{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t) {
        readers.emplace_back([&] {
            for (int i = 0; i < 200 || !stop.load(); ++i) {
                const auto now = items_of(engine.recommend(history));
                if (now != plain && now != denied) ++torn;
            }
        });
    }
    for (int round = 0; round < 500; ++round) {
        engine.set_available(deny_top.deny, round % 2 == 1);
    }
    stop = true;
    for (auto& r : readers) r.join();
    CHECK(torn.load() == 0);

    std::printf("rules_test: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
