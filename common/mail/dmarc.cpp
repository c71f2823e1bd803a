// dmarc.cpp — DMARC record parsing, organizational domains, alignment, discovery, evaluation;
// see dmarc.hpp.
#include "common/mail/dmarc.hpp"

#include <libpsl.h>

#include <charconv>
#include <stdexcept>

#include "common/address.hpp"

namespace postwarden::dmarc {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
        s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

std::optional<Policy> parse_policy(std::string_view v) {
    auto lower = to_lower(v);
    if (lower == "none") return Policy::none;
    if (lower == "quarantine") return Policy::quarantine;
    if (lower == "reject") return Policy::reject;
    return std::nullopt;
}

std::optional<Alignment> parse_alignment(std::string_view v) {
    auto lower = to_lower(v);
    if (lower == "r") return Alignment::relaxed;
    if (lower == "s") return Alignment::strict;
    return std::nullopt;
}

std::optional<int> parse_pct(std::string_view v) {
    int value = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || value < 0 || value > 100)
        return std::nullopt;
    return value;
}

// Splits "a=b; c=d" into trimmed (tag, value) pairs; a part without '=' has an empty tag.
std::vector<std::pair<std::string, std::string_view>> split_tags(std::string_view text) {
    std::vector<std::pair<std::string, std::string_view>> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto end = text.find(';', pos);
        if (end == std::string_view::npos) end = text.size();
        auto part = trim(text.substr(pos, end - pos));
        if (!part.empty()) {
            auto eq = part.find('=');
            if (eq == std::string_view::npos)
                out.emplace_back("", part);
            else
                out.emplace_back(to_lower(trim(part.substr(0, eq))), trim(part.substr(eq + 1)));
        }
        pos = end + 1;
    }
    return out;
}

std::string normalize_domain(std::string_view domain) {
    auto d = canonical_domain(domain);  // A-labels: "bücher.example" aligns with its xn-- form
    while (!d.empty() && d.back() == '.')
        d.pop_back();
    return d;
}

}  // namespace

std::string_view to_string(Policy policy) {
    switch (policy) {
        case Policy::none:
            return "none";
        case Policy::quarantine:
            return "quarantine";
        case Policy::reject:
            return "reject";
    }
    return "none";
}

std::string_view to_string(Result result) {
    switch (result) {
        case Result::none:
            return "none";
        case Result::pass:
            return "pass";
        case Result::fail:
            return "fail";
        case Result::temperror:
            return "temperror";
        case Result::permerror:
            return "permerror";
    }
    return "none";
}

std::optional<Record> parse_record(std::string_view text, std::string* error) {
    auto tags = split_tags(text);
    if (tags.empty() || tags[0].first != "v" || tags[0].second != "DMARC1") {
        *error = "not a DMARC1 record";
        return std::nullopt;
    }
    Record r;
    for (std::size_t i = 1; i < tags.size(); ++i) {
        const auto& [tag, value] = tags[i];
        if (tag == "p") {
            r.p = parse_policy(value).value_or(Policy::none);
        } else if (tag == "sp") {
            r.sp = parse_policy(value);
        } else if (tag == "adkim") {
            r.adkim = parse_alignment(value).value_or(Alignment::relaxed);
        } else if (tag == "aspf") {
            r.aspf = parse_alignment(value).value_or(Alignment::relaxed);
        } else if (tag == "pct") {
            r.pct = parse_pct(value).value_or(100);
        }
    }
    return r;
}

PublicSuffixList::PublicSuffixList() : psl_(psl_latest(nullptr)) {
    if (!psl_) psl_ = const_cast<psl_ctx_t*>(psl_builtin());
    if (!psl_) throw std::runtime_error("cannot load the Public Suffix List");
}

PublicSuffixList::~PublicSuffixList() {
    // psl_free ignores the built-in context, so this is right for both kinds.
    psl_free(psl_);
}

std::string PublicSuffixList::organizational_domain(std::string_view domain) const {
    auto d = normalize_domain(domain);
    if (d.empty()) return d;
    const char* registrable = psl_registrable_domain(psl_, d.c_str());
    return registrable ? std::string(registrable) : d;
}

