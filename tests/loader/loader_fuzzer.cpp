// libFuzzer target for the model-file parsers (built only with -DDSPARK_FUZZ=ON and clang).
// The first input byte picks the parser: GGUF, safetensors, or config.json text beside a tiny
// valid safetensors image. Every accepted tensor must lie inside the parsed bytes.
#include <cstdlib>
#include <map>
#include <string>

#include "dspark/loader.h"
#include "loader/model_file_impl.h"

namespace {

void require_inside(const std::vector<dspark::TensorInfo>& tensors, const uint8_t* base,
                    size_t size) {
  for (const dspark::TensorInfo& t : tensors) {
    if (t.data < base || t.n_bytes > size ||
        static_cast<size_t>(t.data - base) > size - t.n_bytes) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t* body = data + 1;
  const size_t body_size = size - 1;
  switch (data[0] % 3) {
    case 0: {
      auto storage = dspark::loader::copy_bytes(body, body_size);
      auto r = dspark::loader::parse_gguf(storage, "", "");
      if (r.ok()) require_inside((*r)->tensors(), storage->data(), storage->size());
      break;
    }
    case 1: {
      auto storage = dspark::loader::copy_bytes(body, body_size);
      std::map<std::string, std::string> meta;
      auto r = dspark::loader::parse_safetensors_tensors(*storage, &meta);
      if (r.ok()) require_inside(*r, storage->data(), storage->size());
      break;
    }
    default: {
      static const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
      std::string image(8, '\0');
      image[0] = static_cast<char>(header.size());
      image += header + std::string(4, '\0');
      const std::string config(reinterpret_cast<const char*>(body), body_size);
      auto r = dspark::ModelFile::parse_safetensors_bytes(
          reinterpret_cast<const uint8_t*>(image.data()), image.size(), config);
      (void)r;
      break;
    }
  }
  return 0;
}
