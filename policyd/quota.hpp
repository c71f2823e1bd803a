// quota.hpp — sending quotas of authenticated users (SPEC §3, §4 Quotas; S3, S4), the pure part:
// which windows apply to a user, the keys and arguments of common/redis/lua/quota.lua ("reserve" at
// RCPT, "commit" at END-OF-MESSAGE), what its replies mean, and the reply and log detail policyd
// gives. The semantics themselves (windows, reservations, penalty, auto_block) live in the script;
// see its header. No Redis I/O, no clock: time is an argument.
//
// Entry points: quota_applies, quota_override_key, effective_limits, reserve_transaction,
// read_reserve_transaction, note_transaction (with a QuotaMemo), reserve_call, commit_call,
// parse_reserve_reply, parse_commit_reply, quota_decision, block_reason. The key scheme and
// window arithmetic it shares with the admin CLI are in common/quota_keys.hpp.
// Threading: pure functions, callable from any thread; a QuotaMemo belongs to one thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.hpp"
#include "common/quota_keys.hpp"
#include "common/redis/redis.hpp"
#include "policyd/decision.hpp"

namespace postwarden::policy {

// Quotas count the recipients of SASL users only, and only while [quota] limits or auto_block is
// set; with both off no quota lookup is made (per-user overrides included).
bool quota_applies(const Facts& facts, const Config& config);

// The key scheme and window arithmetic, shared with the admin CLI (common/quota_keys.hpp).
using postwarden::block_windows;
using postwarden::bucket_ms;
using postwarden::effective_limits;
using postwarden::merge_windows;
using postwarden::quota_override_key;
using postwarden::QuotaLimits;
using postwarden::rfc3339;
using postwarden::window_text;

struct ScriptCall {
    std::vector<std::string> keys, args;
};

// What reserve_transaction wrote before the script was called, for the script to take back
// first (quota.lua's undo argument).
enum class Undo {
    nothing,           // no transaction
    counted,           // the recipient counted at now_ms in every window, limits and auto_block
    counted_and_held,  // that, and the member added to held
};

// KEYS and ARGV of quota.lua "reserve" for this RCPT of facts.login at now_ms; undo says what a
// transaction at the same now_ms wrote.
ScriptCall reserve_call(const Facts& facts, const std::vector<QuotaWindow>& limits,
                        long long now_ms, const Config& config, Undo undo = Undo::nothing);

// KEYS and ARGV of quota.lua "commit" at END-OF-MESSAGE; recipient_count -1 when unknown.
ScriptCall commit_call(const Facts& facts, long recipient_count,
                       const std::vector<QuotaWindow>& limits, long long now_ms,
                       const Config& config);

enum class QuotaVerdict { reserved, throttled, penalty, blocked };

struct QuotaOutcome {
    QuotaVerdict verdict = QuotaVerdict::reserved;
    long long until_ms = 0;  // throttled, penalty: when to try again
    std::size_t window = 0;  // 1-based: limits (blocked: auto_block windows); 0: none
    long long figure = 0;    // that window's recipients (blocked: attempts)
};

// The reply of "reserve": {verdict, until_ms, window, figure}; nullopt when malformed.
std::optional<QuotaOutcome> parse_reserve_reply(const redis::Value& reply);

// What this process did lately for each key of a user, so that the reservation transaction
// leaves out what was done already (each command costs Redis 5-8k instructions whatever it
// does; docs/benchmarks.md, What the measurements decided):
// - a window key (used:<s>, tried:<s>) → the bucket in which its TTL was last set. Once per
//   bucket is enough, as quota.lua does it: a TTL set at any moment of bucket b (window +
//   bucket) outlives b's counts. A key that disappears meanwhile (DEL by hand, or emptied by a
//   release) comes back without a TTL when a transaction that skipped it counts there;
//   read_reserve_transaction reports that (its count is then 1), and the caller forgets the key
//   and sets the TTL at once.
// - held → the second in which it was last asked for reservations due for release, or
//   released ones due for pruning (ZCOUNT). Once a second is enough: a due reservation only
//   makes the windows look fuller than they are, and a window that looks full sends the request
//   to quota.lua, which gives back what is due before it decides. So the decisions are the same;
//   a release or a prune waits at most a second longer.
// Pure (the caller gives the periods) and single-threaded: policyd's io thread owns it.
class QuotaMemo {
  public:
    // Bounded: past max_entries everything is forgotten (the next requests do it all again).
    explicit QuotaMemo(std::size_t max_entries = 32768) : max_entries_(max_entries) {}

    // Whether key was last handled in this period (a bucket's or a second's index).
    bool fresh(const std::string& key, long long period) const;
    void set(const std::string& key, long long period);
    void forget(const std::string& key) { periods_.erase(key); }
    std::size_t size() const { return periods_.size(); }

