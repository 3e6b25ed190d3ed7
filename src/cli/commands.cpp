// The `cairn` subcommands. Each opens checkpoints through the library's readers (make_reader(),
// which tells every layout apart), writes text or JSON, and turns errors into exit statuses.
#include "cli/commands.hpp"

#include <cairn/checkpointer.hpp>
#include <cairn/convert.hpp>
#include <cairn/error.hpp>
#include <cairn/storage.hpp>

#include "cli/json.hpp"
#include "cli/progress.hpp"
#include "comm/agree.hpp"
#include "core/checksum.hpp"
#include "core/compression.hpp"
#include "core/region.hpp"
#include "storage/common/publish.hpp"
#include "storage/hdf5/hdf5_handle.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cairn::cli {

namespace fs = std::filesystem;

std::string human_bytes(std::uint64_t bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f %s", v, units[u]);
  return buffer;
}

std::string rank_ranges(const std::vector<int>& ranks) {
  std::vector<int> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string s;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += std::to_string(sorted[i]);
    if (j > i) s += '-' + std::to_string(sorted[j]);
    i = j + 1;
  }
  return s;
}

std::string human_age(std::int64_t seconds) {
  if (seconds < 0) return "in the future";
  if (seconds < 60) return std::to_string(seconds) + " s";
  if (seconds < 3600) return std::to_string(seconds / 60) + " min";
  if (seconds < 86400) return std::to_string(seconds / 3600) + " h";
  return std::to_string(seconds / 86400) + " d";
}

namespace {

// ---------------------------------------------------------------------------------------------
// Shared helpers

std::shared_ptr<ProcessGroup> group_of(const Common& common) {
  return common.group ? common.group : std::make_shared<SerialProcessGroup>();
}

bool is_rank0(const Common& common) {
  return !common.group || common.group->rank() == 0;
}

// Reports an error: "cairn <command>: <message>" on `err`, and {"error": ...} on `out` with --json
// so that a script reading the JSON sees why there is no result.
int fail(const Common& common, std::ostream& out, std::ostream& err, const std::string& command,
         const std::string& message) {
  if (!is_rank0(common)) return exit_error;
  err << "cairn " << command << ": " << message << '\n';
  if (common.json) {
    JsonWriter json(out);
    json.begin_object().field("error", message).end_object();
    json.finish();
  }
  return exit_error;
}

std::int64_t now_unix() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

std::string utc_time(std::int64_t unix_time) {
  const std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buffer;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Why `dir` cannot be a published checkpoint, or "" when it may be one (the reader decides).
std::string not_a_checkpoint(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return "checkpoint '" + dir + "' cannot be opened: " + detail::errno_text(errno);
  if (!S_ISDIR(st.st_mode)) return "'" + dir + "' is not a checkpoint: a checkpoint is a directory";
  if (!path_exists(dir + "/" + detail::marker_file_name))
    return "'" + dir + "' is not a published Cairn checkpoint: it has no '" + detail::marker_file_name +
           "' marker (an interrupted save, or not Cairn's)";
  return {};
}

// Collective: runs `check` on rank 0 alone (whose view of the file system decides) and tells every
// rank whether it found a problem. Rank 0 gets the message; the others a placeholder, since only
// rank 0 prints.
template <class Check>
std::string checked_on_rank0(ProcessGroup& group, Check&& check) {
  std::string problem = group.rank() == 0 ? check() : std::string();
  std::int64_t failed = problem.empty() ? 0 : 1;
  group.broadcast(&failed, sizeof failed, 0);
  if (failed != 0 && problem.empty()) problem = "failed on rank 0";
  return problem;
}

// The on-disk layout, from the files present (the reader itself does not say).
std::string layout_of(const std::string& dir) {
  if (path_exists(dir + "/metadata.cairn")) return "posix";
  if (path_exists(dir + "/part_000000.h5")) return "hdf5-aggregated";
  if (path_exists(dir + "/data.h5")) return "hdf5";
  if (path_exists(dir + "/rank_000000.h5")) return "hdf5-rank-files";
  return "unknown";
}

// Apparent size of every file under `path`, and how many there are.
std::uint64_t tree_bytes(const std::string& path, std::size_t& files) {
  std::uint64_t total = 0;
  files = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (!it->is_regular_file(size_ec)) continue;
    const std::uintmax_t size = it->file_size(size_ec);
    if (size_ec) continue;
    total += size;
    ++files;
  }
  return total;
}

const char* kind_name(EntryKind kind) {
  switch (kind) {
    case EntryKind::Array: return "array";
    case EntryKind::Bytes: return "bytes";
    case EntryKind::Scalar: return "scalar";
  }
  return "unknown";
}

const char* distribution_name(Distribution d) {
  switch (d) {
    case Distribution::Sharded: return "sharded";
    case Distribution::Replicated: return "replicated";
    case Distribution::RankLocal: return "rank-local";
  }
  return "unknown";
}

// The type shown for an entry: the dtype of arrays and bytes, the scalar's own type otherwise.
std::string type_name(const EntryInfo& e) {
  if (e.kind == EntryKind::Scalar) {
    switch (e.scalar_type) {
      case ScalarType::Int64: return "int64";
      case ScalarType::Float64: return "float64";
      case ScalarType::String: return "string";
      case ScalarType::None: return "none";
    }
  }
  return std::string(dtype_name(e.dtype));
}

std::string double_text(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

std::string scalar_text(const ScalarValue& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return double_text(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return json_quote(*s);
  return "(none)";
}

void json_scalar(JsonWriter& json, const ScalarValue& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v))
    json.value(*i);
  else if (const auto* d = std::get_if<double>(&v))
    json.value(*d);
  else if (const auto* s = std::get_if<std::string>(&v))
    json.value(*s);
  else
    json.null();
}

std::uint64_t region_bytes(const Region& region, DType dtype) {
  return static_cast<std::uint64_t>(detail::volume(region.shape)) * dtype_size(dtype);
}

// The bytes of every chunk of the checkpoint (what a full read moves).
std::uint64_t total_chunk_bytes(const Metadata& md) {
  std::uint64_t total = 0;
  for (const ChunkRecord& c : md.chunks)
    total += region_bytes(c.region, md.entries[static_cast<std::size_t>(c.entry)].dtype);
  return total;
}

// Closes a reader on every path out of a scope (close() never throws).
struct ReaderCloser {
  StorageReader& reader;
  ~ReaderCloser() { reader.close(); }
};

// A reader that counts the bytes it delivers on a progress bar sized from the metadata.
class ProgressReader final : public StorageReader {
 public:
  ProgressReader(std::unique_ptr<StorageReader> inner, std::ostream& err, bool enabled, std::string label)
      : m_inner(std::move(inner)), m_err(err), m_enabled(enabled), m_label(std::move(label)) {}
  void open(const std::string& directory, ProcessGroup& group) override {
    m_inner->open(directory, group);
    m_progress = std::make_unique<Progress>(m_err, m_enabled, m_label, total_chunk_bytes(m_inner->metadata()));
  }
  const Metadata& metadata() const override { return m_inner->metadata(); }
  void read(const std::vector<ReadRequest>& requests) override {
    m_inner->read(requests);
    std::uint64_t bytes = 0;
    for (const ReadRequest& r : requests) bytes += region_bytes(r.region, r.dtype);
    if (m_progress) m_progress->add(bytes);
  }
  void close() noexcept override {
    if (m_progress) m_progress->done();
    m_inner->close();
  }

