// dns_answer.cpp — the spelling of a lookup's Status; see dns_answer.hpp.
#include "common/dns/dns_answer.hpp"

namespace postwarden::dns {

std::vector<std::string> status_labels() {
    std::vector<std::string> out;
    for (auto s : {Status::ok, Status::nxdomain, Status::nodata, Status::temp_error})
        out.emplace_back(to_string(s));
    return out;
}

std::string_view to_string(Status status) {
    switch (status) {
        case Status::ok:
            return "ok";
        case Status::nxdomain:
            return "nxdomain";
        case Status::nodata:
            return "nodata";
        case Status::temp_error:
            return "temp_error";
    }
    return "?";
}

}  // namespace postwarden::dns
