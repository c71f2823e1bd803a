// The byte-bounded LRU map under every cache a client can fill.
#include "common/byte_lru.hpp"

#include <catch2/catch.hpp>
#include <string>

using postwarden::ByteLru;

TEST_CASE("byte_lru: stays within its byte budget whatever the entries weigh") {
    ByteLru<std::string> lru(64 * 1024);
    for (int i = 0; i < 10000; ++i) {
        std::string value(i % 7 == 0 ? 4096 : 10, 'x');
        std::size_t bytes = value.size();
        lru.put("key" + std::to_string(i), std::move(value), bytes);
        REQUIRE(lru.bytes() <= lru.max_bytes());
    }
    CHECK(lru.size() > 0);
}

TEST_CASE("byte_lru: a used entry outlives newer unused ones") {
    ByteLru<int> lru(10 * (ByteLru<int>::kOverhead + sizeof(int) + 8));
    lru.put("hot", 1);
    for (int i = 0; i < 100; ++i) {
        REQUIRE(lru.find("hot") != nullptr);
        lru.put("cold" + std::to_string(i), i);
    }
    REQUIRE(lru.find("hot") != nullptr);
    CHECK(*lru.find("hot") == 1);
    CHECK(lru.find("cold0") == nullptr);
}

TEST_CASE("byte_lru: replacing and erasing keep the byte count exact") {
    ByteLru<std::string> lru(1 << 20);
    lru.put("a", std::string(100, 'a'), 100);
    std::size_t one = lru.bytes();
    lru.put("a", std::string(100, 'b'), 100);
    CHECK(lru.bytes() == one);
    CHECK(lru.size() == 1);
    CHECK(lru.erase("a"));
    CHECK(lru.bytes() == 0);
    CHECK_FALSE(lru.erase("a"));
    lru.put("big", std::string(), 2 << 20);  // larger than the budget: not kept
    CHECK(lru.size() == 0);
}
