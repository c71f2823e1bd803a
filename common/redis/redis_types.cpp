// redis_types.cpp — the label values of Failure; see redis_types.hpp.
#include "common/redis/redis_types.hpp"

#include <iterator>

namespace postwarden::redis {

std::vector<std::string> failure_labels() {
    return {std::begin(failure_names), std::end(failure_names)};
}

}  // namespace postwarden::redis
