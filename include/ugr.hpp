// libugr C++17 wrapper: RAII engine handle, exceptions carrying the status code.
// Header-only, written by hand on top of the generated ugr.h (same version).
//
//   ugr::Engine engine = ugr::Engine::open("model.ugr");
//   for (const ugr_recommendation& r : engine.recommend({12, 873, 44})) {
//       std::cout << r.item << ' ' << engine.title(r.item) << ' ' << r.confidence << '\n';
//   }
//
// Thread safety as in ugr.h: one Engine may be used by many threads at once (every member
// function is const); it is movable, not copyable.
#ifndef UGR_HPP
#define UGR_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ugr.h"

namespace ugr {

// A failed libugr call: the status and the message of ugr_last_error().
class Error : public std::runtime_error {
public:
    Error(ugr_status status, const std::string& message)
        : std::runtime_error(std::string(ugr_status_name(static_cast<uint32_t>(status))) + ": " + message),
          status_(status) {}
    [[nodiscard]] ugr_status status() const noexcept { return status_; }

private:
    ugr_status status_;
};

namespace detail {
inline void check(ugr_status status) {
    if (status != UGR_STATUS_OK) {
        throw Error(status, ugr_last_error());
    }
}
struct EngineDeleter {
    void operator()(ugr_engine* engine) const noexcept { ugr_engine_free(engine); }
};
}  // namespace detail

// Business rules of a request, enforced inside the search (see ugr_constraints in ugr.h).
// Empty members impose nothing; an engaged `allow` restricts the results to its items (an
// engaged but empty allowlist is an error, not "allow everything").
struct Constraints {
    std::optional<std::vector<uint32_t>> allow;
    std::vector<uint32_t> deny;
    std::vector<std::string> prefixes;  // SID prefixes such as "<a_3>" or "<a_3><b_12>"
};

namespace detail {
// A ugr_constraints viewing a Constraints (which must outlive it).
class CConstraints {
public:
    explicit CConstraints(const Constraints& rules) : raw_(ugr_constraints_default()) {
        for (const auto& p : rules.prefixes) {
            prefixes_.push_back(p.c_str());
        }
        raw_.use_allow = rules.allow.has_value() ? 1u : 0u;
        if (rules.allow) {
            raw_.allow = rules.allow->data();
            raw_.allow_len = rules.allow->size();
        }
        raw_.deny = rules.deny.data();
        raw_.deny_len = rules.deny.size();
        raw_.prefixes = prefixes_.data();
        raw_.prefixes_len = prefixes_.size();
    }
    CConstraints(const CConstraints&) = delete;
    CConstraints& operator=(const CConstraints&) = delete;
    [[nodiscard]] const ugr_constraints* get() const noexcept { return &raw_; }

private:
    std::vector<const char*> prefixes_;
    ugr_constraints raw_;
};

// Histories in the CSR layout of ugr_recommend_batch.
struct Csr {
    explicit Csr(const std::vector<std::vector<uint32_t>>& histories) {
        for (const auto& h : histories) {
            items.insert(items.end(), h.begin(), h.end());
            offsets.push_back(items.size());
        }
    }
    std::vector<uint32_t> items;
    std::vector<std::size_t> offsets{0};
};

inline std::vector<std::vector<ugr_recommendation>> split(const std::vector<ugr_recommendation>& out,
                                                          const std::vector<std::size_t>& lens, std::size_t k) {
    std::vector<std::vector<ugr_recommendation>> result(lens.size());
    for (std::size_t u = 0; u < lens.size(); ++u) {
        const auto first = out.begin() + static_cast<std::ptrdiff_t>(u * k);
        result[u].assign(first, first + static_cast<std::ptrdiff_t>(lens[u]));
    }
    return result;
}
}  // namespace detail

// The default options (k 10, beam 20, ...); change fields as needed.
[[nodiscard]] inline ugr_options default_options() noexcept { return ugr_options_default(); }

// The library version at run time ("MAJOR.MINOR.PATCH").
[[nodiscard]] inline std::string_view version() noexcept { return ugr_version(); }

// An opened model bundle. Owns its ugr_engine and frees it on destruction.
class Engine {
public:
    [[nodiscard]] static Engine open(const std::string& path) {
        ugr_engine* raw = nullptr;
        detail::check(ugr_engine_open(path.c_str(), &raw));
        return Engine(raw);
    }

    [[nodiscard]] static Engine open_bytes(const void* bytes, std::size_t len) {
        ugr_engine* raw = nullptr;
        detail::check(ugr_engine_open_bytes(static_cast<const uint8_t*>(bytes), len, &raw));
        return Engine(raw);
    }

    [[nodiscard]] ugr_engine_info info() const {
        ugr_engine_info facts{};
        detail::check(ugr_engine_get_info(handle_.get(), &facts));
        return facts;
    }

