// fuzz_policy_protocol.cpp — the policy request parser on hostile bytes: the input is fed in
// pieces whose sizes come from the input itself, so splits land everywhere; every request that
// comes out goes through the pure decision functions, and every reply is formatted.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/config.hpp"
#include "policyd/decision.hpp"
#include "policyd/protocol.hpp"

using namespace postwarden;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const Config config = default_config();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    policy::Parser parser(policy::Limits{512, 16, 2048});
    std::size_t step = size ? data[0] % 37 + 1 : 1;
    while (!in.empty() && parser.feed(in.substr(0, step))) {
        in.remove_prefix(std::min(step, in.size()));
        while (auto request = parser.next()) {
            auto facts = policy::facts_of(*request, config);
            const ListPlan plan(policy::list_subject(facts), config);
            std::vector<std::vector<bool>> hits;
            for (const auto& q : plan)
                hits.emplace_back(q.size(), (size & 1) != 0);
            auto outcome = policy::evaluate_lists(plan.queries(), hits, facts.outbound);
            auto decision = policy::list_decision(outcome, config);
            (void)policy::format_reply(decision.action);
            (void)policy::log_line(facts, decision);
            (void)greylist_keys(facts.client, facts.sender, facts.recipient, facts.helo, config);
        }
    }
    return 0;
}