 private:
  std::unique_ptr<StorageReader> m_inner;
  std::ostream& m_err;
  bool m_enabled;
  std::string m_label;
  std::unique_ptr<Progress> m_progress;
};

// A writer that counts the bytes it writes on a progress bar sized from this rank's items.
class ProgressWriter final : public StorageWriter {
 public:
  ProgressWriter(std::shared_ptr<StorageWriter> inner, std::ostream& err, bool enabled, std::string label)
      : m_inner(std::move(inner)), m_err(err), m_enabled(enabled), m_label(std::move(label)) {}
  void set_local_items(const std::vector<WriteItem>& items) override {
    m_items = items;
    m_inner->set_local_items(items);
  }
  void open(const std::string& directory, const std::vector<EntryInfo>& entries, ProcessGroup& group) override {
    m_entries = entries;
    std::uint64_t total = 0;
    for (const WriteItem& item : m_items) total += bytes_of(item);
    m_progress = std::make_unique<Progress>(m_err, m_enabled, m_label, total);
    m_inner->open(directory, entries, group);
  }
  void write(const std::vector<WriteBuffer>& buffers) override {
    m_inner->write(buffers);
    std::uint64_t bytes = 0;
    for (const WriteBuffer& b : buffers) bytes += bytes_of(*b.item);
    if (m_progress) m_progress->add(bytes);
  }
  void finish(const Metadata& metadata) override {
    if (m_progress) m_progress->done();
    m_inner->finish(metadata);
  }
  void abort() noexcept override {
    if (m_progress) m_progress->done();
    m_inner->abort();
  }

 private:
  std::uint64_t bytes_of(const WriteItem& item) const {
    const auto e = static_cast<std::size_t>(item.entry);
    return e < m_entries.size() ? region_bytes(item.region, m_entries[e].dtype) : 0;
  }
  std::shared_ptr<StorageWriter> m_inner;
  std::ostream& m_err;
  bool m_enabled;
  std::string m_label;
  std::vector<WriteItem> m_items;
  std::vector<EntryInfo> m_entries;
  std::unique_ptr<Progress> m_progress;
};

// Column-aligned text table.
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      s += cells[c];
      if (c + 1 < cells.size()) s += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << '\n';
  };
  line(header);
  for (const auto& row : rows) line(row);
}

// Per-entry totals over the chunk records.
struct EntryStats {
  std::int64_t chunks = 0;
  std::uint64_t bytes = 0;
  std::vector<int> ranks;
};

std::vector<EntryStats> entry_stats(const Metadata& md) {
  std::vector<EntryStats> stats(md.entries.size());
  for (const ChunkRecord& c : md.chunks) {
    const auto e = static_cast<std::size_t>(c.entry);
    EntryStats& s = stats[e];
    ++s.chunks;
    s.bytes += region_bytes(c.region, md.entries[e].dtype);
    s.ranks.push_back(c.rank);
  }
  for (std::size_t e = 0; e < md.entries.size(); ++e) {
    const EntryInfo& info = md.entries[e];
    if (info.kind == EntryKind::Scalar && info.distribution == Distribution::Replicated) {
      if (const auto* s = std::get_if<std::string>(&info.value))
        stats[e].bytes = s->size();
      else
        stats[e].bytes = 8;
    }
    std::vector<int>& r = stats[e].ranks;
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
  }
  return stats;
}

// The step a checkpoint directory name encodes ("<prefix><digits>"), as CheckpointManager names them.
std::optional<std::int64_t> step_of_name(const std::string& name, const std::string& prefix) {
  if (prefix.empty() || name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0)
    return std::nullopt;
  std::int64_t step = 0;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    if (step > (std::numeric_limits<std::int64_t>::max() - (c - '0')) / 10) return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// ---------------------------------------------------------------------------------------------
// ls

struct Listed {
  std::string name;
  std::string path;
  std::optional<std::int64_t> step;
  std::uint64_t bytes = 0;
  std::size_t files = 0;
  std::int64_t mtime = 0;
  std::int64_t created = 0;  // from the metadata; 0 when unknown
  std::string status;
  std::string detail;
  std::int64_t entries = -1;
  bool published = false;
};

std::int64_t mtime_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_mtime) : 0;
}

void inspect_published(Listed& item, const LsArgs& args) {
  item.published = true;
  SerialProcessGroup serial;
  std::unique_ptr<StorageReader> reader = make_reader();
  ReaderCloser closer{*reader};
  try {
    reader->open(item.path, serial);
  } catch (const std::exception& e) {
    item.status = "unreadable";
    item.detail = e.what();
    return;
  }
  const Metadata& md = reader->metadata();
  item.entries = static_cast<std::int64_t>(md.entries.size());
  item.created = md.created_unix_time;
  if (!item.step)
    if (const EntryInfo* e = md.find("step"))
      if (const auto* v = std::get_if<std::int64_t>(&e->value)) item.step = *v;
  item.status = "complete";
  if (!args.verify) return;
  reader->close();
  try {
    Checkpointer checkpointer(std::make_shared<SerialProcessGroup>());
    const VerifyReport report = checkpointer.verify(item.path);
    if (report.ok()) {
      item.status = "verified";
    } else {
      item.status = "corrupt";
      item.detail = std::to_string(report.bad_chunks.size()) + " of " + std::to_string(report.chunks_checked) +
                    " chunks do not match their checksums; first: " + report.bad_chunks.front().message;
    }
  } catch (const std::exception& e) {
    item.status = "unreadable";
    item.detail = e.what();
  }
}

