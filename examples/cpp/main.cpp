// Loads a ugr bundle and recommends for histories read from a file or stdin, one user per
// line (item ids separated by spaces or commas, oldest first), printing items, titles when
// the bundle has them, and confidence.
//
//   ugr_example MODEL.ugr [--k N] [--beam B] [--exclude-history] [HISTORIES_FILE]
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "ugr.hpp"

namespace {

int usage() {
    std::cerr << "usage: ugr_example MODEL.ugr [--k N] [--beam B] [--exclude-history] [HISTORIES_FILE]\n";
    return 2;
}

// Parses "12 873, 44"; false on anything that is not an unsigned 32-bit id.
bool parse_history(const std::string& line, std::vector<uint32_t>& out) {
    std::string cleaned = line;
    for (char& c : cleaned) {
        if (c == ',') c = ' ';
    }
    std::istringstream in(cleaned);
    std::string token;
    while (in >> token) {
        char* end = nullptr;
        const unsigned long long v = std::strtoull(token.c_str(), &end, 10);
        if (*end != '\0' || token[0] == '-' || v > 0xffffffffull) return false;
        out.push_back(static_cast<uint32_t>(v));
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string model = argv[1];
    ugr_options options = ugr::default_options();
    std::string input;
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "--k" || arg == "--beam") && i + 1 < argc) {
            const long v = std::strtol(argv[++i], nullptr, 10);
            if (v <= 0) return usage();
            (arg == "--k" ? options.k : options.beam) = static_cast<std::size_t>(v);
        } else if (arg == "--exclude-history") {
            options.exclude_history = 1;
        } else if (input.empty() && arg[0] != '-') {
            input = arg;
        } else {
            return usage();
        }
    }

    try {
        const ugr::Engine engine = ugr::Engine::open(model);
        const ugr_engine_info info = engine.info();
        std::cout << "libugr " << ugr::version() << ": " << info.items << " items, " << info.levels
                  << " SID levels, reads the last " << info.max_history << " history items\n";

        std::ifstream file;
        if (!input.empty()) {
            file.open(input);
            if (!file) {
                std::cerr << "cannot read " << input << '\n';
                return 1;
            }
        }
        std::istream& in = input.empty() ? std::cin : file;
        std::string line;
        for (int user = 1; std::getline(in, line); ++user) {
            std::vector<uint32_t> history;
            if (!parse_history(line, history)) {
                std::cout << "user " << user << ": not a list of item ids: " << line << '\n';
                continue;
            }
            std::cout << "user " << user << " (" << history.size() << " items):\n";
            try {
                for (const ugr_recommendation& r : engine.recommend(history, options)) {
                    std::cout << "  item " << std::setw(8) << r.item << "  confidence " << std::fixed
                              << std::setprecision(3) << r.confidence << "  score " << r.score;
                    const std::string_view title = engine.title(r.item);
                    if (!title.empty()) std::cout << "  " << title;
                    std::cout << '\n';
                }
            } catch (const ugr::Error& e) {
                // A bad request (say, an unknown item) fails alone; the service carries on.
                std::cout << "  error: " << e.what() << '\n';
            }
        }
    } catch (const ugr::Error& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
    return 0;
}
