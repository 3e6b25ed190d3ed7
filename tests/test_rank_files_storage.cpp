// The rank-files storage backend driven directly, without the checkpointer: every rank writes its
// own file from a hand-built plan of a world of one, and the HDF5 reader merges the files into
// the metadata a shared-file save would have, then reads them back with other decompositions.
#include "test_support.hpp"

#include <cairn/cairn.hpp>

#include "core/checksum.hpp"
#include "core/region.hpp"
#include "storage/hdf5/hdf5_handle.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

namespace cairn::test {
namespace {

namespace fs = std::filesystem;
namespace h5 = detail::h5;

constexpr std::int64_t cols = 7;
std::int64_t rows() {
  return 5 * world_size() + 3;
}
std::int64_t row_start(int rank) {
  return rows() * rank / world_size();
}
double field_value(std::int64_t i, std::int64_t j) {
  return static_cast<double>(i * 1000 + j) + 0.25;
}
std::size_t blob_size(int rank) {
  return 3 + 2 * static_cast<std::size_t>(rank);
}
std::uint8_t blob_byte(int rank, std::size_t i) {
  return static_cast<std::uint8_t>((rank * 37 + static_cast<int>(i) * 11 + 5) & 0xff);
}
std::int64_t cursor_value(int rank) {
  return 100 + rank;
}
// Negative values too: widening to int64 must sign-extend.
std::int32_t table_value(std::int64_t i) {
  return static_cast<std::int32_t>(3 * i - 50);
}
const Extents table_shape{3, 4};

std::string rank_file(const std::string& dir, int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "/rank_%06d.h5", rank);
  return dir + name;
}

template <class T>
std::vector<std::byte> as_bytes(const std::vector<T>& values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// What saving rank `rank` hands the rank-files writer: its own plan (a world of one), the bytes of
// each item and its own metadata. Deterministic, so any rank can rebuild any saving rank's.
struct RankSave {
  std::vector<EntryInfo> entries;
  std::vector<WriteItem> items;
  std::vector<std::vector<std::byte>> data;  // one per item, row-major
  Metadata metadata;

  std::int32_t index_of(const std::string& name) const {
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (entries[i].name == name) return static_cast<std::int32_t>(i);
    return -1;
  }
};

RankSave make_rank_save(int rank, int world) {
  RankSave s;
  EntryInfo field;
  field.name = "fields/temperature";
  field.dtype = DType::Float64;
  field.global_shape = {rows(), cols};
  field.max_items_per_rank = 2;
  EntryInfo rng;
  rng.name = "rng";
  rng.kind = EntryKind::Bytes;
  rng.distribution = Distribution::RankLocal;
  rng.global_shape = {static_cast<std::int64_t>(blob_size(rank))};
  rng.max_items_per_rank = 1;
  EntryInfo cursor;
  cursor.name = "cursor";
  cursor.kind = EntryKind::Scalar;
  cursor.distribution = Distribution::RankLocal;
  cursor.dtype = DType::Int64;
  cursor.scalar_type = ScalarType::Int64;
  cursor.global_shape = {world};
  cursor.max_items_per_rank = 1;
  EntryInfo table;
  table.name = "table";
  table.distribution = Distribution::Replicated;
  table.dtype = DType::Int32;
  table.global_shape = table_shape;
  table.max_items_per_rank = rank == 0 ? 1 : 0;
  EntryInfo time;
  time.name = "time";
  time.kind = EntryKind::Scalar;
  time.distribution = Distribution::Replicated;
  time.dtype = DType::Float64;
  time.scalar_type = ScalarType::Float64;
  time.value = 2.5;
  // Odd ranks list their entries in another order: the reader must re-index by name.
  s.entries = {field, rng, cursor, table, time};
  if (rank % 2 == 1) s.entries = {time, table, cursor, rng, field};

  auto add = [&](const std::string& name, Region region, std::vector<std::byte> bytes) {
    WriteItem item;
    item.entry = s.index_of(name);
    item.region = std::move(region);
    item.source_offset = item.region.offset;
    s.items.push_back(std::move(item));
    s.data.push_back(std::move(bytes));
  };
  // The row slab cut in two items, written first and last: datasets follow write order.
  const std::int64_t a = row_start(rank), b = row_start(rank + 1), m = (a + b) / 2;
  auto slab = [&](std::int64_t lo, std::int64_t hi) {
    std::vector<double> v;
    for (std::int64_t i = lo; i < hi; ++i)
      for (std::int64_t j = 0; j < cols; ++j) v.push_back(field_value(i, j));
    return as_bytes(v);
  };
  add(field.name, Region{{a, 0}, {m - a, cols}}, slab(a, m));
  std::vector<std::uint8_t> blob(blob_size(rank));
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = blob_byte(rank, i);
  add(rng.name, Region{{0}, {static_cast<std::int64_t>(blob.size())}}, as_bytes(blob));
  add(cursor.name, Region{{rank}, {1}}, as_bytes(std::vector<std::int64_t>{cursor_value(rank)}));
  if (rank == 0) {
    std::vector<std::int32_t> t(12);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = table_value(static_cast<std::int64_t>(i));
    add(table.name, Region{{0, 0}, table_shape}, as_bytes(t));
  }
  add(field.name, Region{{m, 0}, {b - m, cols}}, slab(m, b));

  s.metadata.library_version = "test";
  s.metadata.world_size = world;
  s.metadata.created_unix_time = 1234567;
  s.metadata.entries = s.entries;
  for (std::size_t i = 0; i < s.items.size(); ++i)
    s.metadata.chunks.push_back(ChunkRecord{
        s.items[i].entry, rank, s.items[i].region, detail::checksum(s.data[i].data(), s.data[i].size()), {}, 0, {}});
  return s;
}

// Every rank writes its own file into `dir`, which rank 0 creates first; `edit` may change this
// rank's save before it is written.
template <class Edit>
void write_rank_files(const std::string& dir, Edit&& edit, bool create_dir = true) {
  if (create_dir && world_rank() == 0) fs::create_directory(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  RankSave s = make_rank_save(world_rank(), world_size());
  edit(s);
  MpiProcessGroup group(MPI_COMM_WORLD);
  std::vector<WriteBuffer> first, second;
  for (std::size_t i = 0; i < s.items.size(); ++i)
    (i < 2 ? first : second).push_back(WriteBuffer{&s.items[i], s.data[i].data()});
  auto writer = make_hdf5_rank_files_writer();
  writer->open(dir, s.entries, group);
  writer->write(first);  // two write calls: dataset numbers keep counting
  writer->write(second);
  writer->finish(s.metadata);
  MPI_Barrier(MPI_COMM_WORLD);
}
void write_rank_files(const std::string& dir) {
  write_rank_files(dir, [](RankSave&) {});
}

std::int64_t int_attribute(hid_t target, const char* name) {
  h5::Handle attr = h5::attribute(H5Aopen(target, name, H5P_DEFAULT));
  EXPECT_TRUE(attr.valid()) << name;
  std::int64_t value = -1;
  if (attr.valid()) {
    EXPECT_GE(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), 0) << name;
  }
  return value;
}

std::vector<std::int64_t> int_array_attribute(hid_t target, const char* name) {
  h5::Handle attr = h5::attribute(H5Aopen(target, name, H5P_DEFAULT));
  EXPECT_TRUE(attr.valid()) << name;
  if (!attr.valid()) return {};
  h5::Handle space = h5::dataspace(H5Aget_space(attr.get()));
  std::vector<std::int64_t> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())));
  EXPECT_GE(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()), 0) << name;
  return values;
}

