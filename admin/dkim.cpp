// dkim.cpp — `postwarden dkim keygen|activate|retire|list|check` (SPEC §9): signing keys on disk
// (<key_dir>/<domain>/<selector>.key, common/mail/dkim_key.hpp) and the active selectors in
// Redis (SET <prefix>dkim:selectors:<domain>, which the milter reads for every message).
//
// keygen writes keys and prints their records, and activates nothing; activate refuses a
// selector whose key file the milter would refuse; check compares the published record of each
// selector with its key file through the project's resolver ([dns] nameservers).
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <set>

#include "admin/commands.hpp"
#include "admin/json.hpp"
#include "common/dns/dns.hpp"
#include "common/idna.hpp"
#include "common/mail/dkim_key.hpp"

namespace postwarden::admin {

namespace {

using dkim::KeyType;

// The user the milter runs as: [milter] user, or the shipped units' User=postwarden.
struct MilterUser {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    bool known = false;  // the account exists here
};

MilterUser milter_user(const Config& config) {
    MilterUser u;
    u.name = config.milter.user.empty() ? "postwarden" : config.milter.user;
    if (const passwd* pw = getpwnam(u.name.c_str())) {
        u.uid = pw->pw_uid;
        u.gid = pw->pw_gid;
        u.known = true;
    }
    return u;
}

std::string domain_argument(std::string_view text) {
    auto ascii = to_a_label(text);
    if (!ascii || !dkim::valid_key_domain(*ascii))
        throw Failure(exit_usage, "'" + printable(text) + "' is not a domain name");
    return *ascii;
}

std::string selector_argument(std::string_view text) {
    if (!dkim::valid_selector(text))
        throw Failure(exit_usage, "'" + printable(text) +
                                      "' is not a selector (letters, digits, '-', '_', dots)");
    return std::string(text);
}

std::string selectors_key(Context& ctx, const std::string& domain) {
    return ctx.store.key("dkim:selectors:" + domain);
}

// The TXT record in zone-file form, its strings at most 255 bytes (RFC 1035 §3.3.14).
std::string zone_record(const std::string& domain, const std::string& selector,
                        const dkim::PrivateKey& key) {
    const std::string txt = dkim::txt_record(key);
    std::string out = selector + "._domainkey." + domain + ". IN TXT (";
    for (std::size_t at = 0; at < txt.size(); at += 250)
        out += " \"" + txt.substr(at, 250) + "\"";
    return out + " )\n";
}

// Creates a directory unless it exists.
void make_dir(const std::string& path, mode_t mode) {
    if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
        throw Failure(exit_usage, "cannot create " + path + ": " + std::strerror(errno));
}

// A domain's key directory, created unless it exists (one created as root is given to `owner`)
// and opened without following a symlink: whoever may write in key_dir could otherwise point
// it anywhere, and have root create files, or change an owner, there. Everything after goes
// through the descriptor, never through the path again.
int open_domain_dir(const std::string& path, const MilterUser& owner) {
    const bool created = mkdir(path.c_str(), 0700) == 0;
    if (!created && errno != EEXIST)
        throw Failure(exit_usage, "cannot create " + path + ": " + std::strerror(errno));
    const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        const bool link = errno == ELOOP || errno == ENOTDIR;
        throw Failure(exit_usage, "cannot use " + path + ": " +
                                      (link ? std::string("not a directory (a symlink is not "
                                                          "followed)")
                                            : std::strerror(errno)));
    }
    if (created && geteuid() == 0 && fchown(fd, owner.uid, owner.gid) != 0) {
        close(fd);
        throw Failure(exit_usage, "cannot give " + path + " to " + owner.name);
    }
    return fd;
}

// Writes a new key file `name` in the directory `dir`, never over an existing one, mode 0600,
// owned by the milter's user; `path` names it in messages.
void write_key_file(int dir, const std::string& name, const std::string& path,
                    const std::string& pem, const MilterUser& owner) {
    const int fd =
        openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        throw Failure(exit_usage, "cannot create " + path + ": " + std::strerror(errno) +
                                      (errno == EEXIST ? " (keys are never overwritten)" : ""));
    bool ok = fchmod(fd, 0600) == 0;
    if (ok && geteuid() == 0) ok = fchown(fd, owner.uid, owner.gid) == 0;
    for (std::size_t at = 0; ok && at < pem.size();) {
        const ssize_t n = write(fd, pem.data() + at, pem.size() - at);
        if (n <= 0) ok = false;
        at += n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    ok = fsync(fd) == 0 && ok;
    close(fd);
    if (!ok) {
        unlinkat(dir, name.c_str(), 0);
        throw Failure(exit_usage, "cannot write " + path);
    }
}

struct KeygenOptions {
    std::string type = "both", selector;
    int bits = 2048;
};

KeygenOptions keygen_options(const std::vector<std::string>& args) {
    KeygenOptions o;
    for (std::size_t i = 2; i < args.size(); ++i) {
        const auto& a = args[i];
        if (i + 1 >= args.size() || (a != "--type" && a != "--bits" && a != "--selector"))
            throw Failure(exit_usage,
                          "usage: postwarden dkim keygen DOMAIN [--type "
                          "rsa|ed25519|both] [--bits N] [--selector NAME]");
        const auto& v = args[++i];
        if (a == "--type") o.type = v;
        if (a == "--selector") o.selector = selector_argument(v);
        if (a == "--bits") {
            o.bits = std::atoi(v.c_str());
            if (v.find_first_not_of("0123456789") != std::string::npos ||
                o.bits < dkim::min_rsa_bits || o.bits > dkim::max_rsa_bits)
                throw Failure(exit_usage, "--bits takes 1024 to 8192");
        }
    }
    if (o.type != "rsa" && o.type != "ed25519" && o.type != "both")
        throw Failure(exit_usage, "--type takes rsa, ed25519 or both");
    if (o.type == "both" && !o.selector.empty())
        throw Failure(exit_usage, "--selector names one key: give --type rsa or ed25519 too");
    return o;
}

std::string year_month(long long now_ms) {
    const std::time_t t = static_cast<std::time_t>(now_ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[8];
    std::strftime(text, sizeof text, "%Y%m", &tm);
    return text;
}

Output keygen(Context& ctx, const std::vector<std::string>& args) {
    const auto domain = domain_argument(args[1]);
    const auto options = keygen_options(args);
    const auto owner = milter_user(ctx.config);
    if (geteuid() == 0 && !owner.known)
        throw Failure(exit_usage, "no user '" + owner.name +
                                      "' to own the keys ([milter] user, or the service's)");
    // Keys another user owns are refused by the milter: only root can give them away.
    if (geteuid() != 0 && owner.known && owner.uid != geteuid())
        throw Failure(exit_usage, "run as root or as " + owner.name +
                                      ": the milter refuses keys that another user owns");
    std::vector<std::pair<KeyType, std::string>> wanted;
    if (options.type != "ed25519")
        wanted.emplace_back(KeyType::rsa, options.selector.empty() ? "rsa-" + year_month(ctx.now_ms)
                                                                   : options.selector);
    if (options.type != "rsa")
        wanted.emplace_back(KeyType::ed25519, options.selector.empty()
                                                  ? "ed-" + year_month(ctx.now_ms)
                                                  : options.selector);
    const auto& dir = ctx.config.dkim.key_dir;
    for (const auto& [type, selector] : wanted)  // nothing is written if one would be replaced
        if (access(dkim::key_path(dir, domain, selector).c_str(), F_OK) == 0)
            throw Failure(exit_usage, dkim::key_path(dir, domain, selector) +
                                          " exists; keys are never overwritten");
    make_dir(dir, 0755);
    struct Closer {
        int fd;
        ~Closer() { close(fd); }
    } domain_dir{open_domain_dir(dir + "/" + domain, owner)};
    Output out;
    JsonWriter json;
    json.begin_object().field("domain", domain).key("keys").begin_array();
    for (const auto& [type, selector] : wanted) {
        const auto key = dkim::generate_key(type, options.bits);
        const auto path = dkim::key_path(dir, domain, selector);
        write_key_file(domain_dir.fd, selector + ".key", path, key.pem, owner);
        out.text += "; " + path + " (" + std::string(dkim::algorithm_of(type)) + ", " +
                    std::to_string(key.bits) + " bits)\n" + zone_record(domain, selector, key);
        json.begin_object()
            .field("selector", selector)
            .field("algorithm", std::string(dkim::algorithm_of(type)))
            .field("bits", key.bits)
            .field("file", path)
            .field("name", selector + "._domainkey." + domain)
            .field("txt", dkim::txt_record(key))
            .end_object();
    }
    out.json = json.end_array().end_object().str();
    out.message = "publish the record(s), check with `postwarden dkim check " + domain +
                  "`, then `postwarden dkim activate " + domain + " SELECTOR`";
    return out;
}

// What the milter would make of a key file: "ok" (with type and size) or why it is refused.
std::string key_state(Context& ctx, const std::string& domain, const std::string& selector,
                      std::optional<dkim::PrivateKey>* key = nullptr) {
    const auto owner = milter_user(ctx.config);
    const uid_t uid = owner.known ? owner.uid : geteuid();
    std::string why;
    auto read =
        dkim::read_key_file(dkim::key_path(ctx.config.dkim.key_dir, domain, selector), uid, &why);
    if (key) *key = read;
    if (!read) return why;
    return "ok " + std::string(dkim::algorithm_of(read->type)) + " " + std::to_string(read->bits);
}

Output activate(Context& ctx, const std::string& domain, const std::string& selector) {
    auto state = key_state(ctx, domain, selector);
    if (state.rfind("ok ", 0) != 0)
        throw Failure(exit_usage, "not activated, the milter could not sign with it: " + state);
    const auto added = ctx.store.run({"SADD", selectors_key(ctx, domain), selector}).integer;
    Output out;
    out.text = selector + " " + (added ? "activated" : "already active") + " for " + domain + "\n";
    JsonWriter json;
    out.json = json.begin_object()
                   .field("domain", domain)
                   .field("selector", selector)
                   .field("activated", added != 0)
                   .end_object()
                   .str();
    return out;
}

Output retire(Context& ctx, const std::string& domain, const std::string& selector) {
    const auto removed = ctx.store.run({"SREM", selectors_key(ctx, domain), selector}).integer;
    Output out;
    out.text = selector + " " + (removed ? "retired" : "was not active") + " for " + domain + "\n";
    if (!removed) out.exit_code = exit_not_found;
    JsonWriter json;
    out.json = json.begin_object()
                   .field("domain", domain)
                   .field("selector", selector)
                   .field("retired", removed != 0)
                   .end_object()
                   .str();
    return out;
}

// The selectors with a key file in <key_dir>/<domain>.
std::set<std::string> key_files(const Config& config, const std::string& domain) {
    std::set<std::string> out;
    DIR* dir = opendir((config.dkim.key_dir + "/" + domain).c_str());
    if (!dir) return out;
    while (const dirent* e = readdir(dir)) {
        std::string name = e->d_name;
        if (name.size() > 4 && name.ends_with(".key") &&
            dkim::valid_selector(name.substr(0, name.size() - 4)))
            out.insert(name.substr(0, name.size() - 4));
    }
    closedir(dir);
    return out;
}

// Domains with active selectors (SCAN of <prefix>dkim:selectors:*) or a key directory.
std::set<std::string> all_domains(Context& ctx) {
    std::set<std::string> out;
    const auto prefix = selectors_key(ctx, "");
    // SCAN walks one node's keys: on a cluster, each master's in turn.
    for (std::size_t master = 0, n = ctx.store.masters(); master < n; ++master) {
        std::string cursor = "0";
        do {
            auto page =
                ctx.store.run_on(master, {"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
            if (page.elements.size() != 2) break;
            cursor = page.elements[0].str;
            for (const auto& k : strings_of(page.elements[1]))
                out.insert(k.substr(prefix.size()));
        } while (cursor != "0");
    }
    if (DIR* dir = opendir(ctx.config.dkim.key_dir.c_str())) {
        while (const dirent* e = readdir(dir))
            if (dkim::valid_key_domain(e->d_name)) out.insert(e->d_name);
        closedir(dir);
    }
    return out;
}

Output list_keys(Context& ctx, const std::vector<std::string>& args) {
    std::set<std::string> domains;
    if (args.size() > 1)
        domains.insert(domain_argument(args[1]));
    else
        domains = all_domains(ctx);
    Output out;
    JsonWriter json;
    json.begin_array();
    std::vector<std::vector<std::string>> rows{{"DOMAIN", "SELECTOR", "STATE", "KEY FILE"}};
    for (const auto& domain : domains) {
        auto active_list = strings_of(ctx.store.run({"SMEMBERS", selectors_key(ctx, domain)}));
        std::set<std::string> active(active_list.begin(), active_list.end());
        auto all = key_files(ctx.config, domain);
        all.insert(active.begin(), active.end());
        for (const auto& selector : all) {
            const bool on = active.contains(selector);
            auto state = dkim::valid_selector(selector) ? key_state(ctx, domain, selector)
                                                        : "not a valid selector";
            rows.push_back(
                {domain, printable(selector), on ? "active" : "inactive", printable(state)});
            json.begin_object()
                .field("domain", domain)
                .field("selector", selector)
                .field("active", on)
                .field("key", state)
                .end_object();
        }
    }
    out.text = columns(rows);
    out.json = json.end_array().str();
    return out;
}

// One selector's published record against its key file: ok, missing, mismatch, or a problem.
std::string compare(const dns::Answer& answer, const std::optional<dkim::PrivateKey>& key,
                    int* exit_code) {
    auto worst = [&](int code) { *exit_code = std::max(*exit_code, code); };
    if (answer.status == dns::Status::temp_error) {
        worst(exit_unavailable);
        return "unknown (DNS: " + printable(answer.error) + ")";
    }
    std::vector<std::string> records;
    for (const auto& t : answer.texts)
        if (t.rfind("v=DKIM1", 0) == 0 || t.find("p=") != std::string::npos) records.push_back(t);
    if (records.empty()) return worst(exit_not_found), "missing (no key record published)";
    if (records.size() > 1) return worst(exit_not_found), "malformed (several key records)";
    auto r = dkim::parse_key_record(records.front());
    if (!r.problem.empty()) return worst(exit_not_found), "malformed (" + r.problem + ")";
    if (!key) return worst(exit_not_found), "published, but no usable key file";
    if (r.k != dkim::key_tag_of(key->type) || r.p != key->public_key)
        return worst(exit_not_found), "mismatch (the published key is not this key file's)";
    return "ok";
}

Output check(Context& ctx, const std::string& domain) {
    auto active_list = strings_of(ctx.store.run({"SMEMBERS", selectors_key(ctx, domain)}));
    std::set<std::string> selectors(active_list.begin(), active_list.end());
    auto files = key_files(ctx.config, domain);
    selectors.insert(files.begin(), files.end());
    dns::ResolverOptions options;
    options.nameservers = ctx.config.dns.nameservers;
    options.timeout_ms = ctx.config.dns.timeout_ms;
    const dns::Resolver resolver(options);
    Output out;
    JsonWriter json;
    json.begin_object().field("domain", domain).key("selectors").begin_array();
    std::vector<std::vector<std::string>> rows{{"SELECTOR", "STATE", "DNS", "KEY FILE"}};
    for (const auto& selector : selectors) {
        if (!dkim::valid_selector(selector)) continue;
        std::optional<dkim::PrivateKey> key;
        auto file = key_state(ctx, domain, selector, &key);
        auto answer = resolver.query(selector + "._domainkey." + domain, dns::Type::txt);
        int code = exit_ok;
        auto dns_state = compare(answer, key, &code);
        const bool on =
            std::find(active_list.begin(), active_list.end(), selector) != active_list.end();
        if (on) out.exit_code = std::max(out.exit_code, code);  // inactive keys only inform
        rows.push_back(
            {printable(selector), on ? "active" : "inactive", dns_state, printable(file)});
        json.begin_object()
            .field("selector", selector)
            .field("active", on)
            .field("dns", dns_state)
            .field("key", file)
            .end_object();
    }
    out.text = columns(rows);
    out.json = json.end_array().end_object().str();
    if (selectors.empty()) {
        out.exit_code = exit_not_found;
        out.message = "no selector is active and no key file exists for " + domain;
    }
    return out;
}

}  // namespace

Output dkim_command(Context& ctx, const std::vector<std::string>& args) {
    const auto& action = args[0];
    if (action == "keygen") return keygen(ctx, args);
    if (action == "list") return list_keys(ctx, args);
    if (action == "check") return check(ctx, domain_argument(args[1]));
    const auto domain = domain_argument(args[1]);
    const auto selector = selector_argument(args[2]);
    return action == "activate" ? activate(ctx, domain, selector) : retire(ctx, domain, selector);
}

}  // namespace postwarden::admin
