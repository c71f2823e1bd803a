// redis_protocol.cpp — RESP: hiredis' reader decodes, append_command encodes. The reader's object
// callbacks build postwarden::redis::Value trees in place: the root is heap-allocated and owned by
// the reader until handed out; every nested value lives inside its parent's elements vector, which
// is sized once when the array header is read, so the pointers hiredis keeps stay valid.
#include "common/redis_protocol.hpp"

#include <charconv>
#include <cstring>

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

namespace {

// The Value a new reply element goes into: a fresh root, or its slot in the parent array.
// hiredis turns a nullptr result into an out-of-memory error, so no exception crosses into C.
Value* make_value(const redisReadTask* task, Value::Type type) noexcept {
    if (task->parent == nullptr) {
        auto* root = new (std::nothrow) Value;
        if (root) root->type = type;
        return root;
    }
    auto* parent = static_cast<Value*>(task->parent->obj);
    Value* slot = &parent->elements[static_cast<std::size_t>(task->idx)];
    slot->type = type;
    return slot;
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

void* create_string(const redisReadTask* task, char* data, size_t length) {
    Value* value = make_value(task, string_type(task->type));
    if (value == nullptr) return nullptr;
    try {
        value->str.assign(data, length);
    } catch (...) {
        if (task->parent == nullptr) delete value;
        return nullptr;
    }
    return value;
}

void* create_array(const redisReadTask* task, int elements) {
    Value* value = make_value(task, Value::Type::array);
    if (value == nullptr) return nullptr;
    try {
        value->elements.resize(static_cast<std::size_t>(elements));
    } catch (...) {  // a hostile length: report out of memory instead of throwing through C
        if (task->parent == nullptr) delete value;
        return nullptr;
    }
    return value;
}

void* create_integer(const redisReadTask* task, long long integer) {
    Value* value = make_value(task, Value::Type::integer);
    if (value) value->integer = integer;
    return value;
}

void* create_nil(const redisReadTask* task) {
    return make_value(task, Value::Type::nil);
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

ReplyReader::ReplyReader() : reader_(redisReaderCreateWithFunctions(&value_functions)) {
    if (!reader_) throw std::bad_alloc();
}

ReplyReader::~ReplyReader() = default;

bool ReplyReader::feed(const char* data, std::size_t size) {
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
    return reader_->err ? std::string(reader_->errstr) : std::string();
}

}  // namespace postwarden::redis
