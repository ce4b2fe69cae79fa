// Why a request stopped generating: one enum for the stop checks (sample.h), the scheduler
// (sched.h), the engine (engine.h) and the server.
#pragma once

namespace dspark {

enum class FinishReason {
  kStop,    // a stop token or string (or EOS)
  kLength,  // max_tokens, or the context
  kAbort,   // the caller aborted (or the engine stopped)
  kError,   // the request failed; its message says why
};

// "stop", "length", "abort", "error" (the first two as the OpenAI API names them).
const char* finish_reason_name(FinishReason reason);

}  // namespace dspark