std::string string_attribute(hid_t target, const char* name) {
  h5::Handle attr = h5::attribute(H5Aopen(target, name, H5P_DEFAULT));
  EXPECT_TRUE(attr.valid()) << name;
  if (!attr.valid()) return {};
  h5::Handle type = h5::datatype(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  char* text = nullptr;
  EXPECT_GE(H5Aread(attr.get(), type.get(), &text), 0) << name;
  std::string out = text ? text : "";
  H5free_memory(text);
  return out;
}

TEST(RankFilesStorage, EachRankWritesItsOwnReadableFile) {
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  write_rank_files(dir);
  for (int r = 0; r < world_size(); ++r) EXPECT_TRUE(fs::exists(rank_file(dir, r))) << rank_file(dir, r);
  EXPECT_FALSE(fs::exists(rank_file(dir, world_size())));

  // Each rank looks at its own file the way a human with h5py would.
  const int rank = world_rank();
  const RankSave s = make_rank_save(rank, world_size());
  h5::Handle file = h5::file(H5Fopen(rank_file(dir, rank).c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  ASSERT_TRUE(file.valid());
  h5::Handle meta = h5::group(H5Gopen2(file.get(), "/_cairn", H5P_DEFAULT));
  ASSERT_TRUE(meta.valid());
  EXPECT_EQ(string_attribute(meta.get(), "layout"), "rank_files");
  EXPECT_EQ(int_attribute(meta.get(), "rank"), rank);
  EXPECT_EQ(int_attribute(meta.get(), "world_size"), world_size());
  EXPECT_EQ(int_attribute(meta.get(), "format_version"), std::int64_t{format_version});
  EXPECT_EQ(int_attribute(meta.get(), "created_unix_time"), 1234567);
  EXPECT_EQ(string_attribute(meta.get(), "library_version"), "test");

  for (std::size_t k = 0; k < s.items.size(); ++k) {
    const std::string name = "/_cairn/chunks/" + std::to_string(k);
    const WriteItem& item = s.items[k];
    const EntryInfo& info = s.entries[static_cast<std::size_t>(item.entry)];
    h5::Handle dset = h5::dataset(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT));
    ASSERT_TRUE(dset.valid()) << name;
    EXPECT_EQ(string_attribute(dset.get(), "entry"), info.name) << name;
    EXPECT_EQ(int_array_attribute(dset.get(), "offset"), item.region.offset) << name;
    h5::Handle space = h5::dataspace(H5Dget_space(dset.get()));
    std::vector<hsize_t> dims(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space.get())));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    EXPECT_EQ(Extents(dims.begin(), dims.end()), item.region.shape) << name;
    h5::Handle stored = h5::datatype(H5Dget_type(dset.get()));
    h5::Handle expected = h5::file_type(info.dtype);
    EXPECT_GT(H5Tequal(stored.get(), expected.get()), 0) << name << " is not stored as " << dtype_name(info.dtype);
    // The stored bytes are the buffer's, in the entry's dtype.
    std::vector<std::byte> bytes(s.data[k].size());
    h5::Handle mem = h5::memory_type(info.dtype);
    ASSERT_GE(H5Dread(dset.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), 0) << name;
    EXPECT_EQ(bytes, s.data[k]) << name;
  }
  EXPECT_LE(H5Lexists(file.get(), ("/_cairn/chunks/" + std::to_string(s.items.size())).c_str(), H5P_DEFAULT), 0);
  EXPECT_GT(H5Lexists(file.get(), "/_cairn/metadata", H5P_DEFAULT), 0);
}

