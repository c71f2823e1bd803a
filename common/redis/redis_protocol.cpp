// redis_protocol.cpp — RESP: hiredis' reader decodes, append_command encodes. The reader's object
// callbacks build postwarden::redis::Value trees in place: the root is heap-allocated and owned by
// the reader until handed out; every nested value lives inside its parent's elements vector, which
// is sized once when the array header is read, so the pointers hiredis keeps stay valid.
#include "common/redis/redis_protocol.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <new>

namespace postwarden::redis {

// RESP is "*<argc>\r\n" then "$<len>\r\n<bytes>\r\n" per argument. We write it ourselves:
// hiredis' redisFormatCommandArgv formats every length with sprintf, which was the largest single
// cost of a policy request in the profile (a request sends a few dozen arguments).
// Written in place: the string grows once per command (an append per piece cost ~1k
// instructions for a command of five arguments, callgrind).
namespace {
template <typename Args>
void encode(std::string& out, const Args& argv) {
    constexpr std::size_t header_max = 1 + 20 + 2;  // kind, digits of a size_t, CRLF
    std::size_t size = header_max;
    for (const auto& arg : argv)
        size += header_max + arg.size() + 2;
    const std::size_t start = out.size();
    out.resize(start + size);
    char* p = out.data() + start;
    auto header = [&p](char kind, std::size_t n) {
        *p++ = kind;
        p = std::to_chars(p, p + 20, n).ptr;
        *p++ = '\r';
        *p++ = '\n';
    };
    header('*', argv.size());
    for (const auto& arg : argv) {
        header('$', arg.size());
        std::memcpy(p, arg.data(), arg.size());
        p += arg.size();
        *p++ = '\r';
        *p++ = '\n';
    }
    out.resize(static_cast<std::size_t>(p - out.data()));
}
}  // namespace

void append_command(std::string& out, const std::vector<std::string>& argv) {
    encode(out, argv);
}

void append_command(std::string& out, std::initializer_list<std::string_view> argv) {
    encode(out, argv);
}

struct ReplyBudget {
    ReplyLimits limits;
    const redisReader* reader = nullptr;
    std::size_t elements = 0;  // of the reply in progress
    std::size_t bytes = 0;
    std::string error;  // the limit a reply broke; hiredis itself only says "Out of memory"

