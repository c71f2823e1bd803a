// main.cpp — postwarden, the admin CLI (SPEC §7): see cli.hpp.
#include <iostream>

#include "admin/cli.hpp"

int main(int argc, char** argv) {
    return postwarden::admin::run_cli(argc, argv, std::cout, std::cerr);
}