int ls_rank0(const LsArgs& args, std::ostream& out, std::ostream& err) {
  const std::string root =
      args.root.size() > 1 && args.root.back() == '/' ? args.root.substr(0, args.root.size() - 1) : args.root;
  std::vector<std::string> names;
  {
    std::error_code ec;
    fs::directory_iterator it(root, ec);
    if (ec) return fail(args.common, out, err, "ls", "cannot list '" + root + "': " + ec.message());
    for (fs::directory_iterator end; it != end; it.increment(ec)) {
      if (ec) return fail(args.common, out, err, "ls", "cannot list '" + root + "': " + ec.message());
      std::error_code dir_ec;
      if (it->is_directory(dir_ec)) names.push_back(it->path().filename().string());
    }
  }
  if (path_exists(root + "/" + detail::marker_file_name))
    err << "cairn ls: note: '" << root << "' is itself a checkpoint; see `cairn info " << root << "`\n";

  std::vector<Listed> listed;
  for (const std::string& name : names) {
    Listed item;
    item.name = name;
    item.path = root + "/" + name;
    item.mtime = mtime_of(item.path);
    if (name[0] == '.') {
      // What the library leaves while saving (".<name>.partial"), replacing (".<name>.old") or
      // removing (".<name>.removing"); the manager cleans them up on its next save.
      struct Hidden {
        const char* suffix;
        const char* status;
        const char* detail;
      };
      static const Hidden hidden[] = {
          {".partial", "incomplete", "a save that has not been published (in progress, or interrupted)"},
          {".old", "replaced", "the previous copy, moved aside while a save replaces it"},
          {".removing", "removing", "being removed by the manager's retention"},
      };
      bool known = false;
      for (const Hidden& h : hidden) {
        if (!ends_with(name, h.suffix) || name.size() <= std::strlen(h.suffix) + 1) continue;
        item.step = step_of_name(name.substr(1, name.size() - 1 - std::strlen(h.suffix)), args.prefix);
        item.status = h.status;
        item.detail = h.detail;
        known = true;
        break;
      }
      if (!known) continue;
    } else {
      item.step = step_of_name(name, args.prefix);
      if (path_exists(item.path + "/" + detail::marker_file_name)) {
        inspect_published(item, args);
      } else if (item.step || path_exists(item.path + "/data.h5") || path_exists(item.path + "/metadata.cairn")) {
        item.status = "incomplete";
        item.detail = std::string("no '") + detail::marker_file_name + "' marker: never published";
      } else {
        continue;  // not a checkpoint
      }
    }
    item.bytes = tree_bytes(item.path, item.files);
    listed.push_back(std::move(item));
  }
  std::sort(listed.begin(), listed.end(), [](const Listed& a, const Listed& b) {
    if (a.step.has_value() != b.step.has_value()) return a.step.has_value();
    if (a.step && *a.step != *b.step) return *a.step < *b.step;
    return a.name < b.name;
  });

  const std::int64_t now = now_unix();
  bool bad = false;
  for (const Listed& item : listed)
    bad = bad || (item.published && (item.status == "unreadable" || item.status == "corrupt"));
  if (args.common.json) {
    JsonWriter json(out);
    json.begin_object().field("root", root).key("checkpoints").begin_array();
    for (const Listed& item : listed) {
      json.begin_object().field("name", item.name).field("path", item.path);
      json.key("step");
      if (item.step)
        json.value(*item.step);
      else
        json.null();
      json.field("bytes", item.bytes).field("files", static_cast<std::int64_t>(item.files));
      json.field("mtime", item.mtime).field("age_seconds", now - item.mtime);
      json.key("created_unix_time");
      if (item.created > 0)
        json.value(item.created);
      else
        json.null();
      json.field("status", item.status).field("published", item.published);
      json.key("entries");
      if (item.entries >= 0)
        json.value(item.entries);
      else
        json.null();
      json.field("detail", item.detail).end_object();
    }
    json.end_array().end_object();
    json.finish();
    return bad ? exit_found : exit_ok;
  }
  if (listed.empty()) {
    out << "no checkpoints in '" << root << "'\n";
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  for (const Listed& item : listed)
    rows.push_back({item.step ? std::to_string(*item.step) : "-", human_bytes(item.bytes), human_age(now - item.mtime),
                    item.status, item.name});
  print_table(out, {"STEP", "SIZE", "AGE", "STATUS", "NAME"}, rows);
  for (const Listed& item : listed)
    if (!item.detail.empty()) out << item.name << ": " << item.detail << '\n';
  return bad ? exit_found : exit_ok;
}

// ---------------------------------------------------------------------------------------------
// info

int info_rank0(const InfoArgs& args, std::ostream& out, std::ostream& err) {
  const std::string& id = args.checkpoint;
  if (const std::string why = not_a_checkpoint(id); !why.empty()) return fail(args.common, out, err, "info", why);
  SerialProcessGroup serial;
  std::unique_ptr<StorageReader> reader = make_reader();
  ReaderCloser closer{*reader};
  try {
    reader->open(id, serial);
  } catch (const std::exception& e) {
    return fail(args.common, out, err, "info", "cannot open checkpoint '" + id + "': " + e.what());
  }
  const Metadata& md = reader->metadata();
  const std::vector<EntryStats> stats = entry_stats(md);
  std::map<std::string, std::int64_t> references;  // incremental saves: chunks held elsewhere, by holder
  for (const ChunkRecord& c : md.chunks)
    if (!c.source.empty()) ++references[c.source];

  // Rank-local scalars are small 1-D arrays (one value per saved rank): read them to show them.
  std::map<std::size_t, std::vector<ScalarValue>> per_rank_values;
  try {
    std::vector<ReadRequest> requests;
    std::vector<std::pair<std::size_t, std::vector<std::byte>>> buffers;
    for (std::size_t e = 0; e < md.entries.size(); ++e) {
      const EntryInfo& info = md.entries[e];
      if (info.kind != EntryKind::Scalar || info.distribution != Distribution::RankLocal) continue;
      if (info.global_shape.size() != 1 || info.global_shape[0] <= 0 || info.global_shape[0] > 4096) continue;
      buffers.emplace_back(e, std::vector<std::byte>(static_cast<std::size_t>(info.global_shape[0]) * 8));
    }
    for (auto& [e, buffer] : buffers)
      requests.push_back(ReadRequest{static_cast<std::int32_t>(e), Region{{0}, md.entries[e].global_shape},
                                     md.entries[e].dtype, buffer.data()});
    if (!requests.empty()) reader->read(requests);
    for (auto& [e, buffer] : buffers) {
      std::vector<ScalarValue>& values = per_rank_values[e];
      for (std::size_t r = 0; r < buffer.size() / 8; ++r) {
        if (md.entries[e].scalar_type == ScalarType::Float64) {
          double d = 0;
          std::memcpy(&d, buffer.data() + r * 8, 8);
          values.emplace_back(d);
        } else {
          std::int64_t i = 0;
          std::memcpy(&i, buffer.data() + r * 8, 8);
          values.emplace_back(i);
        }
      }
    }
  } catch (const std::exception& e) {
    return fail(args.common, out, err, "info",
                "cannot read the rank-local scalars of checkpoint '" + id + "': " + e.what());
  }

  std::size_t files = 0;
  const std::uint64_t disk = tree_bytes(id, files);
  const std::string layout = layout_of(id);
  const std::int64_t now = now_unix();
  if (args.common.json) {
    JsonWriter json(out);
    json.begin_object().field("checkpoint", id).field("layout", layout);
    json.field("format_version", static_cast<std::int64_t>(md.format_version));
    json.field("library_version", md.library_version).field("world_size", static_cast<std::int64_t>(md.world_size));
    json.field("created_unix_time", md.created_unix_time).field("bytes_on_disk", disk);
    json.field("files", static_cast<std::int64_t>(files)).field("chunks", static_cast<std::int64_t>(md.chunks.size()));
    json.key("references").begin_array();
    for (const auto& [source, chunks] : references)
      json.begin_object().field("checkpoint", source).field("chunks", chunks).end_object();
    json.end_array();
    json.key("entries").begin_array();
    for (std::size_t e = 0; e < md.entries.size(); ++e) {
      const EntryInfo& info = md.entries[e];
      json.begin_object().field("name", info.name).field("kind", kind_name(info.kind));
      json.field("distribution", distribution_name(info.distribution)).field("dtype", type_name(info));
      json.field("shape", info.global_shape).field("chunks", stats[e].chunks).field("bytes", stats[e].bytes);
      if (info.compression != Compression::None)
        json.field("compression", std::string(detail::compression_name(info.compression)))
            .field("compression_level", static_cast<std::int64_t>(info.compression_level));
      json.key("ranks").begin_array();
      for (const int r : stats[e].ranks) json.value(r);
      json.end_array();
      if (info.kind == EntryKind::Scalar && info.distribution == Distribution::Replicated) {
        json.key("value");
        json_scalar(json, info.value);
      }
      if (auto it = per_rank_values.find(e); it != per_rank_values.end()) {
        json.key("values").begin_array();
        for (const ScalarValue& v : it->second) json_scalar(json, v);
        json.end_array();
      }
      if (info.kind == EntryKind::Bytes && info.distribution == Distribution::RankLocal)
        json.field("rank_offsets", info.rank_offsets);
      json.end_object();
    }
    json.end_array().end_object();
    json.finish();
    return exit_ok;
  }

  out << "checkpoint       " << id << '\n';
  out << "layout           " << layout << '\n';
  out << "format version   " << md.format_version << '\n';
  out << "library version  " << md.library_version << '\n';
  out << "world size       " << md.world_size << '\n';
  if (md.created_unix_time > 0)
    out << "created          " << utc_time(md.created_unix_time) << " (" << human_age(now - md.created_unix_time)
        << " ago)\n";
  out << "size on disk     " << human_bytes(disk) << " in " << files << " files\n";
  out << "entries          " << md.entries.size() << " (" << md.chunks.size() << " chunks)\n";
  if (!references.empty()) {
    out << "refers to        ";
    for (auto it = references.begin(); it != references.end(); ++it)
      out << (it == references.begin() ? "" : ", ") << it->first << " (" << it->second << " chunks)";
    out << '\n';
  }
  out << '\n';
  std::vector<std::vector<std::string>> rows;
  for (std::size_t e = 0; e < md.entries.size(); ++e) {
    const EntryInfo& info = md.entries[e];
    std::string value;
    if (info.kind == EntryKind::Scalar && info.distribution == Distribution::Replicated) {
      value = scalar_text(info.value);
    } else if (auto it = per_rank_values.find(e); it != per_rank_values.end()) {
      value = "[";
      for (std::size_t r = 0; r < it->second.size() && r < 8; ++r)
        value += (r ? ", " : "") + scalar_text(it->second[r]);
      value += it->second.size() > 8 ? ", ...]" : "]";
    }
    const bool attribute = info.kind == EntryKind::Scalar && info.distribution == Distribution::Replicated;
    // A compressed array: "float64 (zstd)", "float64 (deflate 1)".
    std::string type = type_name(info);
    if (info.compression != Compression::None)
      type += std::string(" (") + detail::compression_name(info.compression) +
              (info.compression_level != 0 ? " " + std::to_string(info.compression_level) : std::string()) + ")";
    rows.push_back({info.name, kind_name(info.kind), distribution_name(info.distribution), type,
                    attribute ? std::string("-") : detail::to_string(info.global_shape),
                    std::to_string(stats[e].chunks), human_bytes(stats[e].bytes),
                    stats[e].ranks.empty() ? std::string("-") : rank_ranges(stats[e].ranks), value});
  }
  print_table(out, {"NAME", "KIND", "DISTRIBUTION", "DTYPE", "SHAPE", "CHUNKS", "BYTES", "RANKS", "VALUE"}, rows);
  return exit_ok;
}

// ---------------------------------------------------------------------------------------------
// diff

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h >> 15) & 1U;
  const std::uint32_t exponent = (h >> 10) & 0x1fU;
  const std::uint32_t mantissa = h & 0x3ffU;
  float magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400U), static_cast<int>(exponent) - 25);
  return sign ? -magnitude : magnitude;
}