    // Up to options.k items, best first. History: oldest first, most recent last.
    [[nodiscard]] std::vector<ugr_recommendation> recommend(
        const uint32_t* history, std::size_t len, const ugr_options& options = default_options()) const {
        std::vector<ugr_recommendation> out(options.k);
        std::size_t n = 0;
        detail::check(ugr_recommend(handle_.get(), history, len, &options, out.data(), out.size(), &n));
        out.resize(n);
        return out;
    }

    [[nodiscard]] std::vector<ugr_recommendation> recommend(
        const std::vector<uint32_t>& history, const ugr_options& options = default_options()) const {
        return recommend(history.data(), history.size(), options);
    }

    // Up to options.k items allowed by `rules` (enforced inside the search), best first.
    [[nodiscard]] std::vector<ugr_recommendation> recommend(const std::vector<uint32_t>& history,
                                                            const Constraints& rules,
                                                            const ugr_options& options = default_options()) const {
        const detail::CConstraints c(rules);
        std::vector<ugr_recommendation> out(options.k);
        std::size_t n = 0;
        detail::check(ugr_recommend_constrained(handle_.get(), history.data(), history.size(), c.get(), &options,
                                                out.data(), out.size(), &n));
        out.resize(n);
        return out;
    }

    // One result list per history, computed in batched calls.
    [[nodiscard]] std::vector<std::vector<ugr_recommendation>> recommend_batch(
        const std::vector<std::vector<uint32_t>>& histories, const ugr_options& options = default_options()) const {
        const detail::Csr csr(histories);
        std::vector<ugr_recommendation> out(histories.size() * options.k);
        std::vector<std::size_t> lens(histories.size());
        detail::check(ugr_recommend_batch(handle_.get(), csr.items.data(), csr.offsets.data(), histories.size(),
                                          &options, out.data(), out.size(), lens.data()));
        return detail::split(out, lens, options.k);
    }

    // One result list per history, every user under the same `rules`.
    [[nodiscard]] std::vector<std::vector<ugr_recommendation>> recommend_batch(
        const std::vector<std::vector<uint32_t>>& histories, const Constraints& rules,
        const ugr_options& options = default_options()) const {
        const detail::Csr csr(histories);
        const detail::CConstraints c(rules);
        std::vector<ugr_recommendation> out(histories.size() * options.k);
        std::vector<std::size_t> lens(histories.size());
        detail::check(ugr_recommend_batch_constrained(handle_.get(), csr.items.data(), csr.offsets.data(),
                                                      histories.size(), c.get(), 1, &options, out.data(),
                                                      out.size(), lens.data()));
        return detail::split(out, lens, options.k);
    }

    // Marks items available (true) or unavailable (false) as one batch, visible to the next
    // request, never half-applied. Returns how many changed state. Safe while other threads serve.
    std::size_t set_available(const std::vector<uint32_t>& items, bool available) const {
        std::vector<ugr_availability_change> changes;
        changes.reserve(items.size());
        for (uint32_t item : items) {
            changes.push_back({item, available ? 1u : 0u});
        }
        return update_availability(changes);
    }

    // A mixed batch of availability changes, applied in order as one batch.
    std::size_t update_availability(const std::vector<ugr_availability_change>& changes) const {
        std::size_t changed = 0;
        detail::check(ugr_engine_update_availability(handle_.get(), changes.data(), changes.size(), &changed));
        return changed;
    }

    // Serves the catalog of the artifact at `path` (written by `ugr catalog` from this
    // engine's artifact) from now on; requests in flight finish on the old one.
    void replace_catalog(const std::string& path) const {
        detail::check(ugr_engine_replace_catalog(handle_.get(), path.c_str()));
    }

    [[nodiscard]] bool is_available(uint32_t item) const {
        uint32_t yes = 0;
        detail::check(ugr_engine_is_available(handle_.get(), item, &yes));
        return yes != 0;
    }

    // The item's title ("" when it has none); a view valid while this Engine lives.
    [[nodiscard]] std::string_view title(uint32_t item) const {
        const char* ptr = nullptr;
        std::size_t len = 0;
        detail::check(ugr_engine_title(handle_.get(), item, &ptr, &len));
        return std::string_view(ptr, len);
    }

    // Builds the model plans for single-user calls at this beam width ahead of time.
    void warm(std::size_t beam) const { detail::check(ugr_engine_warm(handle_.get(), beam)); }

    // The C handle, for calls this wrapper does not cover. Still owned by this Engine.
    [[nodiscard]] const ugr_engine* get() const noexcept { return handle_.get(); }

private:
    explicit Engine(ugr_engine* raw) : handle_(raw) {}
    std::unique_ptr<ugr_engine, detail::EngineDeleter> handle_;
};

}  // namespace ugr

#endif  // UGR_HPP
