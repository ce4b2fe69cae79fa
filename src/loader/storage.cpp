// mmap-backed and heap-backed Storage.
#include "storage.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace dspark::loader {

namespace {

class MappedStorage final : public Storage {
 public:
  MappedStorage(void* addr, size_t size) {
    data_ = static_cast<const uint8_t*>(addr);
    size_ = size;
  }
  ~MappedStorage() override { munmap(const_cast<uint8_t*>(data_), size_); }
  MappedStorage(const MappedStorage&) = delete;
  MappedStorage& operator=(const MappedStorage&) = delete;
};

class HeapStorage final : public Storage {
 public:
  static constexpr std::align_val_t kAlign{64};
  HeapStorage(const uint8_t* src, size_t size) {
    // At least one byte so data() is never null, even for an empty image.
    auto* buf = static_cast<uint8_t*>(::operator new(size == 0 ? 1 : size, kAlign));
    if (size > 0) std::memcpy(buf, src, size);
    data_ = buf;
    size_ = size;
  }
  ~HeapStorage() override { ::operator delete(const_cast<uint8_t*>(data_), kAlign); }
  HeapStorage(const HeapStorage&) = delete;
  HeapStorage& operator=(const HeapStorage&) = delete;
};

// Closes the descriptor on every path out of map_file.
struct FdCloser {
  int fd;
  ~FdCloser() { close(fd); }
};

}  // namespace

Result<std::shared_ptr<const Storage>> map_file(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{"cannot open '" + path + "': " + std::strerror(errno)};
  FdCloser closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) return Error{"cannot stat '" + path + "': " + std::strerror(errno)};
  if (!S_ISREG(st.st_mode)) return Error{"'" + path + "' is not a regular file"};
  if (st.st_size == 0) return Error{"'" + path + "' is empty"};
  const auto size = static_cast<size_t>(st.st_size);
  void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) return Error{"cannot map '" + path + "': " + std::strerror(errno)};
  return std::shared_ptr<const Storage>(std::make_shared<MappedStorage>(addr, size));
}

std::shared_ptr<const Storage> copy_bytes(const uint8_t* data, size_t size) {
  return std::make_shared<HeapStorage>(data, size);
}

}  // namespace dspark::loader
