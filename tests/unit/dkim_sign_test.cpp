// dkim_sign_test.cpp — DKIM signing's pure parts and libopendkim in process: which header fields
// are signed and oversigned (h=), selectors read from Redis, key files (mode, owner, size, type),
// published key records, the [dkim] configuration.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <fstream>

#include "common/config.hpp"
#include "common/mail/dkim_key.hpp"
#include "common/mail/dkim_sign.hpp"
#include "milter/signer.hpp"
#include "tests/fixtures/process.hpp"

using namespace postwarden;
using namespace postwarden::dkim;

namespace {

const HeaderSelection selection{{"from", "to", "cc", "subject", "date"},
                                {"from", "to", "cc", "subject"}};

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : ":") + n;
    return out;
}

// h= of a signature made in process over these fields, blanks removed.
std::string signed_h(const std::vector<std::string>& fields, KeyType type) {
    static const auto rsa = std::make_shared<const PrivateKey>(generate_key(KeyType::rsa, 2048));
    static const auto ed = std::make_shared<const PrivateKey>(generate_key(KeyType::ed25519, 0));
    auto library = std::make_shared<const SigningLibrary>(selection);
    std::vector<std::string> kept;
    for (const auto& f : fields)
        if (selection.signs(field_name_of(f))) kept.push_back(f);
    Signer signer(library, {{"example.com", "s1", type == KeyType::rsa ? rsa : ed}}, kept, "test");
    signer.body("Hello.\r\n");
    std::vector<std::string> problems;
    auto sigs = signer.finish(&problems);
    REQUIRE(problems.empty());
    REQUIRE(sigs.size() == 1);
    CHECK(sigs[0].algorithm == (type == KeyType::rsa ? "rsa-sha256" : "ed25519-sha256"));
    CHECK(sigs[0].value.find('\r') == std::string::npos);  // LF folding, for Postfix
    std::string compact;
    for (char c : sigs[0].value)
        if (c != ' ' && c != '\t' && c != '\n') compact += c;
    auto at = compact.find(";h=");
    REQUIRE(at != std::string::npos);
    return compact.substr(at + 3, compact.find(';', at + 1) - at - 3);
}

std::string write_file(const std::string& path, const std::string& text, mode_t mode) {
    unlink(path.c_str());
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    REQUIRE(fchmod(fd, mode) == 0);
    close(fd);
    return path;
}

}  // namespace

TEST_CASE("DKIM header selection: every instance signed, oversigned names once more",
          "[unit][dkim-sign]") {
    CHECK(selection.signs("From"));
    CHECK(selection.signs("SUBJECT"));
    CHECK_FALSE(selection.signs("Received"));
    CHECK_FALSE(selection.signs("Fromx"));
    CHECK(joined(signed_header_list({"Received", "From", "To", "X-Mailer", "TO", "Subject"},
                                    selection)) == "From:To:TO:Subject:from:to:cc:subject");
    // No field at all: the oversigned names alone, so none can be added.
    CHECK(joined(signed_header_list({}, selection)) == "from:to:cc:subject");
    CHECK(joined(signed_header_list({"Date"}, HeaderSelection{{"date"}, {}})) == "Date");
    CHECK(field_name_of("Subject : x") == "Subject");
    CHECK(field_name_of("no colon").empty());
}

TEST_CASE("DKIM header selection: the signature carries the h= predicted", "[unit][dkim-sign]") {
    const std::vector<std::string> fields{"Received: from x",
                                          "From: a@example.com",
                                          "To: b@example.com,\n\tc@example.com",
                                          "X-Mailer: not signed",
                                          "TO: d@example.com",
                                          "Subject: hi",
                                          "Date: Mon, 1 Jan 2024 10:00:00 +0000"};
    std::vector<std::string> names;
    for (const auto& f : fields)
        names.emplace_back(field_name_of(f));
    const auto expected = joined(signed_header_list(names, selection));
    CHECK(expected == "From:To:TO:Subject:Date:from:to:cc:subject");
    CHECK(signed_h(fields, KeyType::rsa) == expected);
    CHECK(signed_h(fields, KeyType::ed25519) == expected);
}

