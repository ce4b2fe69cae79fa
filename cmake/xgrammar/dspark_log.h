// dspark's hooks into xgrammar's logging (xgrammar built with XGRAMMAR_LOG_CUSTOMIZE=1):
// XGRAMMAR_CHECK / LOG(FATAL) throw xgrammar::XGrammarError carrying only the message, and
// warnings (which is how xgrammar reports the parts of a schema or regex it ignores) go to a
// per-thread sink instead of stderr.
#pragma once

#include <string>
#include <vector>

namespace dspark_xgrammar {

// Collects this thread's xgrammar warnings into *sink while set; nullptr drops them. Returns the
// previous sink.
std::vector<std::string>* set_warning_sink(std::vector<std::string>* sink);

}  // namespace dspark_xgrammar
