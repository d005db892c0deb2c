// libugr's C ABI under AddressSanitizer + LeakSanitizer + UBSan: every misuse case gives its
// status code (no crash, no leak), and 8 threads x 1000 requests (UGR_ABI_REQUESTS) equal the
// single-thread results.
#include "ugr.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        ++checks;                                                                     \
        if (!(cond)) {                                                                \
            ++failures;                                                               \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, \
                         __LINE__, #cond, ugr_last_error());                          \
        }                                                                             \
    } while (0)

#define CHECK_STATUS(call, want)                                                                 \
    do {                                                                                         \
        ++checks;                                                                                \
        const ugr_status got_ = (call);                                                          \
        if (got_ != (want)) {                                                                    \
            ++failures;                                                                          \
            std::fprintf(stderr, "%s:%d: %s gave %s, want %s (last error: %s)\n", __FILE__,       \
                         __LINE__, #call, ugr_status_name(got_), ugr_status_name(want),          \
                         ugr_last_error());                                                      \
        } else if (got_ != UGR_STATUS_OK && std::strlen(ugr_last_error()) == 0) {               \
            ++failures;                                                                          \
            std::fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__, #call); \
        }                                                                                        \
    } while (0)

using Recs = std::vector<ugr_recommendation>;

static Recs recommend(const ugr_engine* engine, const std::vector<uint32_t>& history, const ugr_options& options,
                      ugr_status* status_out = nullptr) {
    Recs out(options.k);
    size_t n = 12345;
    const ugr_status status =
        ugr_recommend(engine, history.data(), history.size(), &options, out.data(), out.size(), &n);
    if (status_out != nullptr) {
        *status_out = status;
    }
    if (status != UGR_STATUS_OK) {
        CHECK(n == 0);
        return {};
    }
    out.resize(n);
    return out;
}

static bool same(const Recs& a, const Recs& b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::memcmp(&a[i], &b[i], sizeof(ugr_recommendation)) != 0) {
            return false;
        }
    }
    return true;
}

static std::vector<std::vector<uint32_t>> histories(const ugr_engine* engine, size_t n) {
    // Items of the catalog, found by asking for everything once.
    ugr_engine_info info{};
    CHECK_STATUS(ugr_engine_get_info(engine, &info), UGR_STATUS_OK);
    ugr_options all = ugr_options_default();
    all.k = info.items;
    all.beam = 4;
    const Recs every = recommend(engine, {}, all);
    CHECK(every.size() == info.items);
    std::vector<std::vector<uint32_t>> out;
    uint64_t x = 0x9e3779b9u;
    for (size_t u = 0; u < n; ++u) {
        std::vector<uint32_t> h;
        for (size_t i = 0; i < u % 25; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            h.push_back(every[x % every.size()].item);
        }
        out.push_back(h);
    }
    return out;
}

