// Opens a model file, loads its weights (with a progress bar on a terminal) and its tokenizer.
#pragma once

#include <memory>
#include <string>

#include "dspark/loader.h"
#include "dspark/model.h"
#include "dspark/tokenizer.h"

namespace dspark::cli {

struct LoadedModel {
  std::shared_ptr<ModelFile> file;
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
};

// quiet: no progress bar and no summary line (for machine-readable output).
Result<LoadedModel> load_model(const std::string& path, bool quiet);

}  // namespace dspark::cli
