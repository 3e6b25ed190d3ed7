// Follows the references of incremental checkpoints: each request is split by saved chunk and
// every part goes to the reader of the checkpoint that holds its bytes.
#include "storage/layout/reference_reader.hpp"

#include <cairn/error.hpp>

#include "core/region.hpp"
#include "core/strided_copy.hpp"
#include "storage/common/incremental.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cairn::detail {

namespace {

class ReferenceReader final : public StorageReader {
 public:
  explicit ReferenceReader(std::shared_ptr<StorageReader> own) : m_own(std::move(own)) {}
  ~ReferenceReader() override { close_holders(); }  // the own reader closes itself
  ReferenceReader(const ReferenceReader&) = delete;
  ReferenceReader& operator=(const ReferenceReader&) = delete;

  void open(const std::string& directory, ProcessGroup& group) override {
    close();
    m_own->open(directory, group);
    const Metadata& md = m_own->metadata();
    m_holder_of_chunk.assign(md.chunks.size(), -1);
    m_has_references.assign(md.entries.size(), false);
    // The same order on every rank: every holder's read() is collective.
    std::vector<std::string> sources;
    for (const ChunkRecord& c : md.chunks)
      if (!c.source.empty()) sources.push_back(c.source);
    std::sort(sources.begin(), sources.end());
    sources.erase(std::unique(sources.begin(), sources.end()), sources.end());
    if (sources.empty()) return;
    try {
      for (const std::string& source : sources) open_holder(directory, source, group);
      check_references(directory);
    } catch (...) {
      close();
      throw;
    }
  }

  const Metadata& metadata() const override { return m_own->metadata(); }

