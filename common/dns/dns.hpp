// dns.hpp — a blocking stub resolver for [dns] (SPEC §2), on c-ares. SPF (common/dns/spf.hpp)
// sends every lookup through it, and the milter feeds its raw answers to libopendkim.
//
// Entry points: Resolver::query(); the nameservers syntax (validate_nameservers(), for the
// configuration parser) is common/nameservers.hpp, which this header includes. What
// an answer holds (Type, Status, Answer) is in dns_answer.hpp, which this header includes.
//
// Threading: Resolver is immutable after construction and query() takes a c-ares channel of
// its own for the call (reused between calls, mutex-guarded), so one Resolver may be shared by
// any number of threads. Each query() blocks the calling thread for at most about timeout_ms.
// The answer cache (dns_cache.hpp) several Resolvers may share locks itself.
//
// Why c-ares and not libunbound: it is a plain stub resolver that talks to exactly the
// server:port it is given, with explicit timeouts; libunbound refuses 127.0.0.0/8 servers by
// default and treats .test as a local zone, which would defeat the test fixtures.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/dns_answer.hpp"
#include "common/nameservers.hpp"

namespace postwarden::metrics {
class Histogram;
class CounterFamily;
}  // namespace postwarden::metrics

namespace postwarden::dns {

class AnswerCache;  // dns_cache.hpp
class ChannelPool;  // dns.cpp

struct ResolverOptions {
    // "host", "host:port", "[v6]:port" or a bare IPv6 literal; hosts are IP literals.
    // Empty: the system resolver (/etc/resolv.conf).
    std::vector<std::string> nameservers;
    int timeout_ms = 2000;  // the whole query, retries included
    // Instruments of the metrics endpoint (common/metrics.hpp); null: not measured. latency:
    // seconds per query(); lookups: queries by Status, one series per Status in its order.
    metrics::Histogram* latency = nullptr;
    metrics::CounterFamily* lookups = nullptr;
    // Answers are kept here for their TTL (dns_cache.hpp) and shared with every Resolver given
    // the same cache; null: every query() asks the network. latency and lookups measure only
    // the queries that reach the network.
    std::shared_ptr<AnswerCache> cache = nullptr;
};

// Decodes a reply packet as query() does once c-ares has one: the status from its RCODE and
// answer count (NXDOMAIN: nxdomain; other errors: temp_error), the records of `type` from its
// answer section (malformed: temp_error). Pure, any bytes in; the fuzz targets feed it hostile
// packets.
Answer decode_reply(std::vector<unsigned char> packet, Type type);

// Where a Resolver gets its answers when not from the network. Used by the fuzz targets (no
// network there): SPF and DKIM run unchanged on answers decoded from hostile packets.
using AnswerSource = std::function<Answer(std::string_view name, Type type)>;

class Resolver {
  public:
    // Throws std::invalid_argument when a nameserver entry is malformed.
    explicit Resolver(ResolverOptions options);
    // Answers every query from `source` instead of the network.
    explicit Resolver(AnswerSource source) : source_(std::move(source)) {}

    // Looks up name/type (class IN), following CNAMEs as the server returns them; from the
    // cache when it holds a fresh answer. A cached answer's packet is the one first received,
    // its ID and TTLs not rewritten: libopendkim, which parses it, reads neither (it reads TTLs
    // only for its own key cache, DKIM_LIBFLAGS_CACHE, which dkim.cpp does not turn on).
    // A name with non-ASCII bytes is asked, and cached, in A-labels (idna.hpp); one that has
    // no A-label spelling is nxdomain, asked of nobody.
    Answer query(std::string_view name, Type type) const;
    // The same, waiting on the network no later than `deadline` (nor longer than timeout_ms):
    // a caller's budget for several lookups (an SPF check). Past it: temp_error "deadline",
    // without a query.
    Answer query(std::string_view name, Type type,
                 std::chrono::steady_clock::time_point deadline) const;
    // The cache's fresh answer to name/type, without asking the network; null when there is
    // none (or no cache). A miss is not counted: the caller asks query() next.
    std::shared_ptr<const Answer> cached(std::string_view name, Type type) const;

    const ResolverOptions& options() const { return options_; }

  private:
    Answer lookup(std::string_view name, Type type,
                  std::chrono::steady_clock::time_point deadline) const;

    ResolverOptions options_;
    std::shared_ptr<ChannelPool> pool_;  // idle c-ares channels (dns.cpp); shared by copies
    AnswerSource source_;
};

}  // namespace postwarden::dns
