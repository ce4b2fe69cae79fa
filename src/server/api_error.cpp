// OpenAI-shaped error bodies.
#include "api_error.h"

#include "json_text.h"

namespace dspark::server {

std::string error_body(const ApiError& error) {
  nlohmann::json e = {
      {"message", error.message}, {"type", error.type}, {"param", nullptr}, {"code", nullptr}};
  if (!error.param.empty()) e["param"] = error.param;
  if (!error.code.empty()) e["code"] = error.code;
  return to_text(nlohmann::json{{"error", e}});
}

std::optional<ApiError> check_model_name(const std::string& requested, const std::string& served) {
  if (requested.empty() || requested == served) return std::nullopt;
  return ApiError{
      404, "the model '" + requested + "' does not exist; this server serves '" + served + "'",
      "invalid_request_error", "model", "model_not_found"};
}

http::Response error_response(const ApiError& error) {
  http::Response r;
  r.status = error.status;
  r.body = error_body(error);
  return r;
}

}  // namespace dspark::server
