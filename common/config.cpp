// config.cpp — the INI loader: sections, "key = value", '#'/';' comments (whole lines, or after a
// blank inside a line), every error as "FILE:LINE: [section] key: what is wrong".
#include "common/config.hpp"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "common/config_table.hpp"

namespace postwarden {

using config_detail::Building;
using config_detail::key_table;
using config_detail::trim;

namespace {

constexpr std::size_t max_file_bytes = 1 << 20;
constexpr std::size_t max_line_bytes = 4096;

// A comment starts at '#' or ';' at the start of the value or after a blank.
std::string_view strip_comment(std::string_view value) {
    for (std::size_t i = 0; i < value.size(); ++i) {
        bool starts = value[i] == '#' || value[i] == ';';
        if (starts && (i == 0 || value[i - 1] == ' ' || value[i - 1] == '\t'))
            return value.substr(0, i);
    }
    return value;
}

const config_detail::Key* find_key(std::string_view section, std::string_view name) {
    for (const auto& k : key_table())
        if (k.info.section == section && k.info.name == name) return &k;
    return nullptr;
}

bool known_section(std::string_view section) {
    for (const auto& k : key_table())
        if (k.info.section == section) return true;
    return false;
}

class Loader {
  public:
    explicit Loader(std::string_view name) : name_(name) {}
    bool line(std::string_view text, int number);
    bool finish();
    Building building;
    std::string error;

  private:
    bool fail(int number, std::string_view key, std::string_view what);
    std::string name_;
    std::string section_;
    std::map<std::string, int> seen_;  // "section.key" → line
};

bool Loader::fail(int number, std::string_view key, std::string_view what) {
    error = name_ + ":" + std::to_string(number) + ": [" + section_ + "]";
    if (!key.empty()) error += " " + std::string(key);
    error += ": " + std::string(what);
    return false;
}

bool Loader::line(std::string_view text, int number) {
    if (text.size() > max_line_bytes) return fail(number, "", "line too long");
    text = trim(text);
    if (text.empty() || text.front() == '#' || text.front() == ';') return true;
    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || !trim(strip_comment(text.substr(close + 1))).empty())
            return fail(number, "", "malformed section header");
        section_ = std::string(trim(text.substr(1, close - 1)));
        if (!known_section(section_)) return fail(number, "", "unknown section");
        return true;
    }
    auto eq = text.find('=');
    if (eq == std::string_view::npos) return fail(number, "", "expected 'key = value'");
    auto name = trim(text.substr(0, eq));
    if (section_.empty()) return fail(number, name, "key outside of any [section]");
    const auto* key = find_key(section_, name);
    if (!key) return fail(number, name, "unknown key");
    auto [it, fresh] = seen_.emplace(section_ + "." + std::string(name), number);
    if (!fresh)
        return fail(number, name, "set twice (first on line " + std::to_string(it->second) + ")");
    std::string why;
    if (!key->set(building, trim(strip_comment(text.substr(eq + 1))), &why))
        return fail(number, name, why);
    return true;
}

// Rules that tie keys together; reported at the line of the key named, or line 0 for defaults.
bool Loader::finish() {
    auto& g = building.config.greylist;
    if (g.retry_window <= g.delay) {
        auto it = seen_.find("greylist.retry_window");
        section_ = "greylist";
        return fail(it == seen_.end() ? 0 : it->second, "retry_window",
                    "must be longer than delay (" + std::to_string(g.delay) + ")");
    }
    auto& c = building.config;
    if (!c.redis.sentinels.empty() && c.redis.master_name.empty()) {
        auto it = seen_.find("redis.sentinels");
        section_ = "redis";
        return fail(it == seen_.end() ? 0 : it->second, "master_name",
                    "must be set when sentinels are (the name in 'sentinel monitor NAME')");
    }
    if (!c.redis.sentinels.empty() && c.redis.cluster) {
        auto it = seen_.find("redis.cluster");
        section_ = "redis";
        return fail(it == seen_.end() ? 0 : it->second, "cluster",
                    "cannot be combined with sentinels (a cluster fails over by itself)");
    }
    if (c.redis.seeds.size() > 1 && !c.redis.cluster) {
        auto it = seen_.find("redis.address");
        section_ = "redis";
        return fail(it == seen_.end() ? 0 : it->second, "address",
                    "several addresses need cluster = yes");
    }
    auto inherit = c.policyd.fail_mode;
    c.lists.fail_mode = building.lists_fail_mode.value_or(inherit);
    c.greylist.fail_mode = building.greylist_fail_mode.value_or(inherit);
    c.quota.fail_mode = building.quota_fail_mode.value_or(inherit);
    if (c.milter.authserv_id.empty()) {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        c.milter.authserv_id = host[0] ? host : "localhost";
    }
    return true;
}

Building defaults() {
    Building b;
    std::string why;
    for (const auto& k : key_table())
        if (!k.set(b, k.info.default_value, &why))
            throw std::logic_error("bad default for " + std::string(k.info.name) + ": " + why);
    return b;
}

}  // namespace

const std::vector<ConfigKeyInfo>& config_keys() {
    static const std::vector<ConfigKeyInfo> keys = [] {
        std::vector<ConfigKeyInfo> out;
        for (const auto& k : key_table())
            out.push_back(k.info);
        return out;
    }();
    return keys;
}

Config default_config() {
    Loader loader("(defaults)");
    loader.building = defaults();
    loader.finish();
    return loader.building.config;
}

std::shared_ptr<const Config> parse_config(std::string_view text, std::string_view name,
                                           std::string* error) {
    Loader loader(name);
    loader.building = defaults();
    if (text.size() > max_file_bytes) {
        *error = std::string(name) + ":0: []: file larger than 1 MiB";
        return nullptr;
    }
    int number = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        if (!loader.line(text.substr(pos, nl - pos), ++number))
            return *error = loader.error, nullptr;
        pos = nl + 1;
    }
    if (!loader.finish()) return *error = loader.error, nullptr;
    return std::make_shared<const Config>(std::move(loader.building.config));
}

std::shared_ptr<const Config> load_config(const std::string& path, std::string* error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        *error = path + ":0: []: cannot open the file";
        return nullptr;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), path, error);
}

}  // namespace postwarden
