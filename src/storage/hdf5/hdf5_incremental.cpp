#include "storage/hdf5/hdf5_incremental.hpp"

#include <cairn/error.hpp>

#include "core/log.hpp"
#include "core/region.hpp"
#include "storage/common/incremental.hpp"
#include "storage/hdf5/hdf5_aggregated.hpp"
#include "storage/hdf5/hdf5_handle.hpp"
#include "storage/posix/posix_storage.hpp"

#include <sys/stat.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cairn::detail::h5 {

namespace {

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Where a holder keeps an entry's own chunks: its incremental dataset when it has one (it was
// incremental itself), else the dataset named after the entry. Holder files are opened once.
class HolderFiles {
 public:
  explicit HolderFiles(std::string partial_dir) : m_partial_dir(std::move(partial_dir)) {}

  std::string dataset_of(const std::string& source, const std::string& name) {
    auto [it, fresh] = m_files.try_emplace(source);
    if (fresh) {
      const std::string path = referenced_directory(m_partial_dir, source) + "/" + data_file_name;
      const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      if (id < 0) {
        H5Eclear2(H5E_DEFAULT);
        log(LogLevel::Warn, "cannot open '" + path + "' to map the chunks it holds; h5py may not see them");
      } else {
        it->second = file(id);
      }
    }
    const std::string shadow = incremental_dataset_name(name);
    if (it->second.valid() && H5Lexists(it->second.get(), "/_cairn/incremental", H5P_DEFAULT) > 0 &&
        H5Lexists(it->second.get(), shadow.c_str(), H5P_DEFAULT) > 0)
      return shadow;
    H5Eclear2(H5E_DEFAULT);
    return "/" + name;
  }

 private:
  std::string m_partial_dir;
  std::map<std::string, Handle> m_files;  // by source
};

}  // namespace

bool is_shared_file_checkpoint(const std::string& directory) {
  return file_exists(directory + "/" + data_file_name) && !file_exists(directory + "/" + part_file_name(0)) &&
         !file_exists(directory + "/" + posix::metadata_file_name);
}

void map_referenced_chunks(const std::string& path, const Metadata& metadata) {
  std::vector<std::vector<const ChunkRecord*>> chunks_of(metadata.entries.size());
  std::vector<bool> referenced(metadata.entries.size(), false);
  bool any = false;
  for (const ChunkRecord& c : metadata.chunks) {
    const auto e = static_cast<std::size_t>(c.entry);
    chunks_of[e].push_back(&c);
    if (!c.source.empty()) referenced[e] = any = true;
  }
  if (!any) return;
  QuietErrors quiet;
  const std::string directory = path.substr(0, path.find_last_of('/'));
  Handle out = file(check(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "cannot reopen '" + path + "'"));
  HolderFiles holders(directory);
  for (std::size_t e = 0; e < metadata.entries.size(); ++e) {
    if (!referenced[e]) continue;
    const EntryInfo& info = metadata.entries[e];
    const std::string name = "/" + info.name;
    const std::string shadow = incremental_dataset_name(info.name);
    create_groups(out.get(), shadow);
    check_status(H5Lmove(out.get(), name.c_str(), out.get(), shadow.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                 "cannot move dataset '" + name + "' of '" + path + "' to '" + shadow + "'");
    Handle written = dataset(check(H5Dopen2(out.get(), shadow.c_str(), H5P_DEFAULT), "cannot open '" + shadow + "'"));
    Handle type = datatype(check(H5Dget_type(written.get()), "H5Dget_type of '" + shadow + "'"));
    written.close();

    std::vector<hsize_t> dims(info.global_shape.begin(), info.global_shape.end());
    Handle vspace = dataspace(check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                    "H5Screate_simple for '" + info.name + "'"));
    Handle source_space = dataspace(check(H5Scopy(vspace.get()), "H5Scopy"));
    Handle dcpl = plist(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)"));
    for (const ChunkRecord* c : chunks_of[e]) {
      if (volume(c->region.shape) == 0) continue;
      select_region(vspace.get(), c->region.offset, c->region.shape);
      select_region(source_space.get(), c->region.offset, c->region.shape);
      // Relative names: HDF5 looks for a source file beside this one, wherever the root is moved.
      const std::string source_file = c->source.empty() ? "." : c->source + "/" + data_file_name;
      const std::string source_dataset = c->source.empty() ? shadow : holders.dataset_of(c->source, info.name);
      check_status(
          H5Pset_virtual(dcpl.get(), vspace.get(), source_file.c_str(), source_dataset.c_str(), source_space.get()),
          "cannot map chunk " + to_string(c->region) + " of '" + info.name + "' to " + source_file + ":" +
              source_dataset);
    }
    check_status(H5Sselect_all(vspace.get()), "H5Sselect_all");
    Handle created = dataset(
        check(H5Dcreate2(out.get(), name.c_str(), type.get(), vspace.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
              "cannot create virtual dataset '" + name + "' in '" + path + "'"));
  }
  if (!out.close()) throw StorageError("cannot close '" + path + "': " + error_stack());
}

}  // namespace cairn::detail::h5
