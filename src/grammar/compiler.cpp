// GrammarCompiler: xgrammar's compiler for one vocabulary plus dspark's cache of compiled grammars
// keyed by GrammarSpec::key(). A compile runs outside the lock; callers asking for a key that is
// being compiled wait on its shared future instead of compiling it again.
#include <algorithm>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "dspark/grammar.h"
#include "xgrammar_glue.h"

namespace dspark {

using CompileResult = Result<std::shared_ptr<const CompiledGrammar>>;

struct GrammarCompiler::Impl {
  std::shared_ptr<const GrammarVocab> vocab;
  GrammarCompilerOptions options;
  // xgrammar's own cache is off: dspark's below keys on the whole spec.
  std::unique_ptr<xgrammar::GrammarCompiler> compiler;
  std::string setup_error;  // why `compiler` could not be made
  mutable std::mutex mu;
  std::unordered_map<std::string, std::shared_future<CompileResult>> cache;
  std::deque<std::string> order;  // keys, oldest first, for eviction
};

GrammarCompiler::GrammarCompiler(std::shared_ptr<const GrammarVocab> vocab,
                                 GrammarCompilerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->vocab = std::move(vocab);
  impl_->options = options;
  impl_->options.threads = std::max(1, options.threads);
  impl_->options.max_cached = std::max<size_t>(1, options.max_cached);
  try {
    impl_->compiler = std::make_unique<xgrammar::GrammarCompiler>(
        impl_->vocab->impl().info, impl_->options.threads, /*cache_enabled=*/false);
  } catch (const std::exception& e) {
    impl_->setup_error = xgrammar_message(e);  // every compile reports it
  }
}

GrammarCompiler::~GrammarCompiler() = default;

const std::shared_ptr<const GrammarVocab>& GrammarCompiler::vocab() const {
  return impl_->vocab;
}

CompileResult GrammarCompiler::compile_uncached(const GrammarSpec& spec) const {
  if (!impl_->compiler) return Error{"grammar compiler: " + impl_->setup_error};
  try {
    return compile_grammar(*impl_->compiler, impl_->vocab, spec);
  } catch (const std::exception& e) {  // e.g. std::bad_alloc outside xgrammar's own calls
    return Error{std::string(grammar_kind_name(spec.kind)) + ": " + e.what()};
  }
}

CompileResult GrammarCompiler::compile(const GrammarSpec& spec) {
  const std::string key = spec.key();
  std::promise<CompileResult> promise;
  std::unique_lock<std::mutex> lock(impl_->mu);
  auto it = impl_->cache.find(key);
  if (it != impl_->cache.end()) {
    std::shared_future<CompileResult> future = it->second;
    lock.unlock();
    return future.get();  // waits while another caller compiles it
  }
  impl_->cache.emplace(key, promise.get_future().share());
  impl_->order.push_back(key);
  while (impl_->order.size() > impl_->options.max_cached) {
    impl_->cache.erase(impl_->order.front());  // waiters hold their own copy of the future
    impl_->order.pop_front();
  }
  lock.unlock();
  CompileResult result = compile_uncached(spec);
  promise.set_value(result);
  return result;
}

size_t GrammarCompiler::cached() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->cache.size();
}

}  // namespace dspark
