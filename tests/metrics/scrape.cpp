// scrape.cpp — HTTP client, sample parser and promtool for the metrics tests; see scrape.hpp.
#include "tests/metrics/scrape.hpp"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/fixtures/process.hpp"

namespace postwarden::test {

HttpReply http_request(unsigned short port, const std::string& method, const std::string& path) {
    HttpReply reply;
    int fd = connect_loopback(port);
    if (fd < 0) return reply;
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string request =
        method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string raw;
    char chunk[16384];
    for (ssize_t n; (n = recv(fd, chunk, sizeof chunk, 0)) > 0;)
        raw.append(chunk, static_cast<std::size_t>(n));
    close(fd);
    auto end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return reply;
    reply.status = std::atoi(raw.c_str() + 9);
    reply.headers = raw.substr(0, end);
    reply.body = raw.substr(end + 4);
    return reply;
}

std::string scrape(unsigned short port) {
    auto reply = http_request(port, "GET", "/metrics");
    if (reply.status != 200)
        throw std::runtime_error("GET /metrics: status " + std::to_string(reply.status));
    return reply.body;
}

std::map<std::string, double> samples(const std::string& text) {
    std::map<std::string, double> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        auto space = line.rfind(' ');
        if (space == std::string::npos) continue;
        out[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
    }
    return out;
}

double sample(const std::string& text, const std::string& series) {
    auto all = samples(text);
    auto it = all.find(series);
    return it == all.end() ? -1 : it->second;
}

std::string promtool_check(const std::string& text) {
    TempDir dir("postwarden-promtool");
    std::string in = dir.path() + "/scrape.txt", out = dir.path() + "/promtool.out";
    std::ofstream(in) << text;
    // PATH first; /usr/bin is where Debian's prometheus package puts it.
    std::string command =
        "PATH=\"$PATH:/usr/bin\" promtool check metrics < " + in + " > " + out + " 2>&1";
    int status = std::system(command.c_str());
    if (status == 0) return "";
    std::ifstream result(out);
    std::stringstream said;
    said << result.rdbuf();
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return "promtool is missing (Debian package prometheus; contrib/deps.sh installs it): " +
               said.str();
    return "promtool check metrics failed: " + said.str();
}

}  // namespace postwarden::test
