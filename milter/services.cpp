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
    : config(std::move(c)),
      resolver(resolver_options(*config)),
      spf(resolver_options(*config)),
      dkim(resolver_options(*config)),
      redis(redis_options(*config)),
      greylist(std::string(script_text("greylist"))) {}

}  // namespace postwarden::milter
