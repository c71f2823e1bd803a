// redis_types.cpp — the label values of Failure; see redis_types.hpp.
#include "common/redis/redis_types.hpp"

#include <iterator>

namespace postwarden::redis {

Options options_from(const Config::Redis& redis) {
    Options o;
    o.address = redis.address;
    o.password = redis.password;
    o.timeout_ms = redis.timeout_ms;
    o.sentinels = redis.sentinels;
    o.master_name = redis.master_name;
    o.sentinel_password = redis.sentinel_password;
    o.cluster = redis.cluster;
    o.seeds = redis.seeds;
    return o;
}

std::vector<std::string> failure_labels() {
    return {std::begin(failure_names), std::end(failure_names)};
}

}  // namespace postwarden::redis