TEST(RankFilesStorage, MergesMetadataAsOneSharedFile) {
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  write_rank_files(dir);
  MpiProcessGroup group(MPI_COMM_WORLD);
  auto reader = make_hdf5_reader();
  reader->open(dir, group);
  const Metadata& md = reader->metadata();
  const int n = world_size();
  EXPECT_EQ(md.world_size, n);
  EXPECT_EQ(md.library_version, "test");
  EXPECT_EQ(md.created_unix_time, 1234567);
  // Entries by name in first-appearance order: rank 0's order.
  std::vector<std::string> names;
  for (const EntryInfo& e : md.entries) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"fields/temperature", "rng", "cursor", "table", "time"}));
  ASSERT_EQ(md.entries.size(), 5u);

  const EntryInfo& rng = md.entries[1];
  ASSERT_EQ(rng.rank_offsets.size(), static_cast<std::size_t>(n) + 1);
  EXPECT_EQ(rng.rank_offsets[0], 0);
  for (int r = 0; r < n; ++r)
    EXPECT_EQ(rng.rank_offsets[static_cast<std::size_t>(r) + 1] - rng.rank_offsets[static_cast<std::size_t>(r)],
              static_cast<std::int64_t>(blob_size(r)))
        << "saved rank " << r;
  EXPECT_EQ(rng.global_shape, Extents{rng.rank_offsets.back()});
  EXPECT_EQ(md.entries[0].global_shape, (Extents{rows(), cols}));
  EXPECT_EQ(md.entries[2].global_shape, Extents{n});
  EXPECT_EQ(md.entries[3].dtype, DType::Int32);
  EXPECT_EQ(md.entries[3].global_shape, table_shape);
  ASSERT_TRUE(std::holds_alternative<double>(md.entries[4].value));
  EXPECT_EQ(std::get<double>(md.entries[4].value), 2.5);

  // Every saving rank's chunk records, each exactly once: merged entry index, saving rank, region
  // in global coordinates (blobs shifted to their rank's offset), checksum of the saved bytes.
  std::vector<bool> used(md.chunks.size(), false);
  std::size_t expected_count = 0;
  for (int r = 0; r < n; ++r) {
    const RankSave s = make_rank_save(r, n);
    for (const ChunkRecord& c : s.metadata.chunks) {
      ++expected_count;
      const std::string& name = s.entries[static_cast<std::size_t>(c.entry)].name;
      const EntryInfo* merged = md.find(name);
      ASSERT_NE(merged, nullptr) << name;
      Region region = c.region;
      if (name == "rng") region.offset[0] += rng.rank_offsets[static_cast<std::size_t>(r)];
      std::size_t hits = 0;
      for (std::size_t i = 0; i < md.chunks.size(); ++i) {
        const ChunkRecord& m = md.chunks[i];
        if (m.rank != r || md.entries[static_cast<std::size_t>(m.entry)].name != name || !(m.region == region))
          continue;
        ++hits;
        used[i] = true;
        EXPECT_EQ(m.checksum, c.checksum) << name << " of saved rank " << r;
      }
      EXPECT_EQ(hits, 1u) << name << " " << detail::to_string(region) << " of saved rank " << r;
    }
  }
  EXPECT_EQ(md.chunks.size(), expected_count);
  reader->close();
}

