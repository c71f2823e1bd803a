// metrics.cpp — registering instruments and rendering the text exposition format; see
// metrics.hpp. Nothing here runs on a hot path but the inline members of the header.
#include "common/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace postwarden::metrics {

namespace {

bool is_name(std::string_view s, bool colons) {
    auto first = [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':');
    };
    if (s.empty() || !first(s[0])) return false;
    return std::all_of(s.begin() + 1, s.end(),
                       [&](char c) { return first(c) || (c >= '0' && c <= '9'); });
}

void check_label_name(std::string_view name) {
    // "__" is reserved for Prometheus' own labels, "le" for histogram buckets.
    if (!is_name(name, false) || name.substr(0, 2) == "__" || name == "le")
        throw std::invalid_argument("bad metric label name: " + std::string(name));
}

// HELP text escapes only backslash and newline (quotes are literal there).
std::string escape_help(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out.push_back(c);
    }
    return out;
}

void append_uint(std::string& out, std::uint64_t v) {
    char buffer[24];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
    out.append(buffer, end);
}

}  // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out.push_back(c);
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buffer[64];
    // Fixed notation reads best for bucket bounds (le="0.0005", not "5e-04"); very small or
    // large values take the shortest form instead of dozens of digits.
    double magnitude = std::fabs(v);
    bool fixed = magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e15);
    auto [end, ec] =
        fixed ? std::to_chars(buffer, buffer + sizeof buffer, v, std::chars_format::fixed)
              : std::to_chars(buffer, buffer + sizeof buffer, v);
    if (ec != std::errc()) return "NaN";
    return std::string(buffer, end);
}

// ---- Registry and Family ----------------------------------------------------------------------

Family::Family(Registry& registry, std::string name, std::string help, std::string_view type)
    : registry_(registry), name_(std::move(name)), help_(std::move(help)), type_(type) {
    if (!is_name(name_, true)) throw std::invalid_argument("bad metric name: " + name_);
    registry_.add(this);
}

Family::~Family() {
    registry_.remove(this);
}

void Family::render(std::string& out) const {
    out.append("# HELP ").append(name_).append(" ").append(escape_help(help_)).append("\n");
    out.append("# TYPE ").append(name_).append(" ").append(type_).append("\n");
    render_samples(out);
}

void Registry::add(const Family* family) {
    for (const auto* f : families_)
        if (f->name() == family->name())
            throw std::invalid_argument("metric registered twice: " + family->name());
    families_.push_back(family);
}

void Registry::remove(const Family* family) {
    families_.erase(std::remove(families_.begin(), families_.end(), family), families_.end());
}

std::string Registry::render() const {
    std::string out;
    out.reserve(8192);
    for (const auto* f : families_)
        f->render(out);
    return out;
}

// ---- the instruments ----------------------------------------------------------------------------

Counter::Counter(Registry& registry, std::string name, std::string help)
    : Family(registry, std::move(name), std::move(help), "counter") {}

void Counter::render_samples(std::string& out) const {
    out.append(name()).append(" ");
    append_uint(out, value());
    out.append("\n");
}

Gauge::Gauge(Registry& registry, std::string name, std::string help)
    : Family(registry, std::move(name), std::move(help), "gauge") {}

void Gauge::render_samples(std::string& out) const {
    out.append(name()).append(" ").append(std::to_string(value())).append("\n");
}

CounterFamily::CounterFamily(Registry& registry, std::string name, std::string help,
                             std::vector<std::string> label_names,
                             std::vector<std::vector<std::string>> series)
    : Family(registry, std::move(name), std::move(help), "counter"),
      label_names_(std::move(label_names)),
      series_(std::move(series)),
      size_(series_.size()),
      counts_(new std::atomic<std::uint64_t>[size_]) {
    for (const auto& label : label_names_)
        check_label_name(label);
    for (const auto& values : series_)
        if (values.size() != label_names_.size())
            throw std::invalid_argument(this->name() + ": series with the wrong number of labels");
    for (std::size_t i = 0; i < size_; ++i)
        counts_[i].store(0, std::memory_order_relaxed);
}

CounterFamily::CounterFamily(Registry& registry, std::string name, std::string help,
                             const char* label_name, std::vector<std::string> values)
    : CounterFamily(registry, std::move(name), std::move(help), {label_name}, [&] {
          std::vector<std::vector<std::string>> series;
          for (auto& v : values)
              series.push_back({std::move(v)});
          return series;
      }()) {}

std::size_t CounterFamily::find(std::initializer_list<std::string_view> values) const {
    if (values.size() != label_names_.size()) return npos;
    for (std::size_t i = 0; i < size_; ++i) {
        const auto& s = series_[i];
        std::size_t k = 0;
        for (auto v : values) {
            if (s[k] != v) break;
            ++k;
        }
        if (k == s.size()) return i;
    }
    return npos;
}

void CounterFamily::render_samples(std::string& out) const {
    for (std::size_t i = 0; i < size_; ++i) {
        out.append(name()).append("{");
        for (std::size_t k = 0; k < label_names_.size(); ++k) {
            if (k) out.append(",");
            out.append(label_names_[k]).append("=\"");
            out.append(escape_label_value(series_[i][k])).append("\"");
        }
        out.append("} ");
        append_uint(out, value(i));
        out.append("\n");
    }
}

Histogram::Histogram(Registry& registry, std::string name, std::string help,
                     std::vector<double> upper_bounds)
    : Family(registry, std::move(name), std::move(help), "histogram"),
      bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
    for (std::size_t i = 0; i < bounds_.size(); ++i)
        if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1]))
            throw std::invalid_argument(this->name() + ": bucket bounds must increase");
    for (std::size_t i = 0; i <= bounds_.size(); ++i)
        counts_[i].store(0, std::memory_order_relaxed);
}

std::uint64_t Histogram::count() const {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i)
        total += counts_[i].load(std::memory_order_relaxed);
    return total;
}

void Histogram::render_samples(std::string& out) const {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        cumulative += counts_[i].load(std::memory_order_relaxed);
        out.append(name()).append("_bucket{le=\"");
        out.append(i < bounds_.size() ? format_value(bounds_[i]) : "+Inf").append("\"} ");
        append_uint(out, cumulative);
        out.append("\n");
    }
    out.append(name()).append("_sum ").append(format_value(sum())).append("\n");
    out.append(name()).append("_count ");
    append_uint(out, cumulative);
    out.append("\n");
}

std::vector<double> latency_buckets() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
}

}  // namespace postwarden::metrics
