// inet.cpp — IP and CIDR parsing on inet_pton/inet_ntop (the C library's, not our own).
#include "common/inet.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace postwarden {

std::string IpAddress::to_string() const {
    if (!v6) {
        // inet_ntop formats v4 with sprintf; a request spells ~34 networks (network_candidates).
        char buf[16];
        char* p = buf;
        for (int i = 0; i < 4; ++i) {
            if (i) *p++ = '.';
            p = std::to_chars(p, buf + sizeof buf, bytes[i]).ptr;
        }
        return std::string(buf, p);
    }
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
    return buf;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    IpAddress ip;
    if (inet_pton(AF_INET, buf, ip.bytes.data()) == 1) return ip;
    if (inet_pton(AF_INET6, buf, ip.bytes.data()) != 1) return std::nullopt;
    static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip.bytes.data(), mapped, 12) == 0) {
        std::memmove(ip.bytes.data(), ip.bytes.data() + 12, 4);
        std::memset(ip.bytes.data() + 4, 0, 12);
        return ip;
    }
    ip.v6 = true;
    return ip;
}

IpAddress mask(const IpAddress& address, int prefix) {
    IpAddress out = address;
    for (int i = 0; i < address.bits() / 8; ++i) {
        int keep = prefix - i * 8;
        if (keep >= 8) continue;
        out.bytes[i] &= keep <= 0 ? 0 : static_cast<std::uint8_t>(0xff << (8 - keep));
    }
    return out;
}

bool Cidr::contains(const IpAddress& address) const {
    return address.v6 == network.v6 && mask(address, prefix) == network;
}

std::string Cidr::to_string() const {
    std::string out = network.to_string();
    char len[4];
    auto end = std::to_chars(len, len + sizeof len, prefix).ptr;
    out += '/';
    out.append(len, end);
    return out;
}

std::optional<Cidr> parse_cidr(std::string_view text, std::string* error) {
    auto slash = text.find('/');
    auto ip = parse_ip(text.substr(0, slash));
    if (!ip) {
        *error = "'" + std::string(text) + "' is not an IP address or CIDR network";
        return std::nullopt;
    }
    Cidr cidr{*ip, ip->bits()};
    if (slash != std::string_view::npos) {
        auto len = text.substr(slash + 1);
        auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), cidr.prefix);
        if (ec != std::errc() || end != len.data() + len.size() || len.empty() || cidr.prefix < 0 ||
            cidr.prefix > ip->bits()) {
            *error = "'" + std::string(text) + "': bad prefix length";
            return std::nullopt;
        }
    }
    if (!(mask(*ip, cidr.prefix) == *ip)) {
        *error = "'" + std::string(text) + "': host bits set (did you mean " +
                 mask(*ip, cidr.prefix).to_string() + "/" + std::to_string(cidr.prefix) + "?)";
        return std::nullopt;
    }
    return cidr;
}

std::optional<std::vector<Cidr>> parse_cidr_list(std::string_view text, std::string* error) {
    std::vector<Cidr> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find_first_of(", \t", pos);
        if (end == std::string_view::npos) end = text.size();
        if (end > pos) {
            auto cidr = parse_cidr(text.substr(pos, end - pos), error);
            if (!cidr) return std::nullopt;
            out.push_back(*cidr);
        }
        pos = end + 1;
    }
    return out;
}

bool any_contains(const std::vector<Cidr>& networks, const IpAddress& address) {
    for (const auto& n : networks)
        if (n.contains(address)) return true;
    return false;
}

std::vector<std::string> network_candidates(const IpAddress& address) {
    std::vector<std::string> out;
    out.reserve(address.bits() + 2);
    out.push_back(address.to_string());
    for (int len = address.bits(); len >= 0; --len)
        out.push_back(Cidr{mask(address, len), len}.to_string());
    return out;
}

std::string network_candidate(const IpAddress& address, std::size_t j) {
    if (j == 0) return address.to_string();
    int len = address.bits() - static_cast<int>(j - 1);
    return Cidr{mask(address, len), len}.to_string();
}

}  // namespace postwarden
