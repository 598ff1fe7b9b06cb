#include "evm/json_rpc.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

#include "common/libcurl.h"
#include "evm/eth_tx.h"

namespace metronome {
namespace {

size_t append_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

JsonRpcClient::JsonRpcClient(JsonRpcOptions options) : options_(std::move(options)) {
  for (size_t i = 0; i < options_.urls.size(); ++i) {
    order_.push_back(i);
    health_.push_back({options_.urls[i], true, 0, "not checked yet"});
  }
  excluded_.assign(options_.urls.size(), false);
}

Result<nlohmann::json> JsonRpcClient::post(const std::string& url, const std::string& body) const {
  METRONOME_RETURN_IF_ERROR(curl::load());
  std::unique_ptr<CURL, curl::EasyDeleter> easy(curl::lib().easy_init());
  if (!easy) return Status::Internal("curl_easy_init failed");
  std::unique_ptr<curl_slist, curl::SlistDeleter> headers(
      curl::lib().slist_append(nullptr, "Content-Type: application/json"));
  std::string response;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* h = easy.get();
  curl::lib().easy_setopt(h, CURLOPT_URL, url.c_str());
  curl::lib().easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl::lib().easy_setopt(h, CURLOPT_POST, 1L);
  curl::lib().easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl::lib().easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl::lib().easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl::lib().easy_setopt(h, CURLOPT_USERAGENT, "metronome");
  const long timeout_ms = static_cast<long>(std::max<int64_t>(options_.timeout.count(), 1));
  curl::lib().easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl::lib().easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl::lib().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl::lib().easy_setopt(h, CURLOPT_WRITEFUNCTION, &append_body);
  curl::lib().easy_setopt(h, CURLOPT_WRITEDATA, &response);
  curl::lib().easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  CURLcode rc = curl::lib().easy_perform(h);
  if (rc != CURLE_OK) {
    return Status::Unavailable(
        fmt::format("{}: {}", url, error_buffer[0] ? error_buffer : curl::lib().easy_strerror(rc)));
  }
  long http_status = 0;
  curl::lib().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
  if (http_status >= 500 || http_status == 429) {
    return Status::Unavailable(fmt::format("{}: HTTP {}", url, http_status));
  }
  nlohmann::json j = nlohmann::json::parse(response, nullptr, false);
  if (j.is_discarded() || !j.is_object() || (!j.contains("result") && !j.contains("error"))) {
    return Status::Unavailable(fmt::format("{}: HTTP {} without a JSON-RPC answer: {}", url,
                                           http_status, response.substr(0, 200)));
  }
  return j;
}

Result<RpcAnswer> JsonRpcClient::request(const std::string& method, const nlohmann::json& params) {
  std::vector<size_t> order;
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    order = order_;
    id = next_id_++;
  }
  const std::string body =
      nlohmann::json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump();
  std::vector<std::string> failures;
  for (size_t i : order) {
    {
      std::lock_guard lock(mu_);
      if (excluded_[i]) continue;
    }
    const std::string& url = options_.urls[i];
    Result<nlohmann::json> j = post(url, body);
    if (!j.ok()) {
      failures.push_back(j.status().message());
      std::lock_guard lock(mu_);
      ++failovers_;
      // The failed URL goes last: the next request starts with one that answered.
      auto it = std::find(order_.begin(), order_.end(), i);
      if (it != order_.end()) {
        order_.erase(it);
        order_.push_back(i);
      }
      health_[i].problem = j.status().message();
      continue;
    }
    RpcAnswer answer;
    answer.url = url;
    if (j->contains("error") && !(*j)["error"].is_null()) {
      const nlohmann::json& e = (*j)["error"];
      RpcError err;
      err.code = e.value("code", int64_t{0});
      err.message = e.value("message", std::string("(no message)"));
      if (e.contains("data")) {
        const nlohmann::json& d = e["data"];
        if (d.is_string()) {
          err.data = d.get<std::string>();
        } else if (d.is_object() && d.contains("result") && d["result"].is_string()) {
          err.data = d["result"].get<std::string>();  // ganache: {"result": "0x08c379a0..."}
        } else if (d.is_object() && d.contains("data") && d["data"].is_string()) {
          err.data = d["data"].get<std::string>();
        }
      }
      answer.error = std::move(err);
    } else {
      answer.result = (*j)["result"];
    }
    return answer;
  }
  return Status::Unavailable(fmt::format("{}: no RPC endpoint answered ({})", method,
                                         failures.empty()
                                             ? "every URL is on the wrong chain"
                                             : fmt::format("{}", fmt::join(failures, "; "))));
}

Result<nlohmann::json> JsonRpcClient::call(const std::string& method,
                                           const nlohmann::json& params) {
  METRONOME_ASSIGN_OR_RETURN(RpcAnswer answer, request(method, params));
  if (answer.error) {
    return Status::InvalidArgument(fmt::format("{} via {}: {} (code {})", method, answer.url,
                                               answer.error->message, answer.error->code));
  }
  return std::move(*answer.result);
}

Status JsonRpcClient::health_check() {
  const std::string chain_body = nlohmann::json{
      {"jsonrpc", "2.0"},
      {"id", 1},
      {"method", "eth_chainId"},
      {"params", {}}}.dump();
  const std::string head_body = nlohmann::json{
      {"jsonrpc", "2.0"},
      {"id", 2},
      {"method", "eth_blockNumber"},
      {"params", {}}}.dump();
  std::vector<EndpointHealth> health(options_.urls.size());
  std::vector<bool> excluded(options_.urls.size(), false);
  uint64_t best = 0;
  for (size_t i = 0; i < options_.urls.size(); ++i) {
    EndpointHealth& h = health[i];
    h.url = options_.urls[i];
    Result<nlohmann::json> chain = post(h.url, chain_body);
    if (!chain.ok()) {
      h.problem = chain.status().message();
      continue;
    }
    Result<uint64_t> id = chain->contains("result") && (*chain)["result"].is_string()
                              ? parse_quantity_u64((*chain)["result"].get<std::string>())
                              : Result<uint64_t>(Status::InvalidArgument("no result"));
    if (!id.ok()) {
      h.problem = fmt::format("eth_chainId answer is not a quantity: {}", chain->dump());
      continue;
    }
    if (*id != options_.chain_id) {
      h.problem = fmt::format("{} is chain {}, the sink is configured for chain {}", h.url, *id,
                              options_.chain_id);
      excluded[i] = true;
      continue;
    }
    Result<nlohmann::json> head = post(h.url, head_body);
    Result<uint64_t> n = head.ok() && head->contains("result") && (*head)["result"].is_string()
                             ? parse_quantity_u64((*head)["result"].get<std::string>())
                             : Result<uint64_t>(Status::Unavailable("no block number"));
    if (!n.ok()) {
      h.problem = head.ok() ? n.status().message() : head.status().message();
      continue;
    }
    h.usable = true;
    h.head = *n;
    best = std::max(best, *n);
  }
  std::vector<size_t> good, lagging, bad;
  for (size_t i = 0; i < health.size(); ++i) {
    if (!health[i].usable) {
      if (!excluded[i]) bad.push_back(i);
      continue;
    }
    if (best - health[i].head > options_.max_head_lag) {
      health[i].problem = fmt::format("head {} lags the best {} by more than {} blocks",
                                      health[i].head, best, options_.max_head_lag);
      lagging.push_back(i);
    } else {
      health[i].problem.clear();
      good.push_back(i);
    }
  }
  std::vector<size_t> order = good;
  order.insert(order.end(), lagging.begin(), lagging.end());
  order.insert(order.end(), bad.begin(), bad.end());
  std::vector<std::string> problems;
  for (const EndpointHealth& h : health) {
    if (!h.problem.empty()) problems.push_back(h.problem);
  }
  {
    std::lock_guard lock(mu_);
    // Keep the current preference among the good ones (no flapping between equal endpoints).
    std::vector<size_t> kept;
    for (size_t i : order_) {
      if (std::find(good.begin(), good.end(), i) != good.end()) kept.push_back(i);
    }
    kept.insert(kept.end(), lagging.begin(), lagging.end());
    kept.insert(kept.end(), bad.begin(), bad.end());
    order_ = kept;
    excluded_ = excluded;
    health_ = health;
  }
  if (!good.empty()) return Status::Ok();
  if (std::all_of(excluded.begin(), excluded.end(), [](bool b) { return b; })) {
    return Status::NotFound(
        fmt::format("no RPC URL is on chain {}: {}", options_.chain_id, fmt::join(problems, "; ")));
  }
  if (!lagging.empty()) return Status::Ok();
  return Status::Unavailable(fmt::format("no RPC URL answers: {}", fmt::join(problems, "; ")));
}

std::vector<EndpointHealth> JsonRpcClient::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

std::string JsonRpcClient::active_url() const {
  std::lock_guard lock(mu_);
  for (size_t i : order_) {
    if (!excluded_[i]) return options_.urls[i];
  }
  return "";
}

uint64_t JsonRpcClient::failovers() const {
  std::lock_guard lock(mu_);
  return failovers_;
}

}  // namespace metronome