static void bad_opens(const std::string& path) {
    ugr_engine* engine = reinterpret_cast<ugr_engine*>(0x1);  // must be overwritten with NULL
    CHECK_STATUS(ugr_engine_open("/nonexistent/model.ugr", &engine), UGR_STATUS_IO);
    CHECK(engine == nullptr);
    CHECK(std::strstr(ugr_last_error(), "/nonexistent/model.ugr") != nullptr);
    CHECK_STATUS(ugr_engine_open("/", &engine), UGR_STATUS_IO);
    CHECK_STATUS(ugr_engine_open(nullptr, &engine), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_open(path.c_str(), nullptr), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_open_bytes(nullptr, 10, &engine), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_open_bytes(nullptr, 0, &engine), UGR_STATUS_CORRUPT_MODEL);

    std::ifstream file(path, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    CHECK(bytes.size() > 1000);
    CHECK_STATUS(ugr_engine_open_bytes(bytes.data(), bytes.size(), nullptr), UGR_STATUS_NULL_PARAMETER);
    // Truncations: the header, then cuts spread over the file. Each copy is exactly sized so
    // ASan catches any read past the end.
    std::vector<size_t> cuts = {1, 4, 8, 12, 16, 20, 24, 31, bytes.size() - 1};
    for (size_t i = 1; i < 40; ++i) {
        cuts.push_back(bytes.size() * i / 40);
    }
    for (size_t cut : cuts) {
        std::vector<uint8_t> part(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
        engine = reinterpret_cast<ugr_engine*>(0x1);
        CHECK_STATUS(ugr_engine_open_bytes(part.data(), part.size(), &engine), UGR_STATUS_CORRUPT_MODEL);
        CHECK(engine == nullptr);
    }
    // Byte flips over the whole file (header, catalog, trie, graphs, checksum).
    for (size_t at = 0; at < bytes.size(); at += bytes.size() / 97) {
        std::vector<uint8_t> flipped = bytes;
        flipped[at] ^= 0x5a;
        const ugr_status s = ugr_engine_open_bytes(flipped.data(), flipped.size(), &engine);
        CHECK(s == UGR_STATUS_CORRUPT_MODEL || s == UGR_STATUS_UNSUPPORTED_VERSION);
        CHECK(engine == nullptr);
        ugr_engine_free(engine);
    }
    CHECK_STATUS(ugr_engine_open_bytes(bytes.data(), bytes.size(), &engine), UGR_STATUS_OK);
    CHECK(engine != nullptr);
    ugr_engine_free(engine);
    ugr_engine_free(nullptr);
}

static void misuse(const ugr_engine* engine) {
    const std::vector<uint32_t> history = {1, 2, 3};
    const ugr_options defaults = ugr_options_default();
    Recs out(10);
    size_t n = 0;
    // NULL for every pointer.
    CHECK_STATUS(ugr_recommend(nullptr, history.data(), 3, &defaults, out.data(), 10, &n), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_recommend(engine, nullptr, 3, &defaults, out.data(), 10, &n), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_recommend(engine, history.data(), 3, &defaults, nullptr, 10, &n), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_recommend(engine, history.data(), 3, &defaults, out.data(), 10, nullptr),
                 UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_recommend(engine, history.data(), 3, nullptr, out.data(), 10, &n), UGR_STATUS_OK);
    CHECK(n == 10);
    CHECK(std::strlen(ugr_last_error()) == 0);
    CHECK_STATUS(ugr_recommend(engine, history.data(), 3, &defaults, out.data(), 9, &n), UGR_STATUS_BUFFER_TOO_SMALL);
    ugr_engine_info info{};
    CHECK_STATUS(ugr_engine_get_info(nullptr, &info), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_get_info(engine, nullptr), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_get_info(engine, &info), UGR_STATUS_OK);
    const char* title = nullptr;
    size_t len = 0;
    CHECK_STATUS(ugr_engine_title(nullptr, 1, &title, &len), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_title(engine, 1, nullptr, &len), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_title(engine, 1, &title, nullptr), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_title(engine, 4000000000u, &title, &len), UGR_STATUS_UNKNOWN_ITEM);
    CHECK(title == nullptr && len == 0);
    CHECK_STATUS(ugr_engine_warm(nullptr, 20), UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_engine_warm(engine, 0), UGR_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ugr_engine_warm(engine, 20), UGR_STATUS_OK);

    // Options out of range, including values no enumerator has.
    auto bad = [&](void (*edit)(ugr_options&)) {
        ugr_options o = ugr_options_default();
        edit(o);
        ugr_status s = UGR_STATUS_OK;
        (void)recommend(engine, history, o, &s);
        return s;
    };
    CHECK(bad([](ugr_options& o) { o.k = 0; }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) { o.beam = 0; }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) { o.beam = size_t{1} << 40; }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) { o.pruning = 77; }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) { o.rank_by = 0xffffffffu; }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) { o.min_confidence = std::nanf(""); }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) { o.min_confidence = 2.0f; }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) {
              o.pruning = UGR_PRUNING_FIXED;
              o.prune_margin = -1.0f;
          }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) {
              o.pruning = UGR_PRUNING_ADAPTIVE;
              o.prune_levels = 0;
          }) == UGR_STATUS_INVALID_ARGUMENT);
    CHECK(bad([](ugr_options& o) { o.beta = INFINITY; }) == UGR_STATUS_INVALID_ARGUMENT);
    {
        ugr_options o = ugr_options_default();
        o.k = size_t{1} << 40;  // a huge K fails before any allocation of that size
        Recs one(1);
        CHECK_STATUS(ugr_recommend(engine, history.data(), 3, &o, one.data(), 1, &n), UGR_STATUS_INVALID_ARGUMENT);
        o.k = 70000;
        std::vector<ugr_recommendation> many(70000);
        CHECK_STATUS(ugr_recommend(engine, history.data(), 3, &o, many.data(), many.size(), &n),
                     UGR_STATUS_INVALID_ARGUMENT);
    }

    // Histories: unknown ids, empty, 100,000 items.
    ugr_status s = UGR_STATUS_OK;
    (void)recommend(engine, {1, 4000000000u}, defaults, &s);
    CHECK(s == UGR_STATUS_UNKNOWN_ITEM);
    CHECK(std::strstr(ugr_last_error(), "4000000000") != nullptr);
    CHECK(recommend(engine, {}, defaults).size() == 10);
    std::vector<uint32_t> longest(100000);
    for (size_t i = 0; i < longest.size(); ++i) {
        longest[i] = history[i % 3];
    }
    const std::vector<uint32_t> tail(longest.end() - info.max_history, longest.end());
    CHECK(same(recommend(engine, longest, defaults), recommend(engine, tail, defaults)));

    // K beyond the catalog returns the whole catalog, each item once.
    ugr_options all = ugr_options_default();
    all.k = info.items + 100;
    all.beam = 5;
    const Recs every = recommend(engine, history, all);
    CHECK(every.size() == info.items);
    all.exclude_history = 1;
    CHECK(recommend(engine, history, all).size() == info.items - 3);

    // Status names accept any number.
    CHECK(std::strcmp(ugr_status_name(UGR_STATUS_PANIC), "UGR_STATUS_PANIC") == 0);
    CHECK(std::strcmp(ugr_status_name(123456u), "UGR_STATUS_UNKNOWN") == 0);
}

