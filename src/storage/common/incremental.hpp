// What an incremental save needs of a backend beyond StorageWriter.
#pragma once

#include <string>

namespace cairn::detail {

/// Implemented by the writers whose layout can leave out chunks an earlier checkpoint holds (the
/// HDF5 shared file and posix): the checkpointer then simply does not hand them those chunks,
/// and their metadata's chunk records name the holder (ChunkRecord::source).
class IncrementalWriter {
 public:
  virtual ~IncrementalWriter() = default;
  /// Not collective. True when the checkpoint in `directory` was written in this writer's layout,
  /// so that its data files can be referred to (an HDF5 virtual dataset needs an HDF5 source).
  virtual bool same_layout(const std::string& directory) const = 0;
  /// Not collective, the same on every rank, before each open(): whether this save leaves out
  /// chunks on some rank (so that a writer need not reserve disk space for the holes).
  virtual void set_leaves_out(bool leaves_out) { (void)leaves_out; }
};

/// The directory that a reference `source` ("../<name>") of the checkpoint in `directory` (its
/// final or its partial directory: both lie in the same parent) names.
inline std::string referenced_directory(const std::string& directory, const std::string& source) {
  std::string path = directory;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const std::size_t slash = path.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "" : path.substr(0, slash));
  return parent + "/" + source.substr(source.rfind('/') + 1);
}

/// Dataset of the HDF5 shared file that holds the chunks an incremental save wrote of an entry
/// with references, while "/<name>" is a virtual dataset over it and the holders' files.
inline std::string incremental_dataset_name(const std::string& name) {
  return "/_cairn/incremental/" + name;
}

}  // namespace cairn::detail
