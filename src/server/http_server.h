// The HTTP layer: routes, authentication, CORS, body limits, JSON errors, the access log and the web UI.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include <httplib.h>

#include "server/server_state.h"

namespace medlab::server {

class HttpServer {
 public:
  explicit HttpServer(ServerState& state);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds options.host:options.port (0 picks a free port) and returns the port; throws Error if it cannot.
  int bind();
  // Serves until stop() (from another thread).
  void run();
  void stop();

 private:
  void add_routes();
  bool authorized(const httplib::Request& req) const;
  void log_access(const httplib::Request& req, const httplib::Response& res);

  ServerState& state_;
  httplib::Server http_;
  std::FILE* access_log_ = nullptr;
  bool own_access_log_ = false;
  std::mutex log_mutex_;
};

// Compares secrets in time that depends only on their lengths, not on where they first differ.
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace medlab::server
