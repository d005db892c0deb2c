// ugr.h and ugr.hpp as C++17: included twice, strict warnings, version macros, RAII use.
#include "ugr.h"
#include "ugr.h"
#include "ugr.hpp"
#include "ugr.hpp"

#include <iostream>
#include <string>

int main(int argc, char** argv) {
    const std::string expected = std::to_string(UGR_VERSION_MAJOR) + "." + std::to_string(UGR_VERSION_MINOR) + "." +
                                 std::to_string(UGR_VERSION_PATCH);
    if (ugr::version() != expected) {
        std::cerr << "header says " << expected << ", library says " << ugr::version() << '\n';
        return 1;
    }
    if (argc < 2) {
        return 2;
    }
    try {
        const ugr::Engine engine = ugr::Engine::open(argv[1]);
        const auto recs = engine.recommend({1, 2, 3});
        if (recs.size() != 10) {
            return 1;
        }
        std::cout << "C++17 wrapper: top item " << recs[0].item << " \"" << engine.title(recs[0].item) << "\"\n";
        (void)engine.recommend({4000000000u});
        std::cerr << "an unknown item did not throw\n";
        return 1;
    } catch (const ugr::Error& e) {
        if (e.status() != UGR_STATUS_UNKNOWN_ITEM) {
            std::cerr << e.what() << '\n';
            return 1;
        }
        std::cout << "unknown item throws: " << e.what() << '\n';
    }
    return 0;
}
