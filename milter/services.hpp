// services.hpp — what every milter connection shares, built once at start (main.cpp): the
// configuration snapshot, SPF, DKIM, the Public Suffix List, DNS for DMARC records, Redis.
//
// Threading: everything here is safe to use from libmilter's connection threads at once (see
// each type's header). The only thing that changes after construction is the configuration
// snapshot, swapped whole by a reload (SIGUSR1, main.cpp): a Session takes the snapshot current
// when its SMTP connection starts and keeps it to the end, so one connection never mixes two.
#pragma once

#include <memory>
#include <mutex>

#include "common/config.hpp"
#include "common/dns/dns.hpp"
#include "common/dns/spf.hpp"
#include "common/mail/dkim.hpp"
#include "common/mail/dkim_sign.hpp"
#include "common/mail/dmarc.hpp"
#include "common/redis/redis.hpp"
#include "common/redis/redis_sync.hpp"
#include "milter/dkim_keys.hpp"
#include "milter/selector_cache.hpp"

namespace postwarden::milter {

struct Services {
    dns::Resolver resolver;  // DMARC records
    spf::Checker spf;
    dkim::Library dkim;
    dmarc::PublicSuffixList psl;
    SyncRedis redis;
    redis::Script greylist;
    mutable KeyStore keys;    // DKIM signing keys, emptied by a reload
    SelectorCache selectors;  // dkim:selectors:<domain>, kept exact by Redis

    explicit Services(std::shared_ptr<const Config> c);

    // The configuration in force; a reload swaps it. The parts built from it above (resolvers,
    // Redis) keep what they were built with: [dns] and [redis] changes need a restart.
    std::shared_ptr<const Config> config() const;
    void set_config(std::shared_ptr<const Config> c);
    // The signing library for [dkim] sign_headers and oversign; a reload that changes them
    // builds a new one (sessions keep theirs, as they keep their configuration).
    std::shared_ptr<const dkim::SigningLibrary> signing() const;

  private:
    mutable std::mutex config_mutex_;
    std::shared_ptr<const Config> config_;
    std::shared_ptr<const dkim::SigningLibrary> signing_;
};

dns::ResolverOptions resolver_options(const Config& config);

}  // namespace postwarden::milter
