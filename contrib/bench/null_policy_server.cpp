// null_policy_server.cpp — the ceiling for policy benchmarks: a policy server that answers
// "action=DUNNO" to every request without any work, on the same Asio machinery as policyd
// (one thread, async reads and writes). Whatever the load generator measures against it is what
// the protocol, the kernel and the load generator allow on this machine.
//
//   null_policy_server PORT
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <iostream>
#include <memory>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    explicit Connection(tcp::socket socket) : socket_(std::move(socket)) {}
    void start() { read(); }

  private:
    void read() {
        socket_.async_read_some(asio::buffer(buffer_),
                                [self = shared_from_this()](auto ec, auto n) {
                                    if (ec) return;
                                    self->consume(n);
                                });
    }

    // Counts the requests completed in this read (each ends with an empty line) and answers them.
    void consume(std::size_t n) {
        std::string out;
        for (std::size_t i = 0; i < n; ++i) {
            char c = buffer_[i];
            if (c == '\n' && last_ == '\n') out += "action=DUNNO\n\n";
            last_ = c;
        }
        if (out.empty()) return read();
        reply_ = std::move(out);
        asio::async_write(socket_, asio::buffer(reply_),
                          [self = shared_from_this()](auto ec, auto) {
                              if (!ec) self->read();
                          });
    }

    tcp::socket socket_;
    std::array<char, 8192> buffer_;
    std::string reply_;
    char last_ = 0;
};

void accept(tcp::acceptor& acceptor) {
    acceptor.async_accept([&acceptor](auto ec, tcp::socket socket) {
        if (!ec) {
            socket.set_option(tcp::no_delay(true));
            std::make_shared<Connection>(std::move(socket))->start();
        }
        accept(acceptor);
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: null_policy_server PORT\n";
        return 2;
    }
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                             static_cast<unsigned short>(std::stoi(argv[1]))));
    accept(acceptor);
    io.run();
}
