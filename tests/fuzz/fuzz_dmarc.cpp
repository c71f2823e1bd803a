// fuzz_dmarc.cpp — DMARC on hostile records and domains: record parsing, discovery at the From
// domain and its organizational domain, alignment and evaluation.
//
// Input, one item per line: the From domain; the SPF-authenticated domain ('+' in front: SPF
// passed, '~': temperror); the DKIM-passing domains, space separated; then the TXT answers, the
// one for _dmarc.<From domain> first, blocks separated by a line "--". A block is its records,
// one per line, or "NX" (no such name) or "TEMP" (temporary error).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/mail/dmarc.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace postwarden;

namespace {

dns::Answer answer_of(std::string_view block) {
    dns::Answer answer;
    if (block == "NX") {
        answer.status = dns::Status::nxdomain;
    } else if (block == "TEMP") {
        answer.status = dns::Status::temp_error;
    } else {
        for (auto line : fuzz::lines(block))
            answer.texts.emplace_back(line);
        answer.status = dns::Status::ok;
    }
    return answer;
}

void check_record(std::string_view text) {
    std::string error;
    auto record = dmarc::parse_record(text, &error);
    if (record && (record->pct < 0 || record->pct > 100)) __builtin_trap();
    if (!record && error.empty()) __builtin_trap();  // a refusal says why
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const dmarc::PublicSuffixList psl;
    std::string_view input(reinterpret_cast<const char*>(data), size);
    auto parts = fuzz::blocks(input);
    auto head = fuzz::lines(parts.front());
    std::string_view from = head.size() > 0 ? head[0] : "";
    std::string_view spf = head.size() > 1 ? head[1] : "";
    dmarc::Identifiers ids;
    if (!spf.empty() && (spf[0] == '+' || spf[0] == '~')) {
        ids.spf_pass = spf[0] == '+';
        ids.spf_temperror = spf[0] == '~';
        spf.remove_prefix(1);
    }
    ids.spf_domain = std::string(spf);
    if (head.size() > 2)
        for (auto d : fuzz::split(head[2], " "))
            if (!d.empty()) ids.dkim_pass_domains.emplace_back(d);
    // The rest of the first block, after the three lines, is the first answer.
    std::vector<dns::Answer> answers;
    if (head.size() > 3) {
        auto offset = head[0].size() + head[1].size() + head[2].size() + 3;
        answers.push_back(answer_of(parts.front().substr(offset)));
    }
    for (std::size_t i = 1; i < parts.size(); ++i)
        answers.push_back(answer_of(parts[i]));
    for (const auto& a : answers)
        for (const auto& t : a.texts)
            check_record(t);

    std::size_t next = 0;
    auto lookup = [&](const std::string& name) {
        if (name.rfind("_dmarc.", 0) != 0) __builtin_trap();  // only ever asks at _dmarc.
        return next < answers.size() ? answers[next++] : fuzz::status_only(dns::Status::nxdomain);
    };
    auto discovery = dmarc::discover(from, lookup, psl);
    for (int draw : {0, 99}) {
        auto e = dmarc::evaluate(from, discovery, ids, psl, draw);
        // A failure a temporary DNS error may have caused is marked so: it must never become
        // a permanent reject.
        if (e.result == dmarc::Result::fail && (ids.spf_temperror || ids.dkim_temperror) &&
            !e.maybe_temporary)
            __builtin_trap();
        if (e.policy != dmarc::Policy::none && e.result != dmarc::Result::fail) __builtin_trap();
        // pass means aligned, fail means not; a temperror says which, for the 451 (SPEC §10),
        // and it can only be aligned when something passed for a domain at all.
        if ((e.result == dmarc::Result::pass) != e.aligned &&
            e.result != dmarc::Result::temperror && e.result != dmarc::Result::none)
            __builtin_trap();
        if (e.aligned && !ids.spf_pass && ids.dkim_pass_domains.empty()) __builtin_trap();
    }
    for (const auto& d : ids.dkim_pass_domains) {
        bool strict = dmarc::aligned(from, d, dmarc::Alignment::strict, psl);
        bool relaxed = dmarc::aligned(from, d, dmarc::Alignment::relaxed, psl);
        if (strict && !relaxed) __builtin_trap();  // strict alignment implies relaxed
    }
    return 0;
}
