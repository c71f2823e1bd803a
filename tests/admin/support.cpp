// support.cpp — the CLI runner and the JSON checker; see support.hpp.
#include "tests/admin/support.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace postwarden::test {

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
}

}  // namespace

RunResult run_program(const std::vector<std::string>& argv, const std::string& input) {
    TempDir dir("postwarden-cli");
    auto in = dir.path() + "/in", out = dir.path() + "/out", err = dir.path() + "/err";
    write_file(in, input);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot run " + argv[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    RunResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

Cli::Cli(RedisServer& redis, const std::string& extra)
    : Cli("[redis]\naddress = " + redis.endpoint().to_string() +
          "\npassword = " + redis.password() + "\ntimeout_ms = 200\n" + extra) {}

Cli::Cli(const std::string& config_text) : dir_("postwarden-admin") {
    path_ = dir_.path() + "/postwarden.conf";
    write_file(path_, cluster_config(config_text));
}

RunResult Cli::run(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {POSTWARDEN_BINARY_DIR "/admin/postwarden", "-c", path_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
}

std::string json_query(const std::string& json, const std::string& expression) {
    const char* program =
        "import json, sys\n"
        "try:\n"
        "    d = json.loads(sys.stdin.read())\n"
        "except ValueError as e:\n"
        "    print('PARSE ERROR: %s' % e)\n"
        "    sys.exit(0)\n"
        "print(json.dumps(eval(sys.argv[1]), sort_keys=True))\n";
    auto r = run_program({POSTWARDEN_PYTHON3, "-c", program, expression}, json);
    if (r.code != 0) throw std::runtime_error("python3 failed: " + r.err);
    while (!r.out.empty() && r.out.back() == '\n')
        r.out.pop_back();
    return r.out;
}

}  // namespace postwarden::test
