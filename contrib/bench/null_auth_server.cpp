// null_auth_server.cpp — the ceiling for the auth-policy benchmark (contrib/bench/auth.sh): an
// HTTP/1.1 keep-alive server on the same stack as policyd's auth server (Asio and Beast, one
// thread, one io_context), which reads each request whole and answers {"msg":"","status":0}
// without looking at it. What policyd adds on top of this is its own cost.
//
//   null_auth_server PORT
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <memory>
#include <string>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    explicit Connection(tcp::socket socket) : socket_(std::move(socket)) {
        socket_.set_option(tcp::no_delay(true));
    }
    void read() {
        request_ = {};
        http::async_read(socket_, buffer_, request_, [self = shared_from_this()](auto ec, auto) {
            if (!ec) self->respond();
        });
    }

  private:
    void respond() {
        response_ = {};
        response_.result(http::status::ok);
        response_.version(11);
        response_.keep_alive(request_.keep_alive());
        response_.set(http::field::server, "postwarden");
        response_.set(http::field::content_type, "application/json");
        response_.body() = R"({"msg":"","status":0})";
        response_.prepare_payload();
        http::async_write(socket_, response_, [self = shared_from_this()](auto ec, auto) {
            if (!ec) self->read();
        });
    }
    tcp::socket socket_;
    boost::beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
    http::response<http::string_body> response_;
};

void accept(tcp::acceptor& acceptor) {
    acceptor.async_accept([&acceptor](auto ec, tcp::socket socket) {
        if (!ec) std::make_shared<Connection>(std::move(socket))->read();
        accept(acceptor);
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    asio::io_context io(1);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                             static_cast<unsigned short>(std::stoi(argv[1]))));
    accept(acceptor);
    io.run();
}
