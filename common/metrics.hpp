// metrics.hpp — the instruments behind the Prometheus endpoints (SPEC §6): counters, gauges and
// histograms, and the Registry that renders them in the Prometheus text exposition format
// (version 0.0.4: HELP and TYPE lines, escaped label values, _bucket/_sum/_count with +Inf).
//
// Why our own: prometheus-cpp is not packaged in Debian 12, and the daemons need little of it.
// Every series exists from the start (a family's label values are declared up front), so the
// hot path never allocates, locks or hashes: an increment is one relaxed atomic add (a few ns),
// an observation a short bucket scan plus two atomic adds. Rendering reads the atomics from the
// endpoint's thread; two series may be a few increments apart, which a scrape tolerates. A
// histogram's _count is the sum of its buckets, so +Inf and _count always agree.
//
// Entry points: Registry::render; Counter, Gauge, Histogram, CounterFamily; latency_buckets().
// Threading: build the instruments before other threads use them (they register with their
// Registry, which is not locked); afterwards every member is safe from any thread.
// Pure: no sockets, no clock (callers measure durations). The HTTP side is metrics_http.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden::metrics {

class Registry;

// One metric family as the Registry renders it: its HELP and TYPE lines, then its samples.
// Names are checked when built (std::invalid_argument): a bad name is a programming error.
class Family {
  public:
    Family(Registry& registry, std::string name, std::string help, std::string_view type);
    virtual ~Family();
    Family(const Family&) = delete;
    Family& operator=(const Family&) = delete;

    const std::string& name() const { return name_; }
    // Appends the HELP, TYPE and sample lines.
    void render(std::string& out) const;

  protected:
    virtual void render_samples(std::string& out) const = 0;

  private:
    Registry& registry_;
    std::string name_, help_, type_;
};

class Registry {
  public:
    Registry() = default;
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Every family in the order it was built; the body of a GET /metrics.
    std::string render() const;

  private:
    friend class Family;
    void add(const Family* family);
    void remove(const Family* family);
    std::vector<const Family*> families_;
};

class Counter : public Family {
  public:
    Counter(Registry& registry, std::string name, std::string help);
    void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

  private:
    void render_samples(std::string& out) const override;
    std::atomic<std::uint64_t> value_{0};
};

class Gauge : public Family {
  public:
    Gauge(Registry& registry, std::string name, std::string help);
    void inc() { value_.fetch_add(1, std::memory_order_relaxed); }
    void dec() { value_.fetch_sub(1, std::memory_order_relaxed); }
    void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
    std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

  private:
    void render_samples(std::string& out) const override;
    std::atomic<std::int64_t> value_{0};
};

// Counters with labels, one series per declared tuple of label values. Callers that know the
// series by position (an enum) use inc(index); find() looks a tuple up by value, comparing
// strings, for values that arrive as text.
class CounterFamily : public Family {
  public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    CounterFamily(Registry& registry, std::string name, std::string help,
                  std::vector<std::string> label_names,
                  std::vector<std::vector<std::string>> series);
    // One label: one series per value. (const char*: a braced pair of label names must not
    // read as a std::string built from two pointers.)
    CounterFamily(Registry& registry, std::string name, std::string help, const char* label_name,
                  std::vector<std::string> values);

    void inc(std::size_t index, std::uint64_t n = 1) {
        if (index < size_) counts_[index].fetch_add(n, std::memory_order_relaxed);
    }
    // The series whose label values are `values` (in label order), or npos.
    std::size_t find(std::initializer_list<std::string_view> values) const;
    std::uint64_t value(std::size_t index) const {
        return index < size_ ? counts_[index].load(std::memory_order_relaxed) : 0;
    }
    std::size_t size() const { return size_; }

  private:
    void render_samples(std::string& out) const override;
    std::vector<std::string> label_names_;
    std::vector<std::vector<std::string>> series_;
    std::size_t size_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
};

class Histogram : public Family {
  public:
    // upper_bounds: strictly increasing, finite; +Inf is added.
    Histogram(Registry& registry, std::string name, std::string help,
              std::vector<double> upper_bounds);

    void observe(double value) {
        std::size_t i = 0;
        while (i < bounds_.size() && value > bounds_[i])
            ++i;
        counts_[i].fetch_add(1, std::memory_order_relaxed);
        sum_.fetch_add(value, std::memory_order_relaxed);
    }
    template <typename Rep, typename Period>
    void observe(std::chrono::duration<Rep, Period> elapsed) {
        observe(std::chrono::duration<double>(elapsed).count());
    }

    std::uint64_t count() const;
    double sum() const { return sum_.load(std::memory_order_relaxed); }

  private:
    void render_samples(std::string& out) const override;
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
    std::atomic<double> sum_{0};
};

// Buckets for latencies in seconds, from 100 µs (Redis on loopback) to 5 s (DNS timeouts).
std::vector<double> latency_buckets();

// Label values as the exposition format wants them: \ " and newline escaped.
std::string escape_label_value(std::string_view value);
// A sample value: integers as such, others shortest round-trip, +Inf, -Inf, NaN.
std::string format_value(double value);

}  // namespace postwarden::metrics
