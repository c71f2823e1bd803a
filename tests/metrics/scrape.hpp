// scrape.hpp — what the metrics tests share: an HTTP/1.1 GET over a real loopback socket, the
// samples of a scrape by series, and promtool (Debian package prometheus) checking the text the
// way Prometheus parses it.
//
// Threading: test thread only. Only 127.0.0.1 is used.
#pragma once

#include <map>
#include <string>

namespace postwarden::test {

struct HttpReply {
    int status = 0;  // 0: no reply (connection refused or closed)
    std::string headers, body;
};

// One request on a fresh connection ("Connection: close"); method and path as given.
HttpReply http_request(unsigned short port, const std::string& method, const std::string& path);

// GET /metrics; throws when the status is not 200.
std::string scrape(unsigned short port);

// Every sample of an exposition text: "name{labels}" → value.
std::map<std::string, double> samples(const std::string& text);
// The value of one series; -1 when the scrape does not have it.
double sample(const std::string& text, const std::string& series);

// `promtool check metrics` on the text: "" when it passes, otherwise what promtool said (or why
// it could not run: a missing promtool fails the test, contrib/deps.sh installs it).
std::string promtool_check(const std::string& text);

}  // namespace postwarden::test