bool aligned(std::string_view a, std::string_view b, Alignment mode, const PublicSuffixList& psl) {
    auto x = normalize_domain(a), y = normalize_domain(b);
    if (x.empty() || y.empty()) return false;
    if (mode == Alignment::strict) return x == y;
    return psl.organizational_domain(x) == psl.organizational_domain(y);
}

namespace {

// One name's DMARC records: found (exactly one), none, or temperror.
Discovery::Status lookup_at(const std::string& domain, const TxtLookup& lookup, Record* out) {
    auto answer = lookup("_dmarc." + domain);
    if (answer.status == dns::Status::temp_error) return Discovery::Status::temperror;
    std::vector<Record> records;
    for (const auto& text : answer.texts) {
        std::string ignored;
        if (auto r = parse_record(text, &ignored)) records.push_back(*r);
    }
    if (records.size() != 1) return Discovery::Status::none;
    *out = records.front();
    return Discovery::Status::found;
}

}  // namespace

Discovery discover(std::string_view from_domain, const TxtLookup& lookup,
                   const PublicSuffixList& psl) {
    Discovery d;
    auto domain = normalize_domain(from_domain);
    d.org_domain = psl.organizational_domain(domain);
    if (domain.empty()) return d;
    d.status = lookup_at(domain, lookup, &d.record);
    if (d.status == Discovery::Status::none && d.org_domain != domain) {
        d.status = lookup_at(d.org_domain, lookup, &d.record);
        if (d.status == Discovery::Status::found) d.record_domain = d.org_domain;
    } else if (d.status == Discovery::Status::found) {
        d.record_domain = domain;
    }
    return d;
}

namespace {

bool dkim_aligned(const Identifiers& ids, std::string_view from, Alignment mode,
                  const PublicSuffixList& psl) {
    for (const auto& d : ids.dkim_pass_domains)
        if (aligned(d, from, mode, psl)) return true;
    return false;
}

bool spf_aligned(const Identifiers& ids, std::string_view from, Alignment mode,
                 const PublicSuffixList& psl) {
    return ids.spf_pass && aligned(ids.spf_domain, from, mode, psl);
}

}  // namespace

Evaluation evaluate(std::string_view from_domain, const Discovery& discovery,
                    const Identifiers& ids, const PublicSuffixList& psl, int random_percent) {
    Evaluation e;
    e.from_domain = normalize_domain(from_domain);
    if (discovery.status == Discovery::Status::temperror) {
        // Nothing is known of the policy, nor of adkim/aspf: relaxed, the most a record allows.
        e.result = Result::temperror;
        e.aligned = spf_aligned(ids, e.from_domain, Alignment::relaxed, psl) ||
                    dkim_aligned(ids, e.from_domain, Alignment::relaxed, psl);
        e.reason = "DMARC record lookup failed temporarily";
        return e;
    }
    if (discovery.status == Discovery::Status::none) {
        e.reason = "no DMARC record";
        return e;
    }
    const auto& r = discovery.record;
    bool subdomain = discovery.record_domain != e.from_domain;
    e.published = subdomain ? r.sp.value_or(r.p) : r.p;

    bool by_dkim = dkim_aligned(ids, e.from_domain, r.adkim, psl);
    e.aligned = by_dkim || spf_aligned(ids, e.from_domain, r.aspf, psl);
    if (e.aligned) {
        e.result = Result::pass;
        e.reason = by_dkim ? "aligned DKIM" : "aligned SPF";
        return e;
    }
    e.result = Result::fail;
    e.maybe_temporary = ids.spf_temperror || ids.dkim_temperror;
    e.reason = "no aligned SPF or DKIM";
    e.policy = e.published;
    // pct (§6.6.4): outside the sample, the next weaker policy applies.
    if (random_percent >= r.pct && e.policy != Policy::none) {
        e.sampled_out = true;
        e.policy = e.policy == Policy::reject ? Policy::quarantine : Policy::none;
    }
    return e;
}

}  // namespace postwarden::dmarc