  void read(const std::vector<ReadRequest>& requests) override {
    if (m_holders.empty()) {
      m_own->read(requests);
      return;
    }
    const Metadata& md = m_own->metadata();
    std::vector<std::vector<ReadRequest>> routed(m_holders.size() + 1);  // [0]: this checkpoint
    std::vector<Scatter> scatters;
    std::exception_ptr failure;
    try {
      for (std::size_t i = 0; i < requests.size(); ++i) {
        const ReadRequest& r = requests[i];
        const auto e = static_cast<std::size_t>(r.entry);
        if (r.entry < 0 || e >= md.entries.size() || !m_has_references[e]) {
          routed[0].push_back(r);  // the own reader reports a bad entry index
          continue;
        }
        std::vector<std::pair<std::size_t, Region>> parts;
        m_chunks_of[e].for_each_intersecting(r.region,
                                             [&](std::size_t c, const Region& part) { parts.emplace_back(c, part); });
        for (auto& [c, part] : parts) {
          const int holder = m_holder_of_chunk[c];
          const std::int32_t entry = holder < 0 ? r.entry : m_holders[static_cast<std::size_t>(holder)].entry_of[e];
          std::vector<ReadRequest>& to = routed[static_cast<std::size_t>(holder + 1)];
          if (parts.size() == 1 && part == r.region) {  // the usual case: a request inside one chunk
            to.push_back(ReadRequest{entry, r.region, r.dtype, r.destination});
            continue;
          }
          Scatter& s = scatters.emplace_back();
          s.request = i;
          s.part = std::move(part);
          s.buffer.resize(static_cast<std::size_t>(volume(s.part.shape)) * dtype_size(r.dtype));
          to.push_back(ReadRequest{entry, s.part, r.dtype, s.buffer.data()});
        }
      }
    } catch (...) {
      failure = std::current_exception();
      for (auto& list : routed) list.clear();
    }
    // Every reader's read is collective: each is called on every rank, whatever failed before.
    for (std::size_t k = 0; k < routed.size(); ++k) {
      try {
        (k == 0 ? *m_own : *m_holders[k - 1].reader).read(routed[k]);
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
    for (const Scatter& s : scatters) {
      const ReadRequest& r = requests[s.request];
      const std::size_t esize = dtype_size(r.dtype);
      const Extents strides = row_major_strides(r.region.shape);
      std::int64_t at = 0;
      for (std::size_t d = 0; d < strides.size(); ++d) at += (s.part.offset[d] - r.region.offset[d]) * strides[d];
      strided_copy(s.buffer.data(), row_major_strides(s.part.shape),
                   static_cast<std::byte*>(r.destination) + at * static_cast<std::int64_t>(esize), strides,
                   s.part.shape, esize);
    }
  }

  void close() noexcept override {
    close_holders();
    m_own->close();
  }

 private:
  void close_holders() noexcept {
    for (Holder& h : m_holders)
      if (h.reader) h.reader->close();
    m_holders.clear();
    m_chunks_of.clear();
  }

  // An earlier checkpoint that holds some of this one's chunks.
  struct Holder {
    std::string source;     // as the chunk records name it
    std::string directory;  // where it is
    std::unique_ptr<StorageReader> reader;
    std::vector<std::int32_t> entry_of;  // this checkpoint's entry index -> the holder's (-1: none)
  };

  // A part of a request that spans chunks held in different places, read apart and copied in.
  struct Scatter {
    std::size_t request = 0;
    Region part;
    std::vector<std::byte> buffer;
  };

  void open_holder(const std::string& directory, const std::string& source, ProcessGroup& group) {
    const Metadata& md = m_own->metadata();
    Holder& h = m_holders.emplace_back();
    h.source = source;
    h.directory = referenced_directory(directory, source);
    std::string entry;
    for (const ChunkRecord& c : md.chunks)
      if (c.source == source) {
        entry = md.entries[static_cast<std::size_t>(c.entry)].name;
        break;
      }
    const std::string what = "checkpoint '" + directory + "' refers to checkpoint '" + h.directory +
                             "' for chunks of entry '" + entry + "', which ";
    h.reader = make_layout_reader();
    try {
      h.reader->open(h.directory, group);
    } catch (const UsageError& e) {
      throw StorageError(what + "cannot be opened: " + e.what());  // not the caller's usage: a missing piece
    } catch (const Error& e) {
      throw_error(e.code(), what + "cannot be opened: " + e.what());
    }
  }

  // Every referenced chunk must be one of its holder's own chunks, with the same checksum: a
  // holder replaced since (saved again under its id) is reported, never read as if it were the one.
  void check_references(const std::string& directory) {
    const Metadata& md = m_own->metadata();
    std::vector<std::vector<RegionIndex>> holder_chunks(m_holders.size());
    for (std::size_t k = 0; k < m_holders.size(); ++k) {
      Holder& h = m_holders[k];
      const Metadata& hmd = h.reader->metadata();
      h.entry_of.assign(md.entries.size(), -1);
      holder_chunks[k].resize(hmd.entries.size());
      for (std::size_t c = 0; c < hmd.chunks.size(); ++c)
        if (hmd.chunks[c].source.empty())
          holder_chunks[k][static_cast<std::size_t>(hmd.chunks[c].entry)].add(&hmd.chunks[c].region, c);
      for (RegionIndex& index : holder_chunks[k]) index.build();
    }
    m_chunks_of.assign(md.entries.size(), RegionIndex{});
    for (std::size_t c = 0; c < md.chunks.size(); ++c) {
      const ChunkRecord& record = md.chunks[c];
      const auto e = static_cast<std::size_t>(record.entry);
      if (record.source.empty()) continue;
      const EntryInfo& info = md.entries[e];
      const auto k = static_cast<std::size_t>(
          std::lower_bound(m_holders.begin(), m_holders.end(), record.source,
                           [](const Holder& h, const std::string& s) { return h.source < s; }) -
          m_holders.begin());
      Holder& h = m_holders[k];
      const Metadata& hmd = h.reader->metadata();
      const std::string where = "checkpoint '" + directory + "': chunk " + to_string(record.region) + " of entry '" +
                                info.name + "' refers to checkpoint '" + h.directory + "', ";
      if (h.entry_of[e] < 0) {
        const EntryInfo* held = hmd.find(info.name);
        if (held == nullptr) throw CorruptCheckpointError(where + "which has no such entry");
        if (held->kind != info.kind || held->dtype != info.dtype || held->global_shape != info.global_shape)
          throw CorruptCheckpointError(where + "whose entry has another kind, dtype or shape");
        h.entry_of[e] = static_cast<std::int32_t>(held - hmd.entries.data());
      }
      bool found = false;
      holder_chunks[k][static_cast<std::size_t>(h.entry_of[e])].for_each_intersecting(
          record.region, [&](std::size_t hc, const Region&) {
            found = found || (hmd.chunks[hc].region == record.region && hmd.chunks[hc].checksum == record.checksum);
          });
      if (!found)
        throw CorruptCheckpointError(where + "which does not hold it with the same checksum (saved again since?)");
      m_holder_of_chunk[c] = static_cast<int>(k);
      m_has_references[e] = true;
    }
    // Every chunk of an entry with references, so that requests are split among their holders.
    for (std::size_t c = 0; c < md.chunks.size(); ++c) {
      const auto e = static_cast<std::size_t>(md.chunks[c].entry);
      if (m_has_references[e] && volume(md.chunks[c].region.shape) > 0) m_chunks_of[e].add(&md.chunks[c].region, c);
    }
    for (RegionIndex& index : m_chunks_of) index.build();
  }

  std::shared_ptr<StorageReader> m_own;
  std::vector<Holder> m_holders;         // sorted by source
  std::vector<int> m_holder_of_chunk;    // by chunk of this checkpoint: index into m_holders, -1: own
  std::vector<bool> m_has_references;    // by entry
  std::vector<RegionIndex> m_chunks_of;  // by entry, for entries with references
};

}  // namespace

std::unique_ptr<StorageReader> follow_references(std::shared_ptr<StorageReader> own) {
  if (!own) throw UsageError("follow_references: the reader is null");
  return std::make_unique<ReferenceReader>(std::move(own));
}

bool follows_references(const StorageReader& reader) noexcept {
  return dynamic_cast<const ReferenceReader*>(&reader) != nullptr;
}

}  // namespace cairn::detail
