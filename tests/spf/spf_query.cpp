// spf_query.cpp — runs SPF checks through postwarden's own path (spf::Checker on dns::Resolver)
// for scripts: the RFC 7208 conformance driver (run_rfc7208.py), and by hand.
//
// Usage: spf_query [--nameserver HOST[:PORT]]... [--timeout-ms N] [--cache-entries N]
//                  [--deadline-ms N]
//   Reads one check per line from standard input, "CLIENT_IP<TAB>MAIL_FROM<TAB>HELO" (MAIL_FROM
//   empty for <>; a line "helo<TAB>CLIENT_IP<TAB>HELO" checks the HELO identity), and writes
//   one line per check: "RESULT<TAB>DOMAIN<TAB>EXPLANATION", flushed at once so a driver can
//   converse with it. Exit status 2 on bad arguments. Like the daemons, it keeps DNS answers in
//   an answer cache ([dns] cache_entries' default, 10000; 0: none), so the RFC 7208 suite also
//   runs through the cache: later checks of a scenario get earlier answers from it. Each check
//   may take --deadline-ms in all ([dns] spf_deadline_ms' default, 20000).
//
// Threading: single-threaded; checks run one after another.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/dns_cache.hpp"
#include "common/dns/spf.hpp"

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> fields;
    size_t start = 0;
    while (true) {
        size_t tab = line.find('\t', start);
        fields.push_back(line.substr(start, tab == std::string::npos ? tab : tab - start));
        if (tab == std::string::npos) return fields;
        start = tab + 1;
    }
}

int usage() {
    std::cerr << "usage: spf_query [--nameserver HOST[:PORT]]... [--timeout-ms N]"
                 " [--cache-entries N] [--deadline-ms N] < 'IP<TAB>MAILFROM<TAB>HELO' lines\n";
    return 2;
}

postwarden::spf::Outcome run(const postwarden::spf::Checker& checker,
                             const std::vector<std::string>& fields) {
    if (fields.size() == 3 && fields[0] == "helo") return checker.check_helo(fields[1], fields[2]);
    return checker.check_mailfrom(fields[0], fields[1], fields[2]);
}

}  // namespace

int main(int argc, char** argv) {
    postwarden::dns::ResolverOptions options;
    long cache_entries = 10000;
    auto deadline = postwarden::spf::default_deadline;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--nameserver" && i + 1 < argc)
            options.nameservers.emplace_back(argv[++i]);
        else if (arg == "--timeout-ms" && i + 1 < argc)
            options.timeout_ms = std::atoi(argv[++i]);
        else if (arg == "--cache-entries" && i + 1 < argc)
            cache_entries = std::atol(argv[++i]);
        else if (arg == "--deadline-ms" && i + 1 < argc)
            deadline = std::chrono::milliseconds(std::atol(argv[++i]));
        else
            return usage();
    }
    if (cache_entries > 0)
        options.cache = std::make_shared<postwarden::dns::AnswerCache>(cache_entries);
    try {
        postwarden::spf::Checker checker(options, deadline);
        std::string line;
        while (std::getline(std::cin, line)) {
            auto fields = split_tabs(line);
            if (fields.size() != 3) {
                std::cout << "error\t\tbad input line" << std::endl;
                continue;
            }
            auto outcome = run(checker, fields);
            std::cout << to_string(outcome.result) << '\t' << outcome.domain << '\t'
                      << outcome.explanation << std::endl;
        }
    } catch (const std::exception& e) {
        std::cerr << "spf_query: " << e.what() << '\n';
        return usage();
    }
    return 0;
}