static void batches(const ugr_engine* engine, const std::vector<std::vector<uint32_t>>& hs) {
    const ugr_options o = ugr_options_default();
    std::vector<uint32_t> items;
    std::vector<size_t> offsets = {0};
    for (const auto& h : hs) {
        items.insert(items.end(), h.begin(), h.end());
        offsets.push_back(items.size());
    }
    Recs out(hs.size() * o.k);
    std::vector<size_t> lens(hs.size());
    CHECK_STATUS(ugr_recommend_batch(engine, items.data(), offsets.data(), hs.size(), &o, out.data(), out.size(),
                                     lens.data()),
                 UGR_STATUS_OK);
    for (size_t u = 0; u < hs.size(); ++u) {
        const Recs single = recommend(engine, hs[u], o);
        CHECK(lens[u] == single.size());
        for (size_t i = 0; i < single.size() && i < lens[u]; ++i) {
            CHECK(std::fabs(out[u * o.k + i].score - single[i].score) <= 1e-4f);
        }
    }
    CHECK_STATUS(ugr_recommend_batch(engine, items.data(), nullptr, hs.size(), &o, out.data(), out.size(),
                                     lens.data()),
                 UGR_STATUS_NULL_PARAMETER);
    CHECK_STATUS(ugr_recommend_batch(engine, items.data(), offsets.data(), hs.size(), &o, out.data(), out.size() - 1,
                                     lens.data()),
                 UGR_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(ugr_recommend_batch(engine, items.data(), offsets.data(), hs.size(), &o, out.data(), out.size(),
                                     nullptr),
                 UGR_STATUS_NULL_PARAMETER);
    std::vector<size_t> decreasing = offsets;
    decreasing[2] = decreasing[3] + 1;
    CHECK_STATUS(ugr_recommend_batch(engine, items.data(), decreasing.data(), hs.size(), &o, out.data(), out.size(),
                                     lens.data()),
                 UGR_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(ugr_recommend_batch(engine, nullptr, nullptr, 0, nullptr, nullptr, 0, nullptr), UGR_STATUS_OK);
}

// Requests per thread: 1000, or UGR_ABI_REQUESTS (the valgrind run uses fewer: memcheck
// serialises the threads and runs some 50x slower).
static int requests_per_thread() {
    const char* env = std::getenv("UGR_ABI_REQUESTS");
    const int n = env != nullptr ? std::atoi(env) : 0;
    return n > 0 ? n : 1000;
}

static void threads(const ugr_engine* engine, const std::vector<std::vector<uint32_t>>& hs) {
    const int requests = requests_per_thread();
    const ugr_options o = ugr_options_default();
    std::vector<Recs> want;
    for (const auto& h : hs) {
        want.push_back(recommend(engine, h, o));
    }
    std::vector<int> mismatches(8, 0);
    std::vector<std::thread> pool;
    for (int t = 0; t < 8; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < requests; ++i) {
                const size_t u = static_cast<size_t>(i * 7 + t) % hs.size();
                if (!same(recommend(engine, hs[u], o), want[u])) {
                    ++mismatches[static_cast<size_t>(t)];
                }
            }
        });
    }
    for (auto& th : pool) {
        th.join();
    }
    for (int t = 0; t < 8; ++t) {
        CHECK(mismatches[static_cast<size_t>(t)] == 0);
    }
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: abi_test MODEL\n");
        return 2;
    }
    const std::string path = argv[1];
    bad_opens(path);
    ugr_engine* engine = nullptr;
    CHECK_STATUS(ugr_engine_open(path.c_str(), &engine), UGR_STATUS_OK);
    if (engine == nullptr) {
        return 1;
    }
    misuse(engine);
    const auto hs = histories(engine, 50);
    batches(engine, hs);
    threads(engine, hs);
    ugr_engine_free(engine);
    std::printf("abi_test: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
