// services.cpp — building the shared services from the configuration; see services.hpp.
#include "milter/services.hpp"

#include "common/dns/dns_cache.hpp"
#include "common/redis/scripts.hpp"
#include "milter/metrics.hpp"

namespace postwarden::milter {

// Each call makes a new answer cache ([dns] cache_entries; none when 0): build the options once
// and hand the same ones to every resolver that should share it.
dns::ResolverOptions resolver_options(const Config& config) {
    dns::ResolverOptions o{config.dns.nameservers, config.dns.timeout_ms, &metrics().dns_latency,
                           &metrics().dns_lookups};
    if (config.dns.cache_entries > 0)
        o.cache =
            std::make_shared<dns::AnswerCache>(config.dns.cache_entries, &metrics().dns_cache);
    return o;
}

namespace {
redis::Options redis_options(const Config& config) {
    auto o = redis::options_from(config.redis);
    o.latency = &metrics().redis_latency;
    o.failures = &metrics().redis_failures;
    return o;
}
}  // namespace

Services::Services(std::shared_ptr<const Config> c)
    : resolver(resolver_options(*c)),
      // One answer cache for all three (members are built in this order): a sender's SPF, DKIM
      // and DMARC lookups are asked again for each of its messages.
      spf(resolver.options(), std::chrono::milliseconds(c->dns.spf_deadline_ms)),
      dkim(resolver.options()),
      redis(redis_options(*c)),
      greylist(std::string(script_text("greylist"))),
      selectors(redis_options(*c), c->redis.prefix),
      config_(std::move(c)),
      signing_(std::make_shared<const dkim::SigningLibrary>(
          dkim::HeaderSelection{config_->dkim.sign_headers, config_->dkim.oversign})) {}

std::shared_ptr<const Config> Services::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

void Services::set_config(std::shared_ptr<const Config> c) {
    std::shared_ptr<const dkim::SigningLibrary> fresh;
    {
        std::lock_guard lock(config_mutex_);
        const auto& was = config_->dkim;
        if (was.sign_headers != c->dkim.sign_headers || was.oversign != c->dkim.oversign)
            fresh = std::make_shared<const dkim::SigningLibrary>(
                dkim::HeaderSelection{c->dkim.sign_headers, c->dkim.oversign});
    }
    std::lock_guard lock(config_mutex_);
    config_.swap(c);
    if (fresh) signing_.swap(fresh);
    // The old snapshots (now in c and fresh) are released outside the lock, perhaps not the last
    // references.
}

std::shared_ptr<const dkim::SigningLibrary> Services::signing() const {
    std::lock_guard lock(config_mutex_);
    return signing_;
}

}  // namespace postwarden::milter
