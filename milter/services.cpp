// services.cpp — building the shared services from the configuration; see services.hpp.
#include "milter/services.hpp"

#include "common/scripts.hpp"
#include "milter/metrics.hpp"

namespace postwarden::milter {

dns::ResolverOptions resolver_options(const Config& config) {
    return {config.dns.nameservers, config.dns.timeout_ms, &metrics().dns_latency,
            &metrics().dns_lookups};
}

namespace {
redis::Options redis_options(const Config& config) {
    redis::Options o;
    o.address = config.redis.address;
    o.password = config.redis.password;
    o.timeout_ms = config.redis.timeout_ms;
    o.latency = &metrics().redis_latency;
    o.failures = &metrics().redis_failures;
    return o;
}
}  // namespace

Services::Services(std::shared_ptr<const Config> c)
    : resolver(resolver_options(*c)),
      spf(resolver_options(*c)),
      dkim(resolver_options(*c)),
      redis(redis_options(*c)),
      greylist(std::string(script_text("greylist"))),
      config_(std::move(c)) {}

std::shared_ptr<const Config> Services::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

void Services::set_config(std::shared_ptr<const Config> c) {
    std::lock_guard lock(config_mutex_);
    config_.swap(c);
    // The old snapshot (now in c) is released outside the lock, perhaps not the last reference.
}

}  // namespace postwarden::milter