std::int32_t entry_index(const Metadata& md, const std::string& name) {
  for (std::size_t i = 0; i < md.entries.size(); ++i)
    if (md.entries[i].name == name) return static_cast<std::int32_t>(i);
  ADD_FAILURE() << "no entry '" << name << "'";
  return 0;
}

// Counts elements of a field region that do not hold field_value.
std::int64_t wrong_field_elements(const std::vector<double>& values, const Region& region) {
  std::int64_t wrong = 0, at = 0;
  for (std::int64_t i = 0; i < region.shape[0]; ++i)
    for (std::int64_t j = 0; j < region.shape[1]; ++j, ++at)
      if (values[static_cast<std::size_t>(at)] != field_value(region.offset[0] + i, region.offset[1] + j)) ++wrong;
  return wrong;
}

TEST(RankFilesStorage, ReadsColumnSlabsBlobsScalarsAndWidensInt32) {
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  write_rank_files(dir);
  MpiProcessGroup group(MPI_COMM_WORLD);
  auto reader = make_hdf5_reader();
  reader->open(dir, group);
  const Metadata& md = reader->metadata();
  const int n = world_size(), rank = world_rank();
  const std::int32_t field_entry = entry_index(md, "fields/temperature");
  const std::int32_t rng_entry = entry_index(md, "rng");
  const EntryInfo& rng = md.entries[static_cast<std::size_t>(rng_entry)];
  ASSERT_EQ(rng.rank_offsets.size(), static_cast<std::size_t>(n) + 1);

  // Column slabs: every request spans every saving rank's row slab, both of its datasets.
  const std::int64_t c0 = cols * rank / n, c1 = cols * (rank + 1) / n;
  const Region column{{0, c0}, {rows(), c1 - c0}};
  std::vector<double> field(static_cast<std::size_t>(rows() * (c1 - c0)), -1.0);
  std::vector<std::int64_t> table(12, -1);
  std::vector<std::int64_t> cursors(static_cast<std::size_t>(n), -1);
  std::vector<std::vector<std::uint8_t>> blobs(static_cast<std::size_t>(n));
  std::vector<ReadRequest> requests;
  requests.push_back({field_entry, column, DType::Float64, field.data()});
  requests.push_back({entry_index(md, "table"), Region{{0, 0}, table_shape}, DType::Int64, table.data()});
  requests.push_back({entry_index(md, "cursor"), Region{{0}, {n}}, DType::Int64, cursors.data()});
  for (int r = 0; r < n; ++r) {
    auto& blob = blobs[static_cast<std::size_t>(r)];
    blob.assign(blob_size(r), 0);
    requests.push_back(
        {rng_entry, Region{{rng.rank_offsets[static_cast<std::size_t>(r)]}, {static_cast<std::int64_t>(blob.size())}},
         DType::UInt8, blob.data()});
  }
  reader->read(requests);

  EXPECT_EQ(wrong_field_elements(field, column), 0) << "rank " << rank;
  for (std::size_t i = 0; i < table.size(); ++i)
    EXPECT_EQ(table[i], std::int64_t{table_value(static_cast<std::int64_t>(i))}) << "table element " << i;
  for (int r = 0; r < n; ++r) EXPECT_EQ(cursors[static_cast<std::size_t>(r)], cursor_value(r)) << "saved rank " << r;
  for (int r = 0; r < n; ++r)
    for (std::size_t i = 0; i < blob_size(r); ++i)
      EXPECT_EQ(blobs[static_cast<std::size_t>(r)][i], blob_byte(r, i)) << "saved rank " << r << " byte " << i;

  // A second read in which odd ranks ask for nothing: interior regions, offsets inside chunks.
  const Region interior{{1, c0}, {rows() - 2, 1}};
  std::vector<double> strip(static_cast<std::size_t>(rows() - 2), -1.0);
  std::int64_t own_cursor = -1;
  std::vector<ReadRequest> some;
  if (rank % 2 == 0) {
    some.push_back({field_entry, interior, DType::Float64, strip.data()});
    some.push_back({entry_index(md, "cursor"), Region{{rank}, {1}}, DType::Int64, &own_cursor});
  }
  reader->read(some);
  if (rank % 2 == 0) {
    EXPECT_EQ(wrong_field_elements(strip, interior), 0) << "rank " << rank;
    EXPECT_EQ(own_cursor, cursor_value(rank));
  }
  reader->close();
}