// One element as a long double (exact for every integer type up to 64 bits on x86-64).
long double element_value(DType dtype, const std::byte* p) {
  auto get = [p](auto v) {
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  switch (dtype) {
    case DType::Int8: return get(std::int8_t{});
    case DType::Int16: return get(std::int16_t{});
    case DType::Int32: return get(std::int32_t{});
    case DType::Int64: return static_cast<long double>(get(std::int64_t{}));
    case DType::UInt8: return get(std::uint8_t{});
    case DType::UInt16: return get(std::uint16_t{});
    case DType::UInt32: return get(std::uint32_t{});
    case DType::UInt64: return static_cast<long double>(get(std::uint64_t{}));
    case DType::Float32: return get(float{});
    case DType::Float64: return get(double{});
    case DType::Bool: return get(std::uint8_t{}) != 0 ? 1 : 0;
    case DType::Float16: return half_to_float(get(std::uint16_t{}));
    case DType::BFloat16: {
      const std::uint32_t bits = static_cast<std::uint32_t>(get(std::uint16_t{})) << 16;
      float f = 0;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
  }
  return 0;
}

struct Described {
  std::string kind, distribution, dtype;
  Extents shape;
};

Described describe(const EntryInfo& e) {
  return {kind_name(e.kind), distribution_name(e.distribution), type_name(e), e.global_shape};
}

struct Change {
  std::string name;
  std::vector<std::string> notes;  // dtype, shape, value changes in words
  // Element comparison (arrays, bytes, rank-local scalars of equal dtype and shape).
  bool compared = false;
  std::int64_t elements = 0;
  std::int64_t differing = 0;
  std::int64_t nan_mismatches = 0;  // NaN on one side only
  double max_abs = 0;
  Extents max_at;
};

// Compares entry `ea` of `a` with entry `eb` of `b` element by element (equal dtype and shape),
// reading both in row-major slices of at most `buffer_bytes`.
void compare_values(StorageReader& a, std::int32_t ea, StorageReader& b, std::int32_t eb, const EntryInfo& info,
                    std::size_t buffer_bytes, Progress& progress, Change& change) {
  const DType dtype = info.kind == EntryKind::Bytes ? DType::UInt8 : info.dtype;
  const std::size_t esize = dtype_size(dtype);
  const Region whole{Extents(info.global_shape.size(), 0), info.global_shape};
  std::vector<std::byte> left, right;
  change.compared = true;
  change.elements = detail::volume(info.global_shape);
  bool have_max = false;
  for (const Region& slice : detail::row_major_slices(whole, esize, buffer_bytes)) {
    const auto n = static_cast<std::size_t>(detail::volume(slice.shape));
    left.resize(n * esize);
    right.resize(n * esize);
    a.read({ReadRequest{ea, slice, dtype, left.data()}});
    b.read({ReadRequest{eb, slice, dtype, right.data()}});
    progress.add(2 * n * esize);
    if (std::memcmp(left.data(), right.data(), n * esize) == 0) continue;
    for (std::size_t i = 0; i < n; ++i) {
      const std::byte* x = left.data() + i * esize;
      const std::byte* y = right.data() + i * esize;
      if (std::memcmp(x, y, esize) == 0) continue;
      const long double u = element_value(dtype, x);
      const long double v = element_value(dtype, y);
      if (u == v) continue;  // +0 and -0
      const bool nan_u = std::isnan(u), nan_v = std::isnan(v);
      if (nan_u && nan_v) continue;  // NaNs of other payloads
      ++change.differing;
      if (nan_u || nan_v) {
        ++change.nan_mismatches;
        continue;
      }
      const long double diff = std::fabs(u - v);
      if (!have_max || diff > static_cast<long double>(change.max_abs)) {
        have_max = true;
        change.max_abs = static_cast<double>(diff);
        // Unravel i within the slice's shape, row-major, into a global index.
        change.max_at = slice.offset;
        std::size_t rest = i;
        for (std::size_t d = slice.shape.size(); d-- > 0;) {
          const auto extent = static_cast<std::size_t>(slice.shape[d]);
          change.max_at[d] += static_cast<std::int64_t>(rest % extent);
          rest /= extent;
        }
      }
    }
  }
}

int diff_rank0(const DiffArgs& args, std::ostream& out, std::ostream& err) {
  for (const std::string* id : {&args.first, &args.second})
    if (const std::string why = not_a_checkpoint(*id); !why.empty()) return fail(args.common, out, err, "diff", why);
  SerialProcessGroup serial;
  std::unique_ptr<StorageReader> ra = make_reader(), rb = make_reader();
  ReaderCloser close_a{*ra}, close_b{*rb};
  for (auto [reader, id] : {std::pair{ra.get(), &args.first}, std::pair{rb.get(), &args.second}}) {
    try {
      reader->open(*id, serial);
    } catch (const std::exception& e) {
      return fail(args.common, out, err, "diff", "cannot open checkpoint '" + *id + "': " + e.what());
    }
  }
  const Metadata& ma = ra->metadata();
  const Metadata& mb = rb->metadata();

  std::vector<std::string> removed, added, same;
  std::vector<Change> changed;
  // Entries of equal structure: (index in a, index in b, index in `changed`).
  std::vector<std::tuple<std::size_t, std::size_t, std::size_t>> to_compare;
  std::uint64_t compare_bytes = 0;
  std::unordered_map<std::string_view, std::size_t> in_a, in_b;
  for (std::size_t i = 0; i < ma.entries.size(); ++i) in_a.emplace(ma.entries[i].name, i);
  for (std::size_t j = 0; j < mb.entries.size(); ++j) in_b.emplace(mb.entries[j].name, j);
  for (std::size_t i = 0; i < ma.entries.size(); ++i) {
    const EntryInfo& x = ma.entries[i];
    const auto found = in_b.find(x.name);
    const EntryInfo* y = found == in_b.end() ? nullptr : &mb.entries[found->second];
    if (y == nullptr) {
      removed.push_back(x.name);
      continue;
    }
    Change change;
    change.name = x.name;
    if (x.kind != y->kind)
      change.notes.push_back(std::string("kind ") + kind_name(x.kind) + " -> " + kind_name(y->kind));
    if (x.distribution != y->distribution)
      change.notes.push_back(std::string("distribution ") + distribution_name(x.distribution) + " -> " +
                             distribution_name(y->distribution));
    if (type_name(x) != type_name(*y)) change.notes.push_back("dtype " + type_name(x) + " -> " + type_name(*y));
    if (x.global_shape != y->global_shape)
      change.notes.push_back("shape " + detail::to_string(x.global_shape) + " -> " +
                             detail::to_string(y->global_shape));
    const bool structure_same = x.kind == y->kind && x.dtype == y->dtype && x.scalar_type == y->scalar_type &&
                                x.global_shape == y->global_shape;
    if (structure_same && x.kind == EntryKind::Scalar && x.distribution == Distribution::Replicated &&
        y->distribution == Distribution::Replicated) {
      if (x.value != y->value) change.notes.push_back("value " + scalar_text(x.value) + " -> " + scalar_text(y->value));
    } else if (structure_same && !(x.kind == EntryKind::Scalar && (x.distribution == Distribution::Replicated ||
                                                                   y->distribution == Distribution::Replicated))) {
      if (x.kind == EntryKind::Bytes && x.distribution == Distribution::RankLocal &&
          y->distribution == Distribution::RankLocal && x.rank_offsets != y->rank_offsets)
        change.notes.push_back("per-rank blob sizes differ");
      to_compare.emplace_back(i, static_cast<std::size_t>(y - mb.entries.data()), changed.size());
      compare_bytes += 2 * static_cast<std::uint64_t>(detail::volume(x.global_shape)) *
                       (x.kind == EntryKind::Bytes ? 1 : dtype_size(x.dtype));
      changed.push_back(std::move(change));  // decided after the comparison
      continue;
    }
    if (change.notes.empty())
      same.push_back(x.name);
    else
      changed.push_back(std::move(change));
  }
  for (const EntryInfo& y : mb.entries)
    if (in_a.count(y.name) == 0) added.push_back(y.name);

  {
    Progress progress(err, args.common.progress, "diff", compare_bytes);
    for (const auto& [i, j, c] : to_compare) {
      Change* change = &changed[c];
      try {
        compare_values(*ra, static_cast<std::int32_t>(i), *rb, static_cast<std::int32_t>(j), ma.entries[i],
                       args.buffer_bytes, progress, *change);
      } catch (const std::exception& e) {
        progress.done();
        return fail(args.common, out, err, "diff",
                    "cannot compare entry '" + ma.entries[i].name + "' of checkpoints '" + args.first + "' and '" +
                        args.second + "': " + e.what());
      }
    }
  }
  // Entries compared equal and without notes are unchanged after all.
  std::vector<Change> kept;
  for (Change& c : changed) {
    if (c.notes.empty() && c.differing == 0)
      same.push_back(c.name);
    else
      kept.push_back(std::move(c));
  }
  changed = std::move(kept);
  const bool identical = removed.empty() && added.empty() && changed.empty();

  if (args.common.json) {
    JsonWriter json(out);
    json.begin_object().field("first", args.first).field("second", args.second).field("identical", identical);
    auto list = [&](const char* key, const std::vector<std::string>& names, const Metadata& md) {
      json.key(key).begin_array();
      for (const std::string& name : names) {
        const Described d = describe(*md.find(name));
        json.begin_object().field("name", name).field("kind", d.kind).field("distribution", d.distribution);
        json.field("dtype", d.dtype).field("shape", d.shape).end_object();
      }
      json.end_array();
    };
    list("removed", removed, ma);
    list("added", added, mb);
    json.key("changed").begin_array();
    for (const Change& c : changed) {
      json.begin_object().field("name", c.name).key("notes").begin_array();
      for (const std::string& n : c.notes) json.value(n);
      json.end_array();
      if (c.compared) {
        json.field("elements", c.elements).field("differing_elements", c.differing);
        json.field("nan_mismatches", c.nan_mismatches).field("max_abs_difference", c.max_abs);
        json.key("max_at");
        if (c.differing > c.nan_mismatches)
          json.value(c.max_at);
        else
          json.null();
      }
      json.end_object();
    }
    json.end_array().field("unchanged", static_cast<std::int64_t>(same.size())).end_object();
    json.finish();
    return identical ? exit_ok : exit_found;
  }

  out << "--- " << args.first << '\n' << "+++ " << args.second << '\n';
  auto summary = [](const Metadata& md, const std::string& name) {
    const Described d = describe(*md.find(name));
    return d.kind + ", " + d.distribution + ", " + d.dtype +
           (d.kind == "scalar" && d.shape.empty() ? std::string() : " " + detail::to_string(d.shape));
  };
  for (const std::string& name : removed) out << "- " << name << " (" << summary(ma, name) << ")\n";
  for (const std::string& name : added) out << "+ " << name << " (" << summary(mb, name) << ")\n";
  for (const Change& c : changed) {
    out << "~ " << c.name << ':';
    const char* sep = " ";
    for (const std::string& n : c.notes) {
      out << sep << n;
      sep = "; ";
    }
    if (c.compared && c.differing > 0) {
      out << sep << c.differing << " of " << c.elements << " elements differ";
      if (c.differing > c.nan_mismatches)
        out << ", largest absolute difference " << double_text(c.max_abs) << " at " << detail::to_string(c.max_at);
      if (c.nan_mismatches > 0) out << ", " << c.nan_mismatches << " NaN on one side only";
    }
    out << '\n';
  }
  out << (identical ? "identical: " : "") << added.size() << " added, " << removed.size() << " removed, "
      << changed.size() << " changed, " << same.size() << " unchanged\n";
  return identical ? exit_ok : exit_found;
}

// ---------------------------------------------------------------------------------------------
// convert to one serial HDF5 file

// "/a/b" for "a/b/c": the object a scalar named `name` is an attribute of, and its own name.
std::pair<std::string, std::string> attribute_place(const std::string& name) {
  const std::size_t slash = name.rfind('/');
  if (slash == std::string::npos) return {"/", name};
  return {"/" + name.substr(0, slash), name.substr(slash + 1)};
}

// Collective over `group`: every rank takes part in the reads; rank 0 reads everything and writes
// one HDF5 file with HDF5's default (POSIX) driver. Checks every chunk's checksum on the way.
void export_serial_hdf5(ProcessGroup& group, const ConvertArgs& args, std::ostream& err) {
  const bool root = group.rank() == 0;
  const std::string what = "conversion of checkpoint '" + args.source + "' to the HDF5 file '" + args.target + "'";
  std::string temp;
  detail::agree_on(group, what + " (validate)", [&] {
    if (!root) return;
    if (const std::string why = not_a_checkpoint(args.source); !why.empty()) throw UsageError(why);
    struct stat st {};
    if (::stat(args.target.c_str(), &st) == 0) {
      if (!args.force) throw UsageError("'" + args.target + "' exists; pass --force to replace it");
      if (S_ISDIR(st.st_mode)) throw UsageError("'" + args.target + "' is a directory, not a file to replace");
    }
    const fs::path target(args.target);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    temp = (dir / ("." + target.filename().string() + ".partial-" + std::to_string(::getpid()))).string();
  });
  std::unique_ptr<StorageReader> reader = make_reader();
  ReaderCloser closer{*reader};
  detail::agree_on(group, what + " (open)", [&] { reader->open(args.source, group); });
  const Metadata& md = reader->metadata();

  detail::h5::QuietErrors quiet;
  detail::h5::Handle file;
  std::vector<detail::h5::Handle> datasets(md.entries.size());
  auto remove_temp = [&] {
    if (!root || temp.empty()) return;
    file.close();
    datasets.clear();
    std::remove(temp.c_str());
  };
  try {
    detail::agree_on(group, what + " (create)", [&] {
      if (!root) return;
      using namespace detail::h5;
      file = detail::h5::file(
          check(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "cannot create '" + temp + "'"));
      for (std::size_t e = 0; e < md.entries.size(); ++e) {
        const EntryInfo& info = md.entries[e];
        const std::string path = "/" + info.name;
        if (info.kind == EntryKind::Scalar && info.distribution == Distribution::Replicated) {
          const auto [parent, attr] = attribute_place(info.name);
          if (parent != "/") {
            create_groups(file.get(), parent + "/x");
          }
          Handle object(check(H5Oopen(file.get(), parent.c_str(), H5P_DEFAULT),
                              "cannot open '" + parent + "' for attribute '" + info.name + "'"),
                        H5Oclose);
          write_attribute(object.get(), attr, info.value);
          continue;
        }
        create_groups(file.get(), path);
        const DType dtype = info.kind == EntryKind::Bytes ? DType::UInt8 : info.dtype;
        std::vector<hsize_t> dims(info.global_shape.begin(), info.global_shape.end());
        Handle space =
            dataspace(check(dims.empty() ? H5Screate(H5S_SCALAR)
                                         : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                            "H5Screate for '" + info.name + "'"));
        Handle type = file_type(dtype);
        datasets[e] = dataset(
            check(H5Dcreate2(file.get(), path.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create dataset '" + path + "' in '" + temp + "'"));
        if (info.kind == EntryKind::Bytes && info.distribution == Distribution::RankLocal) {
          // Where each saved rank's blob starts: h5py users split the bytes with it.
          const hsize_t n = info.rank_offsets.size();
          Handle aspace = dataspace(check(H5Screate_simple(1, &n, nullptr), "H5Screate_simple"));
          Handle attr = attribute(check(
              H5Acreate2(datasets[e].get(), "rank_offsets", H5T_STD_I64LE, aspace.get(), H5P_DEFAULT, H5P_DEFAULT),
              "cannot create attribute 'rank_offsets' of '" + path + "'"));
          check_status(H5Awrite(attr.get(), H5T_NATIVE_INT64, info.rank_offsets.data()),
                       "cannot write attribute 'rank_offsets' of '" + path + "'");
        }
      }
    });

    // Every saved chunk in row-major slices: read (rank 0 asks, the others join with nothing),
    // checksum, write the slice into its place in the dataset.
    std::uint64_t total = 0;
    for (const ChunkRecord& c : md.chunks)
      total += region_bytes(c.region, md.entries[static_cast<std::size_t>(c.entry)].dtype);
    Progress progress(err, args.common.progress && root && group.size() == 1, "convert", total);
    std::vector<std::byte> buffer;
    for (const ChunkRecord& chunk : md.chunks) {
      const EntryInfo& info = md.entries[static_cast<std::size_t>(chunk.entry)];
      const DType dtype = info.kind == EntryKind::Bytes ? DType::UInt8 : info.dtype;
      const std::size_t esize = dtype_size(dtype);
      if (detail::volume(chunk.region.shape) == 0) continue;
      detail::ChunkHasher sum(detail::checksum_block_bytes(chunk.region.shape, chunk.block_rows, esize));
      const std::vector<Region> slices = detail::row_major_slices(chunk.region, esize, args.buffer_bytes);
      for (std::size_t s = 0; s < slices.size(); ++s) {
        const Region& slice = slices[s];
        const std::size_t bytes = static_cast<std::size_t>(detail::volume(slice.shape)) * esize;
        detail::agree_on(group, what + " (entry '" + info.name + "')", [&] {
          std::vector<ReadRequest> requests;
          if (root) {
            buffer.resize(bytes);
            requests.push_back(ReadRequest{chunk.entry, slice, dtype, buffer.data()});
          }
          reader->read(requests);
          if (!root) return;
          progress.add(bytes);
          sum.update(buffer.data(), bytes);
          if (s + 1 == slices.size() && sum.digest() != chunk.checksum)
            throw CorruptCheckpointError("chunk " + detail::to_string(chunk.region) + " of entry '" + info.name +
                                         "' saved by rank " + std::to_string(chunk.rank) + " in checkpoint '" +
                                         args.source + "' does not match its checksum (stored " +
                                         detail::checksum_hex(chunk.checksum) + ", read " +
                                         detail::checksum_hex(sum.digest()) + ")");
          using namespace detail::h5;
          const hid_t dset = datasets[static_cast<std::size_t>(chunk.entry)].get();
          Handle fspace = dataspace(check(H5Dget_space(dset), "H5Dget_space"));
          Handle mspace;
          if (slice.shape.empty()) {
            mspace = dataspace(check(H5Screate(H5S_SCALAR), "H5Screate"));
          } else {
            select_region(fspace.get(), slice.offset, slice.shape);
            std::vector<hsize_t> count(slice.shape.begin(), slice.shape.end());
            mspace = dataspace(
                check(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), "H5Screate_simple"));
          }
          Handle type = file_type(dtype);
          check_status(H5Dwrite(dset, type.get(), mspace.get(), fspace.get(), H5P_DEFAULT, buffer.data()),
                       "cannot write " + detail::to_string(slice) + " of '" + info.name + "' to '" + temp + "'");
        });
      }
    }
    progress.done();

    detail::agree_on(group, what + " (publish)", [&] {
      if (!root) return;
      datasets.clear();
      detail::h5::check_status(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "cannot flush '" + temp + "'");
      if (!file.close()) throw StorageError("cannot close '" + temp + "': " + detail::h5::error_stack());
      if (::rename(temp.c_str(), args.target.c_str()) != 0)
        throw StorageError("cannot rename '" + temp + "' to '" + args.target + "': " + detail::errno_text(errno));
      temp.clear();
    });
  } catch (...) {
    remove_temp();
    throw;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The commands

int run_ls(const LsArgs& args, std::ostream& out, std::ostream& err) {
  if (!is_rank0(args.common)) return exit_ok;
  try {
    return ls_rank0(args, out, err);
  } catch (const std::exception& e) {
    return fail(args.common, out, err, "ls", "listing '" + args.root + "' failed: " + e.what());
  }
}

int run_info(const InfoArgs& args, std::ostream& out, std::ostream& err) {
  if (!is_rank0(args.common)) return exit_ok;
  try {
    return info_rank0(args, out, err);
  } catch (const std::exception& e) {
    return fail(args.common, out, err, "info", "checkpoint '" + args.checkpoint + "': " + e.what());
  }
}

int run_diff(const DiffArgs& args, std::ostream& out, std::ostream& err) {
  if (!is_rank0(args.common)) return exit_ok;
  try {
    return diff_rank0(args, out, err);
  } catch (const std::exception& e) {
    return fail(args.common, out, err, "diff",
                "comparing '" + args.first + "' with '" + args.second + "' failed: " + e.what());
  }
}

int run_verify(const VerifyArgs& args, std::ostream& out, std::ostream& err) {
  const std::shared_ptr<ProcessGroup> group = group_of(args.common);
  const std::string& id = args.checkpoint;
  if (const std::string why = checked_on_rank0(*group, [&] { return not_a_checkpoint(id); }); !why.empty())
    return fail(args.common, out, err, "verify", why);
  VerifyReport report;
  try {
    Checkpointer checkpointer(group);
    cairn::VerifyOptions options;
    options.buffer_bytes = args.buffer_bytes;
    // Progress of this rank's share, drawn only when it is the whole job.
    options.reader =
        std::make_shared<ProgressReader>(make_reader(), err, args.common.progress && group->size() == 1, "verify");
    report = checkpointer.verify(id, options);
  } catch (const std::exception& e) {
    return fail(args.common, out, err, "verify", e.what());
  }
  if (group->rank() != 0) return report.ok() ? exit_ok : exit_found;
  if (args.common.json) {
    JsonWriter json(out);
    json.begin_object().field("checkpoint", id).field("ok", report.ok());
    json.field("chunks_checked", report.chunks_checked).field("bytes_checked", report.bytes_checked);
    json.key("bad_chunks").begin_array();
    for (const BadChunk& b : report.bad_chunks) {
      json.begin_object().field("entry", b.entry).field("offset", b.offset).field("shape", b.shape);
      json.field("saving_rank", b.saving_rank).field("expected_checksum", detail::checksum_hex(b.expected_checksum));
      json.field("actual_checksum", detail::checksum_hex(b.actual_checksum)).field("message", b.message);
      json.end_object();
    }
    json.end_array().end_object();
    json.finish();
  } else {
    for (const BadChunk& b : report.bad_chunks) {
      out << "BAD entry '" << b.entry << "' chunk " << detail::to_string(Region{b.offset, b.shape}) << " saved by rank "
          << b.saving_rank << ": expected checksum " << detail::checksum_hex(b.expected_checksum) << ", found "
          << detail::checksum_hex(b.actual_checksum) << '\n'
          << "    " << b.message << '\n';
    }
    if (report.ok())
      out << "checkpoint '" << id << "': OK, " << report.chunks_checked << " chunks ("
          << human_bytes(static_cast<std::uint64_t>(report.bytes_checked)) << ") match their checksums\n";
    else
      out << "checkpoint '" << id << "': " << report.bad_chunks.size() << " of " << report.chunks_checked
          << " chunks are damaged\n";
  }
  return report.ok() ? exit_ok : exit_found;
}

int run_convert(const ConvertArgs& args, std::ostream& out, std::ostream& err) {
  const std::shared_ptr<ProcessGroup> group = group_of(args.common);
  const bool serial = args.to == "serial-hdf5";
  if (!serial && args.to != "hdf5" && args.to != "posix")
    return fail(args.common, out, err, "convert",
                "unknown target format '" + args.to + "' (expected hdf5, posix or serial-hdf5)");
  const std::string why = checked_on_rank0(*group, [&] {
    std::string problem = not_a_checkpoint(args.source);
    if (problem.empty() && !serial && !args.force && path_exists(args.target))
      problem = "'" + args.target + "' exists; pass --force to replace it";
    return problem;
  });
  if (!why.empty()) return fail(args.common, out, err, "convert", why);
  try {
    if (serial) {
      export_serial_hdf5(*group, args, err);
    } else {
      ConvertOptions options;
      options.overwrite = args.force;
      options.buffer_bytes = args.buffer_bytes;
      std::shared_ptr<StorageWriter> writer(args.to == "posix" ? make_posix_writer() : make_hdf5_writer());
      options.writer =
          std::make_shared<ProgressWriter>(writer, err, args.common.progress && group->size() == 1, "convert");
      convert_checkpoint(*group, args.source, args.target, options);
    }
  } catch (const std::exception& e) {
    return fail(args.common, out, err, "convert", e.what());
  }
  if (group->rank() != 0) return exit_ok;
  std::size_t files = 0;
  const std::uint64_t bytes =
      serial ? static_cast<std::uint64_t>(fs::file_size(args.target)) : tree_bytes(args.target, files);
  if (args.common.json) {
    JsonWriter json(out);
    json.begin_object().field("source", args.source).field("target", args.target).field("format", args.to);
    json.field("bytes", bytes).end_object();
    json.finish();
  } else {
    out << "converted '" << args.source << "' to " << args.to << " '" << args.target << "' (" << human_bytes(bytes)
        << ")\n";
  }
  return exit_ok;
}

}  // namespace cairn::cli
