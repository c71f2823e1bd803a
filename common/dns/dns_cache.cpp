// dns_cache.cpp — the answer cache behind dns_cache.hpp: TTLs read from the reply packet, and a
// least-recently-used table under one mutex.
//
// The packet walk here only needs TTLs, so it skips names without expanding them; dns.cpp has
// already decoded the records the answer carries.
#include "common/dns/dns_cache.hpp"

#include <algorithm>
#include <optional>

#include "common/metrics.hpp"

namespace postwarden::dns {
namespace {

constexpr std::uint16_t type_cname = 5, type_soa = 6, class_in = 1;
constexpr std::size_t header_size = 12;

struct Packet {
    const std::vector<unsigned char>& bytes;
    std::size_t offset = header_size;

    bool has(std::size_t n) const { return offset + n <= bytes.size(); }
    std::uint16_t get16(std::size_t at) const {
        return static_cast<std::uint16_t>(bytes[at] << 8 | bytes[at + 1]);
    }
    std::uint32_t get32(std::size_t at) const {
        return static_cast<std::uint32_t>(get16(at)) << 16 | get16(at + 2);
    }
    // Steps over a (possibly compressed) name; false when it runs past the end.
    bool skip_name() {
        while (has(1)) {
            unsigned length = bytes[offset];
            if ((length & 0xc0) == 0xc0) return has(2) ? (offset += 2, true) : false;
            if (length & 0xc0) return false;  // the obsolete label types
            offset += 1 + length;
            if (length == 0) return true;
        }
        return false;
    }
};

struct Record {
    std::uint16_t type = 0, klass = 0;
    std::uint32_t ttl = 0;
    std::size_t rdata = 0, rdlength = 0;  // where the rdata starts in the packet, and its size
};

std::optional<Record> next_record(Packet* p) {
    if (!p->skip_name() || !p->has(10)) return std::nullopt;
    Record r;
    r.type = p->get16(p->offset);
    r.klass = p->get16(p->offset + 2);
    // RFC 2181 §8: a TTL with the most significant bit set is to be treated as zero.
    r.ttl = p->get32(p->offset + 4);
    if (r.ttl & 0x80000000u) r.ttl = 0;
    r.rdlength = p->get16(p->offset + 8);
    p->offset += 10;
    if (!p->has(r.rdlength)) return std::nullopt;
    r.rdata = p->offset;
    p->offset += r.rdlength;
    return r;
}

// The seconds the packet's sections allow, before the cap; 0 when it must not be kept.
std::uint32_t packet_seconds(const Answer& answer, Type type) {
    Packet p{answer.packet};
    if (answer.packet.size() < header_size) return 0;
    int questions = p.get16(4), answers = p.get16(6), authorities = p.get16(8);
    for (int i = 0; i < questions; ++i) {
        if (!p.skip_name() || !p.has(4)) return 0;
        p.offset += 4;
    }
    std::optional<std::uint32_t> ttl;  // the smallest TTL of what the answer rests on
    auto use = [&ttl](std::uint32_t seconds) { ttl = std::min(ttl.value_or(seconds), seconds); };
    bool positive = answer.status == Status::ok, found = false;
    for (int i = 0; i < answers; ++i) {
        auto r = next_record(&p);
        if (!r) return 0;
        if (r->klass != class_in) continue;
        bool wanted = r->type == static_cast<std::uint16_t>(type);
        if (r->type == type_cname || (positive && wanted)) use(r->ttl);
        found = found || wanted;
    }
    if (positive) return found ? ttl.value_or(0) : 0;
    // RFC 2308 §5: the negative answer lives min(SOA TTL, SOA MINIMUM); no SOA, no caching.
    for (int i = 0; i < authorities; ++i) {
        auto r = next_record(&p);
        if (!r) return 0;
        if (r->type != type_soa || r->klass != class_in) continue;
        if (r->rdlength < 22) return 0;  // two names of at least one byte, five numbers
        use(r->ttl);
        use(p.get32(r->rdata + r->rdlength - 4));  // MINIMUM, the last field
        return ttl.value_or(0);
    }
    return 0;
}

std::string key_of(std::string_view name, Type type) {
    if (name.ends_with('.')) name.remove_suffix(1);
    std::string key;
    key.reserve(name.size() + 6);
    key += std::to_string(static_cast<unsigned>(type));
    key += ' ';
    for (char c : name)
        key += c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    return key;
}

}  // namespace

std::uint32_t cache_seconds(const Answer& answer, Type type) {
    if (answer.status == Status::temp_error) return 0;
    return std::min(packet_seconds(answer, type), max_cache_seconds);
}

std::vector<std::string> cache_result_labels() {
    return {"hit", "miss"};
}

AnswerCache::AnswerCache(std::size_t max_entries, metrics::CounterFamily* results)
    : max_entries_(max_entries), max_bytes_(max_entries * bytes_per_entry), results_(results) {}

std::size_t AnswerCache::cost(const std::string& key, const Answer& answer) {
    std::size_t bytes = sizeof(Entry) + sizeof(Answer) + 64 + key.size() + answer.packet.size();
    for (const auto* strings : {&answer.addresses, &answer.texts, &answer.names})
        for (const auto& s : *strings)
            bytes += sizeof s + s.size();
    for (const auto& mx : answer.mx)
        bytes += sizeof mx + mx.host.size();
    return bytes;
}

void AnswerCache::drop(Entries::iterator entry, Entries* dropped) {
    bytes_ -= entry->cost;
    dropped->splice(dropped->end(), entries_, entry);
}

std::shared_ptr<const Answer> AnswerCache::find(std::string_view name, Type type,
                                                Clock::time_point now, bool count_miss) {
    std::string key = key_of(name, type);
    std::shared_ptr<const Answer> found;
    Entries expired;  // freed after the lock is released
    {
        std::lock_guard lock(mutex_);
        if (auto it = index_.find(key); it != index_.end()) {
            auto entry = it->second;
            if (entry->expires > now) {
                entries_.splice(entries_.begin(), entries_, entry);
                found = entry->answer;
            } else {
                index_.erase(it);
                drop(entry, &expired);
            }
        }
    }
    if (results_ && (found || count_miss)) results_->inc(found ? hit : miss);
    return found;
}

void AnswerCache::store(std::string_view name, Type type, const Answer& answer,
                        Clock::time_point now) {
    if (max_entries_ == 0) return;
    auto seconds = cache_seconds(answer, type);
    if (seconds == 0) return;
    // The answer's copy and its list node are made before the lock is taken, and those it
    // replaces or evicts die with `dropped` after it is released; only the index's small nodes
    // are made and freed under it.
    Entries fresh;
    auto key = key_of(name, type);
    auto bytes = cost(key, answer);
    if (bytes > max_bytes_) return;  // it could only stay by itself
    fresh.push_back({std::move(key), now + std::chrono::seconds(seconds),
                     std::make_shared<const Answer>(answer), bytes});
    Entries dropped;
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(fresh.front().key); it != index_.end()) {
        auto old = it->second;
        index_.erase(it);
        drop(old, &dropped);
    }
    entries_.splice(entries_.begin(), fresh, fresh.begin());
    index_.emplace(entries_.front().key, entries_.begin());
    bytes_ += bytes;
    while (entries_.size() > max_entries_ || bytes_ > max_bytes_) {
        auto last = std::prev(entries_.end());
        index_.erase(last->key);
        drop(last, &dropped);
    }
}

std::size_t AnswerCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

std::size_t AnswerCache::bytes() const {
    std::lock_guard lock(mutex_);
    return bytes_;
}

}  // namespace postwarden::dns
