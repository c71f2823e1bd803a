// services.hpp — what every milter connection shares, built once at start (main.cpp): the
// configuration snapshot, SPF, DKIM, the Public Suffix List, DNS for DMARC records, Redis.
//
// Threading: everything here is safe to use from libmilter's connection threads at once (see
// each type's header); nothing is mutated after construction.
#pragma once

#include <memory>

#include "common/config.hpp"
#include "common/dkim.hpp"
#include "common/dmarc.hpp"
#include "common/dns.hpp"
#include "common/redis.hpp"
#include "common/redis_sync.hpp"
#include "common/spf.hpp"

namespace postwarden::milter {

struct Services {
    std::shared_ptr<const Config> config;
    dns::Resolver resolver;  // DMARC records
    spf::Checker spf;
    dkim::Library dkim;
    dmarc::PublicSuffixList psl;
    SyncRedis redis;
    redis::Script greylist;

    explicit Services(std::shared_ptr<const Config> c);
};

dns::ResolverOptions resolver_options(const Config& config);

}  // namespace postwarden::milter
