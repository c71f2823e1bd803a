// fuzz_main.cpp — runs a fuzz target without libFuzzer: every file named on the command line,
// and every file in every directory named, goes through LLVMFuzzerTestOneInput once. This is how
// the seed corpora (tests/fuzz/corpus/<target>/) run under ctest as regression tests with any
// compiler; the libFuzzer build (-DPOSTWARDEN_FUZZ=ON with clang) uses libFuzzer's own main.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {
int run_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    return 1;
}
}  // namespace

int main(int argc, char** argv) {
    int inputs = 0;
    for (int i = 1; i < argc; ++i) {
        std::filesystem::path p(argv[i]);
        if (std::filesystem::is_directory(p)) {
            for (const auto& e : std::filesystem::directory_iterator(p))
                if (e.is_regular_file()) inputs += run_file(e.path());
        } else {
            inputs += run_file(p);
        }
    }
    std::cout << "ran " << inputs << " inputs\n";
    return inputs > 0 ? 0 : 1;  // an empty corpus is a broken test, not a pass
}
