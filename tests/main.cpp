// main.cpp — Catch2's entry point, shared by the unit and integration test programs.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