// Reads the whole checkpoint on the one rank of `comm`.
void read_everything(MPI_Comm comm, const std::string& dir) {
  MpiProcessGroup group(comm);
  auto reader = make_hdf5_reader();
  reader->open(dir, group);
  const Metadata& md = reader->metadata();
  const int n = world_size();
  EXPECT_EQ(md.world_size, n);
  const Region whole{{0, 0}, {rows(), cols}};
  std::vector<double> field(static_cast<std::size_t>(rows() * cols), -1.0);
  std::vector<std::int32_t> table(12, -1);
  std::vector<std::int64_t> cursors(static_cast<std::size_t>(n), -1);
  const EntryInfo* rng = md.find("rng");
  ASSERT_NE(rng, nullptr);
  ASSERT_EQ(rng->global_shape.size(), 1u);
  std::vector<std::uint8_t> blobs(static_cast<std::size_t>(rng->global_shape[0]), 0);
  reader->read({{entry_index(md, "fields/temperature"), whole, DType::Float64, field.data()},
                {entry_index(md, "table"), Region{{0, 0}, table_shape}, DType::Int32, table.data()},
                {entry_index(md, "cursor"), Region{{0}, {n}}, DType::Int64, cursors.data()},
                {entry_index(md, "rng"), Region{{0}, rng->global_shape}, DType::UInt8, blobs.data()}});
  reader->close();
  EXPECT_EQ(wrong_field_elements(field, whole), 0);
  for (std::size_t i = 0; i < table.size(); ++i) EXPECT_EQ(table[i], table_value(static_cast<std::int64_t>(i)));
  for (int r = 0; r < n; ++r) EXPECT_EQ(cursors[static_cast<std::size_t>(r)], cursor_value(r)) << "saved rank " << r;
  // All blobs side by side, in saved-rank order.
  std::size_t at = 0;
  for (int r = 0; r < n; ++r)
    for (std::size_t i = 0; i < blob_size(r); ++i, ++at)
      EXPECT_EQ(blobs.at(at), blob_byte(r, i)) << "saved rank " << r << " byte " << i;
  EXPECT_EQ(at, blobs.size());
}