    // Counts one more value of n string bytes; false (with error set) past a limit.
    bool charge(std::size_t string_bytes) {
        ++elements;
        bytes += sizeof(Value) + string_bytes;
        if (elements > limits.max_elements)
            error = "reply has more than " + std::to_string(limits.max_elements) + " elements";
        else if (bytes > limits.max_bytes)
            error = "reply larger than " + std::to_string(limits.max_bytes) + " bytes";
        return error.empty();
    }
};

namespace {

using Budget = ReplyBudget;

Budget& budget_of(const redisReadTask* task) {
    return *static_cast<Budget*>(task->privdata);
}

// The Value a new reply element goes into: a fresh root, or the next slot of the parent array.
// hiredis turns a nullptr result into an out-of-memory error, so no exception crosses into C.
// A parent grows one element at a time, when the element before is complete: no pointer hiredis
// keeps (one per open array, each into its parent) points into a vector that is growing.
Value* make_value(const redisReadTask* task, Value::Type type, std::size_t string_bytes) noexcept {
    Budget& budget = budget_of(task);
    if (task->parent == nullptr) budget.elements = budget.bytes = 0;  // a new reply
    if (!budget.charge(string_bytes)) return nullptr;
    if (task->parent == nullptr) {
        auto* root = new (std::nothrow) Value;
        if (root) root->type = type;
        return root;
    }
    auto& siblings = static_cast<Value*>(task->parent->obj)->elements;
    if (static_cast<std::size_t>(task->idx) != siblings.size()) return nullptr;
    try {
        siblings.emplace_back().type = type;
    } catch (...) {
        return nullptr;
    }
    return &siblings.back();
}

Value::Type string_type(int reply_type) {
    switch (reply_type) {
        case REDIS_REPLY_STATUS:
            return Value::Type::status;
        case REDIS_REPLY_ERROR:
            return Value::Type::error;
        default:
            return Value::Type::string;
    }
}

// An element inside a parent belongs to the parent (freed with the root); a root is ours to free
// when it cannot be handed to hiredis.
void* discard(const redisReadTask* task, Value* value) {
    if (task->parent == nullptr) delete value;
    return nullptr;
}

void* create_string(const redisReadTask* task, char* data, size_t length) {
    Value* value = make_value(task, string_type(task->type), length);
    if (value == nullptr) return nullptr;
    try {
        value->str.assign(data, length);
    } catch (...) {
        return discard(task, value);
    }
    return value;
}

// Room for the announced elements, but never for more than the bytes already received could
// hold (each takes at least 3: "+\r\n"): "*10000000" in 12 bytes reserves next to nothing, and
// the vector then grows with what really arrives.
void* create_array(const redisReadTask* task, int elements) {
    Budget& budget = budget_of(task);
    const auto announced = static_cast<std::size_t>(elements);
    if (announced > budget.limits.max_elements) {
        budget.error = "reply announces " + std::to_string(announced) + " elements, more than " +
                       std::to_string(budget.limits.max_elements);
        return nullptr;
    }
    Value* value = make_value(task, Value::Type::array, 0);
    if (value == nullptr) return nullptr;
    const std::size_t received = budget.reader->len - budget.reader->pos;
    try {
        value->elements.reserve(std::min(announced, received / 3));
    } catch (...) {
        return discard(task, value);
    }
    return value;
}

void* create_integer(const redisReadTask* task, long long integer) {
    Value* value = make_value(task, Value::Type::integer, 0);
    if (value) value->integer = integer;
    return value;
}

void* create_nil(const redisReadTask* task) {
    return make_value(task, Value::Type::nil, 0);
}

// hiredis frees only roots (a reply it could not finish, or one still held at redisReaderFree).
void free_value(void* root) {
    delete static_cast<Value*>(root);
}

redisReplyObjectFunctions value_functions = {create_string, create_array, create_integer,
                                             create_nil, free_value};

}  // namespace

void ReplyReader::Free::operator()(redisReader* reader) const {
    redisReaderFree(reader);
}

ReplyReader::ReplyReader(ReplyLimits limits)
    : budget_(std::make_unique<ReplyBudget>()),
      reader_(redisReaderCreateWithFunctions(&value_functions)) {
    if (!reader_) throw std::bad_alloc();
    budget_->limits = limits;
    budget_->reader = reader_.get();
    reader_->privdata = budget_.get();  // redisReaderSetPrivdata casts to int in C++
}

ReplyReader::~ReplyReader() = default;

// hiredis buffers a string (or a line) until all of it has arrived, and would buffer whatever
// the peer sends: what stays undecoded after the callers' next() calls is one partial item, and
// may not exceed the longest string allowed.
bool ReplyReader::feed(const char* data, std::size_t size) {
    const std::size_t undecoded = reader_->len - reader_->pos;
    if (undecoded + size > budget_->limits.max_string + 64 && budget_->error.empty())
        budget_->error = "reply has a string longer than " +
                         std::to_string(budget_->limits.max_string) + " bytes";
    if (!budget_->error.empty()) return false;
    return redisReaderFeed(reader_.get(), data, size) == REDIS_OK;
}

namespace {

// "+QUEUED" (a command in a transaction) and "+OK" (MULTI), read straight from the reader's
// buffer when it stands between two replies (ridx -1: no reply half read). A transaction brings
// them by the dozen, and through hiredis' task stack and a heap-allocated root each cost ~500
// instructions (callgrind, policyd's auth mix: 9 replies per request); here, a compare.
// Anything else, and a status split across reads, is left to hiredis, which also trims the
// buffer (at its next call, as after its own replies).
bool take_plain_status(redisReader& r, Value& out) {
    if (r.err || r.ridx != -1 || r.pos >= r.len) return false;
    const char* p = r.buf + r.pos;
    const std::size_t left = r.len - r.pos;
    std::size_t size = 0;
    if (left >= 9 && std::memcmp(p, "+QUEUED\r\n", 9) == 0)
        size = 9;
    else if (left >= 5 && std::memcmp(p, "+OK\r\n", 5) == 0)
        size = 5;
    else
        return false;
    r.pos += size;
    out.type = Value::Type::status;
    out.integer = 0;
    out.str.assign(p + 1, size - 3);
    out.elements.clear();
    return true;
}

}  // namespace

ReplyReader::Status ReplyReader::next(Value& out) {
    if (take_plain_status(*reader_, out)) return Status::reply;
    void* reply = nullptr;
    if (redisReaderGetReply(reader_.get(), &reply) != REDIS_OK) return Status::error;
    if (reply == nullptr) return Status::incomplete;
    std::unique_ptr<Value> root(static_cast<Value*>(reply));
    out = std::move(*root);
    return Status::reply;
}

std::string ReplyReader::error() const {
    if (!budget_->error.empty()) return budget_->error;
    return reader_->err ? std::string(reader_->errstr) : std::string();
}

}  // namespace postwarden::redis
