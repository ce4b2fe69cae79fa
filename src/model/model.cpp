// Model loading: config, weight binding and a first read of the mapped weights.
#include <algorithm>

#include "model_internal.h"

namespace dspark {

Model::Model() : scratch_(std::make_unique<Scratch>()) {}
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(std::shared_ptr<ModelFile> file, Backend& backend,
                                           const Progress& progress) {
  if (file == nullptr) return Error{"Model::load: no model file"};
  auto config = ModelConfig::from_file(*file);
  if (!config.ok()) return Error{file->path() + ": " + config.error().message};
  std::unique_ptr<Model> model(new Model());
  model->config_ = std::move(config.value());
  model->file_ = std::move(file);
  // Paged in first: binding places most matrices (the CPU packs them into its kernels' layout
  // and hands the mapped pages it copied back to the OS, which a later read would fault in).
  model->page_in(progress);
  Status bound = model->bind_weights(backend);
  if (!bound.ok()) return Error{model->file_->path() + ": " + bound.message()};
  return model;
}

uint64_t Model::weight_bytes() const {
  return weight_bytes_;
}

// Reads one byte of every page of the tensor data, so the first forward does not stall on page
// faults and loading can show progress.
void Model::page_in(const Progress& progress) const {
  constexpr uint64_t kPage = 4096, kReportEvery = uint64_t{16} << 20;
  const uint64_t total = file_->total_tensor_bytes();
  uint64_t done = 0, next_report = 0;
  for (const TensorInfo& t : file_->tensors()) {
    const volatile uint8_t* p = t.data;  // volatile: the reads cannot be optimized away
    for (uint64_t off = 0; off < t.n_bytes; off += kPage) (void)p[off];
    done += t.n_bytes;
    if (progress && done >= next_report) {
      progress(done, total);
      next_report = done + kReportEvery;
    }
  }
  if (progress) progress(total, total);
}

}  // namespace dspark
