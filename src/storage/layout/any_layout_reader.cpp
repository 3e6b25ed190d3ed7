// The default reader: tells Cairn's layouts apart when a checkpoint is opened. Rank 0 looks at the
// directory and tells the others, so that every rank opens it the same way.
#include <cairn/process_group.hpp>
#include <cairn/storage.hpp>

#include "storage/common/delegating_reader.hpp"
#include "storage/layout/reference_reader.hpp"
#include "storage/posix/posix_storage.hpp"

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>

namespace cairn {

namespace {

class AnyLayoutReader final : public detail::DelegatingReader {
 public:
  void open(const std::string& directory, ProcessGroup& group) override {
    // The posix layout has its own metadata file; everything else is HDF5 (whose reader tells
    // the shared file, the aggregated layout and the rank files apart, and names what is missing).
    std::int64_t posix = 0;
    if (group.rank() == 0) {
      struct stat st {};
      posix = ::stat((directory + "/" + detail::posix::metadata_file_name).c_str(), &st) == 0 ? 1 : 0;
    }
    group.broadcast(&posix, sizeof posix, 0);
    m_inner = posix ? make_posix_reader() : make_hdf5_reader();
    m_inner->open(directory, group);
  }
};

}  // namespace

std::unique_ptr<StorageReader> detail::make_layout_reader() {
  return std::make_unique<AnyLayoutReader>();
}

std::unique_ptr<StorageReader> make_reader() {
  return detail::follow_references(detail::make_layout_reader());
}

}  // namespace cairn
