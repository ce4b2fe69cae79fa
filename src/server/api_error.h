// Errors in the OpenAI shape: {"error": {"message", "type", "param", "code"}} with the HTTP status
// they travel with.
#pragma once

#include <optional>
#include <string>

#include "dspark/http.h"

namespace dspark::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
};

inline ApiError bad_request(std::string message, std::string param = "", std::string code = "") {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param),
                  std::move(code)};
}

// The one rule for a request's model name: empty (or absent) means the served model; any other
// name than `served` is OpenAI's (and vLLM's) 404 model_not_found.
std::optional<ApiError> check_model_name(const std::string& requested, const std::string& served);

// The error's JSON body.
std::string error_body(const ApiError& error);
// A complete response carrying the error (Retry-After and the like are added by the caller).
http::Response error_response(const ApiError& error);

}  // namespace dspark::server
