// POST /v1/chat/completions and /v1/completions: parse, tokenize, check against the context,
// submit n engine requests per prompt, and answer whole or streamed.
#pragma once

#include <memory>

#include "dspark/http.h"
#include "request_log.h"
#include "request_parse.h"
#include "server_state.h"

namespace dspark::server {

// `log` is filled in and, for a streamed reply, emitted when the stream ends (the caller emits
// it otherwise: see Reply::stream).
http::Reply handle_generation(const std::shared_ptr<State>& state, const http::Request& request,
                              Endpoint endpoint, const std::shared_ptr<RequestLog>& log);

}  // namespace dspark::server