  private:
    std::size_t max_entries_;
    std::unordered_map<std::string, long long> periods_;
};

// The usual reservation without the script (limits not empty): the commands of one MULTI ...
// EXEC that takes the reservation (ZADD NX), counts the recipient in every window, sets the
// TTLs, then reads what decides: every window, the throttle's until, and whether a reservation
// is old enough to be given back (or a released one old enough to be pruned). Counting first keeps
// it exact under concurrency: what the reads show includes every other request's count. About a
// third of quota.lua's instructions in Redis (docs/benchmarks.md, What the measurements decided).
// With a memo, a window's TTL and the question about due reservations are left out while fresh
// (QuotaMemo); held's TTL is set every time, since a commit that takes its last member deletes it.
struct ReserveTransaction {
    redis::Batch commands;
    // Per window, limits then auto_block as the script's KEYS order them.
    struct Window {
        std::string key;
        long long ttl_ms = 0;   // window + bucket
        long long bucket = 0;   // the current bucket's index
        bool sets_ttl = false;  // the commands set the key's TTL
    };
    std::vector<Window> windows;
    std::string held;
    std::string member;     // held's member for this recipient: "<instance> <recipient>"
    long long second = 0;   // now's, in unix seconds
    bool asks_due = false;  // the commands ask held for reservations due for release
};
ReserveTransaction reserve_transaction(const Facts& facts, const std::vector<QuotaWindow>& limits,
                                       long long now_ms, const Config& config,
                                       const QuotaMemo* memo = nullptr);

struct TransactionResult {
    // Set when the transaction made the usual reservation, quota.lua's answer for it: not a
    // replay, not throttled, no window past its count, nothing to prune or give back.
    std::optional<QuotaOutcome> reserved;
    // Otherwise the script decides, after taking back what the transaction wrote.
    Undo undo = Undo::nothing;
    // Windows (indexes into ReserveTransaction::windows) that the transaction counted in without
    // setting their TTL while the key had no count in its bucket: it may have made the key
    // anew, without a TTL.
    std::vector<std::size_t> untimed;
};

// Reads EXEC's answer to reserve_transaction's commands; nullopt when it has another shape (an
// error, a wrong type in a key).
std::optional<TransactionResult> read_reserve_transaction(const redis::Value& exec,
                                                          const ReserveTransaction& transaction,
                                                          const std::vector<QuotaWindow>& limits,
                                                          long long now_ms, const Config& config);

// After a transaction Redis executed: marks in memo what it did, forgets the untimed windows'
// keys, and returns the PEXPIRE commands those need.
std::vector<std::vector<std::string>> note_transaction(QuotaMemo& memo,
                                                       const ReserveTransaction& transaction,
                                                       const TransactionResult& result);

// The recipients this process reserved, per message, and when: what the usual commit takes out
// of held at END-OF-MESSAGE without the script (commit_transaction). A hint, not the truth:
// another policyd, or this one before a restart or after forgetting, may have reserved some of
// a message's recipients, and another policyd (its clock ahead) may have given some back; so
// the commit also reads what held still keeps of the message.
// Bounded: past max_messages everything is forgotten (those messages' commits run the script).
// Single-threaded, like QuotaMemo.
class Reservations {
  public:
    struct Reserved {
        std::string member;  // held's member: "<instance> <recipient>"
        long long ms = 0;    // its score, the RCPT's time
    };
    explicit Reservations(std::size_t max_messages = 4096) : max_messages_(max_messages) {}

    // member ("<instance> <recipient>") reserved in held at ms; a replay keeps the first time.
    void add(const std::string& held, const std::string& member, long long ms);
    // The reservations of facts' message, forgotten here; empty when none are known.
    std::vector<Reserved> take(const Facts& facts, const Config& config);
    std::size_t size() const { return messages_.size(); }

  private:
    std::size_t max_messages_;
    std::unordered_map<std::string, std::vector<Reserved>> messages_;
};

// The usual commit without the script: one MULTI ... EXEC that takes the message's known
// reservations out of held (ZREM) and then asks held for any other member of the message (ZSCAN
// with the instance as MATCH pattern: Redis filters, so the answer stays small however many
// reservations the user has pending), so that read_commit_transaction can tell whether the
// message holds reservations this process did not make, or that were given back meanwhile:
// ZREM names live reservations only, and a released one, renamed "<instance> \n<rcpt>"
// (quota.lua's header), is left for the ZSCAN to find and the script to charge. So the
// transaction never counts a released reservation as committed. About a fifth of what the
// script costs Redis (docs/benchmarks.md). nullopt when the script must commit: no
// reservation known, Postfix accepted fewer recipients than were reserved (the rest are given
// back), or one is due for release (older than reserve_ttl: the script gives it back and
// charges it again, now).
std::optional<redis::Batch> commit_transaction(const Facts& facts, long recipient_count,
                                               const std::vector<Reservations::Reserved>& known,
                                               long long now_ms, const Config& config);

// ZSCAN's COUNT: a held of up to about this many members is scanned in the one call. A larger one
// sends the commit to the script, which reads all of held (O(pending), as commits always were):
// a user has that many reservations pending only with a limit that high and that many messages
// refused after RCPT within reserve_ttl.
constexpr long long commit_scan_count = 1000;

// EXEC's answer: committed, the reservations the ZREM took; others, whether held still keeps
// members of the message, or may (too large to scan in one call): the script commits them, with
// recipient_count less committed. nullopt when it has another shape.
struct CommitRead {
    long long committed = 0;
    bool others = false;
};
std::optional<CommitRead> read_commit_transaction(const redis::Value& exec);

// The reply of "commit": {committed, released, late}. late: how many of the committed had been
// given back past reserve_ttl and were charged again at END-OF-MESSAGE.
struct CommitOutcome {
    long long committed = 0, released = 0, late = 0;
};
std::optional<CommitOutcome> parse_commit_reply(const redis::Value& reply);

// The log detail of a commit: "committed=3 released=0", and " late=3" when some were charged late.
std::string commit_detail(const CommitOutcome& outcome);

// The reply and log detail of a reserve outcome (reason quota-ok, quota-throttled or
// quota-blocked, with "window=100/3600 used=100").
Decision quota_decision(const QuotaOutcome& outcome, const std::vector<QuotaWindow>& limits,
                        const Config& config);

// The block:why value written when auto_block blocks a login: the reason, the figure, the time.
std::string block_reason(const QuotaOutcome& outcome, const Config& config, long long now_ms);

}  // namespace postwarden::policy
