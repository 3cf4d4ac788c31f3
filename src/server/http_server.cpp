#include "server/http_server.h"

#include <chrono>
#include <ctime>

#include "server/api_error.h"
#include "server/job.h"
#include "server/handlers.h"
#include "server/web_assets.h"

namespace medlab::server {
namespace {

using Clock = std::chrono::steady_clock;
using Handler = void (*)(ServerState&, const httplib::Request&, httplib::Response&);

// When this connection's thread began the current request (set before routing, read by the logger).
thread_local Clock::time_point request_start;

struct Route {
  const char* method;
  const char* path;
  Handler handler;
};

constexpr Route kRoutes[] = {
    {"GET", "/api/health", handle_health},
    {"POST", "/api/predict", handle_predict},
    {"POST", "/api/render", handle_render},
    {"POST", "/v1/chat/completions", handle_chat_completions},
    {"GET", "/v1/models", handle_models},
    {"GET", "/metrics", handle_metrics},
};

void send_error(httplib::Response& res, int status, const std::string& type, const std::string& param, const std::string& message) {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", "1");
  res.set_content(dump_json(error_json(message, type, param)), "application/json");
}

bool needs_key(const std::string& path) {
  return (path.starts_with("/api/") && path != "/api/health") || path.starts_with("/v1/") || path == "/metrics";
}

// The metrics label of a path: a known endpoint, or "other" (never the raw path, which clients choose).
std::string endpoint_label(const std::string& path) {
  for (const Route& r : kRoutes)
    if (path == r.path) return r.path;
  for (const WebAsset& a : web_assets())
    if (path == a.path) return "web";
  return path == "/" ? "web" : "other";
}

}  // namespace

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Every byte of `a` is compared (against b cycled), whatever the lengths or the first difference.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= uint8_t(a[i] ^ (b.empty() ? 0 : b[i % b.size()]));
  return diff == 0;
}

HttpServer::HttpServer(ServerState& state) : state_(state) {
  const ServerOptions& o = state.options;
  if (o.access_log == "-") {
    access_log_ = stdout;
  } else if (!o.access_log.empty()) {
    access_log_ = std::fopen(o.access_log.c_str(), "a");
    if (!access_log_) fail(o.access_log, ": cannot open the access log for appending");
    own_access_log_ = true;
  }
  const int threads = o.http_threads;
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_.set_payload_max_length(o.max_body_bytes);
  http_.set_read_timeout(30);
  http_.set_write_timeout(30);
  http_.set_keep_alive_timeout(5);
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = Clock::now();
    streamed_bytes = 0;
    if (!state_.options.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", state_.options.cors_origin);
      res.set_header("Vary", "Origin");
      if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Statuses httplib sets itself (no route, body too large, unparsable request) get the same JSON errors.
  http_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      send_error(res, 404, "not_found", "", "no such endpoint: " + req.method + " " + req.path);
    } else if (res.status == 413 && req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0) {
      // The HTTP library caps form-encoded bodies at 8 KB whatever --max-body-mb says (curl -d sends that type).
      send_error(res, 413, "invalid_request_error", "",
                 "form-encoded body over 8 KB: send JSON with \"Content-Type: application/json\"");
    } else if (res.status == 413) {
      send_error(res, 413, "invalid_request_error", "", "request body larger than the server's limit (--max-body-mb)");
    } else {
      send_error(res, res.status, res.status >= 500 ? "server_error" : "invalid_request_error", "", "bad request");
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) { log_access(req, res); });
  add_routes();
}

HttpServer::~HttpServer() {
  if (own_access_log_) std::fclose(access_log_);
}

bool HttpServer::authorized(const httplib::Request& req) const {
  if (state_.options.api_key.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  static const std::string scheme = "Bearer ";
  return header.size() > scheme.size() && header.compare(0, scheme.size(), scheme) == 0 &&
         constant_time_equal(header.substr(scheme.size()), state_.options.api_key);
}

void HttpServer::add_routes() {
  for (const Route& route : kRoutes) {
    const Handler handler = route.handler;
    // The key is checked here, after httplib has read the body: refusing earlier would leave the body on a
    // keep-alive connection, to be misread as the next request.
    auto guarded = [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (needs_key(req.path) && !authorized(req)) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401, "authentication_error", "", "missing or wrong API key: send \"Authorization: Bearer <key>\"");
        return;
      }
      try {
        handler(state_, req, res);
      } catch (const ApiError& e) {
        send_error(res, e.status, e.type, e.param, e.what());
      } catch (const Error& e) {
        send_error(res, 400, "invalid_request_error", "", e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, "server_error", "", std::string("internal error: ") + e.what());
      }
    };
    const bool get = std::string_view(route.method) == "GET";
    const std::string pattern = route.path;
    if (get) http_.Get(pattern, guarded);
    else http_.Post(pattern, guarded);
    // The other method on a known path is 405, not 404.
    auto wrong_method = [allow = std::string(route.method)](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allow);
      send_error(res, 405, "invalid_request_error", "", req.method + " is not allowed here; use " + allow);
    };
    if (get) http_.Post(pattern, wrong_method);
    else http_.Get(pattern, wrong_method);
    http_.Put(pattern, wrong_method);
    http_.Delete(pattern, wrong_method);
  }
  for (const WebAsset& asset : web_assets()) {
    auto serve = [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.content_type);
      res.set_header("Cache-Control", "no-cache");
    };
    http_.Get(asset.path, serve);
    if (std::string_view(asset.path) == "/index.html") http_.Get("/", serve);
  }
}

int HttpServer::bind() {
  const ServerOptions& o = state_.options;
  const int port = o.port == 0 ? http_.bind_to_any_port(o.host) : (http_.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0) fail("serve: cannot listen on ", o.host, ":", o.port, " (address in use, or not an address of this machine)");
  return port;
}

void HttpServer::run() { http_.listen_after_bind(); }

void HttpServer::stop() { http_.stop(); }

// One line per request: time, method, path, status, milliseconds, bytes. Never bodies, queries or headers:
// questions and images are patient data.
void HttpServer::log_access(const httplib::Request& req, const httplib::Response& res) {
  const double seconds = std::chrono::duration<double>(Clock::now() - request_start).count();
  const std::string label = endpoint_label(req.path);
  state_.metrics.record_request(label, res.status, seconds);
  if (!access_log_) return;
  const size_t bytes = res.body.size() + streamed_bytes;
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::lock_guard lock(log_mutex_);
  std::fprintf(access_log_, "%s %s %s %d %.1fms %zuB\n", when, req.method.c_str(), req.path.c_str(),
               res.status, seconds * 1000.0, bytes);
  std::fflush(access_log_);
}

}  // namespace medlab::server