TEST_CASE("DKIM relaxed canonicalization: the examples of RFC 6376 3.4.5 and chunk boundaries",
          "[unit][dkim-sign]") {
    CHECK(relaxed_header("A: X") == "a:X\r\n");
    CHECK(relaxed_header("B : Y\t\r\n\tZ  ") == "b:Y Z\r\n");
    CHECK(relaxed_header("Subject:  a\n\t b  c ") == "subject:a b c\r\n");
    CHECK(relaxed_header("X-Empty:") == "x-empty:\r\n");
    auto body = [](std::vector<std::string> chunks) {
        RelaxedBody b(true);
        for (const auto& c : chunks)
            b.feed(c);
        b.finish();
        return b.text();
    };
    CHECK(body({" C \r\nD \t E\r\n\r\n\r\n"}) == " C\r\nD E\r\n");
    // The same split anywhere, CRLF cut in two included; bare LF line ends.
    CHECK(body({" C \r", "\nD \t", " E\r\n\r", "\n\r\n"}) == " C\r\nD E\r\n");
    CHECK(body({" C \nD \t E\n\n"}) == " C\r\nD E\r\n");
    CHECK(body({"no end"}) == "no end\r\n");
    CHECK(body({"a\r\n  \t\r\n\r\nb"}) == "a\r\n\r\n\r\nb\r\n");  // inner empty lines stay
    CHECK(body({"x\ry\r"}) == "x\ry\r\r\n");                      // a lone CR is text
    CHECK(body({}).empty());
    CHECK(body({"\r\n\r\n"}).empty());
    RelaxedBody empty;
    CHECK(empty.finish() == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");  // SHA-256 of ""
}

TEST_CASE("DKIM relaxed canonicalization: a colon inside a header value keeps the space after it",
          "[unit][dkim-sign]") {
    CHECK(relaxed_header("Subject: Re: hello") == "subject:Re: hello\r\n");
    CHECK(relaxed_header("Subject:Re:  a:\r\n\t b") == "subject:Re: a: b\r\n");
    CHECK(relaxed_header("To: Team: a@example.com, b@example.com;") ==
          "to:Team: a@example.com, b@example.com;\r\n");
}

TEST_CASE("DKIM selectors from Redis: only valid names, sorted, at most 8", "[unit][dkim-sign]") {
    std::vector<std::string> set{"rsa-202612", "../../etc/passwd", "ed-202612", "a/b",    "",
                                 "x..y",       "rsa-202612",       "-",         "ok.sub", "x y"};
    CHECK(milter::usable_selectors(set) ==
          std::vector<std::string>{"-", "ed-202612", "ok.sub", "rsa-202612"});
    for (int i = 0; i < 20; ++i)
        set.push_back("s" + std::to_string(10 + i));
    CHECK(milter::usable_selectors(set).size() == max_signing_keys);
    CHECK(milter::usable_selectors({}).empty());
}

TEST_CASE("DKIM key names: selectors, domains and paths stay inside key_dir", "[unit][dkim-sign]") {
    CHECK(valid_selector("rsa-202612"));
    CHECK(valid_selector("Sel_1.sub"));
    CHECK_FALSE(valid_selector(".."));
    CHECK_FALSE(valid_selector("../x"));
    CHECK_FALSE(valid_selector("a/b"));
    CHECK_FALSE(valid_selector(std::string(64, 'a')));
    CHECK(valid_key_domain("example.com"));
    CHECK_FALSE(valid_key_domain("Example.com"));
    CHECK_FALSE(valid_key_domain("com"));
    CHECK_FALSE(valid_key_domain("a..com"));
    CHECK_FALSE(valid_key_domain("a.com/.."));
    CHECK(key_path("/etc/postwarden/dkim/", "example.com", "s1") ==
          "/etc/postwarden/dkim/example.com/s1.key");
}

TEST_CASE("DKIM key files: refused when others may read them, not ours, too large or not keys",
          "[unit][dkim-sign]") {
    test::TempDir dir{"postwarden-keyfile"};
    const auto key = generate_key(KeyType::ed25519, 0);
    std::string why;
    auto path = write_file(dir.path() + "/ok.key", key.pem, 0600);
    auto read = read_key_file(path, geteuid(), &why);
    REQUIRE(read);
    CHECK(read->type == KeyType::ed25519);
    CHECK(read->public_key == key.public_key);
    CHECK_FALSE(read_key_file(path, geteuid() + 1, &why));
    CHECK(why.find("is owned by uid") != std::string::npos);
    for (mode_t mode : {0640, 0604, 0620, 0400 | 0044}) {
        write_file(path, key.pem, mode);
        INFO(mode);
        CHECK_FALSE(read_key_file(path, geteuid(), &why));
        CHECK(why.find("open to group or others") != std::string::npos);
    }
    write_file(path, std::string(max_key_file_bytes + 1, 'x'), 0600);
    CHECK_FALSE(read_key_file(path, geteuid(), &why));
    CHECK(why.find("larger than") != std::string::npos);
    write_file(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0600);
    CHECK_FALSE(read_key_file(path, geteuid(), &why));
    CHECK(why.find("not a PEM private key") != std::string::npos);
    const auto fifo = dir.path() + "/fifo.key";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_FALSE(read_key_file(fifo, geteuid(), &why));  // and does not hang
    CHECK(why.find("not a regular file") != std::string::npos);
    CHECK_FALSE(read_key_file(dir.path() + "/missing.key", geteuid(), &why));
}

TEST_CASE("DKIM key records: k= and p= checked, as published and as generated",
          "[unit][dkim-sign]") {
    const auto rsa = generate_key(KeyType::rsa, 1024);
    const auto ed = generate_key(KeyType::ed25519, 0);
    CHECK(rsa.bits == 1024);
    auto r = parse_key_record(txt_record(rsa));
    CHECK(r.problem.empty());
    CHECK(r.k == "rsa");
    CHECK(r.p == rsa.public_key);
    r = parse_key_record("v=DKIM1; k=ed25519; p=" + ed.public_key.substr(0, 20) + " " +
                         ed.public_key.substr(20));
    CHECK(r.problem.empty());
    CHECK(r.p == ed.public_key);
    CHECK(parse_key_record("p=" + rsa.public_key).problem.empty());  // k=rsa by default
    CHECK(parse_key_record("v=DKIM1; k=ed25519; p=" + rsa.public_key).problem ==
          "p= is not a 32-byte Ed25519 key");
    CHECK(parse_key_record("v=DKIM1; k=rsa; p=" + ed.public_key).problem ==
          "p= is not an RSA public key");
    CHECK(parse_key_record("v=DKIM1; k=rsa; p=").problem == "p= is empty (the key is revoked)");
    CHECK(parse_key_record("v=DKIM1; k=rsa; p=AAAA%%==").problem == "p= is not base64");
    CHECK(parse_key_record("v=DKIM1; k=dsa; p=AAAA").problem == "unknown k=dsa");
    CHECK(parse_key_record("v=DKIM1; k=rsa").problem == "no p= tag");
    CHECK(parse_key_record("k=rsa; v=DKIM1; p=" + rsa.public_key).problem ==
          "v= is not DKIM1 or not first");
    std::string why;
    CHECK_FALSE(parse_private_key("garbage", &why));
    auto small = parse_private_key(rsa.pem, &why);
    REQUIRE(small);
    CHECK(small->public_key == rsa.public_key);
}

TEST_CASE("DKIM configuration: header names lower-cased, from required", "[unit][dkim-sign]") {
    std::string error;
    auto c = parse_config("[dkim]\nsign_headers = From, Subject, X-Custom\noversign = FROM\n",
                          "t.conf", &error);
    REQUIRE(c);
    CHECK(c->dkim.sign_headers == std::vector<std::string>{"from", "subject", "x-custom"});
    CHECK(c->dkim.oversign == std::vector<std::string>{"from"});
    CHECK(c->dkim.key_dir == "/etc/postwarden/dkim");
    CHECK_FALSE(parse_config("[dkim]\nsign_headers = to, subject\n", "t.conf", &error));
    CHECK(error == "t.conf:2: [dkim] sign_headers: must include from (RFC 6376 §5.4)");
    CHECK_FALSE(parse_config("[dkim]\noversign = from, a:b\n", "t.conf", &error));
    CHECK(error.find("'a:b' is not a header field name") != std::string::npos);
    CHECK_FALSE(parse_config("[dkim]\nkey_dir = relative\n", "t.conf", &error));
}
