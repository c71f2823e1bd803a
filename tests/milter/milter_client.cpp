// milter_client.cpp — the milter child process and the milter-protocol client; see
// milter_client.hpp.
#include "tests/milter/milter_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace postwarden::test {

namespace {

std::string u32(unsigned long v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i)
        s[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
    return s;
}

unsigned long get_u32(const std::string& s, std::size_t at) {
    unsigned long v = 0;
    for (int i = 0; i < 4 && at + i < s.size(); ++i)
        v = (v << 8) | static_cast<unsigned char>(s[at + i]);
    return v;
}

std::string z(const std::string& s) {
    return s + std::string(1, '\0');
}

// The NUL-terminated strings of a reply's data.
std::vector<std::string> strings_of(const std::string& data, std::size_t from = 0) {
    std::vector<std::string> out;
    std::size_t pos = from;
    while (pos < data.size()) {
        auto end = data.find('\0', pos);
        if (end == std::string::npos) end = data.size();
        out.push_back(data.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

bool iequal(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

}  // namespace

MilterProcess::MilterProcess(const std::string& config, Socket socket)
    : port_(socket == Socket::inet ? free_port() : 0),
      unix_path_(socket == Socket::inet ? "" : socket_dir_.path() + "/milter.sock"),
      daemon_(
          POSTWARDEN_BINARY_DIR "/milter/postwarden-milter",
          "[milter]\nlisten = " +
              (port_ ? "inet:" + std::to_string(port_) + "@127.0.0.1" : "unix:" + unix_path_) +
              "\n" + config,
          [this] { return connect(); }, "milter.log") {}

int MilterProcess::connect() const {
    return port_ ? connect_loopback(port_) : connect_unix(unix_path_);
}

std::string Outcome::added(const std::string& name) const {
    for (const auto& m : modifications)
        if ((m.code == 'h' || m.code == 'i') && iequal(m.name, name)) return m.value;
    return "";
}

bool Outcome::quarantined() const {
    for (const auto& m : modifications)
        if (m.code == 'q') return true;
    return false;
}

MilterClient::MilterClient(unsigned short port) : fd_(connect_loopback(port)) {
    if (fd_ < 0) throw std::runtime_error("cannot connect to the milter");
}

MilterClient::MilterClient(const MilterProcess& milter) : fd_(milter.connect()) {
    if (fd_ < 0) throw std::runtime_error("cannot connect to the milter");
}

MilterClient::~MilterClient() {
    if (fd_ >= 0) {
        send('Q', "");
        close(fd_);
    }
}

void MilterClient::send(char command, const std::string& data) {
    std::string packet = u32(data.size() + 1) + std::string(1, command) + data;
    std::size_t done = 0;
    while (done < packet.size()) {
        ssize_t n = ::send(fd_, packet.data() + done, packet.size() - done, MSG_NOSIGNAL);
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

bool MilterClient::read_packet(char* code, std::string* data) {
    auto read_exact = [&](std::string* out, std::size_t n) {
        out->clear();
        while (out->size() < n) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 30000) <= 0) return false;
            char buf[65536];
            ssize_t got = recv(fd_, buf, std::min(sizeof buf, n - out->size()), 0);
            if (got <= 0) return false;
            out->append(buf, static_cast<std::size_t>(got));
        }
        return true;
    };
    std::string header;
    if (!read_exact(&header, 4)) return false;
    auto length = get_u32(header, 0);
    if (length == 0 || length > (1u << 24)) return false;
    std::string body;
    if (!read_exact(&body, length)) return false;
    *code = body[0];
    *data = body.substr(1);
    return true;
}

// Sends one command and reads replies up to the final one; false when the transaction ends.
bool MilterClient::step(char command, const std::string& data, Outcome* out) {
    send(command, data);
    for (;;) {
        char code = 0;
        std::string reply;
        if (!read_packet(&code, &reply)) {
            out->stage = command;
            out->reply = 0;
            return false;
        }
        if (code == 'h' || code == 'i' || code == 'm') {
            Modification m{code, 0, "", ""};
            std::size_t at = 0;
            if (code != 'h') m.index = static_cast<int>(get_u32(reply, 0)), at = 4;
            auto s = strings_of(reply, at);
            m.name = s.size() > 0 ? s[0] : "";
            m.value = s.size() > 1 ? s[1] : "";
            out->modifications.push_back(m);
            continue;
        }
        if (code == 'q') {
            out->modifications.push_back({'q', 0, "", strings_of(reply).front()});
            continue;
        }
        if (code == 'p') continue;
        out->stage = command;
        out->reply = code;
        if (code == 'y') out->text = strings_of(reply).front();
        return code == 'c';
    }
}

Outcome MilterClient::run(const Transaction& t) {
    Outcome out;
    const unsigned long leadspc = 0x00100000;
    send('O', u32(6) + u32(0x1ff) + u32(0x1fffff));
    // Header fields and body chunks the milter asked not to answer (SMFIP_NR_HDR, _NR_BODY).
    auto unanswered = [&](char command) {
        return (command == 'L' && (protocol_ & 0x80)) || (command == 'B' && (protocol_ & 0x80000));
    };
    auto step = [&](char command, const std::string& data, Outcome* o) {
        if (t.before) t.before(command);
        if (!unanswered(command)) return this->step(command, data, o);
        send(command, data);
        return true;
    };
    char code = 0;
    std::string reply;
    if (!read_packet(&code, &reply) || code != 'O') return out;
    protocol_ = get_u32(reply, 8);
    bool leading_space = (protocol_ & leadspc) != 0;

    send('D', "C" + z("j") + z("mx.rcpt.example") + z("{daemon_name}") + z("smtpd"));
    // No address: family 'U' (unknown), as Postfix sends for mail submitted with sendmail(1)
    // under non_smtpd_milters.
    std::string family = t.client_ip.empty()                          ? "U"
                         : t.client_ip.find(':') == std::string::npos ? "4"
                                                                      : "6";
    std::string connect = z("client.sender.test") + family;
    if (!t.client_ip.empty()) connect += std::string("\0\x19", 2) + z(t.client_ip);
    if (!step('C', connect, &out)) return out;
    if (!step('H', z(t.helo), &out)) return out;
    std::string macros = z("i") + z("4BXq1k2Yz");
    if (!t.login.empty()) macros += z("{auth_authen}") + z(t.login) + z("{auth_type}") + z("PLAIN");
    send('D', "M" + macros);
    if (!step('M', z("<" + t.sender + ">"), &out)) return out;
    for (const auto& r : t.recipients)
        if (!step('R', z("<" + r + ">"), &out)) return out;
    for (const auto& [name, value] : t.headers)
        if (!step('L', z(name) + z((leading_space ? " " : "") + value), &out)) return out;
    send('D', "N" + z("i") + z("4BXq1k2Yz"));
    if (!step('N', "", &out)) return out;
    for (std::size_t at = 0; at < t.body.size(); at += 65535)
        if (!step('B', t.body.substr(at, 65535), &out)) return out;
    send('D', "E" + z("i") + z("4BXq1k2Yz"));
    step('E', "", &out);
    return out;
}

std::vector<Header> apply_modifications(std::vector<Header> headers,
                                        const std::vector<Modification>& mods) {
    for (const auto& m : mods) {
        if (m.code == 'i') {
            auto at = std::min<std::size_t>(static_cast<std::size_t>(m.index), headers.size());
            auto v = m.value;
            if (!v.empty() && v[0] == ' ') v.erase(0, 1);
            headers.insert(headers.begin() + static_cast<long>(at), {m.name, v});
        } else if (m.code == 'h') {
            headers.push_back({m.name, m.value});
        } else if (m.code == 'm') {
            int seen = 0;
            for (auto it = headers.begin(); it != headers.end(); ++it) {
                if (!iequal(it->first, m.name) || ++seen != m.index) continue;
                if (m.value.empty())
                    headers.erase(it);
                else
                    it->second = m.value;
                break;
            }
        }
    }
    return headers;
}

std::string render(const std::vector<Header>& headers, const std::string& body) {
    std::string out;
    for (const auto& [name, value] : headers)
        out += name + ": " + value + "\r\n";
    return out + "\r\n" + body;
}

}  // namespace postwarden::test