TEST(RankFilesStorage, OneRankOfASubCommunicatorReadsEverything) {
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  write_rank_files(dir);
  // The last world rank alone: rank 0 of its group is not world rank 0.
  MPI_Comm one = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() == world_size() - 1 ? 0 : MPI_UNDEFINED, 0, &one);
  if (one != MPI_COMM_NULL) {
    read_everything(one, dir);
    MPI_Comm_free(&one);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Opens `dir` with the HDF5 reader on every rank and expects `E` naming `needle` everywhere.
template <class E>
void expect_open_error(const std::string& dir, const std::string& needle) {
  MpiProcessGroup group(MPI_COMM_WORLD);
  auto reader = make_hdf5_reader();
  expect_error<E>([&] { reader->open(dir, group); }, needle);
  reader->close();
}

TEST(RankFilesStorage, MissingRankFileFailsEveryRankNamingIt) {
  if (world_size() < 2) GTEST_SKIP() << "needs a second rank file";
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  write_rank_files(dir);
  if (world_rank() == 0) {
    ASSERT_TRUE(fs::remove(rank_file(dir, 1)));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  expect_open_error<StorageError>(dir, "rank_000001.h5");
}

TEST(RankFilesStorage, CorruptMetadataOfTheLastRankFailsEveryRank) {
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  write_rank_files(dir);
  const std::string victim = rank_file(dir, world_size() - 1);
  if (world_rank() == 0) {
    h5::Handle file = h5::file(H5Fopen(victim.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(file.valid());
    h5::Handle dset = h5::dataset(H5Dopen2(file.get(), "/_cairn/metadata", H5P_DEFAULT));
    ASSERT_TRUE(dset.valid());
    h5::Handle space = h5::dataspace(H5Dget_space(dset.get()));
    hsize_t size = 0;
    H5Sget_simple_extent_dims(space.get(), &size, nullptr);
    ASSERT_GT(size, 32u);
    std::vector<unsigned char> blob(size);
    ASSERT_GE(H5Dread(dset.get(), H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()), 0);
    for (hsize_t i = size / 2; i < size / 2 + 8; ++i) blob[i] ^= 0xff;
    ASSERT_GE(H5Dwrite(dset.get(), H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  expect_open_error<CorruptCheckpointError>(dir, fs::path(victim).filename().string());
}

TEST(RankFilesStorage, RankFileOfAnotherRankIsCorrupt) {
  if (world_size() < 2) GTEST_SKIP() << "needs a second rank file";
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  write_rank_files(dir);
  if (world_rank() == 0) {
    fs::copy_file(rank_file(dir, 0), rank_file(dir, 1), fs::copy_options::overwrite_existing);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  expect_open_error<CorruptCheckpointError>(dir, "rank_000001.h5");
}

TEST(RankFilesStorage, EntriesThatDisagreeAcrossRankFilesAreCorrupt) {
  if (world_size() < 2) GTEST_SKIP() << "needs a second rank file";
  TempDir tmp;
  const std::string dir = tmp / "ckpt";
  // The last rank declares the replicated table int64 (it writes no chunk of it).
  write_rank_files(dir, [](RankSave& s) {
    if (world_rank() != world_size() - 1) return;
    s.entries[static_cast<std::size_t>(s.index_of("table"))].dtype = DType::Int64;
    s.metadata.entries = s.entries;
  });
  expect_open_error<CorruptCheckpointError>(dir, "'table'");
}

TEST(RankFilesStorage, WritersCreateAMissingDirectoryTogether) {
  TempDir tmp;
  const std::string dir = tmp / "a/b/ckpt";  // every rank runs mkdir -p on it at once
  write_rank_files(
      dir, [](RankSave&) {}, false);
  for (int r = 0; r < world_size(); ++r) EXPECT_TRUE(fs::exists(rank_file(dir, r))) << rank_file(dir, r);
  std::int64_t own_cursor = -1;
  MpiProcessGroup group(MPI_COMM_WORLD);
  auto reader = make_hdf5_reader();
  reader->open(dir, group);
  reader->read({{entry_index(reader->metadata(), "cursor"), Region{{world_rank()}, {1}}, DType::Int64, &own_cursor}});
  reader->close();
  EXPECT_EQ(own_cursor, cursor_value(world_rank()));
}

TEST(RankFilesStorage, DirectoryWithoutDataFilesNamesDataH5) {
  TempDir tmp;
  const std::string dir = tmp / "empty";
  if (world_rank() == 0) fs::create_directory(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_open_error<StorageError>(dir, "data.h5");
}

}  // namespace
}  // namespace cairn::test
