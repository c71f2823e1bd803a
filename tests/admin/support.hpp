// support.hpp — running the admin CLI `postwarden` from the build tree as a child process, as an
// operator or a script would, with its stdout, stderr and exit code kept apart; and checking its
// --json output with Python's json module, an independent parser.
//
// Entry points: Cli (run), RunResult, json_query.
// Threading: test thread only.
#pragma once

#include <string>
#include <vector>

#include "tests/fixtures/process.hpp"
#include "tests/fixtures/redis_server.hpp"

namespace postwarden::test {

struct RunResult {
    int code = -1;  // exit status; -1 when killed by a signal
    std::string out, err;
};

// Runs argv[0] with stdin from `input`, waits for it, and returns what it wrote.
RunResult run_program(const std::vector<std::string>& argv, const std::string& input = "");

// The postwarden binary with `-c FILE`, FILE holding "[redis] address" of `redis` (and its
// password) plus `extra` configuration text.
class Cli {
  public:
    Cli(RedisServer& redis, const std::string& extra = "");
    Cli(const std::string& config_text);  // the whole configuration
    RunResult run(const std::vector<std::string>& args) const;
    const std::string& config_path() const { return path_; }

  private:
    TempDir dir_;
    std::string path_;
};

// Parses `json` with python3 and evaluates `expression` on it (`d` is the document), returning
// json.dumps of the result; "PARSE ERROR: ..." when the text is not JSON.
std::string json_query(const std::string& json, const std::string& expression);

}  // namespace postwarden::test
